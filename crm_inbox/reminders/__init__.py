"""Reminders (Wiedervorlage): the rules that make and complete them, staff actions, firing due ones exactly
once (service), due times in words (due_time) and the private iCalendar feed (calendar_feed).

May import timeline, the outbox and the shared modules.
"""

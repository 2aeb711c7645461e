"""Support tickets: opening, threading by number and references, states, merging, notes, the acknowledgement
and the loop limit.

May import contacts, reminders, timeline, the outbox and the shared modules.
"""

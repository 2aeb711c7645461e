"""Support tickets: what an inbound mail does to them, decided without a database (policy: open, join,
reopen, loop limit, acknowledgement, and which states count as open), and carried out with threading by
number and references, states, merging and notes (service).

May import contacts, reminders, timeline, the outbox and the shared modules.
"""

"""Phone calls: a phone system's events make a call and its state (service), the number finds the person,
a missed call owes a call-back; the screen pop's in-process broker (screenpop) and its relay between the
nodes of a PostgreSQL cluster (relay).

May import contacts, reminders, tickets, timeline and the shared modules.
"""

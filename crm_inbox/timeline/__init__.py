"""The timeline: interactions (mail, calls, notes, ticket changes) recorded and read page by page (service),
and triage, where staff decide what the machine left unassigned (triage).

May import the shared modules and mail's address rules.
"""

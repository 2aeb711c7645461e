"""Mail staff write in the CRM (from the customer page, a ticket or a quote): it is recorded on the timeline as
outgoing mail by its writer, with its attachments, and queued in the outbox in the same transaction; the
outbox sends it after commit with our Message-ID, and In-Reply-To/References when it answers a mail, so the
customer's reply threads back to it.

May import contacts, timeline and outbox; imported by tickets (a reply sets the ticket pending), sales (a quote
goes out with its PDF), the composition root and the web adapter.
"""

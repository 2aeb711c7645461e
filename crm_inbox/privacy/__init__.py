"""Data protection: everything about a person as a zip and erasure everywhere (service), redaction of what
others keep (redaction), the person's opportunities, quotes and orders in both (sales: commercial letters are kept,
detached from the person), and the retention purge (retention).

May import contacts, timeline, intake (raw mail), mail and the shared modules.
"""

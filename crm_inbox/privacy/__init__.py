"""Data protection: everything about a person as a zip and erasure everywhere (service), redaction of what
others keep (redaction), and the retention purge (retention).

May import contacts, timeline, intake (raw mail), mail and the shared modules.
"""

"""Raw mail in, exactly once: the one store every channel ends in and the ``Store`` a listener is given (store),
serve's SMTP store that picks the committing process by size (smtp_store), the SMTP intake's writer process
(writer), the IMAP folders' progress (imap_folders) and memory hygiene for large messages (memory).

See docs/intake.md for the path from socket to committed row. May import the shared modules only.
"""

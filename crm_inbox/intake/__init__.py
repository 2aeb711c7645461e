"""Raw mail in, exactly once: the one store every channel ends in (store), the SMTP intake's writer process
(writer), the IMAP folders' progress (imap_folders) and memory hygiene for large messages (memory).

See docs/intake.md for the path from socket to committed row. May import the shared modules only.
"""

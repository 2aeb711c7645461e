"""Pure mail handling, no database: parsing bytes (parse, boundaries, charsets, encoded_words), addresses, HTML
sanitising, attachment names, forwarded mail, automatic mail and bounces, and attribution (who a mail is about).

May import config, models (enums only), time_range; nothing that does I/O.
"""

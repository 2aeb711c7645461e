"""Pure mail handling: parsing bytes, addresses, HTML, attachment names. No database here."""

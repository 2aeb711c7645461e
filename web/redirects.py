"""Where a page may send the browser next: the one check for ``next`` after login and ``back`` after a form."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_next(value: str | None, default: str) -> str:
    """``value`` when it is a path on this site, else ``default``.

    Browsers read ``//host`` and ``/\\host`` as another host, and drop tabs and newlines from URLs
    (``/\\t/host`` becomes ``//host``): so a backslash or a control character anywhere refuses the value."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value

"""Attachment file names reduced to a safe base name (no paths, no control or bidi characters, bounded length)."""

from __future__ import annotations

import mimetypes
import re
import unicodedata

_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')
MAX_NAME = 200


def safe_filename(name: str | None, content_type: str = "application/octet-stream") -> str:
    """``../../etc/passwd`` → ``passwd``; ``C:\\x\\a.exe`` → ``a.exe``; empty → ``attachment.<ext>``."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = _UNSAFE.sub("_", name)
    # Bidi overrides and other invisible format characters disguise a name ("invoice\u202efdp.exe" shows as
    # "invoiceexe.pdf"): made visible as "_".
    name = "".join("_" if unicodedata.category(ch) in {"Cf", "Cc", "Zl", "Zp"} else ch for ch in name)
    name = name.strip().lstrip(".").strip()
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:MAX_NAME]
    if not name:
        ext = mimetypes.guess_extension(content_type.split(";")[0].strip().lower()) or ".bin"
        name = "attachment" + ext
    return name

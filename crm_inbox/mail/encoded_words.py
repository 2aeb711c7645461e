"""RFC 2047 encoded words (``=?utf-8?b?…?=``) in unstructured text and display names.

Decoded leniently, as real mail needs: adjacent words in one charset are joined as bytes before decoding
(encoders split a multi-byte character across two words), broken base64 padding is repaired, and every
charset goes through ``charsets.decode`` (UTF-7, ISO-2022-JP with vendor characters, wrong labels).
Never raises; text that is not an encoded word is kept as it is.
"""

from __future__ import annotations

import binascii
import re

from crm_inbox.mail.charsets import decode

WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?(.*?)\?=")
_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")
_B64_JUNK = re.compile(r"[^A-Za-z0-9+/]")


def _b64(text: str) -> bytes | None:
    """Base64 with missing padding repaired; None when the text is no base64 at all (kept as it is)."""
    data = "".join(text.split()).rstrip("=")
    if _B64_JUNK.search(data):
        return None
    if len(data) % 4 == 1:  # one stray character cannot be decoded: drop it rather than the word
        data = data[:-1]
    try:
        return binascii.a2b_base64(data + "=" * (-len(data) % 4))
    except binascii.Error:
        return None


def _q(text: str) -> bytes:
    raw = text.replace("_", " ").encode("utf-8", "surrogateescape")
    return _HEX.sub(lambda m: bytes((int(m.group(1), 16),)), raw)


def decode_words(text: str) -> str:
    """``text`` with its encoded words decoded; whitespace between two encoded words is dropped (RFC 2047 6.2)."""
    if "=?" not in text:
        return text
    out: list[str] = []
    pending = b""
    pending_charset = ""
    position = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending_charset:
            out.append(decode(pending, [pending_charset]))
        pending, pending_charset = b"", ""

    for match in WORD.finditer(text):
        between = text[position:match.start()]
        if between and not (pending_charset and between.isspace()):
            flush()
            out.append(between)
        charset = match.group(1).split("*", 1)[0]  # RFC 2231 language suffix: utf-8*de
        data = _b64(match.group(3)) if match.group(2) in "bB" else _q(match.group(3))
        if data is None:  # a malformed word is shown as it came (RFC 2047 6.3)
            flush()
            out.append(match.group(0))
            position = match.end()
            continue
        if pending_charset and charset.lower() != pending_charset.lower():
            flush()
        pending += data
        pending_charset = charset
        position = match.end()
    flush()
    out.append(text[position:])
    return "".join(out)

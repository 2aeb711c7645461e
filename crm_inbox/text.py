"""Text meant for one line: names and titles, from whatever input (API, forms, mail headers, the CLI)."""

from __future__ import annotations

import re

# C0 controls (with TAB, LF, CR), DEL, C1 controls (with NEL) and the Unicode line and paragraph separators.
_LINE_BREAKERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
LIST_LENGTH = 200  # what a list shows of a subject or title; the record's own page shows all of it
ELLIPSIS = "…"


def single_line(text: str) -> str:
    """``text`` with every run of control characters replaced by one space, so that a name or title can
    never start a new line where it is shown, logged or written into a mail (no added header or body lines).
    Ends are stripped; whatever else was typed is kept."""
    return _LINE_BREAKERS.sub(" ", text).strip()


def shorten(text: str | None, limit: int = LIST_LENGTH) -> str:
    """At most ``limit`` characters of ``text`` for a list, "…" marking a cut (a 4 MB subject stays stored
    whole but makes no list 4 MB)."""
    if not text or len(text) <= limit:
        return text or ""
    return text[:limit - 1].rstrip() + ELLIPSIS

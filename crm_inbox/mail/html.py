"""HTML from mail: sanitised with nh3 (Ammonia) before it is stored, and turned into plain text."""

from __future__ import annotations

import html as html_lib
import re

import nh3

# Tags mail legitimately uses for layout; everything active (script, iframe, form, object, style…)
# is dropped together with its content by Ammonia's defaults.
_ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img"} | {"font", "center", "span", "div"}
_ALLOWED_ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"title", "lang", "dir", "align"},
    "font": {"color", "face", "size"},
    "td": {"colspan", "rowspan", "align", "valign"},
    "th": {"colspan", "rowspan", "align", "valign"},
}
_BLOCK_END = re.compile(r"(?i)<\s*(br\s*/?|/p|/div|/tr|/li|/h[1-6]|/blockquote|/table)\s*>")
_CELL_END = re.compile(r"(?i)<\s*/t[dh]\s*>")


def sanitise_html(raw: str) -> str:
    """Safe HTML to show inside a sandboxed frame: no scripts, handlers, styles or remote images."""
    return nh3.clean(
        raw,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def html_to_text(raw: str) -> str:
    """Readable text of an HTML body (for HTML-only mail, search and the timeline excerpt)."""
    marked = _CELL_END.sub(" \t", _BLOCK_END.sub("\n", raw))
    text = html_lib.unescape(nh3.clean(marked, tags=set(), attributes={}, strip_comments=True))
    lines = [" ".join(line.split()) for line in text.replace("\xa0", " ").splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()

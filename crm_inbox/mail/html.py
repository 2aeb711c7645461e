"""HTML from mail: sanitised with nh3 (Ammonia) before it is stored, and turned into plain text."""

from __future__ import annotations

import re
from html.parser import HTMLParser

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


_BLOCKS = frozenset({"p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
                     "blockquote", "pre", "hr", "dl", "dt", "dd", "section", "article", "header", "footer"})


class _TextExtractor(HTMLParser):
    """Text in document order: blocks end lines, table cells are separated by a space."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")
        elif tag in {"td", "th"}:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        self.parts.append(re.sub(r"\s+", " ", data))  # source line breaks are just spaces in HTML


def html_to_text(raw: str) -> str:
    """Readable text of an HTML body (for HTML-only mail, search and the timeline excerpt)."""
    # Sanitise first: script and style content is dropped by Ammonia, comments too.
    cleaned = nh3.clean(raw, tags=_ALLOWED_TAGS | {"br", "p", "div", "table", "tr", "td", "th"},
                        attributes={}, strip_comments=True)
    extractor = _TextExtractor()
    extractor.feed(cleaned)
    extractor.close()
    lines = [" ".join(line.split()) for line in "".join(extractor.parts).replace("\xa0", " ").splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()

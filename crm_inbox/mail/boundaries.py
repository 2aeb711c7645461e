"""MIME boundary lines found without a regular expression of their own, as Python 3.13's parser does.

Before 3.13 the stdlib's ``email.feedparser`` compiles a new regular expression for every multipart entity
it reads (the boundary is in the pattern; CPython gh-106628). Boundaries are unique per message, so the ``re``
cache never helps: about 0.1 ms each on the bench machine, and real mail often nests two or three (mixed >
alternative > related). On bench/ingest.py's mails the stdlib parser's time falls by a quarter without it.

``install`` gives ``email.feedparser`` a ``re`` whose ``compile`` answers that one pattern with a matcher
that does what 3.13 does: ``str.startswith`` on the separator, then one shared expression for the rest of
the line. Every other pattern, and every other use of ``re`` there, is the real module. On 3.13 and later
``install`` does nothing.
"""

from __future__ import annotations

import email.feedparser
import re
import sys
from typing import Any

# The pattern feedparser builds: ``_PREFIX + re.escape(separator) + _SUFFIX`` (Lib/email/feedparser.py).
_PREFIX = "(?P<sep>"
_SUFFIX = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
# What follows the separator on a boundary line (3.13's ``boundaryendRE``, the same groups).
_AFTER_SEPARATOR = re.compile(r"(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)  # re.escape puts a backslash before each special character


class BoundaryLine:
    """Matches a boundary line as the compiled pattern would: the same match object groups."""

    __slots__ = ("separator",)

    def __init__(self, separator: str) -> None:
        self.separator = separator

    def match(self, line: str) -> re.Match[str] | None:
        if not line.startswith(self.separator):
            return None
        return _AFTER_SEPARATOR.match(line, len(self.separator))


def boundary_line(pattern: str) -> BoundaryLine | None:
    """The matcher for feedparser's boundary ``pattern``; None for any other pattern."""
    if not (pattern.startswith(_PREFIX) and pattern.endswith(_SUFFIX)):
        return None
    escaped = pattern[len(_PREFIX):-len(_SUFFIX)]
    return BoundaryLine(_ESCAPED.sub(r"\1", escaped))


class _FeedparserRe:
    """The ``re`` module as ``email.feedparser`` sees it once installed."""

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)

    def compile(self, pattern: Any, flags: int = 0) -> Any:
        matcher = boundary_line(pattern) if isinstance(pattern, str) and not flags else None
        return matcher if matcher is not None else re.compile(pattern, flags)


def install() -> bool:
    """Give ``email.feedparser`` the boundary matcher (once); True where the Python needs it."""
    if sys.version_info >= (3, 13):
        return False
    namespace = vars(email.feedparser)  # its globals: ``_parsegen`` looks ``re`` up there at each call
    if namespace.get("re") is re:
        namespace["re"] = _FeedparserRe()
    return True

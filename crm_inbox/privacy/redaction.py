"""Removing one person's identifiers (addresses, phone numbers, name) from text and JSON that is kept for
others: a mail shared with other contacts, the audit log. Pure: no database.

Addresses match case-insensitively anywhere; a phone number matches in any common spelling of it
(``+49 171 2345678``, ``0171/2345678``, ``0049 (0)171 23 45 678``); the name matches as whole words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import phonenumbers

MARK = "[erased]"
_SEP = r"[\s\-/.()]*"


def _phone_pattern(e164: str) -> str | None:
    """Every usual way of writing this number: with +CC, 00CC, a bracketed trunk zero, or the trunk zero."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    national = str(number.national_number)
    if len(national) < 5:  # too short to be told apart from other digits
        return None
    country = str(number.country_code)
    digits = _SEP.join(re.escape(d) for d in national)
    prefix = rf"(?:(?:\+|00){_SEP}{_SEP.join(country)}{_SEP}(?:\(?0\)?{_SEP})?|0{_SEP})?"
    return rf"(?<!\d){prefix}{digits}(?!\d)"


class Redactor:
    """Replaces the identifiers of one person with ``[erased]``."""

    def __init__(self, emails: Iterable[str] = (), phones_e164: Iterable[str] = (), phones_raw: Iterable[str] = (),
                 names: Iterable[str] = ()) -> None:
        parts: list[str] = []
        parts += [re.escape(e) for e in sorted({e.strip() for e in emails if e and e.strip()}, key=len, reverse=True)]
        for e164 in sorted({p for p in phones_e164 if p}):
            pattern = _phone_pattern(e164)
            if pattern:
                parts.append(pattern)
        # Numbers that could not be read as E.164 are matched as typed.
        parts += [re.escape(r.strip()) for r in phones_raw if r and len(re.sub(r"\D", "", r)) >= 5]
        # A single short word ("Max") would blank other people's text; names count from two words or 6 letters.
        self.names = sorted({n.strip() for n in names if n and (len(n.split()) >= 2 or len(n.strip()) >= 6)})
        parts += [rf"\b{re.escape(n)}\b" for n in self.names]
        self._pattern = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def text(self, value: str) -> str:
        return self._pattern.sub(MARK, value) if self._pattern is not None else value

    def value(self, value: Any) -> Any:
        """``value`` (JSON-like: dicts, lists, strings, numbers) with every string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value

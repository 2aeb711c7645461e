"""Phone numbers: as typed for people, as E.164 for matching (phonenumbers, default region from config)."""

from __future__ import annotations

import re

import phonenumbers

_WITHHELD = frozenset({"", "anonymous", "unknown", "restricted", "private", "withheld", "unavailable",
                       "unbekannt", "anonym", "clip_no_screening"})


def to_e164(raw: str | None, default_region: str = "DE") -> str | None:
    """``0171/2345678`` → ``+491712345678``; None for withheld, anonymous or invalid numbers."""
    if raw is None:
        return None
    text = raw.strip()
    if text.lower() in _WITHHELD:
        return None
    text = re.sub(r"\(0\)", "", text)  # "+49 (0)171 …": the trunk zero in brackets is not dialled
    if text.startswith("00"):
        text = "+" + text[2:]
    candidates: list[phonenumbers.PhoneNumber | None] = []
    digits = re.sub(r"\D", "", text)
    # Phone systems often send international numbers without '+' or '00' (4930123456): a long number
    # with no trunk zero is read as international first, since national numbers start with 0.
    if digits and not text.startswith(("0", "+")) and len(digits) >= 10:
        candidates.append(_parse("+" + digits, None))
    candidates.append(_parse(text, default_region.upper()))
    parsed = [n for n in candidates if n is not None]
    best = next((n for n in parsed if phonenumbers.is_valid_number(n)), None)
    if best is None:
        # Possible, but not only as a local number ("12" is no German number, "+4912" is no answer).
        best = next((n for n in parsed if phonenumbers.is_possible_number_with_reason(n)
                     == phonenumbers.ValidationResult.IS_POSSIBLE), None)
    if best is None:
        return None
    return phonenumbers.format_number(best, phonenumbers.PhoneNumberFormat.E164)


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def block_prefix(raw: str, e164: str | None) -> str | None:
    """``+49 89 4711-0`` (DIN 5008: the switchboard's "-0") owns the block ``+49894711…``."""
    if e164 and raw.strip().replace(" ", "").endswith("-0") and e164.endswith("0"):
        return e164[:-1]
    return None

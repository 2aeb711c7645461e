"""Phone numbers as people type them, read with the region the install is in, become E.164 (or None).

Every number below is either valid for phonenumbers or in a range reserved for fiction and examples
(Ofcom's 020 7946 0xxx and 07700 900xxx, the US 555-01xx, Germany's 030 23125 xxx, 0221 4710 xxx and
069 90009 xxx).
"""

from __future__ import annotations

import phonenumbers
import pytest

from crm_inbox.phone import to_e164

KLAUS = "+491712345678"
MUNICH = "+498912345678"
EXTENSION = "+4989471122"
BERLIN = "+493023125000"
VIENNA_MOBILE = "+436641234567"
ZURICH = "+41446681800"
LONDON = "+442079460958"
UK_MOBILE = "+447700900123"
NEW_YORK = "+12125550100"

CASES: list[tuple[str, str, str | None]] = [
    # Germany, mobile: every way people and phone systems write it
    ("0171 2345678", "DE", KLAUS),
    ("0171/2345678", "DE", KLAUS),
    ("0171-2345678", "DE", KLAUS),
    ("01712345678", "DE", KLAUS),
    ("+49 171 2345678", "DE", KLAUS),
    ("+49 (0)171 2345678", "DE", KLAUS),
    ("+49-171-234 56 78", "DE", KLAUS),
    ("0049 171 2345678", "DE", KLAUS),
    ("0049 (0)171 2345678", "DE", KLAUS),
    ("491712345678", "DE", KLAUS),  # as sipgate and most PBXs send it: no '+', no '00'
    (" 0171 2345678 ", "DE", KLAUS),
    ("+49 171 2345678", "AT", KLAUS),  # an international number ignores the region
    # Germany, landline, extensions in DIN 5008 style
    ("(089) 12 34 56-78", "DE", MUNICH),
    ("089 12345678", "DE", MUNICH),
    ("+49 89 12345678", "DE", MUNICH),
    ("089/4711-22", "DE", EXTENSION),
    ("+49 89 4711-22", "DE", EXTENSION),
    ("4989471122", "DE", EXTENSION),
    ("089 4711-0", "DE", "+498947110"),  # the switchboard itself
    ("030 23125 000", "DE", BERLIN),
    ("(030) 231 250 00", "DE", BERLIN),
    ("+49 (0)30 23125-000", "DE", BERLIN),
    ("0049 30 23125000", "DE", BERLIN),
    ("0221 4710 123", "DE", "+492214710123"),
    ("069 90009 100", "DE", "+496990009100"),
    # Austria
    ("+43 664 1234567", "DE", VIENNA_MOBILE),
    ("0043 664 1234567", "DE", VIENNA_MOBILE),
    ("0664 1234567", "AT", VIENNA_MOBILE),
    ("0664/123 45 67", "AT", VIENNA_MOBILE),
    ("436641234567", "DE", VIENNA_MOBILE),
    ("01 5124567", "AT", "+4315124567"),
    # Switzerland
    ("+41 44 668 18 00", "DE", ZURICH),
    ("0041 44 668 18 00", "DE", ZURICH),
    ("+41 (0)44 668 18 00", "DE", ZURICH),
    ("044 668 18 00", "CH", ZURICH),
    ("41446681800", "DE", ZURICH),
    # United Kingdom
    ("020 7946 0958", "GB", LONDON),
    ("+44 20 7946 0958", "DE", LONDON),
    ("+44 (0)20 7946 0958", "DE", LONDON),
    ("0044 20 7946 0958", "DE", LONDON),
    ("+44 7700 900123", "DE", UK_MOBILE),
    ("07700 900123", "GB", UK_MOBILE),
    # United States
    ("(212) 555-0100", "US", NEW_YORK),
    ("212.555.0100", "US", NEW_YORK),
    ("1-212-555-0100", "US", NEW_YORK),
    ("+1 212-555-0100", "DE", NEW_YORK),
    ("+1 (212) 555-0100", "DE", NEW_YORK),
    ("001 212 555 0100", "DE", NEW_YORK),
    ("12125550100", "DE", NEW_YORK),
    # withheld, anonymous, garbage: no number at all
    ("anonymous", "DE", None),
    ("Anonymous", "DE", None),
    ("unknown", "DE", None),
    ("restricted", "DE", None),
    ("", "DE", None),
    ("   ", "DE", None),
    ("abc", "DE", None),
    ("+", "DE", None),
    ("0", "DE", None),
    ("12", "DE", None),
    ("00", "DE", None),
    ("+49", "DE", None),
    ("---", "DE", None),
]


@pytest.mark.parametrize(("typed", "region", "expected"), CASES, ids=[f"{r}:{t!r}" for t, r, _ in CASES])
def test_typed_numbers_become_e164(typed: str, region: str, expected: str | None) -> None:
    assert to_e164(typed, region) == expected


def test_the_table_is_big_enough_and_covers_every_country() -> None:
    assert len(CASES) >= 40
    regions = {phonenumbers.region_code_for_number(phonenumbers.parse(e)) for _, _, e in CASES if e}
    assert {"DE", "AT", "CH", "GB", "US"} <= regions


@pytest.mark.parametrize("expected", sorted({e for _, _, e in CASES if e}))
def test_expectations_agree_with_phonenumbers(expected: str) -> None:
    """Each expected answer is phonenumbers' own E.164 for it, and valid unless it is a fiction range."""
    parsed = phonenumbers.parse(expected)
    assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == expected
    assert phonenumbers.is_possible_number(parsed)
    fiction = {UK_MOBILE}  # Ofcom's drama range 07700 900xxx is not in phonenumbers' metadata
    assert phonenumbers.is_valid_number(parsed) or expected in fiction


def test_none_and_surrounding_text_of_a_withheld_number() -> None:
    assert to_e164(None) is None
    assert to_e164(" anonymous ") is None
    assert to_e164("+491712345678") == KLAUS  # already E.164: unchanged

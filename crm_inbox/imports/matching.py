"""The keys an import finds duplicates by: a company's name without case, spacing, umlaut spelling and legal
form; e-mail addresses lower-cased; phone numbers as E.164. Pure functions, no database."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers

from crm_inbox.mail.addresses import normalise_email
from crm_inbox.phone import to_e164

# Legal forms as their words after normalising ("GmbH & Co. KG" → "gmbh co kg"); the longest match is cut
# first, repeatedly, from the end of the name.
_LEGAL_FORMS = sorted((tuple(form.split()) for form in (
    "gmbh co kg", "gmbh co kgaa", "gmbh co ohg", "ag co kg", "ag co kgaa", "se co kg", "ug haftungsbeschraenkt co kg",
    "ug co kg", "ug haftungsbeschraenkt", "ug", "gmbh", "ggmbh", "mbh", "gesmbh", "ag", "kg", "kgaa", "ohg", "gbr",
    "ek", "e k", "ekfr", "e kfr", "ekfm", "e kfm", "ev", "e v", "eg", "e g", "se", "partg", "partgmbb", "partg mbb",
    "ltd", "limited", "inc", "incorporated", "llc", "llp", "lp", "plc", "corp", "corporation", "co", "co kg",
    "bv", "nv", "sa", "sarl", "sas", "srl", "spa", "sl", "ab", "as", "oy", "aps", "kft", "sro", "sp z oo", "spzoo",
    "pty ltd", "pty", "gesellschaft mit beschraenkter haftung", "aktiengesellschaft", "kommanditgesellschaft",
    "inh", "inhaber",
)), key=len, reverse=True)
_FORMS_BY_LAST: dict[str, list[tuple[str, ...]]] = {}
for _form in _LEGAL_FORMS:
    _FORMS_BY_LAST.setdefault(_form[-1], []).append(_form)  # longest first, as sorted
_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "&": " "})


def _words(text: str) -> list[str]:
    text = text.casefold().translate(_TRANSLIT)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = text.replace(".", "")  # "e.K." and "Co." are one word each
    return re.sub(r"[^a-z0-9]+", " ", text).split()


@lru_cache(maxsize=50_000)
def company_key(name: str | None) -> str:
    """``company_key("Müller GmbH") == company_key("mueller  gmbh") == "mueller"``; "" for no name. A name
    that is only a legal form keeps it (the key must not be empty)."""
    words = _words(name or "")
    if not words:
        return ""
    cut = True
    while cut:
        cut = False
        for form in _FORMS_BY_LAST.get(words[-1], ()):
            if len(words) > len(form) and tuple(words[-len(form):]) == form:
                words = words[:-len(form)]
                cut = True
                break
    return " ".join(words)


def email_key(raw: str | None) -> str:
    """The address lower-cased and checked; "" when it is none."""
    return normalise_email(raw or "")


@lru_cache(maxsize=20_000)  # a company's switchboard number repeats on its people's rows
def phone_key(raw: str | None, region: str) -> str | None:
    """What ``crm_inbox.phone.to_e164`` gives (lookups match on that), in half the time for a number with
    one reading: its E.164 when it is valid or possible, and a valid number is always a possible one, so the
    costly validity check is needed only for the numbers that are not possible. Others take the full rules."""
    if raw is None:
        return None
    text = re.sub(r"\(0\)", "", raw.strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    digits = re.sub(r"\D", "", text)
    if not digits or (not text.startswith(("0", "+")) and len(digits) >= 10):
        return to_e164(raw, region)  # withheld words, or two readings (international without "+")
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        return None
    if (phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE
            and not phonenumbers.is_valid_number(number)):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_domain(email: str) -> str:
    return email.rpartition("@")[2]

"""The keys an import finds duplicates by: a company's name without case, spacing, umlaut spelling and legal
form; e-mail addresses lower-cased; phone numbers as E.164. Pure functions, no database."""

from __future__ import annotations

import re
import unicodedata

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
_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "&": " "})


def _words(text: str) -> list[str]:
    text = text.casefold().translate(_TRANSLIT)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = text.replace(".", "")  # "e.K." and "Co." are one word each
    return re.sub(r"[^a-z0-9]+", " ", text).split()


def company_key(name: str | None) -> str:
    """``company_key("Müller GmbH") == company_key("mueller  gmbh") == "mueller"``; "" for no name. A name
    that is only a legal form keeps it (the key must not be empty)."""
    words = _words(name or "")
    if not words:
        return ""
    cut = True
    while cut:
        cut = False
        for form in _LEGAL_FORMS:
            if len(words) > len(form) and tuple(words[-len(form):]) == form:
                words = words[:-len(form)]
                cut = True
                break
    return " ".join(words)


def email_key(raw: str | None) -> str:
    """The address lower-cased and checked; "" when it is none."""
    return normalise_email(raw or "")


def phone_key(raw: str | None, region: str) -> str | None:
    return to_e164(raw, region)


def email_domain(email: str) -> str:
    return email.rpartition("@")[2]

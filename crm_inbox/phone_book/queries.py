"""The phone book's entries: every named person with a number and every company with a switchboard number,
by name. Names and numbers only: nothing else of a contact leaves through a phone-book URL."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_inbox.contacts.listing import name_order
from crm_inbox.models import Company, CompanyPhone, Contact, ContactPhone

_KINDS = (("mobil", "mobile"), ("cell", "mobile"), ("handy", "mobile"), ("home", "home"), ("privat", "home"))
_NOT_DIALLED = re.compile(r"[^\d+]")


@dataclass(frozen=True)
class Number:
    number: str  # E.164 ("+4989471100") when it could be parsed: dialable from any phone and router
    kind: str  # work, mobile, home


@dataclass(frozen=True)
class Entry:
    name: str  # the person's or the company's name
    company: str  # a person's company ("" for a company's own entry and for people without one)
    numbers: tuple[Number, ...]
    given: str = ""  # for phones with first and last name fields: "Anna" …
    family: str = ""  # … "Schmidt" (a company's name for its own entry)

    @property
    def display(self) -> str:
        """One line for phones with one name field: "Anna Schmidt (Müller GmbH)"."""
        return f"{self.name} ({self.company})" if self.company else self.name


def number_kind(label: str | None, e164: str | None = None) -> str:
    """work, mobile, home or fax: as the label says ("Mobil", "mobile", "cell", "Handy", "privat" …); a number
    without a label is a mobile one when its numbering plan says so (+49 15x/16x/17x), else work."""
    text = (label or "").casefold()
    if "fax" in text:
        return "fax"
    kind = next((kind for word, kind in _KINDS if word in text), None)
    if kind is None and not text.strip() and e164:
        kind = "mobile" if _is_mobile(e164) else None
    return kind or "work"


def _is_mobile(e164: str) -> bool:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    # FIXED_LINE_OR_MOBILE (the US, Canada…) stays work: the plan cannot tell.
    return phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE


def dialable(e164: str | None, raw: str) -> str:
    """E.164 when known; else what was typed without spaces and dashes ("0171/2345678" → "01712345678")."""
    if e164:
        return e164
    digits = _NOT_DIALLED.sub("", raw)
    return digits if any(ch.isdigit() for ch in digits) else ""


def _numbers(phones: list[tuple[str | None, str, str | None]]) -> tuple[Number, ...]:
    seen: set[str] = set()
    out = []
    for e164, raw, label in phones:
        kind, number = number_kind(label, e164), dialable(e164, raw)
        if number and kind != "fax" and number not in seen:  # nobody calls a fax from a desk phone
            seen.add(number)
            out.append(Number(number, kind))
    return tuple(out)


def split_name(name: str) -> tuple[str, str]:
    """(given, family) from a name as typed: "Müller, Anna" or "Anna Müller" (the last word is the family)."""
    if "," in name:
        family, given = name.split(",", 1)
        return given.strip(), family.strip()
    words = name.split()
    return (" ".join(words[:-1]), words[-1]) if words else ("", "")


def phone_book_entries(session: Session) -> list[Entry]:
    """Everybody with a name and a number, people and companies together, in dictionary order. Two plain
    queries (no ORM objects): a phone fetches this for 100,000 contacts too."""
    people: dict[int, tuple[str, str, list[tuple[str | None, str, str | None]]]] = {}
    for contact_id, name, company, e164, raw, label in session.execute(
            select(Contact.id, Contact.name, Company.name, ContactPhone.e164, ContactPhone.raw, ContactPhone.label)
            .join(ContactPhone, ContactPhone.contact_id == Contact.id)
            .outerjoin(Company, Contact.company_id == Company.id)
            .where(Contact.name.is_not(None)).order_by(Contact.id, ContactPhone.id)):
        people.setdefault(contact_id, (name or "", company or "", []))[2].append((e164, raw, label))
    firms: dict[int, tuple[str, list[tuple[str | None, str, str | None]]]] = {}
    for company_id, name, e164, raw, label in session.execute(
            select(Company.id, Company.name, CompanyPhone.e164, CompanyPhone.raw, CompanyPhone.label)
            .join(CompanyPhone, CompanyPhone.company_id == Company.id).order_by(Company.id, CompanyPhone.id)):
        firms.setdefault(company_id, (name, []))[1].append((e164, raw, label))
    entries: list[tuple[tuple[bool, str, str, int], Entry]] = []
    for contact_id, (raw_name, company, phones) in people.items():
        name, numbers = " ".join(raw_name.split()), _numbers(phones)
        if name and numbers:
            given, family = split_name(name)
            entries.append((name_order(name, contact_id), Entry(name, company, numbers, given, family)))
    for company_id, (raw_name, phones) in firms.items():
        name, numbers = " ".join(raw_name.split()), _numbers(phones)
        if name and numbers:
            entries.append((name_order(name, -company_id), Entry(name, "", numbers, "", name)))
    return [entry for _key, entry in sorted(entries, key=lambda pair: pair[0])]

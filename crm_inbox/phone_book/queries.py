"""The phone book's entries: every named person with a number and every company with a switchboard number,
by name. Names and numbers only: nothing else of a contact leaves through a phone-book URL."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

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


def number_kind(label: str | None) -> str:
    text = (label or "").casefold()
    if "fax" in text:
        return "fax"
    return next((kind for word, kind in _KINDS if word in text), "work")


def dialable(e164: str | None, raw: str) -> str:
    """E.164 when known; else what was typed without spaces and dashes ("0171/2345678" → "01712345678")."""
    if e164:
        return e164
    digits = _NOT_DIALLED.sub("", raw)
    return digits if any(ch.isdigit() for ch in digits) else ""


def _numbers(phones: list[ContactPhone] | list[CompanyPhone]) -> tuple[Number, ...]:
    seen: set[str] = set()
    out = []
    for phone in phones:
        kind, number = number_kind(phone.label), dialable(phone.e164, phone.raw)
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
    """Everybody with a name and a number, people and companies together, in dictionary order."""
    entries: list[tuple[tuple[bool, str, str, int], Entry]] = []
    people = session.execute(select(Contact).where(
        Contact.name.is_not(None), Contact.id.in_(select(ContactPhone.contact_id)))
        .options(selectinload(Contact.phones), selectinload(Contact.company))).scalars()
    for contact in people:
        name = " ".join((contact.name or "").split())
        numbers = _numbers(contact.phones)
        if name and numbers:
            given, family = split_name(name)
            entry = Entry(name, contact.company.name if contact.company else "", numbers, given, family)
            entries.append((name_order(name, contact.id), entry))
    firms = session.execute(select(Company).where(Company.id.in_(select(CompanyPhone.company_id)))
                            .options(selectinload(Company.phones))).scalars()
    for company in firms:
        name = " ".join(company.name.split())
        numbers = _numbers(company.phones)
        if name and numbers:
            entries.append((name_order(name, -company.id), Entry(name, "", numbers, "", name)))
    return [entry for _key, entry in sorted(entries, key=lambda pair: pair[0])]

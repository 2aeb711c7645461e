"""Whose number is it? The caller behind a number (a person, a company, a company's switchboard block), and the
staff member behind our own side of a call (an extension, a name the phone system gives).

Each is one statement, built once: a phone system's webhook waits for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, bindparam, func, literal, null, or_, select, union_all
from sqlalchemy.orm import Session

from crm_inbox.config import Settings
from crm_inbox.models import Company, CompanyPhone, Contact, ContactPhone, StaffUser
from crm_inbox.models.contacts import search_key
from crm_inbox.phone import block_prefix, to_e164


@dataclass
class PhoneMatch:
    contact_id: int | None = None
    company_id: int | None = None
    reason: str = ""
    contact_name: str | None = None  # the person's name as stored (None: no person, or a nameless one)
    company_name: str | None = None

    @property
    def label(self) -> str | None:
        """Who called, as a reminder names them ("Klaus Müller (Müller GmbH)"); None when unknown, or for a
        nameless person (known by an address the match did not read)."""
        if self.contact_id is not None:
            if not self.contact_name:
                return None
            return self.contact_name + (f" ({self.company_name})" if self.company_name is not None else "")
        return self.company_name


# The three ways a number can be known, in one round trip: a person's number, a company's number, a company's
# switchboard block that contains it (every prefix of the number is a candidate: one indexed IN).
_PERSON, _COMPANY, _BLOCK = 1, 2, 3
_MATCHES: CompoundSelect = union_all(
    select(literal(_PERSON).label("kind"), ContactPhone.contact_id, Contact.company_id, Contact.name,
           Company.name.label("company_name"), null().label("prefix"))
    .join(Contact, Contact.id == ContactPhone.contact_id).outerjoin(Company, Company.id == Contact.company_id)
    .where(ContactPhone.e164 == bindparam("e164")),
    select(literal(_COMPANY), null(), CompanyPhone.company_id, null(), Company.name, null())
    .join(Company, Company.id == CompanyPhone.company_id).where(CompanyPhone.e164 == bindparam("e164")),
    select(literal(_BLOCK), null(), CompanyPhone.company_id, null(), Company.name, CompanyPhone.block_prefix)
    .join(Company, Company.id == CompanyPhone.company_id)
    .where(CompanyPhone.block_prefix.in_(bindparam("prefixes", expanding=True))),
)


def match_number(session: Session, e164: str | None) -> PhoneMatch:
    """A person with exactly this number; else a company with it; else the company whose switchboard
    block (``+49 89 4711-0``) contains it. Two people with one number and no common company: nobody."""
    if not e164:
        return PhoneMatch(reason="no usable number")
    return read_matches(e164, match_rows(session, e164))


def match_rows(session: Session, e164: str | None) -> Sequence[Sequence[Any]]:
    """The rows ``read_matches`` decides by."""
    return session.connection().execute(_MATCHES, match_parameters(e164)).all() if e164 else []


def match_parameters(e164: str | None) -> dict[str, Any]:
    """The parameters of ``_MATCHES`` (also where it is part of another statement)."""
    return {"e164": e164, "prefixes": [e164[:n] for n in range(4, len(e164))] if e164 else []}


def match_rows_as_json(dialect: str = "postgresql") -> ColumnElement[Any]:
    """``_MATCHES``' rows as one JSON array, to be read with another statement's row (on SQLite as JSON text)."""
    found = _MATCHES.subquery("matched")
    return select(_json_rows(dialect, found.c)).scalar_subquery()


def _json_rows(dialect: str, columns: Iterable[Any]) -> ColumnElement[Any]:
    """An aggregate of rows as a JSON array of arrays (PostgreSQL: NULL for no rows; SQLite: "[]")."""
    if dialect == "postgresql":
        return func.json_agg(func.json_build_array(*columns))
    return func.json_group_array(func.json_array(*columns))


def read_matches(e164: str, rows: Sequence[Sequence[Any]]) -> PhoneMatch:
    """The match from ``_MATCHES``' rows (kind, contact id, company id, name, company name, prefix)."""
    company_names = {r[2]: r[4] for r in rows if r[2] is not None}
    people = {r[1]: (r[2], r[3]) for r in rows if r[0] == _PERSON}
    if len(people) == 1:
        contact_id, (company_id, name) = next(iter(people.items()))
        return PhoneMatch(contact_id, company_id, f"number {e164} belongs to contact {contact_id}", name or None,
                          company_names.get(company_id))
    if len(people) > 1:
        companies = {company_id for company_id, _ in people.values()}
        if len(companies) == 1 and None not in companies:
            company_id = companies.pop()
            return PhoneMatch(None, company_id, f"number {e164} is shared by people of one company",
                              company_name=company_names.get(company_id))
        return PhoneMatch(reason=f"number {e164} belongs to {len(people)} contacts: left for triage")
    companies = {r[2] for r in rows if r[0] == _COMPANY}
    if len(companies) == 1:
        company_id = companies.pop()
        return PhoneMatch(None, company_id, f"number {e164} belongs to company {company_id}",
                          company_name=company_names.get(company_id))
    blocks = [(r[5], r[2]) for r in rows if r[0] == _BLOCK and r[5] is not None]
    if blocks:
        longest = max(len(prefix) for prefix, _ in blocks)
        owners = {company_id for prefix, company_id in blocks if len(prefix) == longest}
        if len(owners) == 1:
            company_id = owners.pop()
            return PhoneMatch(None, company_id, f"number {e164} is an extension of company {company_id}'s "
                                                 f"switchboard", company_name=company_names.get(company_id))
    return PhoneMatch(reason=f"number {e164} is unknown")


@lru_cache(maxsize=4096)
def e164_of(number: str | None, region: str) -> str | None:
    """``to_e164``, remembered: a call's numbers are parsed at each of its events (phonenumbers takes ~0.1 ms)."""
    return to_e164(number, region)


# --- our side of the call ---

@lru_cache(maxsize=8)
def _own_numbers(own_numbers: tuple[str, ...], region: str) -> tuple[tuple[str, str], ...]:
    """(E.164, block prefix) of each of our numbers: parsed once, not for every number of every event."""
    parsed = ((own, to_e164(own, region)) for own in own_numbers)
    return tuple((e164, block_prefix(own, e164) or e164) for own, e164 in parsed if e164)


_STAFF_COLUMNS = (StaffUser.id, StaffUser.name, StaffUser.extension, StaffUser.active)
_STAFF_WHERE = or_(StaffUser.extension.is_not(None), StaffUser.active)


@dataclass
class StaffDirectory:
    """Extensions (of every staff user) and the names of the active ones, read once per event."""

    extensions: dict[str, int] = field(default_factory=dict)
    names: list[tuple[int, str]] = field(default_factory=list)

    @classmethod
    def of(cls, rows: Iterable[Sequence[Any]]) -> StaffDirectory:
        """From rows of (id, name, extension, active)."""
        directory = cls()
        for staff_id, name, extension, active in rows:
            if extension:
                directory.extensions[extension] = staff_id
            if active:
                directory.names.append((staff_id, name))
        return directory

    @staticmethod
    def as_json(dialect: str = "postgresql") -> ColumnElement[Any]:
        """The rows ``of`` reads as one JSON array, to be read with another statement's row (on SQLite as JSON
        text)."""
        return select(_json_rows(dialect, _STAFF_COLUMNS)).where(_STAFF_WHERE).scalar_subquery()

    def by_names(self, names: tuple[str, ...]) -> int | None:
        keys = {search_key(n) for n in names if n.strip()}
        if len(keys) != 1:
            return None  # several people rang at once: the one who answers tells us later
        hits = [staff_id for staff_id, name in self.names if search_key(name) in keys]
        return hits[0] if len(hits) == 1 else None

    def own_side(self, settings: Settings, number: str | None) -> tuple[bool, int | None]:
        """(is this number ours?, the staff user behind it if an extension tells)."""
        if not number:
            return False, None
        digits = number.strip()
        if digits in self.extensions:
            return True, self.extensions[digits]
        e164 = e164_of(number, settings.phone.default_region)
        if not e164:
            return False, None
        for own_e164, prefix in _own_numbers(settings.phone.own_numbers, settings.phone.default_region):
            if e164 == own_e164 or e164.startswith(prefix):
                return True, self.extensions.get(e164[len(prefix):]) if e164 != own_e164 else None
        return False, None

"""What an export of persons or companies contains: the columns of a sheet and the rows, read from the database
in chunks in the lists' order (dictionary order of the names, crm_inbox.contacts.listing), with free fields as
extra columns ``field:<name>``.

The persons' first columns are the contact CSV's (``crm_inbox.contacts.csv_export.CONTACT_COLUMNS``): a sheet
built on an earlier export keeps reading the same columns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, selectinload

from crm_inbox.contacts.csv_export import CONTACT_COLUMNS
from crm_inbox.contacts.listing import name_order
from crm_inbox.models import Company, Contact, ContactEmail, ContactPhone, StaffUser

CHUNK = 1000  # rows loaded at once (the session holds unchanged objects weakly: a read chunk can go)
FIELD_PREFIX = "field:"
COMPANY_COLUMNS = ("id", "name", "customer_number", "industry", "size", "customer_type", "category", "tags",
                   "domains", "phones", "street", "postcode", "city", "country", "delivery_street",
                   "delivery_postcode", "delivery_city", "delivery_country", "people", "created_at")
# Columns whose values are counts, written as numbers in XLSX; every other cell is text (postcodes, phone and
# customer numbers keep their leading zeros and plus signs).
NUMBER_COLUMNS = frozenset({"id", "people"})


@dataclass(frozen=True)
class Sheet:
    header: list[str]
    rows: list[list[Any]]


def contact_ids(session: Session, matches: ColumnElement[bool] | None) -> list[int]:
    """The ids of the persons that ``matches`` (all without it), in the list's dictionary order."""
    query = select(Contact.id, Contact.name)
    if matches is not None:
        query = query.where(matches)
    return [ident for ident, _name in sorted(session.execute(query).all(), key=lambda r: name_order(r[1], r[0]))]


def company_ids(session: Session, matches: ColumnElement[bool] | None) -> list[int]:
    query = select(Company.id, Company.name)
    if matches is not None:
        query = query.where(matches)
    return [ident for ident, _name in sorted(session.execute(query).all(), key=lambda r: name_order(r[1], r[0]))]


@dataclass
class Person:
    """A person as an export needs them, read with plain queries (ORM objects cost ten times as much)."""

    row: Any  # the contacts row joined with the company's and the owner's name (_PERSON's columns)
    emails: list[str] = field(default_factory=list)
    phones: list[tuple[str, str | None]] = field(default_factory=list)  # (as typed, label)


_PERSON = (select(Contact.id, Contact.name, Company.name.label("company"), Contact.role, Contact.category,
                  Contact.tags, StaffUser.name.label("owner"), Contact.origin, Contact.created_at,
                  Contact.salutation, Contact.title, Contact.street, Contact.postcode, Contact.city, Contact.country,
                  Contact.customer_number, Contact.language, Contact.fields)
           .outerjoin(Company, Contact.company_id == Company.id).outerjoin(StaffUser, Contact.owner_id == StaffUser.id))


def people_in_chunks(session: Session, ids: Sequence[int]) -> Iterator[list[Person]]:
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        people = {r.id: Person(r) for r in session.execute(_PERSON.where(Contact.id.in_(chunk)))}
        for contact_id, email in session.execute(select(ContactEmail.contact_id, ContactEmail.email)
                                                 .where(ContactEmail.contact_id.in_(chunk)).order_by(ContactEmail.id)):
            people[contact_id].emails.append(email)
        for contact_id, raw, label in session.execute(
                select(ContactPhone.contact_id, ContactPhone.raw, ContactPhone.label)
                .where(ContactPhone.contact_id.in_(chunk)).order_by(ContactPhone.id)):
            people[contact_id].phones.append((raw, label))
        yield [people[i] for i in chunk if i in people]


def person_row(person: Person) -> list[Any]:
    """The contact CSV's row (``crm_inbox.contacts.csv_export.contact_row``, column for column)."""
    r = person.row
    return [r.id, r.name or "", r.company or "", r.role.value, r.category.value if r.category else "",
            "; ".join(person.emails), "; ".join(raw for raw, _label in person.phones), "; ".join(r.tags or []),
            r.owner or "", r.origin, r.created_at.isoformat(), r.salutation.value if r.salutation else "", r.title,
            r.street, r.postcode, r.city, r.country, r.customer_number, r.language]


def companies_in_chunks(session: Session, ids: Sequence[int]) -> Iterator[list[Company]]:
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        loaded = {c.id: c for c in session.execute(select(Company).where(Company.id.in_(chunk)).options(
            selectinload(Company.domains), selectinload(Company.phones))).scalars()}
        yield [loaded[i] for i in chunk if i in loaded]


def _field_names(objects: Sequence[dict[str, Any] | None]) -> list[str]:
    return sorted({key for fields in objects if fields for key in fields})


def _field_cells(fields: dict[str, Any] | None, names: Sequence[str]) -> list[Any]:
    fields = fields or {}
    return ["" if fields.get(n) is None else str(fields[n]) for n in names]


def contact_sheet(session: Session, ids: Sequence[int]) -> Sheet:
    """The persons ``ids`` as a sheet: the contact CSV's columns, then one column per free field in use."""
    rows: list[list[Any]] = []
    free: list[dict[str, Any]] = []
    for chunk in people_in_chunks(session, ids):
        for person in chunk:
            rows.append(person_row(person))
            free.append(person.row.fields or {})
    names = _field_names(free)
    for row, fields in zip(rows, free, strict=True):
        row.extend(_field_cells(fields, names))
    return Sheet([*CONTACT_COLUMNS, *(FIELD_PREFIX + n for n in names)], rows)


def _people_counts(session: Session) -> dict[int, int]:
    rows = session.execute(select(Contact.company_id, func.count()).where(Contact.company_id.is_not(None))
                           .group_by(Contact.company_id)).all()
    return {company_id: count for company_id, count in rows if company_id is not None}


def company_row(company: Company, people: int) -> list[Any]:
    return [company.id, company.name, company.customer_number, company.industry, company.size,
            company.customer_type.value if company.customer_type else "",
            company.category.value if company.category else "", "; ".join(company.tags or []),
            "; ".join(d.domain for d in company.domains), "; ".join(p.raw for p in company.phones),
            company.street, company.postcode, company.city, company.country, company.delivery_street,
            company.delivery_postcode, company.delivery_city, company.delivery_country, people,
            company.created_at.isoformat()]


def company_sheet(session: Session, ids: Sequence[int]) -> Sheet:
    people = _people_counts(session)
    rows: list[list[Any]] = []
    free: list[dict[str, Any]] = []
    for chunk in companies_in_chunks(session, ids):
        for company in chunk:
            rows.append(company_row(company, people.get(company.id, 0)))
            free.append(company.fields or {})
    names = _field_names(free)
    for row, fields in zip(rows, free, strict=True):
        row.extend(_field_cells(fields, names))
    return Sheet([*COMPANY_COLUMNS, *(FIELD_PREFIX + n for n in names)], rows)

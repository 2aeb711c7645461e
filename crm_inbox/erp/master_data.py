"""Master data from the ERP: companies and people upserted by the ERP's customer number (``customer_number``,
the ERP's "external id").

Every write goes through ``contacts.service`` (validation, audit, events as for a staff edit). An upsert is
idempotent: which given fields would change is found first by applying them in a savepoint that is rolled
back, so an unchanged record writes nothing (no audit entry, no event, no new ``updated_at``) and a changed
one is updated with just the fields that differ (its audit entry names only those). Several records with the
number answer Conflict: the ERP's record is never written onto the wrong customer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from crm_inbox.contacts.inputs import NOT_GIVEN, CompanyChanges, ContactChanges
from crm_inbox.contacts.service import create_company, create_contact, update_company, update_contact
from crm_inbox.errors import Conflict, ValidationError
from crm_inbox.models import Company, Contact

ORIGIN = "erp"
MAX_NUMBER = 50  # the customer_number columns

C = TypeVar("C", ContactChanges, CompanyChanges)


@dataclass(frozen=True)
class Upserted:
    record: Any  # the Contact or Company
    created: bool
    changed: list[str]  # the fields an update changed (sorted); empty when created or unchanged


def external_id(value: str) -> str:
    """The ERP's customer number as the key: one line, not empty, fits the column."""
    number = value.strip()
    if not number or len(number) > MAX_NUMBER or any(ch < " " or ch == "\x7f" for ch in number):
        raise ValidationError("external_id", f"must be 1 to {MAX_NUMBER} printable characters")
    return number


def _one(session: Session, model: Any, number: str, what: str) -> Any:
    rows = session.execute(select(model).where(model.customer_number == number).limit(2)).scalars().all()
    if len(rows) > 1:
        raise Conflict(f"several {what} have customer number {number}: merge them in the CRM first")
    return rows[0] if rows else None


def company_by_number(session: Session, number: str) -> Company | None:
    """The one company with this customer number; Conflict when several have it."""
    found: Company | None = _one(session, Company, number, "companies")
    return found


def contact_by_number(session: Session, number: str) -> Contact | None:
    """The one person with this customer number; Conflict when several have it."""
    found: Contact | None = _one(session, Contact, number, "contacts")
    return found


_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


def _lock(session: Session, kind: str, number: str) -> None:
    """Two requests creating one new number at once would make two records (and every later PUT a 409):
    on PostgreSQL the second waits for the first's commit. SQLite has one writer at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK, {"key": f"erp:{kind}:{number}"})


def hold_transaction(session: Session) -> None:
    """Before savepoints per item: on SQLite a SAVEPOINT outside a transaction starts one that its RELEASE
    commits (Python's sqlite3 opens transactions only before DML), so each item would be committed alone and a
    later failure could not roll the request back; an explicit BEGIN keeps the request one transaction."""
    if session.get_bind().dialect.name != "sqlite":
        return
    dbapi = session.connection().connection.dbapi_connection
    if dbapi is not None and not getattr(dbapi, "in_transaction", True):
        session.connection().exec_driver_sql("BEGIN")


def _given(changes: Any) -> dict[str, Any]:
    return {f.name: getattr(changes, f.name) for f in dataclasses.fields(changes)
            if getattr(changes, f.name) is not NOT_GIVEN}


def _snapshot(record: Any, names: list[str]) -> dict[str, Any]:
    """The values of the given fields as stored (lists of addresses, numbers and domains by their text)."""
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(record, name)
        if name == "emails":
            value = [e.email for e in value]
        elif name == "phones":
            value = [(p.raw, p.e164) for p in value]
        elif name == "domains":
            value = [d.domain for d in value]
        elif name in {"tags"}:
            value = list(value or [])
        elif name == "fields":
            value = dict(value or {})
        elif hasattr(value, "value"):  # an enum
            value = value.value
        out[name] = value
    return out


def _differing(session: Session, record: Any, changes: C, apply: Any) -> C:
    """Only those given fields whose value would change, found by applying all of them in a savepoint that is
    rolled back (the service's own rules normalise: "DE" for "de", E.164 numbers, sorted tags)."""
    given = _given(changes)
    before = _snapshot(record, list(given))
    savepoint = session.begin_nested()
    try:
        apply(changes)
        after = _snapshot(record, list(given))
    finally:
        savepoint.rollback()  # also the trial's audit entry and events
    return type(changes)(**{name: value for name, value in given.items() if before[name] != after[name]})


def upsert_company(session: Session, number: str, changes: CompanyChanges, region: str,
                   actor: int | None) -> Upserted:
    number = external_id(number)
    changes = dataclasses.replace(changes, customer_number=number)
    _lock(session, "company", number)
    company = company_by_number(session, number)
    if company is None:
        return Upserted(create_company(session, changes, region, actor, origin=ORIGIN), True, [])
    wanted = _differing(session, company, changes,
                        lambda c: update_company(session, company, c, region, actor))
    changed = sorted(_given(wanted))
    if changed:
        update_company(session, company, wanted, region, actor)
    return Upserted(company, False, changed)


def upsert_contact(session: Session, number: str, changes: ContactChanges, region: str, actor: int | None, *,
                   company_number: str | None = None) -> Upserted:
    """``company_number``: the person's company by its customer number (it must exist: the ERP sends the
    companies first), instead of ``company_id``."""
    number = external_id(number)
    changes = dataclasses.replace(changes, customer_number=number)
    if company_number is not None:
        if changes.company_id is not NOT_GIVEN:
            raise ValidationError("company", "give the company by its customer number or by company_id, not both")
        company = company_by_number(session, company_number.strip())
        if company is None:
            raise ValidationError("company", f"no company has customer number {company_number.strip()[:50]}")
        changes = dataclasses.replace(changes, company_id=company.id)
    _lock(session, "contact", number)
    contact = contact_by_number(session, number)
    if contact is None:
        return Upserted(create_contact(session, changes, region, actor, origin=ORIGIN), True, [])
    wanted = _differing(session, contact, changes,
                        lambda c: update_contact(session, contact, c, region, actor))
    changed = sorted(_given(wanted))
    if changed:
        update_contact(session, contact, wanted, region, actor)
    return Upserted(contact, False, changed)

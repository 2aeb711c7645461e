"""What a customer owes past the due date: an invoice is overdue when the ERP says so, or when it is open
past its due date. A person or company with an overdue invoice counts as a debtor (derived: the stored role
stays as it is, e.g. "customer", and the debtor mark goes when the invoice is paid or its status changes).

A person's invoices are their own and those of their company (the company is who the ERP bills for them)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, ColumnElement, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from crm_inbox.config import Settings
from crm_inbox.models import Contact, Invoice, InvoiceStatus


def is_overdue(status: InvoiceStatus, due_on: date | None, today: date) -> bool:
    """The rule itself (``overdue_clause`` is its SQL twin)."""
    return status == InvoiceStatus.OVERDUE or (status == InvoiceStatus.OPEN and due_on is not None
                                               and due_on < today)


def overdue_clause(today: date) -> ColumnElement[bool]:
    return or_(Invoice.status == InvoiceStatus.OVERDUE,
               and_(Invoice.status == InvoiceStatus.OPEN, Invoice.due_on < today))


def today(settings: Settings) -> date:
    """The business day where the staff are: an invoice due on the 1st is overdue from the 2nd, local time."""
    return datetime.now(ZoneInfo(settings.reminders.timezone)).date()


@dataclass(frozen=True)
class Overdue:
    count: int
    gross: Decimal  # the overdue invoices' gross amounts summed
    outstanding: Decimal  # what is still owed on them (gross less payments)

    @property
    def debtor(self) -> bool:
        return self.count > 0


NONE = Overdue(0, Decimal("0.00"), Decimal("0.00"))


def _customer(contact_id: int | None, company_id: int | None) -> ColumnElement[bool]:
    conditions = []
    if contact_id is not None:
        conditions.append(Invoice.contact_id == contact_id)
    if company_id is not None:
        conditions.append(Invoice.company_id == company_id)
    return or_(*conditions) if conditions else Invoice.id.is_(None)


def overdue_of(session: Session, today: date, *, contact_id: int | None = None,
               company_id: int | None = None) -> Overdue:
    """The overdue invoices of a person (``contact_id`` with their ``company_id``) or of a company."""
    count, gross, paid = session.execute(
        select(*_sums()).where(_customer(contact_id, company_id), overdue_clause(today))).one()
    return _overdue(count, gross, paid)


def overdue_of_people(session: Session, today: date, contact_ids: Iterable[int]) -> dict[int, Overdue]:
    """``overdue_of`` for a page of people in one query: every id → its summary (none overdue: count 0)."""
    ids = sorted(set(contact_ids))
    found = {} if not ids else {row[0]: _overdue(*row[1:]) for row in session.execute(
        select(Contact.id, *_sums())
        # One join condition, so an invoice billed to the person and their company counts once.
        .join(Invoice, or_(Invoice.contact_id == Contact.id, Invoice.company_id == Contact.company_id))
        .where(Contact.id.in_(ids), overdue_clause(today)).group_by(Contact.id))}
    return {ident: found.get(ident, NONE) for ident in ids}


def overdue_of_companies(session: Session, today: date, company_ids: Iterable[int]) -> dict[int, Overdue]:
    """``overdue_of`` for a page of companies in one query: every id → its summary (none overdue: count 0)."""
    ids = sorted(set(company_ids))
    found = {} if not ids else {row[0]: _overdue(*row[1:]) for row in session.execute(
        select(Invoice.company_id, *_sums())
        .where(Invoice.company_id.in_(ids), overdue_clause(today)).group_by(Invoice.company_id))}
    return {ident: found.get(ident, NONE) for ident in ids}


def _sums() -> tuple[ColumnElement[Any], ...]:
    return func.count(Invoice.id), func.sum(_cents(Invoice.gross)), func.sum(_cents(Invoice.paid))


def _overdue(count: Any, gross: Any, paid: Any) -> Overdue:
    gross_cents, paid_cents = int(gross or 0), int(paid or 0)
    return Overdue(int(count), Decimal(gross_cents).scaleb(-2), Decimal(gross_cents - paid_cents).scaleb(-2))


def _cents(column: Any) -> ColumnElement[int]:
    """Whole cents, exact on both databases (SQLite keeps NUMERIC as floats)."""
    return cast(func.round(column * 100), BigInteger)


def invoices_of(session: Session, *, contact_id: int | None = None, company_id: int | None = None,
                limit: int = 50) -> list[Invoice]:
    """The customer's invoices, newest first."""
    return list(session.execute(select(Invoice).where(_customer(contact_id, company_id))
                                .order_by(Invoice.issued_on.desc(), Invoice.id.desc()).limit(limit)).scalars())

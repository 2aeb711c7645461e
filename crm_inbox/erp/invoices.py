"""Invoices and payments from the ERP (the ERP is their master; the CRM shows them and flags what is overdue).

An invoice is upserted by its number and billed to the customer the ERP names by customer number (a company,
or a person and their company). It appears on the customer's timeline as one document entry (with the PDF as
its attachment when the ERP sends one); later changes (status, amounts, payments) update that entry's details
instead of adding entries, so the timeline shows one line per invoice with its current state. A payment is
recorded once per ERP payment id; one that completes the gross marks the invoice paid.

Every write is audited, and events ``invoice.created``, ``invoice.updated``, ``payment.created`` are recorded
for the webhooks; a PUT that changes nothing writes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crm_inbox import audit, events
from crm_inbox.config import Settings
from crm_inbox.errors import Conflict, ValidationError
from crm_inbox.models import (
    Attachment,
    Company,
    Contact,
    Direction,
    Interaction,
    InteractionKind,
    Invoice,
    InvoiceStatus,
    Order,
    Payment,
)
from crm_inbox.timeline.service import record_interaction

PDF = "application/pdf"
MAX_NUMBER = 50
MAX_AMOUNT = Decimal(10) ** 12  # what NUMERIC(14, 2) holds
CENT = Decimal("0.01")
SUBJECT = {"de": "Rechnung {number}", "en": "Invoice {number}"}


@dataclass(frozen=True)
class InvoiceInput:
    issued_on: date
    net: Decimal
    gross: Decimal
    customer_number: str
    status: str = "open"
    due_on: date | None = None
    currency: str = "EUR"
    order_number: str | None = None
    pdf: bytes | None = None  # the invoice as the ERP printed it


@dataclass(frozen=True)
class PaymentInput:
    external_id: str
    invoice_number: str
    amount: Decimal
    paid_on: date


def _number(field: str, value: str, limit: int = MAX_NUMBER) -> str:
    number = value.strip()
    if not number or len(number) > limit or any(ch < " " or ch == "\x7f" for ch in number):
        raise ValidationError(field, f"must be 1 to {limit} printable characters")
    return number


def _status(value: str) -> InvoiceStatus:
    try:
        return InvoiceStatus(value)
    except ValueError:
        raise ValidationError("status", "must be one of " + ", ".join(s.value for s in InvoiceStatus)) from None


def customer(session: Session, number: str) -> tuple[Contact | None, Company | None]:
    """Who the ERP bills under ``number``: a company, or a person (with their company). People of a company
    may carry its number too (an address book imported with the "Kundennummer" column): then it is the
    company's. Nobody, or records the number cannot tell apart, is refused: never the wrong customer."""
    companies = session.execute(select(Company).where(Company.customer_number == number).limit(2)).scalars().all()
    people = session.execute(select(Contact).where(Contact.customer_number == number).limit(50)).scalars().all()
    if len(companies) > 1 or (not companies and len(people) > 1) or (
            companies and any(p.company_id != companies[0].id for p in people)):
        raise Conflict(f"several customers have customer number {number}: merge them in the CRM first")
    if companies:
        return None, companies[0]
    if people:
        return people[0], (session.get(Company, people[0].company_id) if people[0].company_id else None)
    raise ValidationError("customer_number", f"no customer has customer number {number}: send the master data "
                                             "first")


def _money(field: str, value: Decimal) -> None:
    """Exact cents that fit the column: never a float, NaN, a third decimal place or an overflow (the database
    would round or refuse it, a 500 instead of a 400)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValidationError(field, "must be a decimal number such as \"12.50\"")
    if abs(value) >= MAX_AMOUNT:
        raise ValidationError(field, f"must be less than {MAX_AMOUNT:f} in magnitude")
    if value != value.quantize(CENT):
        raise ValidationError(field, "must have at most 2 decimal places")


def _check(given: InvoiceInput, settings: Settings) -> None:
    for field, amount in (("net", given.net), ("gross", given.gross)):
        _money(field, amount)
        if amount < 0:
            raise ValidationError(field, "must not be negative")
    if given.net > given.gross:
        raise ValidationError("net", "must not exceed the gross amount")
    if given.due_on is not None and given.due_on < given.issued_on:
        raise ValidationError("due_date", "must not be before the invoice date")
    if len(given.currency) != 3 or not given.currency.isascii() or not given.currency.isalpha():
        raise ValidationError("currency", "must be a three-letter ISO 4217 code such as EUR")
    if given.pdf is not None:
        if len(given.pdf) > settings.documents.max_bytes:
            raise ValidationError("pdf", f"must be at most {settings.documents.max_bytes} bytes")
        if not given.pdf.startswith(b"%PDF-"):
            raise ValidationError("pdf", "is not a PDF file")


def _language(contact: Contact | None, settings: Settings) -> str:
    wanted = (contact.language if contact is not None else None) or settings.company.language
    return "de" if wanted.lower().startswith("de") else "en"


def payload(invoice: Invoice) -> dict[str, Any]:
    """The invoice as events and the API carry it: money as decimal strings, days in ISO 8601."""
    return {"id": invoice.id, "number": invoice.number, "status": invoice.status.value,
            "date": invoice.issued_on.isoformat(), "due_date": invoice.due_on.isoformat() if invoice.due_on else None,
            "net": f"{invoice.net:.2f}", "gross": f"{invoice.gross:.2f}", "paid": f"{invoice.paid:.2f}",
            "currency": invoice.currency, "customer_number": invoice.customer_number,
            "contact_id": invoice.contact_id, "company_id": invoice.company_id,
            "order_number": invoice.order_number, "order_id": invoice.order_id}


def _details(invoice: Invoice) -> dict[str, Any]:
    """What the timeline entry shows of the invoice (no name: it stays when the person is erased)."""
    return {"event": "invoice", "invoice": invoice.number, "status": invoice.status.value,
            "gross": f"{invoice.gross:.2f}", "paid": f"{invoice.paid:.2f}", "currency": invoice.currency,
            "due_date": invoice.due_on.isoformat() if invoice.due_on else None, "order": invoice.order_number}


def _values(given: InvoiceInput, contact: Contact | None, company: Company | None,
            order_id: int | None) -> dict[str, Any]:
    return {"contact_id": contact.id if contact else None, "company_id": company.id if company else None,
            "customer_number": given.customer_number, "order_number": given.order_number, "order_id": order_id,
            "issued_on": given.issued_on, "due_on": given.due_on, "net": given.net, "gross": given.gross,
            "currency": given.currency.upper(), "status": _status(given.status)}


def _plain(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return value.value if isinstance(value, InvoiceStatus) else value


def _stored_pdf(session: Session, invoice: Invoice) -> Attachment | None:
    if invoice.interaction_id is None:
        return None
    return session.execute(select(Attachment).where(Attachment.interaction_id == invoice.interaction_id,
                                                    Attachment.content_type == PDF).limit(1)).scalar_one_or_none()


def _filename(invoice: Invoice) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in invoice.number)
    return f"{safe}.pdf"


def _issued_at(invoice: Invoice, settings: Settings) -> datetime:
    """The entry's time: the invoice date at noon where the staff are (the ERP sends no time of day, and when it
    sent the invoice says nothing about the customer), so the timeline shows the invoice where it belongs."""
    return datetime.combine(invoice.issued_on, time(12), ZoneInfo(settings.reminders.timezone)).astimezone(UTC)


def _entry(session: Session, invoice: Invoice, contact: Contact | None, company: Company | None,
           settings: Settings, pdf: bytes | None, actor: int | None) -> Interaction:
    subject = SUBJECT[_language(contact, settings)].format(number=invoice.number)
    item = record_interaction(
        session, kind=InteractionKind.DOCUMENT, direction=Direction.OUT, occurred_at=_issued_at(invoice, settings),
        subject=subject,
        contacts=[(contact, "to")] if contact else [], created_by_id=actor, details=_details(invoice),
        attachments=[(_filename(invoice), PDF, pdf)] if pdf is not None else [])
    item.company_id = company.id if company else None
    return item


def put_invoice(session: Session, settings: Settings, number: str, given: InvoiceInput,
                actor: int | None) -> tuple[Invoice, bool, list[str]]:
    """Create or update the invoice ``number``; returns (invoice, created, changed fields)."""
    number = _number("number", number)
    given = InvoiceInput(**{**given.__dict__, "customer_number": _number("customer_number", given.customer_number),
                            "order_number": _number("order_number", given.order_number)
                            if given.order_number else None})
    _check(given, settings)
    invoice = session.execute(select(Invoice).where(Invoice.number == number)).scalar_one_or_none()
    try:
        contact, company = customer(session, given.customer_number)
    except ValidationError:
        if invoice is None or invoice.customer_number != given.customer_number:
            raise
        # The customer is gone from the CRM (erased, deleted): the kept invoice can still be updated.
        contact, company = (session.get(Contact, invoice.contact_id) if invoice.contact_id else None,
                            session.get(Company, invoice.company_id) if invoice.company_id else None)
    order_id = session.execute(select(Order.id).where(Order.number == given.order_number)).scalar_one_or_none() \
        if given.order_number else None
    values = _values(given, contact, company, order_id)
    if invoice is None:
        invoice = Invoice(number=number, paid=Decimal("0.00"), **values)
        session.add(invoice)
        session.flush()
        invoice.interaction_id = _entry(session, invoice, contact, company, settings, given.pdf, actor).id
        session.flush()
        audit.record(session, actor, "create", "invoice", invoice.id,
                     {key: _plain(v) for key, v in values.items()} | {"pdf": given.pdf is not None})
        events.record(session, "invoice.created", "invoice", invoice.id, payload(invoice))
        return invoice, True, []
    changed = {key: v for key, v in values.items() if getattr(invoice, key) != v}
    stored = _stored_pdf(session, invoice)
    new_pdf = given.pdf is not None and (stored is None or stored.sha256 != hashlib.sha256(given.pdf).hexdigest())
    if not changed and not new_pdf:
        return invoice, False, []
    for key, value in changed.items():
        setattr(invoice, key, value)
    if new_pdf:
        _replace_pdf(session, invoice, stored, given.pdf or b"", contact, company, settings, actor)
    _refresh_entry(session, invoice, _issued_at(invoice, settings) if "issued_on" in changed else None)
    audit.record(session, actor, "update", "invoice", invoice.id,
                 {key: _plain(v) for key, v in changed.items()} | ({"pdf": True} if new_pdf else {}))
    events.record(session, "invoice.updated", "invoice", invoice.id, payload(invoice))
    return invoice, False, sorted([*changed, *(["pdf"] if new_pdf else [])])


def _replace_pdf(session: Session, invoice: Invoice, stored: Attachment | None, pdf: bytes,
                 contact: Contact | None, company: Company | None, settings: Settings, actor: int | None) -> None:
    """The ERP sent the PDF (again, or a corrected one): it replaces the entry's; an entry that is gone (an
    erasure of the person removed it, or it was deleted) is made anew."""
    if invoice.interaction_id is None or session.get(Interaction, invoice.interaction_id) is None:
        invoice.interaction_id = _entry(session, invoice, contact, company, settings, pdf, actor).id
        return
    if stored is not None:
        session.execute(delete(Attachment).where(Attachment.id == stored.id))
    session.add(Attachment(interaction_id=invoice.interaction_id, filename=_filename(invoice), content_type=PDF,
                           size=len(pdf), sha256=hashlib.sha256(pdf).hexdigest(), content=pdf))


def _refresh_entry(session: Session, invoice: Invoice, issued_at: datetime | None = None) -> None:
    """The timeline entry shows the invoice's current state (one entry per invoice, not one per change); a
    corrected invoice date moves it (``issued_at``)."""
    session.flush()
    item = session.get(Interaction, invoice.interaction_id) if invoice.interaction_id else None
    if item is not None:
        item.details = _details(invoice)
        if issued_at is not None:
            item.occurred_at = issued_at
        item.company_id = invoice.company_id
        session.flush()


def record_payment(session: Session, given: PaymentInput, actor: int | None) -> tuple[Payment, bool]:
    """Record the ERP's payment once (the same id again with the same values is no change; with other values a
    Conflict); a payment that completes the gross marks the invoice paid."""
    external = _number("id", given.external_id, 100)
    _money("amount", given.amount)
    if given.amount <= 0:
        raise ValidationError("amount", "must be more than 0")
    invoice = session.execute(select(Invoice).where(Invoice.number == given.invoice_number.strip())
                              .with_for_update()).scalar_one_or_none()
    existing = session.execute(select(Payment).where(Payment.external_id == external)).scalar_one_or_none()
    if existing is not None:
        if invoice is None or (existing.invoice_id, existing.amount, existing.paid_on) != (
                invoice.id, given.amount, given.paid_on):
            raise Conflict(f"payment {external} is recorded already with other values")
        return existing, False
    if invoice is None:
        raise ValidationError("invoice", f"no invoice has number {given.invoice_number.strip()[:50]}")
    if invoice.paid + given.amount >= MAX_AMOUNT:  # the sum's column would overflow (a 500 on PostgreSQL)
        raise ValidationError("amount", f"makes the invoice's payments {MAX_AMOUNT:f} or more")
    payment = Payment(external_id=external, invoice_id=invoice.id, amount=given.amount, paid_on=given.paid_on)
    session.add(payment)
    invoice.paid = invoice.paid + given.amount
    was = invoice.status
    if invoice.paid >= invoice.gross and invoice.status in (InvoiceStatus.OPEN, InvoiceStatus.OVERDUE):
        invoice.status = InvoiceStatus.PAID
    session.flush()
    _refresh_entry(session, invoice)
    audit.record(session, actor, "create", "payment", payment.id,
                 {"id": external, "invoice": invoice.number, "amount": f"{given.amount:.2f}",
                  "date": given.paid_on.isoformat()})
    events.record(session, "payment.created", "payment", payment.id, payment_payload(payment, invoice))
    changes = {"paid": f"{invoice.paid:.2f}"} | ({"status": invoice.status.value} if invoice.status != was else {})
    audit.record(session, actor, "update", "invoice", invoice.id, changes)
    events.record(session, "invoice.updated", "invoice", invoice.id, payload(invoice))
    return payment, True


def payment_payload(payment: Payment, invoice: Invoice) -> dict[str, Any]:
    return {"id": payment.id, "external_id": payment.external_id, "invoice": invoice.number,
            "invoice_id": invoice.id, "amount": f"{payment.amount:.2f}", "date": payment.paid_on.isoformat()}


def payments_of(session: Session, invoice: Invoice) -> list[Payment]:
    return list(session.execute(select(Payment).where(Payment.invoice_id == invoice.id)
                                .order_by(Payment.paid_on, Payment.id)).scalars())

"""The customer page: one contact's master data (with the postal address as a letter has it), timeline, open
reminders and tickets, colleagues; notes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.erp.overdue import Overdue, invoices_of, is_overdue, overdue_of
from crm_inbox.erp.overdue import today as erp_today
from crm_inbox.errors import BadCursor, ValidationError
from crm_inbox.models import (
    Attachment,
    Category,
    Company,
    Contact,
    InteractionKind,
    Invoice,
    InvoiceStatus,
    Reminder,
    Role,
    Salutation,
    StaffUser,
)
from crm_inbox.models.reminders import ACTIVE_STATES
from crm_inbox.tickets import queries as ticket_queries
from crm_inbox.timeline.service import add_note, contact_timeline
from web.auth import editor_id
from web.pages.blueprint import pages
from web.requestdb import db, row_or_404, state

TIMELINE_PAGE = 25


def country_name(code: str) -> str:
    """"AT" → "Österreich" / "Austria" in the page's language; an unknown code as it is."""
    locale = get_locale()
    return locale.territories.get(code, code) if locale is not None else code


@pages.app_template_global()
def postal_lines(row: Any, prefix: str = "") -> list[str]:
    """A contact's or company's address (``prefix`` "delivery_" for the delivery address) as a letter has it:
    street, postcode and city, the country only when it is not ours."""
    street, postcode, city, country = (getattr(row, prefix + key) for key in ("street", "postcode", "city",
                                                                                "country"))
    lines = [street] if street else []
    if postcode or city:
        lines.append(" ".join(filter(None, [postcode, city])))
    if country and country != state().settings.company.country:
        lines.append(country_name(country))
    return lines


@pages.app_template_global()
def salutation_label(value: Salutation | None) -> str:
    if value == Salutation.FRAU:
        return _("Ms")
    if value == Salutation.HERR:
        return _("Mr")
    return _("by name") if value == Salutation.NONE else "—"


@dataclass(frozen=True)
class InvoiceRow:
    invoice: Invoice
    overdue: bool
    pdf: int | None  # its PDF's attachment id
    billed_to: tuple[str, int, str] | None  # ("contact" | "company", id, name): who the ERP bills

    @property
    def outstanding(self) -> Decimal:
        return self.invoice.gross - self.invoice.paid


@dataclass(frozen=True)
class Receivables:
    """The ERP's invoices of a person (with their company's) or a company, for the 360° pages."""

    overdue: Overdue
    invoices: list[InvoiceRow]


def _billed_to(rows: list[Invoice]) -> dict[int, tuple[str, int, str]]:
    """Each invoice's addressee (the person when the ERP billed one, else the company), names in two queries."""
    people = {r.contact_id for r in rows if r.contact_id}
    firms = {r.company_id for r in rows if r.company_id and not r.contact_id}
    names = {("contact", i): n or "" for i, n in db().execute(
        select(Contact.id, Contact.name).where(Contact.id.in_(people)))} if people else {}
    names |= {("company", i): n for i, n in db().execute(
        select(Company.id, Company.name).where(Company.id.in_(firms)))} if firms else {}
    out = {}
    for r in rows:
        kind, ident = ("contact", r.contact_id) if r.contact_id else ("company", r.company_id)
        if ident is not None and (kind, ident) in names:
            out[r.id] = (kind, ident, names[kind, ident])
    return out


@pages.app_template_global()
def receivables(contact_id: int | None = None, company_id: int | None = None) -> Receivables:
    day = erp_today(state().settings)
    rows = invoices_of(db(), contact_id=contact_id, company_id=company_id)
    entries = [r.interaction_id for r in rows if r.interaction_id]
    pdfs: dict[int, int] = {entry: att for entry, att in db().execute(
        select(Attachment.interaction_id, Attachment.id).where(
            Attachment.interaction_id.in_(entries), Attachment.content_type == "application/pdf"))} if entries else {}
    billed = _billed_to(rows)
    return Receivables(overdue_of(db(), day, contact_id=contact_id, company_id=company_id),
                       [InvoiceRow(r, is_overdue(r.status, r.due_on, day),
                                   pdfs.get(r.interaction_id) if r.interaction_id else None, billed.get(r.id))
                        for r in rows])


@dataclass(frozen=True)
class InvoiceFacts:
    number: str
    gross: Decimal
    outstanding: Decimal
    status: str  # "overdue" when open past its due date, as the invoice table says
    due_on: date | None


@pages.app_template_global()
def invoice_facts(details: Any) -> InvoiceFacts | None:
    """What an ERP invoice's timeline entry shows, from the details the ERP code keeps on it
    (crm_inbox.erp.invoices); None for any other entry or details that do not read as an invoice."""
    if not isinstance(details, dict) or details.get("event") != "invoice":
        return None
    try:
        gross, paid = Decimal(str(details["gross"])), Decimal(str(details.get("paid") or "0"))
        status = InvoiceStatus(details["status"])
        due = date.fromisoformat(details["due_date"]) if details.get("due_date") else None
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return None
    if not gross.is_finite() or not paid.is_finite():
        return None
    shown = "overdue" if is_overdue(status, due, erp_today(state().settings)) else status.value
    return InvoiceFacts(str(details.get("invoice") or ""), gross, gross - paid, shown, due)


@pages.app_template_global()
def invoice_status_label(status: str) -> str:
    labels = {"open": _("open"), "paid": _("paid"), "overdue": _("overdue"), "cancelled": _("cancelled")}
    return labels.get(status, status)


@pages.get("/contacts/<int:contact_id>")
def contact(contact_id: int) -> str:
    person = db().get(Contact, contact_id, options=[
        selectinload(Contact.emails), selectinload(Contact.phones), selectinload(Contact.company),
        selectinload(Contact.owner)])
    if person is None:
        abort(404)
    cursor = request.args.get("cursor") or None
    kind = request.args.get("kind") or None
    if kind not in {None, *(k.value for k in InteractionKind)}:
        abort(400, description="Unknown kind of timeline entry.")
    try:
        timeline = contact_timeline(db(), contact_id, limit=TIMELINE_PAGE, cursor=cursor,
                                    kind=InteractionKind(kind) if kind else None)
    except BadCursor:
        abort(400, description="This timeline link is not valid.")
    open_reminders = db().execute(select(Reminder).where(
        Reminder.contact_id == contact_id, Reminder.state.in_(ACTIVE_STATES)).order_by(Reminder.due_at).limit(50)
    ).scalars().all()
    open_tickets = ticket_queries.open_for_contact(db(), contact_id)
    colleagues = db().execute(select(Contact).where(
        Contact.company_id == person.company_id, Contact.id != contact_id).order_by(Contact.search_name).limit(20)
    ).scalars().all() if person.company_id else []
    staff = db().execute(select(StaffUser).where(StaffUser.active).order_by(StaffUser.name)).scalars().all()
    return render_template("contact.html", contact=person, timeline=timeline, cursor=cursor, kind=kind,
                           staff=staff, roles=[r.value for r in Role], categories=[c.value for c in Category],
                           salutations=list(Salutation), languages=("de", "en"),
                           kinds=[k.value for k in InteractionKind], reminders=open_reminders, tickets=open_tickets,
                           colleagues=colleagues)


@pages.post("/contacts/<int:contact_id>/notes")
def contact_note(contact_id: int) -> BaseResponse:
    by = editor_id()
    try:
        add_note(db(), row_or_404(Contact, contact_id), by, request.form.get("text", ""))
    except ValidationError as exc:
        flash(_("No note added: %(why)s", why=exc.message))
    return redirect(url_for("pages.contact", contact_id=contact_id) + "#timeline")

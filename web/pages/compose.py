"""Writing mail from the CRM on the customer, company and ticket pages: the form (the ``_compose.html`` partial,
prefilled by the template globals below) and the routes it posts to. Sending is ``correspondence.send_mail``
(``tickets.reply_by_mail`` on a ticket); the outbox sender is woken after the commit.

A draft the service refuses is shown again with the reason (the text typed is kept; files must be chosen again,
browsers never prefill a file input).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.correspondence.service import FileUpload, MailDraft, first_working_address, send_mail
from crm_inbox.errors import ValidationError
from crm_inbox.models import Company, Contact, ContactEmail, Ticket
from crm_inbox.sales.letters import greeting
from crm_inbox.text import single_line
from crm_inbox.tickets import service as tickets
from web.auth import editor_id
from web.pages.blueprint import pages
from web.requestdb import after_commit, db, row_or_404, state


@dataclass(frozen=True)
class Compose:
    """What the form shows: where it posts, the prefill, addresses to offer, a note (e.g. what is attached)."""

    action: str
    to: str = ""
    subject: str = ""
    text: str = ""
    in_reply_to: int | None = None
    recipients: tuple[str, ...] = ()
    note: str | None = None
    button: str | None = None
    error: str | None = None
    open: bool = False  # shown unfolded (a refused draft, or a page that is only this form)


def _language(contact: Contact | None) -> str:
    return (contact.language if contact is not None and contact.language else None) or \
        state().settings.company.language


def _greeting_text(contact: Contact | None) -> str:
    if contact is None:
        return ""
    salutation = contact.salutation.value if contact.salutation is not None else None
    return greeting(salutation, contact.title, contact.name, _language(contact)) + "\n\n"


@pages.app_template_global()
def compose_form(**values: Any) -> Compose:
    """A form of one's own (the quote page: its action, subject and a note that the PDF is attached)."""
    return Compose(**values)


@pages.app_template_global()
def compose_for_contact(contact: Contact) -> Compose:
    """To the person: their first address that works, the others offered; a greeting to start from."""
    addresses = tuple(e.email for e in contact.emails if not e.bouncing)
    return Compose(action=url_for("pages.contact_mail", contact_id=contact.id),
                   to=first_working_address(contact) or "", text=_greeting_text(contact), recipients=addresses)


@pages.app_template_global()
def compose_for_company(company: Company) -> Compose:
    """To one of its people: the address is typed or picked from theirs."""
    addresses = db().execute(select(ContactEmail.email).join(Contact, Contact.id == ContactEmail.contact_id).where(
        Contact.company_id == company.id, ContactEmail.bouncing.is_(False)).order_by(ContactEmail.email)
        .limit(100)).scalars().all()
    return Compose(action=url_for("pages.company_mail", company_id=company.id), recipients=tuple(addresses))


@pages.app_template_global()
def compose_for_ticket(ticket: Ticket) -> Compose:
    """A reply to the customer's last mail in the ticket, "Re: <subject>"."""
    contact = db().get(Contact, ticket.contact_id) if ticket.contact_id else None
    last = tickets.last_customer_mail(db(), ticket)
    subject = single_line((last.subject if last is not None else None) or ticket.subject or "")
    if not subject.lower().startswith(("re:", "aw:")):
        subject = f"Re: {subject}"
    to = first_working_address(contact) if contact is not None else None
    return Compose(action=url_for("pages.ticket_mail", ticket_id=ticket.id),
                   to=to or (ticket.opened_by_email or ""), subject=subject, text=_greeting_text(contact),
                   in_reply_to=last.id if last is not None else None,
                   recipients=tuple(e.email for e in contact.emails if not e.bouncing) if contact else ())


def read_draft(*, contact_id: int | None = None, company_id: int | None = None) -> MailDraft:
    """The posted form as a draft (fields ``to``, ``subject``, ``text``, ``in_reply_to``, files ``attachments``)."""
    form = request.form
    reply = form.get("in_reply_to", "")
    files = tuple(FileUpload(f.filename or "attachment", f.mimetype or "application/octet-stream", f.read())
                  for f in request.files.getlist("attachments") if f.filename)
    return MailDraft(to=form.get("to", "").strip(), subject=form.get("subject", ""), text=form.get("text", ""),
                     attachments=files, contact_id=contact_id, company_id=company_id,
                     in_reply_to=int(reply) if reply.isdecimal() and len(reply) < 19 else None)


def _sent(draft: MailDraft, back: str) -> BaseResponse:
    after_commit(state().mail_queued)  # the outbox sender sends it now, not at its next round
    flash(_("Mail “%(subject)s” is on its way.", subject=single_line(draft.subject)))
    return redirect(back)


def _refused(exc: ValidationError, draft: MailDraft, form: Compose, back: str) -> tuple[str, int]:
    """The form again, with what was typed and why it was not sent (422: nothing of it was kept)."""
    db().rollback()
    shown = replace(form, to=draft.to, subject=draft.subject, text=draft.text, in_reply_to=draft.in_reply_to,
                    error=_("Not sent: %(field)s %(why)s", field=exc.field.replace("_", " "), why=exc.message),
                    open=True)
    return render_template("compose.html", compose=shown, back=back), 422


@pages.post("/contacts/<int:contact_id>/mail")
def contact_mail(contact_id: int) -> BaseResponse | tuple[str, int]:
    by = editor_id()
    contact = row_or_404(Contact, contact_id)
    back = url_for("pages.contact", contact_id=contact_id) + "#timeline"
    draft = read_draft(contact_id=contact.id)
    try:
        send_mail(db(), state().settings, draft, by=by)
    except ValidationError as exc:
        return _refused(exc, draft, compose_for_contact(contact), back)
    return _sent(draft, back)


@pages.post("/companies/<int:company_id>/mail")
def company_mail(company_id: int) -> BaseResponse | tuple[str, int]:
    by = editor_id()
    company = row_or_404(Company, company_id)
    back = url_for("pages.company", company_id=company_id)
    draft = read_draft(company_id=company.id)
    # The person at the company whose address was picked gets it on their timeline too.
    person = db().execute(select(ContactEmail.contact_id).join(Contact, Contact.id == ContactEmail.contact_id).where(
        Contact.company_id == company.id, ContactEmail.email == draft.to.lower()).limit(1)).scalar_one_or_none()
    draft = replace(draft, contact_id=person)
    try:
        send_mail(db(), state().settings, draft, by=by)
    except ValidationError as exc:
        return _refused(exc, draft, compose_for_company(company), back)
    return _sent(draft, back)


@pages.post("/tickets/<int:ticket_id>/mail")
def ticket_mail(ticket_id: int) -> BaseResponse | tuple[str, int]:
    by = editor_id()
    ticket = row_or_404(Ticket, ticket_id)
    back = url_for("pages.ticket", ticket_id=ticket_id)
    draft = read_draft()
    try:
        tickets.reply_by_mail(db(), state().settings, ticket, draft, by=by)
    except ValidationError as exc:
        return _refused(exc, draft, compose_for_ticket(ticket), back)
    return _sent(draft, back)

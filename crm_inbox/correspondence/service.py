"""Sending mail from the CRM: validated, recorded on the timeline as outgoing mail by its writer, queued in the
outbox in the same transaction and sent after the commit.

From is ``"<writer's name>" <[notifications] from_address>``: the writer's name so the customer sees who wrote,
the CRM's own address so that the customer's reply comes back into the CRM (the address must be one of
``[mail] crm_addresses``), where it lands on the customer's timeline, in the ticket (by In-Reply-To) and on the
deal (``sales.replies``). A member of staff's own address would take the reply past the CRM into one inbox.

The Message-ID is ours and stored as the timeline entry's ``source_ref``: replies thread back to it. A mail that
answers one (``MailDraft.in_reply_to``) carries In-Reply-To and References built from the answered mail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_inbox import audit, outbox
from crm_inbox.config import Settings
from crm_inbox.correspondence.signature import signature
from crm_inbox.errors import ValidationError
from crm_inbox.ids import is_id
from crm_inbox.mail.addresses import normalise_email
from crm_inbox.mail.attachments import safe_filename
from crm_inbox.models import (
    Company,
    Contact,
    ContactEmail,
    Direction,
    Interaction,
    InteractionKind,
    InteractionOpportunity,
    Opportunity,
    StaffUser,
    Ticket,
    utcnow,
)
from crm_inbox.text import single_line
from crm_inbox.timeline.service import excerpt_of, record_interaction

MAX_SUBJECT = 998
MAX_TEXT = 200_000
MAX_REFERENCES = 20  # the References header keeps the newest ones: a long thread must not grow it without end


@dataclass(frozen=True)
class FileUpload:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class MailDraft:
    to: str  # one address; empty: the contact's first address that does not bounce
    subject: str
    text: str
    attachments: tuple[FileUpload, ...] = ()
    contact_id: int | None = None
    company_id: int | None = None
    in_reply_to: int | None = None  # the Interaction (a mail) this answers: In-Reply-To/References from it


@dataclass(frozen=True)
class _Checked:
    """A draft after validation: what send_mail writes."""

    writer: StaffUser
    contact: Contact | None
    company_id: int | None
    to: str
    subject: str
    text: str
    attachments: tuple[FileUpload, ...]
    headers: dict[str, str]
    references: list[str]
    answered: Interaction | None
    opportunity: Opportunity | None
    ticket: Ticket | None


def _row(session: Session, model: type[Any], ident: int | None, field: str, what: str) -> Any:
    if ident is None:
        return None
    row = session.get(model, ident) if is_id(ident) else None
    if row is None:
        raise ValidationError(field, f"no such {what}")
    return row


def first_working_address(contact: Contact) -> str | None:
    """The contact's first address that is not known to bounce."""
    return next((e.email for e in contact.emails if not e.bouncing and outbox.single_recipient(e.email)), None)


def _recipient(session: Session, settings: Settings, draft: MailDraft, contact: Contact | None) -> str:
    typed = draft.to.strip()
    if typed:
        to = outbox.single_recipient(typed)
        if to is None:
            raise ValidationError("to", "must be exactly one e-mail address (no name, no list)")
    elif contact is None or (to := first_working_address(contact)) is None:
        raise ValidationError("to", "is required: the contact has no address that works" if contact else "is required")
    if normalise_email(to) in settings.mail.own_addresses:
        raise ValidationError("to", "is one of the CRM's own addresses")
    if contact is not None and session.execute(select(ContactEmail.bouncing).where(
            ContactEmail.contact_id == contact.id, ContactEmail.email == normalise_email(to))).scalar():
        raise ValidationError("to", f"{to} bounces (a delivery report said so)")
    return to


def _attachments(settings: Settings, uploads: Sequence[FileUpload], text: str) -> tuple[FileUpload, ...]:
    """Safe base names (as for mail we receive) and a size that fits what SMTP takes ([smtp] max_message_bytes):
    base64 makes each attachment a third larger on the wire."""
    safe = tuple(FileUpload(safe_filename(u.filename, u.content_type), _content_type(u.content_type), u.content)
                 for u in uploads)
    wire = len(text.encode()) + sum((len(u.content) + 2) // 3 * 4 * 78 // 76 + 500 for u in safe)
    if wire > settings.smtp.max_message_bytes:
        limit = settings.smtp.max_message_bytes // (1024 * 1024) or 1
        raise ValidationError("attachments", f"too large: the whole mail must stay below about {limit} MB")
    return safe


def _content_type(value: str) -> str:
    value = value.split(";")[0].strip().lower()
    maintype, _, subtype = value.partition("/")
    if not maintype or not subtype or maintype == "multipart" or not (maintype + subtype).replace("-", "").replace(
            ".", "").replace("+", "").isalnum():
        return "application/octet-stream"
    return value


def thread_headers(answered: Interaction) -> tuple[dict[str, str], list[str]]:
    """In-Reply-To and References for a reply to ``answered``: its own References (as stored in its details),
    then its Message-ID."""
    if not answered.source_ref:
        return {}, []
    stored = answered.details.get("references") or []
    earlier = [r for r in (stored.split() if isinstance(stored, str) else stored) if isinstance(r, str)]
    references = list(dict.fromkeys([*earlier, answered.source_ref]))[-MAX_REFERENCES:]
    return {"In-Reply-To": answered.source_ref, "References": " ".join(references)}, references


def check(session: Session, settings: Settings, draft: MailDraft, *, by: int, opportunity_id: int | None = None,
          ticket_id: int | None = None) -> _Checked:
    """Every rule, before anything is written."""
    writer = _row(session, StaffUser, by, "by", "staff user")
    if writer is None or not writer.active:
        raise ValidationError("by", "must be an active staff user")
    contact = _row(session, Contact, draft.contact_id, "contact_id", "contact")
    company = _row(session, Company, draft.company_id, "company_id", "company")
    opportunity = _row(session, Opportunity, opportunity_id, "opportunity_id", "opportunity")
    ticket = _row(session, Ticket, ticket_id, "ticket_id", "ticket")
    answered = _row(session, Interaction, draft.in_reply_to, "in_reply_to", "mail")
    if answered is not None and answered.kind != InteractionKind.EMAIL:
        raise ValidationError("in_reply_to", "is not a mail")
    subject = single_line(draft.subject or "")
    if not subject:
        raise ValidationError("subject", "is required")
    if len(subject) > MAX_SUBJECT:
        raise ValidationError("subject", f"must be at most {MAX_SUBJECT} characters")
    text = (draft.text or "").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").strip("\n")
    if not text.strip():
        raise ValidationError("text", "is required")
    if len(text) > MAX_TEXT:
        raise ValidationError("text", f"must be at most {MAX_TEXT} characters")
    to = _recipient(session, settings, draft, contact)
    attachments = _attachments(settings, draft.attachments, text)
    headers, references = thread_headers(answered) if answered is not None else ({}, [])
    company_id = company.id if company is not None else contact.company_id if contact is not None else None
    return _Checked(writer, contact, company_id, to, subject, text, attachments, headers, references, answered,
                    opportunity, ticket)


def send_mail(session: Session, settings: Settings, draft: MailDraft, *, by: int, opportunity_id: int | None = None,
              ticket_id: int | None = None, purpose: str = "staff_mail") -> Interaction:
    """Validate, record the outgoing mail on the timeline (by ``by``, to the contact, the company, the ticket and
    the deal; the attachments stored with it), queue it with the signature, audit "mail.send". Sent after the
    caller commits (wake the outbox sender then)."""
    mail = check(session, settings, draft, by=by, opportunity_id=opportunity_id, ticket_id=ticket_id)
    contact = mail.contact
    language = (contact.language if contact is not None and contact.language else None) or settings.company.language
    body = f"{mail.text}\n\n{signature(mail.writer.name, settings.company, language)}\n"
    message_id = outbox.new_message_id(settings, purpose)
    now = utcnow()
    details: dict[str, Any] = {
        "from": f"{single_line(mail.writer.name)} <{settings.notifications.from_address}>", "to": [mail.to],
        "cc": [], "sent_by": mail.writer.id, "purpose": purpose, "references": mail.references,
        "in_reply_to": mail.answered.id if mail.answered is not None else None,
    }
    item = record_interaction(
        session, kind=InteractionKind.EMAIL, direction=Direction.OUT, occurred_at=now, subject=mail.subject,
        text=body, excerpt=excerpt_of(mail.text), source_ref=message_id,
        contacts=[(contact, "to")] if contact is not None else [], staff_ids=[mail.writer.id],
        attachments=[(a.filename, a.content_type, a.content) for a in mail.attachments],
        reason=f"written in the CRM by {single_line(mail.writer.name)}", details=details, created_by_id=by,
        company_id=mail.company_id)
    item.ticket_id = mail.ticket.id if mail.ticket is not None else None
    queued = outbox.enqueue(session, settings, purpose=purpose, dedupe_key=f"{purpose}:{item.id}", to=mail.to,
                            subject=mail.subject, body=body, headers=mail.headers, message_id=message_id,
                            interaction_id=item.id, from_name=mail.writer.name)
    assert queued is not None  # the recipient was checked and the key is new
    item.details = {**details, "outgoing_mail_id": queued.id}
    if mail.opportunity is not None:
        # The link row itself (sales.opportunities.link_interaction is a layer above): a new entry, so no
        # earlier link can exist.
        session.add(InteractionOpportunity(interaction_id=item.id, opportunity_id=mail.opportunity.id,
                                           occurred_at=now, reason="mail sent from the CRM"))
        mail.opportunity.last_contact_at = now
    audit.record(session, by, "mail.send", "interaction", item.id, {
        "to": mail.to, "subject": mail.subject, "attachments": [a.filename for a in mail.attachments],
        "contact_id": contact.id if contact is not None else None, "opportunity_id": opportunity_id,
        "ticket_id": ticket_id, "outgoing_mail_id": queued.id})
    session.flush()
    return item

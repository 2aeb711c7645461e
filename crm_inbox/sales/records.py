"""What quotes and orders leave on the timelines: their PDFs as documents and their decisions as deal entries,
each on the customer's timeline and the opportunity's."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from crm_inbox.config import Settings
from crm_inbox.models import Company, Contact, Direction, Interaction, InteractionKind, Opportunity, utcnow
from crm_inbox.sales import opportunities
from crm_inbox.timeline.service import record_interaction

PDF = "application/pdf"


def today(settings: Settings) -> date:
    """The business day where the staff are (a quote written at 00:30 on 1 January is next year's)."""
    return datetime.now(ZoneInfo(settings.reminders.timezone)).date()


def parties(session: Session, contact_id: int | None, company_id: int | None) -> tuple[Contact | None,
                                                                                         Company | None]:
    contact = session.get(Contact, contact_id) if contact_id is not None else None
    company = session.get(Company, company_id) if company_id is not None else None
    return contact, company


def store_document(session: Session, opp: Opportunity | None, *, contact_id: int | None, company_id: int | None,
                   subject: str, filename: str, content: bytes, by: int | None, details: dict[str, Any],
                   reason: str) -> Interaction:
    """The PDF as an outgoing document with its attachment on the customer's timeline and the deal's."""
    contact, _ = parties(session, contact_id, None)
    item = record_interaction(
        session, kind=InteractionKind.DOCUMENT, direction=Direction.OUT, occurred_at=utcnow(), subject=subject,
        contacts=[(contact, "to")] if contact else [], staff_ids=[by] if by else [], created_by_id=by,
        attachments=[(filename, PDF, content)], details=details, company_id=company_id)
    if opp is not None:
        opportunities.link_interaction(session, opp, item, reason)
    return item


def on_timeline(session: Session, opp: Opportunity | None, *, contact_id: int | None, company_id: int | None,
                subject: str, text: str | None, by: int | None, details: dict[str, Any]) -> Interaction:
    """A deal event (quote accepted, declined, order created) on the customer's timeline and the deal's."""
    contact, _ = parties(session, contact_id, None)
    item = record_interaction(
        session, kind=InteractionKind.DEAL, direction=Direction.INTERNAL, occurred_at=utcnow(), subject=subject,
        text=text, contacts=[(contact, "about")] if contact else [], staff_ids=[by] if by else [],
        created_by_id=by, details=details, company_id=company_id)
    if opp is not None:
        opportunities.link_interaction(session, opp, item, str(details.get("event", "deal")))
    return item


def stored_pdf(session: Session, document_id: int | None) -> bytes | None:
    """The PDF stored with a document entry (None when there is none, e.g. after the contact was erased)."""
    if document_id is None:
        return None
    item = session.get(Interaction, document_id)
    if item is None:
        return None
    pdfs = [a for a in item.attachments if a.content_type == PDF]
    return pdfs[0].content if pdfs else None


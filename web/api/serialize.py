"""Models → JSON-ready dicts (the shapes documented in openapi.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_inbox.erp.overdue import Overdue, overdue_of, today
from crm_inbox.models import Attachment, Company, Contact, InboundMessage, Interaction
from web.requestdb import db, state


def when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def address(row: Contact | Company, prefix: str = "") -> dict[str, str | None]:
    """A postal address as one object; every key present (null when unknown)."""
    return {key: getattr(row, prefix + key) for key in ("street", "postcode", "city", "country")}


def contact(c: Contact, overdue: Overdue | None = None) -> dict[str, Any]:
    """``overdue``: the person's from ``overdue_of_people`` when a list has it already (else one query)."""
    return {
        "id": c.id, "name": c.name, "display_name": c.display_name, "company_id": c.company_id,
        "emails": [e.email for e in c.emails],
        "bouncing_emails": [e.email for e in c.emails if e.bouncing],
        "phones": [{"raw": p.raw, "e164": p.e164} for p in c.phones],
        "role": c.role.value, "category": c.category.value if c.category else None,
        "tags": c.tags, "fields": c.fields, "owner_id": c.owner_id, "origin": c.origin,
        "salutation": c.salutation.value if c.salutation else None, "title": c.title, "language": c.language,
        "customer_number": c.customer_number, "address": address(c),
        "created_at": when(c.created_at), "updated_at": when(c.updated_at),
        **debts(c.id, c.company_id, overdue),
    }


def debts(contact_id: int | None, company_id: int | None, overdue: Overdue | None = None) -> dict[str, Any]:
    """Overdue invoices from the ERP (crm_inbox.erp.overdue): "debtor" is derived from them, the stored role
    stays as it is. A person's count includes their company's invoices."""
    if overdue is None:
        overdue = overdue_of(db(), today(state().settings), contact_id=contact_id, company_id=company_id)
    return {"debtor": overdue.debtor, "overdue": {"count": overdue.count, "gross": f"{overdue.gross:.2f}",
                                                  "outstanding": f"{overdue.outstanding:.2f}"}}


def company(c: Company, overdue: Overdue | None = None) -> dict[str, Any]:
    """``overdue``: the company's from ``overdue_of_companies`` when a list has it already."""
    return {
        "id": c.id, "name": c.name, "domains": [d.domain for d in c.domains],
        "phones": [{"raw": p.raw, "e164": p.e164} for p in c.phones],
        "industry": c.industry, "size": c.size,
        "customer_type": c.customer_type.value if c.customer_type else None,
        "category": c.category.value if c.category else None, "tags": c.tags, "fields": c.fields,
        "customer_number": c.customer_number, "address": address(c),
        "delivery_address": address(c, "delivery_"),
        "created_at": when(c.created_at), "updated_at": when(c.updated_at),
        **debts(None, c.id, overdue),
    }


def attachment(a: Attachment) -> dict[str, Any]:
    return {"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size,
            "sha256": a.sha256, "url": f"/api/v1/attachments/{a.id}"}


def timeline_item(i: Interaction) -> dict[str, Any]:
    return {
        "id": i.id, "kind": i.kind.value, "direction": i.direction.value, "occurred_at": when(i.occurred_at),
        "subject": i.subject, "excerpt": i.excerpt,
        "message_id": i.source_ref if i.kind.value == "email" else None,
        "source_ref": i.source_ref, "contact_ids": i.contact_ids, "ticket_id": i.ticket_id,
        "company_id": i.company_id,
        "attachments": [attachment(a) for a in i.attachments],
    }


def interaction(i: Interaction) -> dict[str, Any]:
    return {
        **timeline_item(i),
        "text": i.text, "html": i.html, "attribution_reason": i.attribution_reason,
        "inbound_message_id": i.inbound_message_id, "details": i.details,
        "staff_ids": sorted(s.staff_id for s in i.staff_links),
        "links": [{"contact_id": link.contact_id, "role": link.role} for link in i.contact_links],
    }


def inbound(m: InboundMessage) -> dict[str, Any]:
    return {
        "id": m.id, "state": m.state.value, "error": m.error, "failed_step": m.failed_step,
        "message_id": m.message_id,
        "message_id_conflict": m.message_id_conflict, "envelope_from": m.envelope_from,
        "envelope_to": m.envelope_to, "source": m.source, "size": m.size, "deliveries": m.deliveries,
        "attempts": m.attempts, "received_at": when(m.received_at), "processed_at": when(m.processed_at),
    }

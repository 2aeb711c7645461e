"""A person's invoices and payments (from the ERP) in their export, and what their erasure does to them.

Invoices are accounting records (Buchungsbelege: § 147 (1) no. 4 AO, § 257 (1) no. 4 HGB, ten years): erasure
does not apply to them (GDPR Art. 17 (3)(b)). They stay, with their payments and their PDFs (the document
entries), detached from the person (contact_id NULL); an invoice of the person's company stays the company's.
The entries leave the person's timeline (their link goes with the contact) and are marked internal so triage
does not offer them. Works on the rows only (models/erp.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_inbox.db import affected
from crm_inbox.models import Direction, Interaction, Invoice, Payment
from crm_inbox.privacy.sales import plain

KEPT_BECAUSE = "invoices are accounting records that § 147 AO and § 257 HGB require to be kept for ten years"


def _row(obj: Any, skip: set[str]) -> dict[str, Any]:
    return {attr.key: plain(getattr(obj, attr.key)) for attr in obj.__mapper__.column_attrs if attr.key not in skip}


def export(session: Session, contact_id: int) -> dict[str, list[dict[str, Any]]]:
    """The person's invoices, each with its payments, JSON-ready."""
    invoices = session.execute(select(Invoice).where(Invoice.contact_id == contact_id)
                               .order_by(Invoice.issued_on, Invoice.id)).scalars().all()
    payments: dict[int, list[dict[str, Any]]] = {}
    if invoices:
        for payment in session.execute(select(Payment).where(Payment.invoice_id.in_([i.id for i in invoices]))
                                       .order_by(Payment.paid_on, Payment.id)).scalars():
            payments.setdefault(payment.invoice_id, []).append(_row(payment, {"invoice_id"}))
    return {"invoices": [{**_row(i, set()), "payments": payments.get(i.id, [])} for i in invoices]}


def document_ids(session: Session, contact_id: int) -> set[int]:
    """The timeline entries (with the PDFs) of the person's invoices: kept by an erasure, part of the export."""
    return {i for i in session.execute(select(Invoice.interaction_id).where(
        Invoice.contact_id == contact_id, Invoice.interaction_id.is_not(None))).scalars() if i is not None}


def detach(session: Session, contact_id: int) -> dict[str, int]:
    """Before the person goes: their invoices stay, without them (the company's stay the company's)."""
    entries = document_ids(session, contact_id)
    if entries:
        session.execute(update(Interaction).where(Interaction.id.in_(sorted(entries)))
                        .values(direction=Direction.INTERNAL))
    kept = affected(session.execute(update(Invoice).where(Invoice.contact_id == contact_id).values(contact_id=None)))
    return {"invoices_kept": kept}

"""A person's sales data in their export, and what their erasure does to it (see privacy.service's description).

Works on the rows (models/sales.py) only: privacy sits below the sales package and must not import it.

Erasure keeps what commercial and tax law require to be kept and removes the rest:

- Quotes that left the draft state (final, sent, accepted, declined, superseded) and orders are commercial
  letters (Handelsbriefe: § 257 (1) no. 2-3 HGB, § 147 (1) AO; six years, the order as a record for
  bookkeeping up to ten): erasure does not apply to them (GDPR Art. 17 (3)(b)). They stay with their lines,
  numbers and totals, detached from the person (contact_id NULL) and with the person's line of their frozen
  address blanked (``[erased]``); the company's line, the street and the town stay, as the letter went out.
  Their PDFs (document entries) stay as sent, as § 257 (3) HGB wants a faithful copy; they leave the person's
  timeline (and triage: they are marked internal), and remain on the deal's.
- Draft quotes of the person are deleted: they never left the house.
- The person's opportunities are deleted with their timeline links and follow-up reminders, except those
  that must stay: one of a company (the company's deal, not the person's data) and one that carries a kept
  quote (a quote cannot exist without its opportunity). Those stay detached, with the person's identifiers
  removed from their title and lost reason.
- Orders point at their quote and opportunity by id only; nothing else about them changes.
- Nothing is kept beyond the retention period by this module: purging expired commercial letters is a
  separate, later task.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.orm import Session, selectinload

from crm_inbox.models import (
    AuditEntry,
    Direction,
    Interaction,
    Opportunity,
    Order,
    Quote,
    QuoteState,
    Reminder,
)
from crm_inbox.privacy.redaction import MARK, Redactor

# Why kept quotes and orders survive an erasure, for the summary shown to the person who erases.
KEPT_BECAUSE = ("commercial letters that § 257 HGB and § 147 AO require to be kept (GDPR Art. 17 (3)(b)); "
                "detached from the person, their name removed from the address")


def plain(value: Any) -> Any:
    """A column's value as JSON has it: times in ISO 8601, money as a decimal string, enums by value."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _row(obj: Any, skip: Iterable[str] = ()) -> dict[str, Any]:
    skipped = set(skip)
    return {attr.key: plain(getattr(obj, attr.key)) for attr in obj.__mapper__.column_attrs
            if attr.key not in skipped}


# --- export ---

def export(session: Session, contact_id: int) -> dict[str, list[dict[str, Any]]]:
    """The person's opportunities, quotes (with lines) and orders (with lines), JSON-ready."""
    opps = session.execute(select(Opportunity).where(Opportunity.contact_id == contact_id)
                           .order_by(Opportunity.id)).scalars().all()
    quotes = session.execute(select(Quote).where(Quote.contact_id == contact_id).options(selectinload(Quote.lines))
                             .order_by(Quote.id)).scalars().all()
    orders = session.execute(select(Order).where(Order.contact_id == contact_id).options(selectinload(Order.lines))
                             .order_by(Order.id)).scalars().all()
    return {"opportunities": [_row(o) for o in opps],
            "quotes": [{**_row(q), "lines": [_row(line, {"quote_id"}) for line in q.lines]} for q in quotes],
            "orders": [{**_row(o), "lines": [_row(line, {"order_id"}) for line in o.lines]} for o in orders]}


def document_ids(session: Session, contact_id: int) -> set[int]:
    """The PDFs (document entries) of the person's quotes and orders, whether or not on their timeline."""
    ids = set(session.execute(select(Quote.document_id).where(Quote.contact_id == contact_id)).scalars())
    ids |= set(session.execute(select(Order.document_id).where(Order.contact_id == contact_id)).scalars())
    return {i for i in ids if i is not None}


# --- erasure ---

@dataclass(frozen=True)
class SalesPlan:
    """What the erasure of one person does to sales rows (ids), decided before the first write."""

    opportunities: set[int]  # deleted (their draft quotes and deal links cascade)
    draft_quotes: set[int]  # deleted
    kept_opportunities: set[int]  # detached (title and lost reason redacted as mentions, by the service)
    kept_quotes: set[int]  # detached, person line blanked
    kept_orders: set[int]
    kept_documents: set[int]  # the PDFs of kept quotes and orders (timeline entries that stay)
    reminders: set[int]  # follow-ups of deleted opportunities (the service deletes them with the person's)


def plan(session: Session, contact_id: int) -> SalesPlan:
    """Read only: which sales rows of the person go and which stay."""
    quotes = session.execute(select(Quote.id, Quote.opportunity_id, Quote.state, Quote.document_id)
                             .where(Quote.contact_id == contact_id)).all()
    opps = session.execute(select(Opportunity.id, Opportunity.company_id)
                           .where(Opportunity.contact_id == contact_id)).all()
    # A kept quote anywhere under an opportunity (also one addressed to somebody else) keeps it.
    carrying = set(session.execute(select(Quote.opportunity_id).where(
        Quote.opportunity_id.in_([o.id for o in opps]), Quote.state != QuoteState.DRAFT)).scalars()) if opps else set()
    kept_opps = {o.id for o in opps if o.company_id is not None or o.id in carrying}
    doomed_opps = {o.id for o in opps} - kept_opps
    drafts = {q.id for q in quotes if q.state == QuoteState.DRAFT}
    kept_quotes = {q.id for q in quotes if q.state != QuoteState.DRAFT}
    orders = session.execute(select(Order.id, Order.document_id).where(Order.contact_id == contact_id)).all()
    documents = {q.document_id for q in quotes if q.id in kept_quotes and q.document_id is not None}
    documents |= {o.document_id for o in orders if o.document_id is not None}
    reminders = set(session.execute(select(Reminder.id).where(Reminder.opportunity_id.in_(doomed_opps))
                                    ).scalars()) if doomed_opps else set()
    return SalesPlan(opportunities=doomed_opps, draft_quotes=drafts, kept_opportunities=kept_opps,
                     kept_quotes=kept_quotes, kept_orders={o.id for o in orders}, kept_documents=documents,
                     reminders=reminders)


def audit_about(sales: SalesPlan) -> list[Any]:
    """Conditions for the audit entries about what the erasure deletes (their details are wiped)."""
    conditions = []
    for object_type, ids in (("opportunity", sales.opportunities), ("quote", sales.draft_quotes)):
        if ids:
            conditions.append(and_(AuditEntry.object_type == object_type, AuditEntry.object_id.in_(sorted(ids))))
    return conditions


def blank_person(lines: list[str], redact: Redactor, *, has_company: bool) -> list[str]:
    """A frozen address with the person's line blanked: a line naming them (by name, address or number),
    except the first one when it is the company's name."""
    out = []
    for index, line in enumerate(lines):
        company_line = has_company and index == 0
        out.append(MARK if not company_line and redact.text(line) != line else line)
    return out


def apply(session: Session, sales: SalesPlan, redact: Redactor) -> dict[str, int]:
    """Delete and detach as planned (before the contact itself goes); returns counts for the summary."""
    if sales.draft_quotes:
        session.execute(delete(Quote).where(Quote.id.in_(sorted(sales.draft_quotes))))
    if sales.opportunities:  # quotes, deal links cascade; orders and reminders keep the row, the link goes
        session.execute(delete(Opportunity).where(Opportunity.id.in_(sorted(sales.opportunities))))
    for model, ids in ((Quote, sales.kept_quotes), (Order, sales.kept_orders)):
        for row_id, company_id, address in session.execute(
                select(model.id, model.company_id, model.address).where(model.id.in_(sorted(ids)))).all():
            session.execute(update(model).where(model.id == row_id).values(
                contact_id=None, address=blank_person(list(address or []), redact,
                                                      has_company=company_id is not None)))
    if sales.kept_opportunities:
        session.execute(update(Opportunity).where(Opportunity.id.in_(sorted(sales.kept_opportunities)))
                        .values(contact_id=None))
    if sales.kept_documents:
        # No longer anybody's mail: triage must not offer the letters for sorting.
        session.execute(update(Interaction).where(Interaction.id.in_(sorted(sales.kept_documents)))
                        .values(direction=Direction.INTERNAL))
    return {"opportunities": len(sales.opportunities), "draft_quotes": len(sales.draft_quotes),
            "opportunities_kept": len(sales.kept_opportunities), "quotes_kept": len(sales.kept_quotes),
            "orders_kept": len(sales.kept_orders), "documents_kept": len(sales.kept_documents)}


def kept_summary(counts: dict[str, int]) -> str | None:
    """What an erasure kept and why, in words (None when it kept no quotes or orders)."""
    parts = [f"{counts.get(key, 0)} {name}" for key, name in (("quotes_kept", "quotes"), ("orders_kept", "orders"),
                                                             ("documents_kept", "documents"))
             if counts.get(key, 0)]
    if not parts:
        return None
    return "Kept " + ", ".join(parts) + ": " + KEPT_BECAUSE + "."

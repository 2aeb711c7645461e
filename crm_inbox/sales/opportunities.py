"""Opportunities (Verkaufschancen) through their stages: opened and changed by staff, moved on by quotes and
orders; every change audited and on the customer's timeline, linked to the deal.

A lead with an open opportunity becomes a prospect, the first order makes a customer (``make_customer``);
both role changes are on the timeline. Stages come from ``[sales] stages``; won and lost end a deal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from crm_inbox import audit, events
from crm_inbox.config import Settings
from crm_inbox.contacts import payloads
from crm_inbox.db import insert_ignoring_conflicts
from crm_inbox.errors import ValidationError
from crm_inbox.ids import ref_id
from crm_inbox.inputs import NOT_GIVEN
from crm_inbox.models import (
    Company,
    Contact,
    Direction,
    Interaction,
    InteractionKind,
    InteractionOpportunity,
    Opportunity,
    OpportunitySource,
    Quote,
    Role,
    StaffUser,
    utcnow,
)
from crm_inbox.sales import values
from crm_inbox.sales.inputs import OpportunityChanges, OpportunityFields
from crm_inbox.timeline.service import TimelinePage, decode_cursor, page_of, record_interaction

__all__ = ["Stage", "TimelinePage", "advance_to", "create_opportunity", "link_interaction",
           "make_customer", "mark_lost", "mark_won", "opportunity_timeline", "set_amount_from_quote", "stages",
           "update_opportunity"]

WON = "won"
LOST = "lost"
MAX_AMOUNT = Decimal(10) ** 12  # Numeric(14, 2)
# What counts as talking to the customer about the deal ("days since last contact"); notes and the deal's
# own entries do not.
_CONTACT_KINDS = frozenset({InteractionKind.EMAIL, InteractionKind.CALL, InteractionKind.MEETING})


@dataclass(frozen=True)
class Stage:
    key: str
    probability: int  # the default, in percent
    is_open: bool


def stages(settings: Settings) -> list[Stage]:
    """The open stages in pipeline order, then won and lost."""
    return [Stage(key, probability, key not in (WON, LOST))
            for key, probability in settings.sales.stage_probabilities.items()]


def _stage(settings: Settings, value: Any, *, open_only: bool = False) -> str:
    known = [s.key for s in stages(settings) if s.is_open or not open_only]
    if not isinstance(value, str) or value not in known:
        raise ValidationError("stage", "must be one of " + ", ".join(known))
    return value


def _probability(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValidationError("probability", "must be a whole number from 0 to 100")
    return value


def _amount(value: Any) -> Decimal | None:
    return None if value is None else values.amount("amount", value, places=2, maximum=MAX_AMOUNT)


def _close_date(value: Any) -> date | None:
    if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
        raise ValidationError("close_date", "must be a date (YYYY-MM-DD)")
    return value


def _source(value: Any) -> OpportunitySource:
    try:
        return OpportunitySource(value)
    except ValueError:
        raise ValidationError("source", "must be one of " + ", ".join(s.value for s in OpportunitySource)) from None


def _existing(session: Session, model: type[Contact] | type[Company], field: str, value: Any) -> int | None:
    ident = ref_id(field, value)
    if ident is not None and session.get(model, ident) is None:
        raise ValidationError(field, f"no such {field.removesuffix('_id')}")
    return ident


def _owner(session: Session, value: Any) -> int | None:
    ident = ref_id("owner_id", value)
    if ident is not None:
        user = session.get(StaffUser, ident)
        if user is None or not user.active:
            raise ValidationError("owner_id", "must be an active staff user")
    return ident


def _json(value: Any) -> Any:
    """A value as the audit log and the timeline's details keep it (JSON)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value.value if isinstance(value, OpportunitySource) else value


def _entry(session: Session, opp: Opportunity, subject: str, details: dict[str, Any], by: int | None,
           contact_id: int | None = None) -> Interaction:
    """A DEAL entry on the timeline of the opportunity's contact (and its company), linked to the deal."""
    contact_id = contact_id if contact_id is not None else opp.contact_id
    contacts = [(session.get_one(Contact, contact_id), "about")] if contact_id else []
    item = record_interaction(session, kind=InteractionKind.DEAL, direction=Direction.INTERNAL,
                              occurred_at=utcnow(), subject=subject, text=subject, contacts=contacts,
                              staff_ids=[by] if by else [], details=details, created_by_id=by,
                              company_id=opp.company_id)
    link_interaction(session, opp, item, "change of the opportunity")
    return item


def _role_change(session: Session, contact: Contact, to: Role, why: str, by: int | None,
                 opp: Opportunity | None) -> None:
    """Set the contact's role, audited and on the timeline ("Role: lead → prospect")."""
    before = contact.role
    contact.role = to
    audit.record(session, by, "update", "contact", contact.id, {"role": to.value, "reason": why})
    payloads.contact_updated(session, contact, ["role"])
    details = {"event": "role", "from": before.value, "to": to.value, "reason": why}
    subject = f"Role: {before.value} → {to.value}"
    if opp is not None:
        _entry(session, opp, subject, {**details, "opportunity_id": opp.id}, by, contact.id)
    else:
        record_interaction(session, kind=InteractionKind.DEAL, direction=Direction.INTERNAL,
                           occurred_at=utcnow(), subject=subject, text=subject,
                           contacts=[(contact, "about")], staff_ids=[by] if by else [], details=details,
                           created_by_id=by, company_id=contact.company_id)


def _promote_lead(session: Session, opp: Opportunity, by: int | None) -> None:
    """The first open opportunity of a lead makes them a prospect."""
    if not opp.is_open or opp.contact_id is None:
        return
    contact = session.get_one(Contact, opp.contact_id)
    if contact.role != Role.LEAD:
        return
    others = session.execute(select(Opportunity.id).where(
        Opportunity.contact_id == contact.id, Opportunity.id != opp.id,
        Opportunity.stage.not_in((WON, LOST))).limit(1)).first()
    if others is None:
        _role_change(session, contact, Role.PROSPECT, f"opportunity {opp.id} opened", by, opp)


def create_opportunity(session: Session, settings: Settings, fields: OpportunityFields, *,
                       by: int | None) -> Opportunity:
    """A new open opportunity for a contact and/or company; owner: the creator unless given."""
    title = values.line("title", fields.title, max_len=300)
    contact_id = _existing(session, Contact, "contact_id", fields.contact_id)
    company_id = _existing(session, Company, "company_id", fields.company_id)
    if contact_id is None and company_id is None:
        raise ValidationError("contact_id", "a contact or a company is required")
    if company_id is None and contact_id is not None:
        company_id = session.get_one(Contact, contact_id).company_id  # the person's company buys
    owner_id = _owner(session, fields.owner_id if fields.owner_id is not None else by)
    amount = _amount(fields.amount)
    close_date = _close_date(fields.close_date)
    stage = _stage(settings, fields.stage, open_only=True) if fields.stage is not None else stages(settings)[0].key
    probability = (_probability(fields.probability) if fields.probability is not None
                   else settings.sales.stage_probabilities[stage])
    source = _source(fields.source)
    opp = Opportunity(title=title, contact_id=contact_id, company_id=company_id, owner_id=owner_id, amount=amount,
                      amount_from_quote=amount is None, close_date=close_date, stage=stage,
                      probability=probability, source=source, created_by_id=by)
    session.add(opp)
    session.flush()
    created = {"title": title, "contact_id": contact_id, "company_id": company_id, "owner_id": owner_id,
               "amount": _json(amount), "close_date": _json(close_date), "stage": stage,
               "probability": probability, "source": source.value}
    audit.record(session, by, "opportunity.create", "opportunity", opp.id, created)
    _entry(session, opp, f"Opportunity opened: {title}",
           {"event": "opportunity.created", "opportunity_id": opp.id, "title": title, "changes": created}, by)
    events.record(session, "opportunity.created", "opportunity", opp.id, {"stage": stage, **created})
    _promote_lead(session, opp, by)
    return opp


def _changes(session: Session, settings: Settings, opp: Opportunity, changes: OpportunityChanges
             ) -> dict[str, Any]:
    """The given changes, checked against each other and the opportunity: {attribute: new value}."""
    new: dict[str, Any] = {}
    if changes.title is not NOT_GIVEN:
        new["title"] = values.line("title", changes.title, max_len=300)
    if changes.contact_id is not NOT_GIVEN:
        new["contact_id"] = _existing(session, Contact, "contact_id", changes.contact_id)
    if changes.company_id is not NOT_GIVEN:
        new["company_id"] = _existing(session, Company, "company_id", changes.company_id)
    if new.get("contact_id", opp.contact_id) is None and new.get("company_id", opp.company_id) is None:
        raise ValidationError("contact_id", "a contact or a company is required")
    if changes.owner_id is not NOT_GIVEN:
        new["owner_id"] = _owner(session, changes.owner_id)
    if changes.amount is not NOT_GIVEN:
        new["amount"] = _amount(changes.amount)
        new["amount_from_quote"] = new["amount"] is None  # typed: stays; cleared: follows the quote again
    if changes.close_date is not NOT_GIVEN:
        new["close_date"] = _close_date(changes.close_date)
    if changes.source is not NOT_GIVEN:
        new["source"] = _source(changes.source)
    if changes.lost_reason is not NOT_GIVEN:
        new["lost_reason"] = values.long_text("lost_reason", changes.lost_reason, max_len=2000)
    stage = opp.stage
    if changes.stage is not NOT_GIVEN:
        stage = _stage(settings, changes.stage)
        if stage != opp.stage:
            new["stage"] = stage
            new["probability"] = settings.sales.stage_probabilities[stage]
            new["closed_at"] = utcnow() if stage in (WON, LOST) else None
            if stage != LOST and "lost_reason" not in new:
                new["lost_reason"] = None  # reopened or won: the old reason no longer holds
    if changes.probability is not NOT_GIVEN and changes.probability is not None:
        new["probability"] = _probability(changes.probability)
    elif changes.probability is None:
        new["probability"] = settings.sales.stage_probabilities.get(stage, opp.probability)
    if stage == LOST and not new.get("lost_reason", opp.lost_reason):
        raise ValidationError("lost_reason", "is required when the opportunity is lost")
    return new


def update_opportunity(session: Session, settings: Settings, opp: Opportunity, changes: OpportunityChanges, *,
                       by: int | None) -> None:
    """Change the given fields: a stage change sets the stage's probability unless one is given, lost needs a
    reason, won and lost close the deal. Audited and on the timeline; nothing changed, no entry."""
    new = _changes(session, settings, opp, changes)
    diff = {key: {"from": _json(getattr(opp, key)), "to": _json(value)} for key, value in new.items()
            if getattr(opp, key) != value and key not in ("closed_at", "amount_from_quote")}
    for key, value in new.items():
        setattr(opp, key, value)  # also a typed amount equal to the quote's: it stops following the quote
    if not diff:
        return
    session.flush()
    event = {WON: "opportunity.won", LOST: "opportunity.lost"}.get(opp.stage, "opportunity.changed") \
        if "stage" in diff else "opportunity.changed"
    audit.record(session, by, "opportunity.update", "opportunity", opp.id, diff)
    subject = {"opportunity.won": "Opportunity won", "opportunity.lost": "Opportunity lost"}.get(
        event, "Opportunity changed")
    if "stage" in diff and event == "opportunity.changed":
        subject = f"Opportunity moved to {opp.stage}"
    lost = event == "opportunity.lost"
    # The facts the pages write the entry from in the reader's language (the subject stays plain English).
    details: dict[str, Any] = {"event": event, "opportunity_id": opp.id, "title": opp.title, "changes": diff}
    if lost:
        details["reason"] = opp.lost_reason
    _entry(session, opp, f"{subject}: {opp.title}" + (f" ({opp.lost_reason})" if lost else ""), details, by)
    if event != "opportunity.changed":
        events.record(session, event, "opportunity", opp.id,
                      {"stage": opp.stage, "amount": _json(opp.amount), "lost_reason": opp.lost_reason})
    if "contact_id" in diff or "stage" in diff:
        _promote_lead(session, opp, by)


# --- what quotes and orders do to a deal (helper functions for sales.quotes / sales.orders) ---

def set_amount_from_quote(session: Session, opp: Opportunity, net: Decimal, *, quote: Quote | None = None,
                          by: int | None = None) -> None:
    """The current quote's net total becomes the expected amount, unless staff typed one. A change is audited
    and on the timeline; the callers are saves (a draft saved, a quote sent or accepted), never the editor's
    live totals, so a draft's typing is one change per save."""
    if not (opp.amount_from_quote or opp.amount is None):
        return
    before = opp.amount
    opp.amount = net
    opp.amount_from_quote = True
    if before is not None and before == net:
        return
    label = quote.label if quote is not None else "?"
    diff = {"amount": {"from": _json(before), "to": _json(net)}}
    audit.record(session, by, "opportunity.update", "opportunity", opp.id, {**diff, "reason": f"quote {label}"})
    _entry(session, opp, f"Amount follows quote {label}: {_json(net)}",
           {"event": "opportunity.amount", "opportunity_id": opp.id, "title": opp.title, "quote": label,
            "quote_id": quote.id if quote is not None else None, "amount": _json(net), "changes": diff}, by)


def advance_to(session: Session, settings: Settings, opp: Opportunity, stage: str, *, by: int | None) -> None:
    """Move an open deal forward to ``stage`` (an open stage); never back, never out of won or lost."""
    order = [s.key for s in stages(settings) if s.is_open]
    target = _stage(settings, stage, open_only=True)
    current = order.index(opp.stage) if opp.stage in order else -1
    if opp.is_open and order.index(target) > current:
        update_opportunity(session, settings, opp, OpportunityChanges(stage=target), by=by)


def mark_won(session: Session, settings: Settings, opp: Opportunity, *, by: int | None) -> None:
    if opp.stage != WON:
        update_opportunity(session, settings, opp, OpportunityChanges(stage=WON), by=by)


def mark_lost(session: Session, settings: Settings, opp: Opportunity, reason: str, *, by: int | None) -> None:
    if opp.stage != LOST:
        update_opportunity(session, settings, opp, OpportunityChanges(stage=LOST, lost_reason=reason), by=by)


def make_customer(session: Session, contact_id: int | None, company_id: int | None, *, by: int | None) -> None:
    """The first order makes a lead or prospect a customer (on the timeline, audited). Companies have no role:
    with only a company nothing changes."""
    contact = session.get(Contact, contact_id) if contact_id is not None else None
    if contact is not None and contact.role in (Role.LEAD, Role.PROSPECT):
        _role_change(session, contact, Role.CUSTOMER, "first order", by, None)


# --- the deal's own timeline ---

def link_interaction(session: Session, opp: Opportunity, interaction: Interaction, reason: str) -> bool:
    """Put a timeline entry on the deal as well (idempotent: False when it was there already). A mail, call
    or meeting counts as the last contact about the deal."""
    linked = insert_ignoring_conflicts(session, InteractionOpportunity.__table__, {
        "interaction_id": interaction.id, "opportunity_id": opp.id, "occurred_at": interaction.occurred_at,
        "reason": reason[:2000]}, ["interaction_id", "opportunity_id"]) is not None
    if interaction.kind in _CONTACT_KINDS and (opp.last_contact_at is None
                                                or interaction.occurred_at > opp.last_contact_at):
        opp.last_contact_at = interaction.occurred_at
    return linked


def opportunity_timeline(session: Session, opp_id: int, *, limit: int = 50, cursor: str | None = None
                         ) -> TimelinePage:
    """The entries linked to the deal, newest first, paged like a contact's timeline (one index range scan
    on the link table, the cursor a row comparison)."""
    link = InteractionOpportunity
    query = select(link.interaction_id).where(link.opportunity_id == opp_id)
    if cursor:
        when, ident = decode_cursor(cursor)
        query = query.where(tuple_(link.occurred_at, link.interaction_id) < tuple_(when, ident))
    ids = session.execute(
        query.order_by(link.occurred_at.desc(), link.interaction_id.desc()).limit(limit + 1)).scalars().all()
    return page_of(session, list(ids), limit)

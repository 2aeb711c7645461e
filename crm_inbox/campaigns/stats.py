"""A campaign's figures and its responders, from the send ledger and the outbox rows it released.

Counted in the database (GROUP BY), never row by row in Python: the page shows them for 50,000 recipients."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_inbox.errors import NotFound, ValidationError
from crm_inbox.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    Interaction,
    OutboxState,
    OutgoingMail,
    RecipientState,
)

MAX_PAGE_SIZE = 200
EXCERPT_CHARS = 300


@dataclass
class Summary:
    recipients: int = 0  # included (everyone not left out)
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> count
    queued: int = 0
    released: int = 0
    sent: int = 0  # the outbox row of a released mail: sent …
    failed: int = 0  # … given up …
    uncertain: int = 0  # … possibly sent twice (a dead sender's claim taken over, or the relay's answer missed)
    bounced: int = 0
    replied: int = 0
    opted_out: int = 0
    opportunities: int = 0
    printed: int = 0  # letters
    cancelled: int = 0


def _campaign(session: Session, campaign_id: int) -> None:
    if session.get(Campaign, campaign_id) is None:
        raise NotFound(f"no campaign {campaign_id}")


def summary(session: Session, campaign_id: int) -> Summary:
    """The campaign's figures: two grouped queries over its ledger (and the outbox rows joined)."""
    _campaign(session, campaign_id)
    r = CampaignRecipient
    out = Summary()
    for state, reason, count, bounced, replied, opted_out, opportunities in session.execute(
            select(r.state, r.reason, func.count(), func.count(r.bounced_at), func.count(r.replied_at),
                   func.count(r.opted_out_at), func.count(r.opportunity_id))
            .where(r.campaign_id == campaign_id).group_by(r.state, r.reason)):
        if state == RecipientState.LEFT_OUT:
            key = reason or "unknown"
            out.left_out[key] = out.left_out.get(key, 0) + count
            continue
        out.recipients += count
        if state == RecipientState.QUEUED:
            out.queued += count
        elif state == RecipientState.RELEASED:
            out.released += count
        elif state == RecipientState.PRINTED:
            out.printed += count
        elif state == RecipientState.CANCELLED:
            out.cancelled += count
        out.bounced += bounced
        out.replied += replied
        out.opted_out += opted_out
        out.opportunities += opportunities
    m = OutgoingMail
    for mail_state, uncertain, count in session.execute(
            select(m.state, m.uncertain, func.count()).join(r, r.outgoing_mail_id == m.id)
            .where(r.campaign_id == campaign_id, r.state == RecipientState.RELEASED)
            .group_by(m.state, m.uncertain)):
        if mail_state == OutboxState.SENT:
            out.sent += count
        elif mail_state == OutboxState.FAILED:
            out.failed += count
        if uncertain:
            out.uncertain += count
    out.left_out = dict(sorted(out.left_out.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


@dataclass
class Responder:
    recipient_id: int
    contact_id: int | None  # None: the person was erased
    contact_name: str | None
    replied_at: datetime | None
    reply_interaction_id: int | None
    reply_subject: str | None
    reply_excerpt: str | None
    opportunity_id: int | None
    asks_to_unsubscribe: bool = False  # the reply waits in triage with that suggestion


def responders(session: Session, campaign_id: int, *, page: int = 1, size: int = 50) -> tuple[list[Responder], bool]:
    """Who replied, newest reply first, one page; and whether more follow."""
    if not isinstance(page, int) or page < 1:
        raise ValidationError("page", "must be a whole number from 1")
    if not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise ValidationError("size", f"must be a whole number from 1 to {MAX_PAGE_SIZE}")
    _campaign(session, campaign_id)
    r = CampaignRecipient
    rows = session.execute(
        select(r.id, r.contact_id, Contact.name, r.replied_at, r.reply_interaction_id, Interaction.subject,
               Interaction.excerpt, r.opportunity_id, Interaction.details)
        .outerjoin(Contact, Contact.id == r.contact_id)
        .outerjoin(Interaction, Interaction.id == r.reply_interaction_id)
        .where(r.campaign_id == campaign_id, r.replied_at.is_not(None))
        .order_by(r.replied_at.desc(), r.id.desc())
        .offset((page - 1) * size).limit(size + 1)).all()
    people = [Responder(rid, contact_id, name, replied_at, reply_id, subject,
                        (excerpt or "")[:EXCERPT_CHARS] or None if reply_id else None, opp_id,
                        bool(details and details.get("unsubscribe_suggestion")))
              for rid, contact_id, name, replied_at, reply_id, subject, excerpt, opp_id, details in rows[:size]]
    _fill_names(session, people)
    return people, len(rows) > size


def _fill_names(session: Session, people: list[Responder]) -> None:
    """Contacts without a name are shown by their first address (as ``Contact.display_name``)."""
    nameless = [p.contact_id for p in people if p.contact_id is not None and not p.contact_name]
    if not nameless:
        return
    contacts = {c.id: c.display_name for c in session.execute(
        select(Contact).where(Contact.id.in_(nameless))).scalars()}
    for person in people:
        if person.contact_id in contacts and not person.contact_name:
            person.contact_name = contacts[person.contact_id]


def uncertain(session: Session, campaign_id: int) -> list[tuple[int, str]]:
    """(contact id, address) of the recipients whose mail may have gone twice, for the report."""
    _campaign(session, campaign_id)
    r = CampaignRecipient
    rows = session.execute(
        select(r.contact_id, r.address).join(OutgoingMail, OutgoingMail.id == r.outgoing_mail_id)
        .where(r.campaign_id == campaign_id, OutgoingMail.uncertain.is_(True)).order_by(r.id)).all()
    return [(contact_id, address) for contact_id, address in rows if contact_id is not None and address]

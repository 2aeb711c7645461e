"""Retention: raw inbound mail and call records are deleted after the configured number of days.

- ``[retention] inbound_raw_days``: the raw bytes of processed and ignored messages received longer ago
  are deleted. The row stays with its content hash and Message-ID, so a redelivery is still a duplicate;
  the timeline entry (text, HTML, attachments) stays. Failed messages keep their bytes until they are
  retried or marked ignored: the bytes are then the only copy of a mail nobody has seen yet.
- ``[retention] call_days``: calls that started longer ago are deleted with their events and their
  timeline entries (reminders that pointed at them stay, without the link), and so are the webhook events
  about them (``call.ended``/``call.missed`` with the numbers, ``interaction.created`` of the entries) with
  their deliveries.
- ``[retention] event_days``: webhook events older than this are deleted with their deliveries, unless a
  delivery to an active subscription is still pending (one held for a disabled subscription goes too).

Runs in batches, each its own short transaction, so a large first purge never holds the write lock long.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox import audit
from crm_inbox.config import Settings
from crm_inbox.db import affected, unit_of_work, write_lock
from crm_inbox.models import (
    Call,
    DeliveryState,
    Event,
    InboundMessage,
    InboundState,
    Interaction,
    InteractionKind,
    WebhookDelivery,
    WebhookSubscription,
    utcnow,
)

log = logging.getLogger(__name__)
BATCH = 500


def _purge_raw_batch(session: Session, cutoff: datetime, now: datetime) -> int:
    ids = list(session.execute(select(InboundMessage.id).where(
        InboundMessage.state.in_([InboundState.PROCESSED, InboundState.IGNORED]),
        InboundMessage.raw_deleted_at.is_(None), InboundMessage.received_at < cutoff)
        .order_by(InboundMessage.id).limit(BATCH)).scalars())
    if not ids:
        return 0
    return affected(session.execute(update(InboundMessage).where(
        InboundMessage.id.in_(ids), InboundMessage.raw_deleted_at.is_(None)).values(raw=b"", raw_deleted_at=now)))


def _purge_calls_batch(session: Session, cutoff: datetime) -> int:
    rows = session.execute(select(Call.id, Call.interaction_id).where(
        func.coalesce(Call.started_at, Call.updated_at) < cutoff).order_by(Call.id).limit(BATCH)).all()
    if not rows:
        return 0
    timeline = [i for _, i in rows if i is not None]
    calls = [c for c, _ in rows]
    deleted = affected(session.execute(delete(Call).where(Call.id.in_(calls))))
    if timeline:
        timeline = list(session.execute(delete(Interaction).where(
            Interaction.id.in_(timeline), Interaction.kind == InteractionKind.CALL)
            .returning(Interaction.id)).scalars())
    about = (Event.subject_type == "call") & Event.subject_id.in_(calls)
    if timeline:
        about = about | ((Event.subject_type == "interaction") & Event.subject_id.in_(timeline))
    _delete_events(session, list(session.execute(select(Event.id).where(about)).scalars()))
    return deleted


def _delete_events(session: Session, event_ids: list[int]) -> int:
    """The events with their webhook deliveries (explicitly: not every database cascades)."""
    if not event_ids:
        return 0
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(event_ids)))
    return affected(session.execute(delete(Event).where(Event.id.in_(event_ids))))


def _purge_events_batch(session: Session, cutoff: datetime) -> int:
    pending = exists().where(WebhookDelivery.event_id == Event.id, WebhookDelivery.state == DeliveryState.PENDING,
                             WebhookSubscription.id == WebhookDelivery.subscription_id,
                             WebhookSubscription.active.is_(True))
    ids = list(session.execute(select(Event.id).where(Event.created_at < cutoff, ~pending)
                               .order_by(Event.created_at).limit(BATCH)).scalars())
    _delete_events(session, ids)
    return len(ids)


def purge(factory: sessionmaker[Session], settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Apply ``[retention]`` now; returns counts (audited when anything went)."""
    now = now or utcnow()
    counts = {"raw_messages": 0, "calls": 0, "events": 0}
    jobs = []
    if settings.retention.inbound_raw_days > 0:
        cutoff = now - timedelta(days=settings.retention.inbound_raw_days)
        jobs.append(("raw_messages", lambda s, c=cutoff: _purge_raw_batch(s, c, now)))
    if settings.retention.call_days > 0:
        cutoff = now - timedelta(days=settings.retention.call_days)
        jobs.append(("calls", lambda s, c=cutoff: _purge_calls_batch(s, c)))
    if settings.retention.event_days > 0:
        cutoff = now - timedelta(days=settings.retention.event_days)
        jobs.append(("events", lambda s, c=cutoff: _purge_events_batch(s, c)))
    for key, batch in jobs:
        while True:
            with write_lock(factory), unit_of_work(factory) as session:
                done = batch(session)
            counts[key] += done
            if done < BATCH:
                break
    if any(counts.values()):
        with write_lock(factory), unit_of_work(factory) as session:
            audit.record(session, None, "purge", "retention", None, {
                **counts, "inbound_raw_days": settings.retention.inbound_raw_days,
                "call_days": settings.retention.call_days, "event_days": settings.retention.event_days})
        log.info("retention: deleted the raw bytes of %d message(s), %d call(s) and %d event(s)",
                 counts["raw_messages"], counts["calls"], counts["events"])
    return counts

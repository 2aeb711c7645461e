"""Retention: raw inbound mail and call records are deleted after the configured number of days.

- ``[retention] inbound_raw_days``: the raw bytes of processed and ignored messages received longer ago
  are deleted. The row stays with its content hash and Message-ID, so a redelivery is still a duplicate;
  the timeline entry (text, HTML, attachments) stays. Failed messages keep their bytes until they are
  retried or marked ignored: the bytes are then the only copy of a mail nobody has seen yet.
- ``[retention] call_days``: calls that started longer ago are deleted with their events and their
  timeline entries (reminders that pointed at them stay, without the link).

Runs in batches, each its own short transaction, so a large first purge never holds the write lock long.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox import audit
from crm_inbox.config import Settings
from crm_inbox.db import affected, unit_of_work, write_lock
from crm_inbox.models import Call, InboundMessage, InboundState, Interaction, InteractionKind, utcnow

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
    deleted = affected(session.execute(delete(Call).where(Call.id.in_([c for c, _ in rows]))))
    if timeline:
        session.execute(delete(Interaction).where(Interaction.id.in_(timeline),
                                                  Interaction.kind == InteractionKind.CALL))
    return deleted


def purge(factory: sessionmaker[Session], settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Apply ``[retention]`` now; returns counts (audited when anything went)."""
    now = now or utcnow()
    counts = {"raw_messages": 0, "calls": 0}
    jobs = []
    if settings.retention.inbound_raw_days > 0:
        cutoff = now - timedelta(days=settings.retention.inbound_raw_days)
        jobs.append(("raw_messages", lambda s, c=cutoff: _purge_raw_batch(s, c, now)))
    if settings.retention.call_days > 0:
        cutoff = now - timedelta(days=settings.retention.call_days)
        jobs.append(("calls", lambda s, c=cutoff: _purge_calls_batch(s, c)))
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
                "call_days": settings.retention.call_days})
        log.info("retention: deleted the raw bytes of %d message(s) and %d call(s)", counts["raw_messages"],
                 counts["calls"])
    return counts

"""Events other systems hear about (``order.created``): one row written in the transaction of the change, so an
event exists exactly when its change was committed. ``Event.id`` is the stable id receivers deduplicate by.

The fan-out into the webhooks' delivery outbox lives here too (not in ``crm_inbox.webhooks``): every layer
records events, so what ``record`` needs must sit beside the models, below all of them. The delivery runner of
the process is told after commit through ``on_committed``; runners of other processes find the rows when
they poll."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CTE, Select, bindparam, cast, func, insert, literal, or_, select, true
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from crm_inbox.models import Event, WebhookDelivery, WebhookSubscription, utcnow

log = logging.getLogger(__name__)
_WRITTEN = "webhook_deliveries_written"  # session.info key: this transaction wrote deliveries
_listeners: list[Callable[[], None]] = []
# Built once: the statements' cache keys are then computed once, not per event (half the cost of recording one).
# Active ones, and those disabled for failing: they keep collecting (held) what re-enabling them sends. One an
# admin paused (inactive, never disabled) collects nothing.
_COLLECTING = or_(WebhookSubscription.active.is_(True), WebhookSubscription.disabled_at.is_not(None))
_ACTIVE_SUBSCRIPTIONS = select(WebhookSubscription.id, WebhookSubscription.event_types,
                               WebhookSubscription.failing_since).where(_COLLECTING)
# SQLite: the insert brings the subscriptions back as JSON (a subquery in RETURNING): one statement instead of two,
# whose overhead in SQLAlchemy and the driver costs more than SQLite's work on them.
_SUBSCRIPTIONS_JSON = select(func.json_group_array(func.json_array(
    WebhookSubscription.id, func.json(WebhookSubscription.event_types), WebhookSubscription.failing_since))).where(
    _COLLECTING).scalar_subquery()
_INSERT_EVENT_SQLITE = insert(Event.__table__).values({
    c: bindparam(c) for c in ("type", "subject_type", "subject_id", "payload", "created_at")}).returning(
    Event.__table__.c.id, _SUBSCRIPTIONS_JSON.label("subscriptions"))
# PostgreSQL: the insert and the look-up in one round trip (a data-modifying WITH). One row per subscription, or
# one with NULLs when there is none.
_NEW_EVENT = insert(Event.__table__).values({
    c: bindparam(c) for c in ("type", "subject_type", "subject_id", "payload", "created_at")}).returning(
    Event.__table__.c.id).cte("new_event")
_SUBSCRIBED = _ACTIVE_SUBSCRIPTIONS.subquery("subscribed")
_INSERT_EVENT_WITH_SUBSCRIPTIONS = select(_NEW_EVENT.c.id.label("event_id"), _SUBSCRIBED.c.id,
                                          _SUBSCRIBED.c.event_types, _SUBSCRIBED.c.failing_since).select_from(
    _NEW_EVENT.outerjoin(_SUBSCRIBED, true()))
FIRST_RETRY = timedelta(seconds=15)
LONGEST_WAIT = timedelta(hours=3)
_INSERT_DELIVERIES = insert(WebhookDelivery.__table__)
_listeners_guard = threading.Lock()


def record(session: Session, type: str, subject_type: str, subject_id: int,
           payload: dict[str, Any] | None = None) -> int:
    """Write an event row and its webhook deliveries (one per matching active subscription); the payload must
    be JSON-ready (money as strings). Returns the event's id. Core statements,
    so an event costs one INSERT that also reads the active subscriptions and, if any match, one INSERT."""
    now = utcnow()
    values = {"type": type, "subject_type": subject_type, "subject_id": subject_id,
              "payload": dict(payload or {}), "created_at": now}
    connection = session.connection()  # Core on the session's transaction: no ORM execution overhead
    if connection.dialect.name == "postgresql":
        return fan_out(session, connection.execute(_INSERT_EVENT_WITH_SUBSCRIPTIONS, values).all(), values)
    event_id, subscribed = connection.execute(_INSERT_EVENT_SQLITE, values).one()
    rows: list[Sequence[Any]] = [
        (event_id, sub_id, patterns, datetime.fromisoformat(failing).replace(tzinfo=UTC) if failing else None)
        for sub_id, patterns, failing in json.loads(subscribed)]
    return fan_out(session, rows or [(event_id, None, None, None)], values)


def recorded_along(row: CTE, type: str, subject_type: str) -> Select[Any]:
    """PostgreSQL: event ``type`` about the row that the data-modifying ``row`` (returning its ``id``) inserts, in
    the same statement, with the subscriptions ``record`` reads: one round trip for a change and its event. The
    payload is the bind parameter ``event_payload`` with the new row's ``"id"`` added, the time ``event_at``.
    The rows are ``(row_id, event_id, subscription id, event_types, failing_since)``; ``fan_out`` takes
    them from the second column on."""
    payload = cast(bindparam("event_payload", type_=JSONB).op("||")(func.jsonb_build_object("id", row.c.id)),
                   Event.__table__.c.payload.type)
    new_event = insert(Event.__table__).from_select(
        ["type", "subject_type", "subject_id", "payload", "created_at"],
        select(literal(type), literal(subject_type), row.c.id, payload,
               bindparam("event_at", type_=Event.__table__.c.created_at.type)),
    ).returning(Event.__table__.c.id).cte(f"{subject_type}_event")
    return select(row.c.id.label("row_id"), new_event.c.id.label("event_id"), _SUBSCRIBED.c.id,
                  _SUBSCRIBED.c.event_types, _SUBSCRIBED.c.failing_since).select_from(
        row.join(new_event, true()).outerjoin(_SUBSCRIBED, true()))


def fan_out_along(session: Session, rows: Sequence[Sequence[Any]], type: str, subject_type: str,
                  payload: dict[str, Any], at: datetime) -> int:
    """``fan_out`` for the rows of a ``recorded_along`` statement (run with ``event_payload=payload``,
    ``event_at=at``): writes its event's deliveries and returns the new row's id."""
    row_id: int = rows[0][0]
    fan_out(session, [r[1:] for r in rows], {"type": type, "subject_type": subject_type, "subject_id": row_id,
                                             "payload": {"id": row_id, **payload}, "created_at": at})
    return row_id


def fan_out(session: Session, rows: Sequence[Sequence[Any]], values: dict[str, Any]) -> int:
    """The deliveries of the event just inserted, from rows ``(event_id, subscription id, event_types,
    failing_since)`` (one with NULLs when there is no subscription); ``values``: the event's columns. Returns the
    event's id (no ORM object: building one cost more than deciding the deliveries)."""
    event_id, now, type = rows[0][0], values["created_at"], values["type"]
    wanted = [(sub_id, failing) for _, sub_id, patterns, failing in rows
              if sub_id is not None and wants(patterns or (), type)]
    if wanted:
        add_deliveries(session, event_id, subject_of(values["subject_type"], values["subject_id"]),
                       [s for s, _ in wanted],
                       {s: now + held_for(failing, now) for s, failing in wanted if failing is not None})
    return int(event_id)


def held_for(failing_since: datetime, now: datetime) -> timedelta:
    """How long a failing subscription waits before its next attempt: as long as it has failed so far (so
    the waits double, one attempt each), at least 15 s, at most 3 h. A new event for it waits as long: a dead
    receiver costs one attempt per wait, not one per event."""
    return min(max(now - failing_since, FIRST_RETRY), LONGEST_WAIT)


def pattern_matches(pattern: str, event_type: str) -> bool:
    """"contact.created" itself, "company.*" every company event, "*" everything."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def wants(patterns: Iterable[str], event_type: str) -> bool:
    return any(pattern_matches(p, event_type) for p in patterns)


def subject_of(subject_type: str, subject_id: int) -> str:
    """Deliveries of one subject ("contact:12") to one subscription go out in event order."""
    return f"{subject_type}:{subject_id}"[:60]


def add_deliveries(session: Session, event_id: int, subject: str, subscription_ids: list[int],
                   not_before: dict[int, datetime] | None = None) -> None:
    """Pending deliveries, due now or (``not_before``, by subscription) once a failing one's wait is over."""
    now = utcnow()
    later = not_before or {}
    session.connection().execute(_INSERT_DELIVERIES, [
        {"subscription_id": sub_id, "event_id": event_id, "subject": subject, "state": "pending",
         "attempts": 0, "next_attempt_at": later.get(sub_id, now), "created_at": now}
        for sub_id in subscription_ids])
    mark_written(session)


def wrote_deliveries(session: Session) -> bool:
    """This transaction (not yet committed) wrote deliveries: a worker process tells serve, whose runner to wake."""
    return bool(session.info.get(_WRITTEN))


def mark_written(session: Session) -> None:
    """Wake the delivery runner after this transaction commits (a retry, a re-enabled subscription)."""
    session.info[_WRITTEN] = True


def on_committed(listener: Callable[[], None]) -> Callable[[], None]:
    """Call ``listener`` after every commit (in this process) that wrote deliveries; returns the undo."""
    with _listeners_guard:
        _listeners.append(listener)

    def remove() -> None:
        with _listeners_guard:
            if listener in _listeners:
                _listeners.remove(listener)
    return remove


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if not session.info.pop(_WRITTEN, False):
        return
    for listener in list(_listeners):
        try:
            listener()
        except Exception:  # a wake-up must never fail the committed change
            log.exception("webhooks: after-commit wake-up failed")


@sa_event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_WRITTEN, None)

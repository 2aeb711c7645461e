"""Delivering webhooks from ``webhook_deliveries``: at least once, in order per object, with back-off.

A runner claims due deliveries with a lease (``claimed_until``; on PostgreSQL also ``FOR UPDATE SKIP
LOCKED``), so with several ``serve`` processes each delivery is attempted by one of them; it POSTs outside any
transaction and then records the outcome. A process killed between the receiver's 2xx and that commit leaves
the claim to expire: the delivery is sent again with the same ``webhook-id``, which receivers drop.

A failing subscription backs off as a whole: while its latest attempt failed, one delivery at a time is tried
(across processes), once per wait, and the others wait too; a dead receiver costs one attempt per wait, not
one per delivery. Disabled after failing ``disable_after_hours``, it keeps its deliveries (held) and the admins
get a mail; re-enabled, the held ones go out, and "retry failed" queues what was given up meanwhile.

The decisions (back-off, give up, disable, what is due) are plain functions; the I/O sits at the edge.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work, write_lock
from crm_inbox.errors import ValidationError
from crm_inbox.events import FIRST_RETRY, LONGEST_WAIT
from crm_inbox.models import DeliveryState, Event, WebhookDelivery, WebhookSubscription, utcnow
from crm_inbox.webhooks import signing, targets
from crm_inbox.webhooks.outcomes import Claimed, Outcome, backoff, next_attempt, record, should_disable, succeeded

__all__ = ["BATCH", "FIRST_RETRY", "LONGEST_WAIT", "Claimed", "Deliverer", "Outcome", "attempt", "backoff", "claim",
           "deliver_due", "lease", "next_attempt", "next_due_at", "record", "should_disable", "succeeded"]

log = logging.getLogger(__name__)
BATCH = 24  # attempts in flight at once in one process; a stop waits for those
PER_SUBSCRIPTION = 16  # of them to one subscription: a slow receiver leaves a third to the others


# --- what is due --------------------------------------------------------------------------------------------

def lease(settings: Settings) -> timedelta:
    """How long a claim protects a delivery in flight. An attempt ends by its deadline (``timeout_seconds``
    on the wall clock, resolving the host included), and it is started as soon as it is claimed, so a live
    runner has recorded it well within this; an older claim belongs to a process that died mid-send."""
    return timedelta(seconds=2 * settings.webhooks.timeout_seconds + 5)


def _waiting() -> ColumnElement[bool]:
    """Pending, its subscription active, and no earlier delivery of the same object to the same subscription
    still pending (order per object)."""
    earlier = aliased(WebhookDelivery)
    blocked = exists().where(earlier.subscription_id == WebhookDelivery.subscription_id,
                             earlier.subject == WebhookDelivery.subject,
                             earlier.event_id < WebhookDelivery.event_id,
                             earlier.state == DeliveryState.PENDING)
    active = exists().where(WebhookSubscription.id == WebhookDelivery.subscription_id,
                            WebhookSubscription.active.is_(True))
    return (WebhookDelivery.state == DeliveryState.PENDING) & active & ~blocked


_WAITING = _waiting()  # built once: adapting the alias costs more than running the query


def _due(now: datetime) -> ColumnElement[bool]:
    """Waiting, its time has come, and not claimed by a live runner."""
    return (_WAITING & (WebhookDelivery.next_attempt_at <= now)
            & or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now))


def body(event_id: int, event_type: str, created_at: datetime, payload: dict[str, Any]) -> bytes:
    return json.dumps({"id": str(event_id), "type": event_type,
                       "timestamp": created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "data": payload},
                      separators=(",", ":"), ensure_ascii=False).encode()


def message_id(event_id: int) -> str:
    return f"evt_{event_id}"


# --- claiming, sending, recording ----------------------------------------------------------------------------

def claim(factory: sessionmaker[Session], settings: Settings, now: datetime, limit: int = BATCH,
          in_flight: Mapping[int, int] | None = None) -> list[Claimed]:
    """Take up to ``limit`` due deliveries. A failing subscription gives one, and none while one of its
    deliveries is claimed (by any process); ``in_flight``, this process's attempts by subscription, caps each
    at ``PER_SUBSCRIPTION``."""
    until = now + lease(settings)
    with write_lock(factory), unit_of_work(factory) as session:
        failing = set(session.execute(select(WebhookSubscription.id).where(
            WebhookSubscription.active.is_(True), WebhookSubscription.failing_since.is_not(None))).scalars())
        probing = set(session.execute(select(WebhookDelivery.subscription_id).where(
            WebhookDelivery.subscription_id.in_(failing), WebhookDelivery.state == DeliveryState.PENDING,
            WebhookDelivery.claimed_until >= now).distinct()).scalars()) if failing else set()

        def room(sub_id: int) -> int:
            if sub_id in failing:
                return 0 if sub_id in probing else 1
            return limit if in_flight is None else PER_SUBSCRIPTION - in_flight.get(sub_id, 0)

        full = {sub_id for sub_id in failing | set(in_flight or ()) if room(sub_id) <= 0}
        # Oldest due first, in the order of the "due" index: a backlog is not sorted for every claim.
        query = select(WebhookDelivery.id, WebhookDelivery.subscription_id).where(_due(now))
        if full:
            query = query.where(WebhookDelivery.subscription_id.not_in(full))
        query = query.order_by(WebhookDelivery.next_attempt_at).limit(limit)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=WebhookDelivery)  # two runners take different rows
        taken_of: Counter[int] = Counter()
        candidates = []
        for delivery_id, sub_id in session.execute(query).all():
            if taken_of[sub_id] < room(sub_id):
                taken_of[sub_id] += 1
                candidates.append(delivery_id)
        if not candidates:
            return []
        # The conditional update decides races on SQLite (and a stale read anywhere).
        taken = list(session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id.in_(candidates), _due(now))
            .values(claimed_until=until, attempts=WebhookDelivery.attempts + 1, last_attempt_at=now)
            .returning(WebhookDelivery.id)).scalars())
        if not taken:
            return []
        rows = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.subscription_id, WebhookDelivery.attempts,
                   WebhookDelivery.created_at, WebhookSubscription.url, WebhookSubscription.secret,
                   Event.id, Event.type, Event.created_at, Event.payload)
            .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
            .join(Event, Event.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.id.in_(taken)).order_by(WebhookDelivery.id)).all()
        return [Claimed(r[0], r[1], r[2], r[3], r[4], r[5], r[6], body(r[6], r[7], r[8], r[9] or {})) for r in rows]


def attempt(claimed: Claimed, settings: Settings) -> Outcome:
    """One POST, signed with the time of sending (a replay later is recognisable by its old timestamp)."""
    ident = message_id(claimed.event_id)
    headers = signing.headers(claimed.secret, ident, int(time.time()), claimed.body)
    try:
        answer = targets.post(claimed.url, claimed.body, headers, allowed=settings.webhooks.allowed_private_networks,
                              timeout=settings.webhooks.timeout_seconds)
    except ValidationError as exc:
        return Outcome(claimed, None, f"refused: {exc.message}")
    except (OSError, HTTPException) as exc:
        return Outcome(claimed, None, f"{exc.__class__.__name__}: {exc}"[:500])
    except Exception as exc:  # never lose an attempt's outcome to a surprise in the HTTP stack
        log.exception("webhook delivery %s: unexpected failure", claimed.delivery_id)
        return Outcome(claimed, None, f"{exc.__class__.__name__}: {exc}"[:500])
    if succeeded(answer.status):
        return Outcome(claimed, answer.status, None)
    if 300 <= answer.status < 400:
        return Outcome(claimed, answer.status, f"HTTP {answer.status}: redirect to {answer.location or '?'} "
                                               "not followed"[:500])
    return Outcome(claimed, answer.status, f"HTTP {answer.status}")


def deliver_due(factory: sessionmaker[Session], settings: Settings, *, now: datetime | None = None,
                limit: int = 500, stop: threading.Event | None = None) -> dict[str, int]:
    """Attempt what is due (``now``: tests drive the clock); returns counts of delivered and failed attempts.
    Up to ``BATCH`` attempts run at once; each one done is recorded and its place claimed again at once, so
    a slow receiver holds up nothing but its own deliveries. ``stop``: claim nothing more, finish those."""
    counts = {"delivered": 0, "failed": 0}
    running: dict[Future[Outcome], Claimed] = {}
    in_flight: Counter[int] = Counter()
    claimed = 0
    with ThreadPoolExecutor(max_workers=BATCH, thread_name_prefix="webhook-post") as pool:
        while True:
            room = min(BATCH - len(running), limit - claimed)
            if room > 0 and not (stop and stop.is_set()):
                batch = claim(factory, settings, now or utcnow(), room, in_flight)
                for c in batch:
                    running[pool.submit(attempt, c, settings)] = c
                    in_flight[c.subscription_id] += 1
                claimed += len(batch)
                if batch:
                    continue  # more may be due (of other subscriptions than a capped one)
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            outcomes = [future.result() for future in done]
            for future in done:
                in_flight[running.pop(future).subscription_id] -= 1
            record(factory, settings, outcomes, now or utcnow())
            for outcome in outcomes:
                counts["delivered" if outcome.ok else "failed"] += 1
    return counts


def next_due_at(session: Session) -> datetime | None:
    """When the earliest delivery that waits (back-off, or another process's claim) may be attempted."""
    waiting = session.execute(select(func.min(WebhookDelivery.next_attempt_at)).where(
        _WAITING, WebhookDelivery.claimed_until.is_(None))).scalar()
    claimed = session.execute(select(func.min(WebhookDelivery.claimed_until)).where(
        _WAITING, WebhookDelivery.claimed_until.is_not(None))).scalar()
    times = [t for t in (waiting, claimed) if t is not None]
    return min(times) if times else None


class Deliverer:
    """The background thread of ``serve``: delivers when woken after a commit that wrote deliveries, and
    every ``poll_seconds`` anyway (events of other processes, back-off, claims of a process that died)."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory, self.settings = factory, settings
        self.interval = float(settings.webhooks.poll_seconds)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crm-inbox-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(30)

    def _wait_time(self) -> float:
        try:
            with self.factory() as session:
                upcoming = next_due_at(session)
        except Exception:  # the database is away: try again after the interval
            return self.interval
        if upcoming is None:
            return self.interval
        return min(self.interval, max(0.0, (upcoming - utcnow()).total_seconds() + 0.05))

    def _run(self) -> None:
        self._wake.set()  # the first round at once: deliveries a crash left behind go out without waiting
        while not self._stop.is_set():
            self._wake.wait(self._wait_time())
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                deliver_due(self.factory, self.settings, limit=BATCH * 8, stop=self._stop)
            except Exception:  # never let the runner die: the next round retries
                log.exception("webhooks: delivery round failed")

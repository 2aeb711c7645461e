"""Delivering webhooks from ``webhook_deliveries``: at least once, in order per object, with back-off.

A runner claims due deliveries with a lease (``claimed_until``; on PostgreSQL also ``FOR UPDATE SKIP
LOCKED``), so with several ``serve`` processes each delivery is attempted by one of them; it POSTs outside any
transaction and then records the outcome. A process killed between the receiver's 2xx and that commit leaves
the claim to expire: the delivery is sent again with the same ``webhook-id``, which receivers drop.

The decisions (back-off, give up, disable, what is due) are plain functions; the I/O sits at the edge.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work, write_lock
from crm_inbox.errors import ValidationError
from crm_inbox.models import DeliveryState, Event, WebhookDelivery, WebhookSubscription, utcnow
from crm_inbox.webhooks import signing, targets

log = logging.getLogger(__name__)
FIRST_RETRY = timedelta(seconds=15)
LONGEST_WAIT = timedelta(hours=3)
BATCH = 16  # deliveries claimed and sent at once (in parallel); a stop waits for at most one batch


# --- decisions --------------------------------------------------------------------------------------------

def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: 15 s, 30 s, 1 min, … doubling up to 3 h."""
    return min(FIRST_RETRY * (2 ** min(max(attempts, 1) - 1, 20)), LONGEST_WAIT)


def next_attempt(created_at: datetime, attempts: int, now: datetime, retry_hours: float) -> datetime | None:
    """When to try again after a failed attempt; None: give up (the next try would fall after the retry
    window). A delivery always gets at least the attempt that just failed."""
    when = now + backoff(attempts)
    return when if when <= created_at + timedelta(hours=retry_hours) else None


def should_disable(failing_since: datetime | None, now: datetime, disable_after_hours: float) -> bool:
    return failing_since is not None and now - failing_since >= timedelta(hours=disable_after_hours)


def lease(settings: Settings) -> timedelta:
    """How long a claim protects a delivery in flight: connect and answer each within the timeout, so a
    live runner is done well within this; an older claim belongs to a process that died mid-send."""
    return timedelta(seconds=2 * settings.webhooks.timeout_seconds + 2)


def succeeded(status: int) -> bool:
    return 200 <= status < 300  # a 3xx is a failure: redirects are not followed


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

@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    subscription_id: int
    attempts: int  # after this claim: the token that the outcome belongs to this attempt
    created_at: datetime
    url: str
    secret: str
    event_id: int
    body: bytes


@dataclass(frozen=True)
class Outcome:
    claimed: Claimed
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and succeeded(self.status)


def claim(factory: sessionmaker[Session], settings: Settings, now: datetime, limit: int = BATCH) -> list[Claimed]:
    until = now + lease(settings)
    with write_lock(factory), unit_of_work(factory) as session:
        # Oldest due first, in the order of the "due" index: a backlog is not sorted for every claim.
        query = select(WebhookDelivery.id).where(_due(now)).order_by(WebhookDelivery.next_attempt_at).limit(limit)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=WebhookDelivery)  # two runners take different rows
        candidates = list(session.execute(query).scalars())
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


def record(factory: sessionmaker[Session], settings: Settings, outcomes: Sequence[Outcome], now: datetime) -> None:
    """The outcomes, at once (on SQLite without polling for the lock): the window in which a crash makes a
    delivered event go out again is kept short."""
    cfg = settings.webhooks
    with write_lock(factory), unit_of_work(factory) as session:
        delivered: dict[int, list[Claimed]] = {}  # by response code: one UPDATE each (usually one in all)
        for outcome in outcomes:
            if outcome.ok:
                delivered.setdefault(outcome.status or 200, []).append(outcome.claimed)
        for status, claims in delivered.items():
            session.execute(update(WebhookDelivery).where(or_(*(_mine(c) for c in claims))).values(
                state=DeliveryState.DELIVERED, delivered_at=now, response_code=status, last_error=None,
                claimed_until=None))
        if delivered:
            session.execute(update(WebhookSubscription).where(
                WebhookSubscription.id.in_({c.subscription_id for cs in delivered.values() for c in cs}),
                WebhookSubscription.failing_since.is_not(None)).values(failing_since=None))
        for outcome in outcomes:
            c = outcome.claimed
            if outcome.ok:
                continue
            disabled = _note_failure(session, c.subscription_id, now, cfg.disable_after_hours, outcome.error or "")
            when = None if disabled else next_attempt(c.created_at, c.attempts, now, cfg.retry_hours)
            session.execute(update(WebhookDelivery).where(_mine(c)).values(
                state=DeliveryState.PENDING if when else DeliveryState.FAILED, next_attempt_at=when or now,
                response_code=outcome.status, last_error=outcome.error, claimed_until=None))
            log.warning("webhook delivery %s (event %s) to subscription %s failed, attempt %d: %s; %s",
                        c.delivery_id, c.event_id, c.subscription_id, c.attempts, outcome.error,
                        f"next try {when:%Y-%m-%d %H:%M:%S}" if when else "given up")


def _mine(claimed: Claimed) -> ColumnElement[bool]:
    """The delivery as this attempt claimed it (``attempts`` grows with every claim: a runner whose lease ran
    out and was taken over does not overwrite the newer attempt's outcome)."""
    return (WebhookDelivery.id == claimed.delivery_id) & (WebhookDelivery.attempts == claimed.attempts)


def _note_failure(session: Session, subscription_id: int, now: datetime, disable_after_hours: float,
                  error: str) -> bool:
    """Remember since when the subscription fails; disable it after ``disable_after_hours``. True when it
    is disabled (its deliveries are failed, not retried)."""
    sub = session.get(WebhookSubscription, subscription_id)
    if sub is None:
        return True
    if not sub.active:
        return sub.disabled_at is not None  # paused by an admin: its deliveries wait
    if sub.failing_since is None:
        sub.failing_since = now
    elif should_disable(sub.failing_since, now, disable_after_hours):
        sub.active = False
        sub.disabled_at = now
        sub.disabled_reason = (f"no successful delivery since {sub.failing_since:%Y-%m-%d %H:%M} UTC "
                               f"({disable_after_hours:g} hours); last error: {error}")[:1000]
        session.execute(update(WebhookDelivery).where(
            WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.state == DeliveryState.PENDING)
            .values(state=DeliveryState.FAILED, last_error="subscription disabled"))
        log.warning("webhook subscription %s disabled: %s", subscription_id, sub.disabled_reason)
    session.flush()
    return not sub.active


def deliver_due(factory: sessionmaker[Session], settings: Settings, *, now: datetime | None = None,
                limit: int = 500) -> dict[str, int]:
    """Attempt what is due (``now``: tests drive the clock); returns counts of delivered and failed attempts."""
    counts = {"delivered": 0, "failed": 0}
    while counts["delivered"] + counts["failed"] < limit:
        moment = now or utcnow()
        batch = claim(factory, settings, moment, min(BATCH, limit - counts["delivered"] - counts["failed"]))
        if not batch:
            break
        if len(batch) == 1:
            outcomes = [attempt(batch[0], settings)]
        else:
            with ThreadPoolExecutor(max_workers=len(batch), thread_name_prefix="webhook-post") as pool:
                outcomes = list(pool.map(lambda c: attempt(c, settings), batch))
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
                deliver_due(self.factory, self.settings, limit=BATCH * 8)
            except Exception:  # never let the runner die: the next round retries
                log.exception("webhooks: delivery round failed")

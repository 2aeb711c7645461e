"""What an attempt's outcome does: a 2xx marks the delivery delivered and ends its subscription's failing; a
failure schedules the next try with back-off (or gives up after ``retry_hours``), makes the subscription's other
deliveries wait as long, and disables it after ``disable_after_hours`` with a mail to the admins."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox import events
from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work, write_lock
from crm_inbox.events import FIRST_RETRY, LONGEST_WAIT
from crm_inbox.models import DeliveryState, WebhookDelivery, WebhookSubscription
from crm_inbox.webhooks import notice

log = logging.getLogger("crm_inbox.webhooks.delivery")  # one logger for the runner's lines


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


def succeeded(status: int) -> bool:
    return 200 <= status < 300  # a 3xx is a failure: redirects are not followed


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


def record(factory: sessionmaker[Session], settings: Settings, outcomes: Sequence[Outcome], now: datetime) -> None:
    """The outcomes, at once (on SQLite without polling for the lock): the window in which a crash makes a
    delivered event go out again is kept short."""
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
            _recovered(session, {c.subscription_id for cs in delivered.values() for c in cs}, now)
        holds: dict[int, datetime] = {}
        for outcome in outcomes:
            if not outcome.ok:
                _failed(session, settings, outcome, now, holds)
        for sub_id, until in holds.items():  # the subscription's other deliveries wait as long
            session.execute(update(WebhookDelivery).where(
                WebhookDelivery.subscription_id == sub_id, WebhookDelivery.state == DeliveryState.PENDING,
                WebhookDelivery.next_attempt_at < until).values(next_attempt_at=until))


def _recovered(session: Session, sub_ids: set[int], now: datetime) -> None:
    """A 2xx ends a subscription's failing: the deliveries that only waited for it (never attempted) are due."""
    recovered = list(session.execute(update(WebhookSubscription).where(
        WebhookSubscription.id.in_(sub_ids), WebhookSubscription.failing_since.is_not(None))
        .values(failing_since=None).returning(WebhookSubscription.id)).scalars())
    if recovered:
        session.execute(update(WebhookDelivery).where(
            WebhookDelivery.subscription_id.in_(recovered), WebhookDelivery.state == DeliveryState.PENDING,
            WebhookDelivery.attempts == 0, WebhookDelivery.next_attempt_at > now).values(next_attempt_at=now))


def _failed(session: Session, settings: Settings, outcome: Outcome, now: datetime,
            holds: dict[int, datetime]) -> None:
    """Schedule the next try (or give up), note the subscription's failing, disable it after
    ``disable_after_hours``; ``holds``: until when each failing subscription's deliveries wait."""
    cfg, c = settings.webhooks, outcome.claimed
    sub = session.get(WebhookSubscription, c.subscription_id)
    when: datetime | None
    if sub is None:
        return  # deleted meanwhile, its deliveries with it
    if sub.active and sub.failing_since is None:
        sub.failing_since = now
    if sub.active and sub.failing_since and should_disable(sub.failing_since, now, cfg.disable_after_hours):
        _disable(session, settings, sub, now, outcome.error or "")
    if not sub.active:
        when = now + backoff(c.attempts)  # held: paused or disabled, it waits for re-enabling
    else:
        assert sub.failing_since is not None
        hold = now + events.held_for(sub.failing_since, now)
        holds[sub.id] = max(hold, holds.get(sub.id, hold))
        when = max(now + backoff(c.attempts), hold)
        if when > c.created_at + timedelta(hours=cfg.retry_hours):
            when = None  # given up: the next try would fall after the retry window
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


def _disable(session: Session, settings: Settings, sub: WebhookSubscription, now: datetime, error: str) -> None:
    """Disabled, with the reason; its deliveries stay pending (held) and the admins are mailed."""
    sub.active = False
    sub.disabled_at = now
    sub.disabled_reason = (f"no successful delivery since {sub.failing_since:%Y-%m-%d %H:%M} UTC "
                           f"({settings.webhooks.disable_after_hours:g} hours); last error: {error}")[:1000]
    session.flush()
    held = session.execute(select(func.count()).select_from(WebhookDelivery).where(
        WebhookDelivery.subscription_id == sub.id, WebhookDelivery.state == DeliveryState.PENDING)).scalar_one()
    mailed = notice.disabled(session, settings, sub, held)
    log.warning("webhook subscription %s disabled (%d deliveries held, %d admins mailed): %s", sub.id, held,
                mailed, sub.disabled_reason)

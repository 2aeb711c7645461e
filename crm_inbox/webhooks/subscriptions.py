"""Managing webhook subscriptions (admins): subscribe, change, rotate the secret, delete; look at the
deliveries, retry one, send a test event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session

from crm_inbox import audit
from crm_inbox.config import Settings
from crm_inbox.db import affected
from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.events import add_deliveries, mark_written
from crm_inbox.ids import MAX_ID
from crm_inbox.models import DeliveryState, Event, WebhookDelivery, WebhookSubscription, utcnow
from crm_inbox.webhooks import signing, targets
from crm_inbox.webhooks.catalogue import TEST_EVENT, clean_patterns

MAX_DESCRIPTION = 200


@dataclass(frozen=True)
class DeliveryRow:
    delivery: WebhookDelivery
    event_type: str
    subject_type: str = ""  # what the event is about ("contact", 12): the admin page names and links it
    subject_id: int | None = None


def _description(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("description", "must be text")
    value = " ".join(value.split())
    if len(value) > MAX_DESCRIPTION:
        raise ValidationError("description", f"at most {MAX_DESCRIPTION} characters")
    return value or None


def _url(settings: Settings, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("url", "enter an http or https URL")
    # Refused targets: a clear 400 now.
    targets.check(value, settings.webhooks.allowed_private_networks, settings.webhooks.timeout_seconds)
    return value.strip()


def get(session: Session, subscription_id: int) -> WebhookSubscription:
    sub = session.get(WebhookSubscription, subscription_id) if subscription_id <= MAX_ID else None
    if sub is None:
        raise NotFound(f"no webhook subscription {subscription_id}")
    return sub


def list_subscriptions(session: Session) -> Sequence[WebhookSubscription]:
    return session.execute(select(WebhookSubscription).order_by(WebhookSubscription.id)).scalars().all()


def create(session: Session, settings: Settings, *, url: object, event_types: object, description: object = None,
           actor: int | None) -> WebhookSubscription:
    """A new active subscription with a fresh secret (the caller shows ``sub.secret`` once)."""
    sub = WebhookSubscription(url=_url(settings, url), event_types=clean_patterns(event_types),
                              description=_description(description), secret=signing.new_secret(), active=True,
                              created_by_id=actor)
    session.add(sub)
    session.flush()
    audit.record(session, actor, "webhook.subscribe", "webhook_subscription", sub.id,
                 {"url": sub.url, "event_types": sub.event_types})
    return sub


def change(session: Session, settings: Settings, subscription_id: int, changes: dict[str, Any],
           actor: int | None) -> WebhookSubscription:
    """Change URL, event types, description or active; re-enabling clears the failure notice and sends the
    deliveries held meanwhile."""
    sub = get(session, subscription_id)
    unknown = set(changes) - {"url", "event_types", "description", "active"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "cannot be changed")
    changed: dict[str, Any] = {}
    if "url" in changes:
        sub.url = changed["url"] = _url(settings, changes["url"])
    if "event_types" in changes:
        sub.event_types = changed["event_types"] = clean_patterns(changes["event_types"])
    if "description" in changes:
        sub.description = _description(changes["description"])
        changed["description"] = True
    if "active" in changes:
        active = changes["active"]
        if not isinstance(active, bool):
            raise ValidationError("active", "must be true or false")
        if active and not sub.active:
            sub.failing_since = sub.disabled_at = sub.disabled_reason = None
            _due_now(session, sub.id, DeliveryState.PENDING)  # the held deliveries go out now
        sub.active = changed["active"] = active
    session.flush()
    audit.record(session, actor, "webhook.change", "webhook_subscription", sub.id, changed)
    return sub


def rotate_secret(session: Session, subscription_id: int, actor: int | None) -> WebhookSubscription:
    """A new secret at once (the old one stops working: receivers must take the new one)."""
    sub = get(session, subscription_id)
    sub.secret = signing.new_secret()
    session.flush()
    audit.record(session, actor, "webhook.rotate_secret", "webhook_subscription", sub.id)
    return sub


def delete(session: Session, subscription_id: int, actor: int | None) -> None:
    sub = get(session, subscription_id)
    audit.record(session, actor, "webhook.delete", "webhook_subscription", sub.id, {"url": sub.url})
    session.delete(sub)  # its deliveries go with it (ON DELETE CASCADE)
    session.flush()


def deliveries(session: Session, subscription_id: int, limit: int = 50) -> list[DeliveryRow]:
    """The subscription's most recent deliveries, newest first."""
    get(session, subscription_id)
    rows = session.execute(select(WebhookDelivery, Event.type, Event.subject_type, Event.subject_id)
                           .join(Event, Event.id == WebhookDelivery.event_id)
                           .where(WebhookDelivery.subscription_id == subscription_id)
                           .order_by(WebhookDelivery.id.desc()).limit(limit)).all()
    return [DeliveryRow(delivery, event_type, subject_type, subject_id)
            for delivery, event_type, subject_type, subject_id in rows]


def retry(session: Session, subscription_id: int | None, delivery_id: int, actor: int | None) -> WebhookDelivery:
    """Pending now, whatever its state (a failed one, or a delivered one the receiver lost); NotFound when it
    is not a delivery of ``subscription_id`` (None: of any)."""
    delivery = session.get(WebhookDelivery, delivery_id) if delivery_id <= MAX_ID else None
    if delivery is None or subscription_id not in (None, delivery.subscription_id):
        raise NotFound(f"no webhook delivery {delivery_id}" + (f" of subscription {subscription_id}"
                                                               if subscription_id else ""))
    session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(
        state=DeliveryState.PENDING, next_attempt_at=utcnow()))
    session.refresh(delivery)
    mark_written(session)
    audit.record(session, actor, "webhook.retry", "webhook_delivery", delivery_id)
    return delivery


def _due_now(session: Session, subscription_id: int, *states: DeliveryState) -> int:
    """The subscription's deliveries in ``states`` pending and due now; how many."""
    now = utcnow()
    changed = affected(session.execute(update(WebhookDelivery).where(
        WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.state.in_(states),
        or_(WebhookDelivery.state != DeliveryState.PENDING, WebhookDelivery.next_attempt_at > now))
        .values(state=DeliveryState.PENDING, next_attempt_at=now)))
    mark_written(session)
    return changed


def failed_count(session: Session, subscription_id: int) -> int:
    return session.execute(select(func.count()).select_from(WebhookDelivery).where(
        WebhookDelivery.subscription_id == subscription_id,
        WebhookDelivery.state == DeliveryState.FAILED)).scalar_one()


def retry_failed(session: Session, subscription_id: int, actor: int | None) -> int:
    """Every failed delivery of the subscription (given up during an outage, or while it was disabled)
    pending again, with the waiting ones due now; how many were failed. Conflict while it is disabled."""
    sub = get(session, subscription_id)
    if not sub.active:
        raise Conflict("the subscription is disabled; enable it first")
    failed = failed_count(session, sub.id)
    _due_now(session, sub.id, DeliveryState.FAILED, DeliveryState.PENDING)
    audit.record(session, actor, "webhook.retry_failed", "webhook_subscription", sub.id, {"failed": failed})
    return failed


def test_send(session: Session, subscription_id: int, actor: int | None) -> WebhookDelivery:
    """A ``webhook.test`` event for this subscription only (not fanned out to the others)."""
    sub = get(session, subscription_id)
    if not sub.active:
        raise Conflict("the subscription is disabled; enable it first")
    now = utcnow()
    event_id = session.execute(insert(Event.__table__).values(
        type=TEST_EVENT, subject_type="webhook_subscription", subject_id=sub.id, created_at=now,
        payload={"subscription_id": sub.id, "message": "a test event sent from CRM Inbox"})
        .returning(Event.__table__.c.id)).scalar_one()
    # Its own subject: a test never waits behind (or holds up) the subscription's real deliveries.
    add_deliveries(session, event_id, f"test:{event_id}", [sub.id])
    audit.record(session, actor, "webhook.test", "webhook_subscription", sub.id)
    return session.execute(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)).scalar_one()

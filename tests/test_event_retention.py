"""Retention of webhook events: purged calls take their events (with the numbers) and their timeline entries'
events along, and ``[retention] event_days`` deletes old events with their deliveries unless one is still
pending for an active subscription."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from crm_inbox import events
from crm_inbox.config import replace
from crm_inbox.db import unit_of_work
from crm_inbox.models import Call, DeliveryState, Event, WebhookDelivery, WebhookSubscription, utcnow
from crm_inbox.privacy.retention import purge
from crm_inbox.webhooks import subscriptions as subs
from tests.test_privacy import call

HOOK = "http://93.184.216.34/hook"  # public; nothing is sent in these tests


def _events(factory) -> list[tuple[str, str, int]]:  # type: ignore[no-untyped-def]
    with factory() as session:
        return [tuple(r) for r in session.execute(  # type: ignore[misc]
            select(Event.type, Event.subject_type, Event.subject_id).order_by(Event.id)).all()]


def test_purged_calls_take_their_events_and_their_timeline_entries_events_with_them(factory, settings):
    with unit_of_work(factory) as session:
        subs.create(session, settings, url=HOOK, event_types=["*"], actor=None)
    old = utcnow() - timedelta(days=40)
    old_call = call(factory, settings, "old-1", "+49 30 1234567", old)
    new_call = call(factory, settings, "new-1", "+49 30 7654321", utcnow() - timedelta(days=1))
    with factory() as session:
        old_entry = session.get_one(Call, old_call).interaction_id
    before = _events(factory)
    assert ("call.missed", "call", old_call) in before and ("interaction.created", "interaction", old_entry) in before
    counts = purge(factory, replace(settings, retention={"call_days": 30, "event_days": 0}))
    assert counts["calls"] == 1
    after = _events(factory)
    assert after == [e for e in before if e[1:] not in {("call", old_call), ("interaction", old_entry)}]
    assert ("call.missed", "call", new_call) in after
    with factory() as session:  # their deliveries went with them; the others' stay
        kept = {e.id for e in session.execute(select(Event)).scalars()}
        deliveries = session.execute(select(WebhookDelivery.event_id)).scalars().all()
    assert sorted(deliveries) == sorted(kept)


def test_old_events_go_with_their_deliveries_unless_one_is_pending_for_an_active_subscription(factory, settings):
    with unit_of_work(factory) as session:
        active = subs.create(session, settings, url=HOOK, event_types=["contact.*"], actor=None).id
        disabled = subs.create(session, settings, url=HOOK + "2", event_types=["order.*"], actor=None).id
        ids = [events.record(session, kind, subject, n, {"id": n}) for kind, subject, n in (
            ("contact.created", "contact", 1), ("contact.updated", "contact", 2), ("order.created", "order", 3),
            ("ticket.created", "ticket", 4), ("contact.updated", "contact", 5))]
    delivered, pending, _held, _unheard, recent = ids
    with unit_of_work(factory) as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.event_id == delivered)
                        .values(state=DeliveryState.DELIVERED))
        session.execute(update(WebhookSubscription).where(WebhookSubscription.id == disabled)
                        .values(active=False, disabled_at=utcnow()))
        session.execute(update(Event).where(Event.id != recent).values(created_at=utcnow() - timedelta(days=91)))
    assert purge(factory, settings)["events"] == 3  # the default: 90 days
    with factory() as session:
        assert sorted(session.execute(select(Event.id)).scalars()) == [pending, recent]
        left = session.execute(select(WebhookDelivery.event_id, WebhookDelivery.subscription_id)).all()
    assert sorted(left) == [(pending, active), (recent, active)]
    assert purge(factory, settings)["events"] == 0  # nothing twice

"""Outbound webhooks: fan-out in the change's transaction, signed deliveries (verified with the
``standardwebhooks`` library), order per object, back-off through an outage, the private-network guard,
redirects, disabling a failing subscription, leases between two runners, and the admin API and pages."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta

import pytest
import standardwebhooks.webhooks as standard
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox import events
from crm_inbox.config import Settings, replace
from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work
from crm_inbox.errors import ValidationError
from crm_inbox.models import DeliveryState, OutgoingMail, WebhookDelivery, WebhookSubscription, utcnow
from crm_inbox.staff.service import add_staff
from crm_inbox.webhooks import delivery as runner
from crm_inbox.webhooks import subscriptions as subs
from tests.webhook_receiver import Receiver

LOCAL = {"allowed_private_networks": ["127.0.0.1/32"], "timeout_seconds": 2}


@pytest.fixture
def local(settings: Settings) -> Settings:
    return replace(settings, webhooks=LOCAL)


def subscribe(factory: sessionmaker[Session], settings: Settings, url: str, patterns: list[str]) -> tuple[int, str]:
    with unit_of_work(factory) as session:
        sub = subs.create(session, settings, url=url, event_types=patterns, actor=None)
        return sub.id, sub.secret


def record(factory: sessionmaker[Session], *items: tuple[str, str, int]) -> list[int]:
    with unit_of_work(factory) as session:
        return [events.record(session, kind, subject_type, subject_id, {"id": subject_id, "name": "Anna Schmidt"})
                for kind, subject_type, subject_id in items]


def deliveries(factory: sessionmaker[Session]) -> list[WebhookDelivery]:
    with factory() as session:
        return list(session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)).scalars())


def test_fan_out_follows_the_patterns_and_writes_nothing_without_subscribers(factory, local):
    record(factory, ("contact.created", "contact", 1))
    assert deliveries(factory) == []
    everything, _ = subscribe(factory, local, "http://127.0.0.1:9/a", ["*"])
    companies, _ = subscribe(factory, local, "http://127.0.0.1:9/b", ["company.*", "contact.erased"])
    record(factory, ("contact.created", "contact", 1), ("company.updated", "company", 2),
           ("contact.erased", "contact", 1))
    with unit_of_work(factory) as session:
        subs.change(session, local, companies, {"active": False}, actor=None)
    record(factory, ("company.created", "company", 3))
    got = sorted((d.subscription_id, d.subject) for d in deliveries(factory))
    assert got == sorted([(everything, "contact:1"), (everything, "company:2"), (everything, "contact:1"),
                          (everything, "company:3"), (companies, "company:2"), (companies, "contact:1")])


def test_patterns_and_urls_are_checked_at_subscribe_time(factory, settings, local):
    for bad in (["contact.creatd"], ["Contact.*"], [], "contact.created", ["contact.*.x"]):
        with pytest.raises(ValidationError) as caught, unit_of_work(factory) as session:
            subs.create(session, local, url="http://127.0.0.1:9/", event_types=bad, actor=None)
        assert caught.value.field == "event_types"
    for url in ("ftp://example.org/", "http://user:pw@127.0.0.1/", "http://127.0.0.1:9/", "http://10.1.2.3/",
                "http://[::1]/", "http://169.254.169.254/latest/", "http://[::ffff:192.168.0.1]/", "http://0.0.0.0/"):
        with pytest.raises(ValidationError) as caught, unit_of_work(factory) as session:
            subs.create(session, settings, url=url, event_types=["*"], actor=None)  # no allow-list
        assert caught.value.field == "url", url
    with factory() as session:
        assert session.execute(select(func.count()).select_from(WebhookSubscription)).scalar_one() == 0


def test_deliveries_are_signed_per_standard_webhooks_and_an_old_replay_is_rejected(factory, local, monkeypatch):
    with Receiver() as receiver:
        _, secret = subscribe(factory, local, receiver.url, ["contact.*"])
        [event_id] = record(factory, ("contact.created", "contact", 5))
        assert runner.deliver_due(factory, local) == {"delivered": 1, "failed": 0}
        [request] = receiver.requests
    payload = standard.Webhook(secret).verify(request.body, request.headers)
    assert payload["id"] == str(event_id) and payload["type"] == "contact.created"
    assert payload["data"] == {"id": 5, "name": "Anna Schmidt"}
    assert payload["timestamp"].endswith("Z")
    assert request.webhook_id == f"evt_{event_id}"
    with pytest.raises(standard.WebhookVerificationError):
        standard.Webhook(subs.signing.new_secret()).verify(request.body, request.headers)

    class Later(datetime):  # the receiver's clock ten minutes on: the same request replayed then
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return datetime.now(tz) + timedelta(minutes=10)

    monkeypatch.setattr(standard, "datetime", Later)
    with pytest.raises(standard.WebhookVerificationError):
        standard.Webhook(secret).verify(request.body, request.headers)
    [done] = deliveries(factory)
    assert (done.state, done.attempts, done.response_code) == (DeliveryState.DELIVERED, 1, 200)


def test_an_outage_is_retried_with_back_off_in_order_per_object(factory, local):
    up = threading.Event()
    with Receiver(lambda _request: 200 if up.is_set() else 503) as receiver:
        subscribe(factory, local, receiver.url, ["*"])
        first, second, other = record(factory, ("contact.updated", "contact", 5), ("contact.updated", "contact", 5),
                                      ("contact.updated", "contact", 6))
        t0 = utcnow()
        # Contact 5's second event waits behind its first: only two attempts, both failing.
        assert runner.deliver_due(factory, local, now=t0) == {"delivered": 0, "failed": 2}
        assert sorted(receiver.ids()) == [f"evt_{first}", f"evt_{other}"]
        waiting = {d.event_id: d for d in deliveries(factory)}
        assert waiting[second].attempts == 0
        assert waiting[first].last_error == "HTTP 503" and waiting[first].response_code == 503
        assert waiting[first].next_attempt_at == t0 + runner.FIRST_RETRY
        assert waiting[second].next_attempt_at == t0 + runner.FIRST_RETRY  # the subscription waits as a whole
        assert runner.deliver_due(factory, local, now=t0 + timedelta(seconds=5)) == {"delivered": 0, "failed": 0}
        # Failing: one delivery is tried (the probe), the others wait as long as the subscription has failed.
        t1 = t0 + timedelta(seconds=16)
        assert runner.deliver_due(factory, local, now=t1) == {"delivered": 0, "failed": 1}
        probe = max(deliveries(factory), key=lambda d: d.attempts)
        assert probe.attempts == 2 and probe.next_attempt_at == t1 + 2 * runner.FIRST_RETRY  # its own back-off
        others = [d.next_attempt_at for d in deliveries(factory) if d.id != probe.id]
        assert others == [t1 + (t1 - t0)] * 2
        up.set()
        assert runner.deliver_due(factory, local, now=t0 + timedelta(minutes=2)) == {"delivered": 3, "failed": 0}
        ids = receiver.ids()
    assert ids.index(f"evt_{second}") > len(ids) - 3  # delivered only after the first one got through
    assert ids.index(f"evt_{second}") > max(i for i, x in enumerate(ids) if x == f"evt_{first}")
    assert [d.state for d in deliveries(factory)] == [DeliveryState.DELIVERED] * 3


def test_back_off_gives_up_after_the_retry_window():
    created = datetime(2026, 12, 2, 10, 0)
    assert [runner.backoff(n).total_seconds() for n in (1, 2, 3, 12, 40)] == [15, 30, 60, 10800, 10800]
    assert runner.next_attempt(created, 1, created, 24) == created + timedelta(seconds=15)
    assert runner.next_attempt(created, 20, created + timedelta(hours=23), 24) is None
    assert not runner.should_disable(None, created, 72)
    assert runner.should_disable(created, created + timedelta(hours=72), 72)


def test_a_private_target_is_refused_at_the_attempt_and_a_redirect_is_not_followed(factory, settings, local):
    with Receiver(302) as receiver:
        subscribe(factory, local, receiver.url, ["*"])
        record(factory, ("order.created", "order", 1))
        # The allow-list is gone by the time of the attempt (or DNS now answers with a private address).
        assert runner.deliver_due(factory, settings) == {"delivered": 0, "failed": 1}
        assert receiver.requests == []
        [refused] = deliveries(factory)
        assert refused.last_error.startswith("refused: 127.0.0.1 resolves to 127.0.0.1")
        assert refused.state == DeliveryState.PENDING  # retried later, like any failure
        later = utcnow() + timedelta(minutes=1)
        assert runner.deliver_due(factory, local, now=later) == {"delivered": 0, "failed": 1}
        assert [r.path for r in receiver.requests] == ["/hook"]  # /elsewhere was never asked
    [redirected] = deliveries(factory)
    assert redirected.response_code == 302
    assert redirected.last_error == f"HTTP 302: redirect to http://127.0.0.1:{receiver.port}/elsewhere not followed"


def test_a_subscription_failing_for_hours_is_disabled_keeps_its_deliveries_and_sends_them_when_enabled(
        factory, local):
    settings = replace(local, webhooks={**LOCAL, "disable_after_hours": 2, "retry_hours": 1})
    with unit_of_work(factory) as session:
        for n, role in enumerate(("admin", "admin", "staff")):
            add_staff(session, f"person{n}@beispiel-firma.de", f"Person {n}", role)
    up = threading.Event()
    with Receiver(lambda _request: 200 if up.is_set() else 500) as receiver:
        sub_id, _ = subscribe(factory, settings, receiver.url, ["*"])
        record(factory, ("contact.created", "contact", 1), ("contact.created", "contact", 2))
        t0 = utcnow()
        assert runner.deliver_due(factory, settings, now=t0) == {"delivered": 0, "failed": 2}
        with factory() as session:
            assert session.get_one(WebhookSubscription, sub_id).failing_since == t0
        # Given up after the retry window (1 h): failed, not lost.
        assert runner.deliver_due(factory, settings, now=t0 + timedelta(hours=1, minutes=30)) == {
            "delivered": 0, "failed": 1}
        record(factory, ("contact.created", "contact", 3))
        assert runner.deliver_due(factory, settings, now=t0 + timedelta(hours=2, seconds=1))["failed"] == 1
        with factory() as session:
            sub = session.get_one(WebhookSubscription, sub_id)
            assert not sub.active and sub.disabled_reason and "last error: HTTP 500" in sub.disabled_reason
            mails = session.execute(select(OutgoingMail).where(OutgoingMail.purpose == "webhook_disabled")).scalars()
            assert sorted(m.to_address for m in mails) == ["person0@beispiel-firma.de", "person1@beispiel-firma.de"]
        states = sorted(d.state.value for d in deliveries(factory))
        assert states == ["failed", "pending", "pending"]  # the others are held, not failed
        record(factory, ("contact.created", "contact", 4))  # collected while disabled, held too
        assert runner.deliver_due(factory, settings, now=t0 + timedelta(hours=9)) == {"delivered": 0, "failed": 0}
        with unit_of_work(factory) as session, pytest.raises(subs.Conflict):
            subs.retry_failed(session, sub_id, actor=None)
        up.set()
        with unit_of_work(factory) as session:
            subs.change(session, settings, sub_id, {"active": True}, actor=None)
        with factory() as session:
            sub = session.get_one(WebhookSubscription, sub_id)
            assert sub.active and (sub.failing_since, sub.disabled_at, sub.disabled_reason) == (None, None, None)
        assert runner.deliver_due(factory, settings) == {"delivered": 3, "failed": 0}  # the held ones, now
        with unit_of_work(factory) as session:
            assert subs.failed_count(session, sub_id) == 1
            assert subs.retry_failed(session, sub_id, actor=None) == 1
        assert runner.deliver_due(factory, settings) == {"delivered": 1, "failed": 0}
        assert sorted(set(receiver.ids())) == sorted(f"evt_{n}" for n in range(1, 5))
    assert {d.state for d in deliveries(factory)} == {DeliveryState.DELIVERED}
    with factory() as session:  # one mail per disabling, whatever else happened
        assert session.execute(select(func.count()).select_from(OutgoingMail)).scalar_one() == 2


def test_two_runners_never_hold_one_delivery_at_the_same_time(factory, local):
    with Receiver() as receiver:
        subscribe(factory, local, receiver.url, ["*"])
        record(factory, *[("ticket.created", "ticket", n) for n in range(30)])
        now = utcnow()
        other_engine = make_engine(local.database.url)
        try:
            other = make_sessionmaker(other_engine)
            mine, theirs = runner.claim(factory, local, now, 20), runner.claim(other, local, now, 20)
            assert len(mine) == 20 and len(theirs) == 10
            assert not {c.delivery_id for c in mine} & {c.delivery_id for c in theirs}
            assert runner.claim(other, local, now + timedelta(seconds=1)) == []  # all leased
            # A runner that died keeps its claims only until the lease ends: then another takes them over.
            retaken = runner.claim(other, local, now + runner.lease(local) + timedelta(seconds=1), 50)
            assert len(retaken) == 30
            assert {c.attempts for c in retaken} == {2}
            runner.record(factory, local, [runner.attempt(c, local) for c in retaken], now)
            record(factory, *[("ticket.changed", "ticket", n) for n in range(40)])
            threads = [threading.Thread(target=runner.deliver_due, args=(f, local)) for f in (factory, other)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            other_engine.dispose()
        assert len(receiver.ids()) == 70 and len(set(receiver.ids())) == 70  # not one sent twice


def test_retry_and_test_send(factory, local):
    with Receiver() as receiver:
        sub_id, secret = subscribe(factory, local, receiver.url, ["order.created"])
        other_id, _ = subscribe(factory, local, receiver.url + "2", ["*"])
        with unit_of_work(factory) as session:
            test = subs.test_send(session, sub_id, actor=None)
        assert [d.subscription_id for d in deliveries(factory)] == [sub_id]  # the others hear nothing
        runner.deliver_due(factory, local)
        with unit_of_work(factory) as session:
            again = subs.retry(session, sub_id, test.id, actor=None)
            assert again.state == DeliveryState.PENDING
            with pytest.raises(subs.NotFound):
                subs.retry(session, other_id, test.id, actor=None)
        runner.deliver_due(factory, local)
        assert receiver.ids() == [f"evt_{test.event_id}"] * 2  # the same id: the receiver may drop it
    body = standard.Webhook(secret).verify(receiver.requests[1].body, receiver.requests[1].headers)
    assert body["type"] == "webhook.test" and body["data"]["subscription_id"] == sub_id
    with unit_of_work(factory) as session:
        rotated = subs.rotate_secret(session, sub_id, actor=None).secret
        assert rotated != secret and rotated.startswith("whsec_")
        assert [r.event_type for r in subs.deliveries(session, sub_id)] == ["webhook.test"]
        subs.delete(session, sub_id, actor=None)
    assert deliveries(factory) == []
    assert json.loads(receiver.requests[0].body)["id"] == str(test.event_id)


PUBLIC_URL = "http://93.184.216.34/hooks/crm"  # a public address (no DNS needed); nothing is sent in these tests


def test_the_api_subscribes_shows_the_secret_once_and_manages_deliveries(client, auth):
    api = "/api/v1/webhook-subscriptions"
    refused = client.post(api, json={"url": "http://192.168.1.20/hook", "event_types": ["*"]}, headers=auth)
    assert refused.status_code == 400 and refused.json["error"]["field"] == "url"
    assert "allowed_private_networks" in refused.json["error"]["message"]
    created = client.post(api, json={"url": PUBLIC_URL, "event_types": ["contact.created", "company.*"],
                                     "description": "ERP"}, headers=auth)
    assert created.status_code == 201 and created.json["secret"].startswith("whsec_")
    sub = created.json["id"]
    shown = client.get(f"{api}/{sub}", headers=auth).json
    assert "secret" not in shown and shown["event_types"] == ["contact.created", "company.*"]
    assert "secret" not in client.get(api, headers=auth).json["items"][0]
    bad = client.patch(f"{api}/{sub}", json={"event_types": ["contact.exploded"]}, headers=auth)
    assert bad.status_code == 400 and bad.json["error"]["field"] == "event_types"
    assert client.patch(f"{api}/{sub}", json={"active": False}, headers=auth).json["active"] is False
    assert client.post(f"{api}/{sub}/test", headers=auth).status_code == 409
    assert client.post(f"{api}/{sub}/retry-failed", headers=auth).status_code == 409
    client.patch(f"{api}/{sub}", json={"active": True}, headers=auth)
    assert client.post(f"{api}/{sub}/retry-failed", headers=auth).json == {"retried": 0}
    test = client.post(f"{api}/{sub}/test", headers=auth)
    assert test.status_code == 202 and test.json["event_type"] == "webhook.test"
    [listed] = client.get(f"{api}/{sub}/deliveries", headers=auth).json["items"]
    assert listed["webhook_id"] == test.json["webhook_id"] and listed["state"] == "pending"
    assert client.post(f"/api/v1/webhook-deliveries/{listed['id']}/retry", headers=auth).json["state"] == "pending"
    rotated = client.post(f"{api}/{sub}/rotate-secret", headers=auth).json["secret"]
    assert rotated != created.json["secret"]
    assert client.delete(f"{api}/{sub}", headers=auth).status_code == 204
    assert client.get(f"{api}/{sub}", headers=auth).status_code == 404
    assert client.post(f"/api/v1/webhook-deliveries/{listed['id']}/retry", headers=auth).status_code == 404


def test_the_admin_page_subscribes_shows_the_secret_once_and_the_deliveries(client, factory):
    from crm_inbox.staff.service import add_staff
    from tests.test_pages import PASSWORD, csrf_token, log_in

    with unit_of_work(factory) as session:
        add_staff(session, "admin@beispiel-firma.de", "Ada Admin", "admin", password=PASSWORD)
    log_in(client, "admin@beispiel-firma.de")
    page = client.get("/admin/webhooks").get_data(as_text=True)
    assert 'href="/admin/webhooks"' in page  # the nav link
    token = csrf_token(page)
    refused = client.post("/admin/webhooks", data={"csrf_token": token, "url": "http://10.0.0.5/",
                                                   "event_types": ["order.created"]})
    assert refused.status_code == 400 and "10.0.0.5" in refused.get_data(as_text=True)
    created = client.post("/admin/webhooks", data={"csrf_token": token, "url": PUBLIC_URL, "patterns": "company.*",
                                                   "event_types": ["order.created", "contact.merged"]})
    with factory() as session:
        sub = session.execute(select(WebhookSubscription)).scalar_one()
    assert created.status_code == 200 and sub.secret in created.get_data(as_text=True)
    assert sub.event_types == ["order.created", "contact.merged", "company.*"]
    detail = client.get(f"/admin/webhooks/{sub.id}").get_data(as_text=True)
    assert sub.secret not in detail and 'value="company.*"' in detail
    # the pattern ticks (and greys) the boxes it covers; saving sends back the pattern, not those types
    assert 'value="company.updated" checked disabled' in detail and "covered by company.*" in detail
    assert 'value="contact.merged" checked>' in detail and 'value="contact.created">' in detail
    client.post(f"/admin/webhooks/{sub.id}/test", data={"csrf_token": token})
    detail = client.get(f"/admin/webhooks/{sub.id}").get_data(as_text=True)
    assert "webhook.test" in detail and f"evt_{deliveries(factory)[0].event_id}" in detail
    with unit_of_work(factory) as session:  # as the runner does after failing for disable_after_hours
        row = session.get_one(WebhookSubscription, sub.id)
        row.active, row.disabled_at, row.disabled_reason = False, utcnow(), "no successful delivery since …"
    assert "no successful delivery since …" in client.get("/admin/webhooks").get_data(as_text=True)
    assert client.post(f"/admin/webhooks/{sub.id}/retry-failed", data={"csrf_token": token}).status_code == 409
    saved = client.post(f"/admin/webhooks/{sub.id}", data={"csrf_token": token, "url": PUBLIC_URL, "active": "on",
                                                          "event_types": ["order.created"]})
    assert saved.status_code == 302
    with unit_of_work(factory) as session:  # the test event, given up
        session.execute(update(WebhookDelivery).values(state=DeliveryState.FAILED))
    detail = client.get(f"/admin/webhooks/{sub.id}").get_data(as_text=True)
    assert "Retry 1 failed delivery" in detail
    retried = client.post(f"/admin/webhooks/{sub.id}/retry-failed", data={"csrf_token": token})
    assert retried.status_code == 302 and deliveries(factory)[0].state == DeliveryState.PENDING
    with factory() as session:
        row = session.get_one(WebhookSubscription, sub.id)
        assert row.active and row.disabled_at is None and row.event_types == ["order.created"]
    unconfirmed = client.post(f"/admin/webhooks/{sub.id}/rotate", data={"csrf_token": token})
    assert unconfirmed.status_code == 400 and "Yes, the old secret stops working" in unconfirmed.get_data(as_text=True)
    with factory() as session:
        assert session.get_one(WebhookSubscription, sub.id).secret == sub.secret  # the receiver keeps working
    rotated = client.post(f"/admin/webhooks/{sub.id}/rotate", data={"csrf_token": token, "confirm": "1"})
    with factory() as session:
        new_secret = session.get_one(WebhookSubscription, sub.id).secret
    assert new_secret != sub.secret and new_secret in rotated.get_data(as_text=True)
    unconfirmed = client.post(f"/admin/webhooks/{sub.id}/delete", data={"csrf_token": token})
    assert unconfirmed.status_code == 400 and "Yes, delete" in unconfirmed.get_data(as_text=True)
    assert client.get(f"/admin/webhooks/{sub.id}").status_code == 200  # still there
    deleted = client.post(f"/admin/webhooks/{sub.id}/delete", data={"csrf_token": token, "confirm": "1"})
    assert deleted.status_code == 302
    assert client.get(f"/admin/webhooks/{sub.id}").status_code == 404


def test_the_deliveries_name_their_object_and_offer_retry_only_where_it_helps(client, factory, local):
    from tests.test_pages import PASSWORD, log_in

    sub_id, _ = subscribe(factory, local, "http://127.0.0.1:9/", ["contact.*", "order.created"])
    record(factory, ("contact.created", "contact", 7), ("contact.updated", "contact", 7), ("order.created", "order", 3))
    delivered, failed, waiting = deliveries(factory)
    with unit_of_work(factory) as session:
        add_staff(session, "admin@beispiel-firma.de", "Ada Admin", "admin", password=PASSWORD)
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivered.id).values(
            state=DeliveryState.DELIVERED, attempts=1, response_code=204, delivered_at=utcnow()))
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == failed.id).values(
            state=DeliveryState.FAILED, attempts=3, response_code=503, last_error="HTTP 503"))
    log_in(client, "admin@beispiel-firma.de")
    page = client.get(f"/admin/webhooks/{sub_id}").get_data(as_text=True)
    assert '<a href="/contacts/7">Contact 7</a>' in page and '<a href="/orders/3">Order 3</a>' in page
    assert "gave up after 3 attempts" in page and f"evt_{failed.event_id}" in page
    retry = f"/admin/webhooks/{sub_id}/deliveries/{{}}/retry"
    assert retry.format(failed.id) in page
    assert retry.format(delivered.id) not in page and retry.format(waiting.id) not in page  # sent, or not yet tried


def test_https_checks_the_certificate_for_the_host_name_while_connecting_to_the_checked_address(
        factory, local, tmp_path, monkeypatch):
    import os
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        if os.environ.get("CI"):
            pytest.fail("the openssl command (Debian package openssl) is required in CI to make a certificate")
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    settings = replace(local, webhooks={**LOCAL, "allowed_private_networks": ["127.0.0.1/32", "::1/128"]})
    with Receiver(tls=tls) as receiver:
        subscribe(factory, settings, receiver.url, ["*"])
        record(factory, ("order.created", "order", 1))
        assert runner.deliver_due(factory, settings) == {"delivered": 0, "failed": 1}  # not a trusted certificate
        assert "CERTIFICATE_VERIFY_FAILED" in deliveries(factory)[0].last_error
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now trusted: for the name localhost, not for 127.0.0.1
        later = utcnow() + timedelta(minutes=1)
        assert runner.deliver_due(factory, settings, now=later) == {"delivered": 1, "failed": 0}
        assert len(receiver.requests) == 1


def test_deliveries_exist_only_with_their_change_and_wake_the_runner_after_commit(factory, local):
    woken: list[int] = []
    unhook = events.on_committed(lambda: woken.append(1))
    try:
        record(factory, ("contact.created", "contact", 1))
        assert woken == []  # nothing to deliver: no wake-up
        subscribe(factory, local, "http://127.0.0.1:9/", ["contact.*"])
        with pytest.raises(RuntimeError), unit_of_work(factory) as session:
            events.record(session, "contact.updated", "contact", 1, {"id": 1})
            raise RuntimeError("the change fails")
        assert woken == [] and deliveries(factory) == []  # rolled back with the change
        record(factory, ("contact.updated", "contact", 1))
        assert woken == [1] and len(deliveries(factory)) == 1
    finally:
        unhook()

"""Webhooks from a real ``serve`` process: events made through its API reach a receiver, and a kill -9 of
serve after the receiver's 2xx but before serve recorded it makes a restarted serve send that event again
with the same webhook-id (at least once; the id lets receivers drop the copy)."""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.request
from collections import Counter
from typing import Any

import standardwebhooks
from sqlalchemy import select

from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work
from crm_inbox.models import Company, DeliveryState, WebhookDelivery
from crm_inbox.webhooks import subscriptions as subs
from tests.conftest import make_settings, make_token
from tests.serveproc import config_file, serve, wait_until
from tests.webhook_receiver import Receiver, Request

WEBHOOKS = {"allowed_private_networks": ["127.0.0.1/32"], "timeout_seconds": 1, "poll_seconds": 1}


def api(port: int, token: str, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1{path}", method=method,
                                     data=json.dumps(body).encode(), headers={
                                         "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return dict(json.loads(answer.read()))


def test_serve_delivers_events_at_least_once_across_a_kill_after_the_receivers_2xx(database_url, tmp_path):
    settings = make_settings(database_url, tmp_path / "setup", webhooks=WEBHOOKS)
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    token = make_token(factory, "admin@beispiel-firma.de")
    with unit_of_work(factory) as session:
        company = Company(name="Müller GmbH")
        session.add(company)
        session.flush()
        company_id = company.id
    victim: dict[str, Any] = {}
    killed, answered = threading.Event(), threading.Event()

    def answer(request: Request) -> int:
        # The first delivery: kill serve while it waits for this answer, then answer 2xx into the void (once
        # serve answered our API call, which the kill would cut off otherwise).
        if not killed.is_set() and answered.wait(30):
            victim["id"] = request.webhook_id
            os.kill(victim["pid"], signal.SIGKILL)
            killed.set()
        return 200

    config = config_file(tmp_path, "node", database_url, webhooks=WEBHOOKS)
    with Receiver(answer) as receiver:
        with unit_of_work(factory) as session:
            secret = subs.create(session, settings, url=receiver.url, event_types=["opportunity.*"], actor=None).secret
        node = serve(config, tmp_path / "node.log")
        try:
            victim["pid"] = node.proc.pid
            opp = api(node.web_port, token, "POST", "/opportunities",
                      {"title": "Rahmenvertrag", "company_id": company_id})
            answered.set()
            assert killed.wait(30), node.log.read_text()[-3000:]
            node.proc.wait(30)
            assert node.proc.returncode == -signal.SIGKILL
        finally:
            node.ensure_gone()
        node = serve(config, tmp_path / "node.log")  # the restart: takes over the dead process's claim
        try:
            api(node.web_port, token, "PATCH", f"/opportunities/{opp['id']}", {"stage": "won"})
            second = api(node.web_port, token, "POST", "/opportunities", {"title": "Wartung", "company_id": company_id})

            def all_delivered() -> bool:
                with factory() as session:
                    states = session.execute(select(WebhookDelivery.state)).scalars().all()
                return len(states) == 3 and set(states) == {DeliveryState.DELIVERED}
            assert wait_until(all_delivered, 30), node.log.read_text()[-3000:]
        finally:
            node.stop()
        requests = list(receiver.requests)
    engine.dispose()
    counts = Counter(r.webhook_id for r in requests)
    assert len(counts) == 3 and counts[victim["id"]] >= 2  # sent again after the kill, with the same id
    bodies = [standardwebhooks.Webhook(secret).verify(r.body, r.headers) for r in requests]
    assert sorted(b["type"] for b in {b["id"]: b for b in bodies}.values()) == [
        "opportunity.created", "opportunity.created", "opportunity.won"]
    # In order per object: the deal's "won" waited until its "created" was sent again and answered.
    resent = [i for i, r in enumerate(requests) if r.webhook_id == victim["id"]][1]
    won = next(i for i, b in enumerate(bodies) if b["type"] == "opportunity.won")
    assert won > resent and second["id"] != opp["id"]

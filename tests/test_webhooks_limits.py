"""Webhooks under bad receivers: an attempt ends by its deadline (a resolver that hangs, a receiver that
trickles its answer), a dead receiver costs one attempt per wait rather than one per delivery, a slow receiver
holds up nobody else, and IPv6 addresses that carry a private IPv4 address are refused."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from datetime import timedelta

import pytest

from crm_inbox.config import Settings, replace
from crm_inbox.db import unit_of_work
from crm_inbox.errors import ValidationError
from crm_inbox.models import DeliveryState, utcnow
from crm_inbox.webhooks import delivery as runner
from crm_inbox.webhooks import subscriptions as subs
from crm_inbox.webhooks import targets
from tests.test_webhooks import LOCAL, deliveries, record, subscribe
from tests.webhook_receiver import Receiver, Request


@pytest.fixture
def local(settings: Settings) -> Settings:
    return replace(settings, webhooks=LOCAL)


@pytest.mark.parametrize(("address", "allowed"), [
    ("::ffff:10.0.0.1", ()), ("::10.0.0.1", ()), ("::127.0.0.1", ()),  # IPv4-mapped and -compatible
    ("64:ff9b::10.0.0.1", ()), ("64:ff9b::169.254.169.254", ()),  # NAT64, RFC 6052
    ("64:ff9b:1::10.0.0.1", ()), ("64:ff9b:1:a00:0:100::", ()),  # local NAT64: /96 and /48 formats
    ("2002:a00:1::1", ()), ("2002:c0a8:101::", ()),  # 6to4: 10.0.0.1, 192.168.1.1
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", ("2001::/32",)),  # Teredo, client 10.0.0.1, the prefix allowed
])
def test_ipv6_addresses_carrying_a_private_ipv4_address_are_refused(address, allowed):
    assert targets.refused(ipaddress.ip_address(address), allowed)


@pytest.mark.parametrize(("address", "allowed"), [
    ("64:ff9b::8.8.8.8", ()), ("2002:808:808::1", ()), ("2606:4700::1111", ()),
    ("64:ff9b::127.0.0.1", ("127.0.0.1/32",)), ("::ffff:127.0.0.1", ("127.0.0.1/32",)),  # the IPv4 allowed
])
def test_ipv6_addresses_carrying_a_public_or_allowed_ipv4_address_pass(address, allowed):
    assert not targets.refused(ipaddress.ip_address(address), allowed)


def test_a_subscription_to_a_nat64_or_6to4_address_of_the_office_network_is_refused(factory, settings):
    for url in ("http://[64:ff9b::a00:1]/", "http://[2002:a00:1::1]/", "http://[::a00:1]/"):
        with pytest.raises(ValidationError) as caught, unit_of_work(factory) as session:
            subs.create(session, settings, url=url, event_types=["*"], actor=None)
        assert caught.value.field == "url" and "resolves to" in caught.value.message, url


def test_the_lease_outlasts_an_attempts_deadline(settings):
    for timeout in (1, 10, 60):
        limited = replace(settings, webhooks={"timeout_seconds": timeout})
        assert runner.lease(limited) >= timedelta(seconds=2 * timeout + 5)


def test_a_resolver_that_does_not_answer_ends_the_attempt_at_its_deadline(monkeypatch):
    release = threading.Event()

    def hanging(*_args: object, **_kwargs: object) -> list[object]:
        release.wait(30)
        raise socket.gaierror("gave up")

    monkeypatch.setattr(targets.socket, "getaddrinfo", hanging)
    began = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match=r"resolving hooks\.example\.org took longer"):
            targets.post("http://hooks.example.org/x", b"{}", {}, allowed=(), timeout=0.3)
    finally:
        release.set()
    assert time.monotonic() - began < 2


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_deadline():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 1000:
                if stop.wait(0.1):  # one byte every 0.1 s: each read succeeds, the whole never ends
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    began = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match="no complete answer within 1 s"):
            targets.post(f"http://127.0.0.1:{port}/hook", b"{}", {}, allowed=("127.0.0.1/32",), timeout=1)
        assert time.monotonic() - began < 3
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_a_dead_receiver_costs_one_attempt_per_wait_not_one_per_delivery(factory, local: Settings):
    with Receiver(503) as receiver:
        sub_id, _ = subscribe(factory, local, receiver.url, ["*"])
        record(factory, *[("contact.updated", "contact", n) for n in range(30)])
        t0 = utcnow()
        # Before the first failure is known, the attempts in flight (at most 8 for one subscription) all fail.
        assert runner.deliver_due(factory, local, now=t0) == {"delivered": 0, "failed": runner.PER_SUBSCRIPTION}
        record(factory, *[("contact.updated", "contact", n) for n in range(30, 40)])  # new events wait too
        moment = t0
        for _ in range(4):  # 15 s, 15 s, 30 s, 60 s: the waits double, one attempt each
            moment += max(timedelta(seconds=15), moment - t0) + timedelta(seconds=1)
            assert runner.deliver_due(factory, local, now=moment) == {"delivered": 0, "failed": 1}
        assert len(receiver.requests) == runner.PER_SUBSCRIPTION + 4
        # One probe at a time, whichever process asks.
        later = moment + timedelta(hours=4)
        assert len(runner.claim(factory, local, later)) == 1
        assert runner.claim(factory, local, later) == []
    assert {d.state for d in deliveries(factory)} == {DeliveryState.PENDING}
    assert sub_id


def test_a_slow_receiver_holds_up_no_other_subscription(factory, local: Settings):
    settings = replace(local, webhooks={**LOCAL, "timeout_seconds": 30})
    release = threading.Event()

    def slow(_request: Request) -> int:
        release.wait(30)
        return 200

    with Receiver(slow) as stuck, Receiver(200) as quick:
        subscribe(factory, settings, stuck.url, ["*"])
        subscribe(factory, settings, quick.url, ["*"])
        record(factory, *[("order.created", "order", n) for n in range(20)])
        result: dict[str, int] = {}
        worker = threading.Thread(target=lambda: result.update(runner.deliver_due(factory, settings)))
        worker.start()
        try:
            # The quick receiver gets all 20 while the slow one still holds its first 8 attempts.
            assert len(quick.wait_for(20, timeout=20)) == 20
            assert stuck.requests == [] and not release.is_set()
        finally:
            release.set()
            worker.join(60)
        assert result == {"delivered": 40, "failed": 0}
        assert len(stuck.requests) == 20

"""The screen pop: a logged-in staff browser hears about an incoming call within a second, over the
real server (waitress), with a link to the caller's customer page."""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import os
import re
import time
import urllib.parse
import urllib.request

import pytest
from sqlalchemy import event, select

from crm_inbox.calls.relay import Pop, PopSender
from crm_inbox.calls.screenpop import Broker
from crm_inbox.config import replace
from crm_inbox.db import unit_of_work
from crm_inbox.models import Call, Contact, ContactEmail, ContactPhone
from crm_inbox.runtime import Service
from crm_inbox.staff.service import add_staff
from tests.conftest import PG_URL_ENV


def jonas_and_a_customer(factory) -> Contact:  # type: ignore[no-untyped-def]
    """Staff user Jonas (who logs in) and Klaus Müller, who calls."""
    with unit_of_work(factory) as session:
        add_staff(session, "jonas@beispiel-firma.de", "Jonas Becker", password="richtig-geheim")
        contact = Contact(name="Klaus Müller", tags=[], fields={})
        contact.phones.append(ContactPhone(raw="0171 2345678", e164="+491712345678"))
        session.add(contact)
    return contact


def test_incoming_call_reaches_the_logged_in_browser_within_a_second(settings, factory):
    settings = replace(settings, web={"port": 0}, cti={"token": "pbx-secret"})
    contact = jonas_and_a_customer(factory)
    service = Service(settings, smtp=False)
    service.start()
    try:
        base = f"http://127.0.0.1:{service.web_port}"
        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        login_page = browser.open(f"{base}/login", timeout=10).read().decode()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)  # type: ignore[union-attr]
        browser.open(f"{base}/login", data=urllib.parse.urlencode(
            {"email": "jonas@beispiel-firma.de", "password": "richtig-geheim", "csrf_token": csrf}).encode(),
            timeout=10).read()
        cookie = "; ".join(f"{c.name}={c.value}" for c in jar)

        stream = http.client.HTTPConnection("127.0.0.1", service.web_port, timeout=10)
        stream.request("GET", "/events/calls", headers={"Cookie": cookie, "Accept": "text/event-stream"})
        events = stream.getresponse()
        assert events.status == 200 and events.headers["Content-Type"].startswith("text/event-stream")
        # the stream is open before the call comes in
        assert [events.readline(), events.readline()] == [b": connected\n", b"\n"]

        started = time.monotonic()
        posted = urllib.request.urlopen(f"{base}/api/v1/sipgate/pbx-secret/in", data=urllib.parse.urlencode(
            {"event": "newCall", "direction": "in", "from": "491712345678", "to": "4989123456",
             "callId": "pop-1"}).encode(), timeout=10)
        assert posted.status == 200
        lines = read_event(events)
        elapsed = time.monotonic() - started
        data = json.loads(next(line for line in lines if line.startswith(b"data: "))[6:])
        assert data["name"] == "Klaus Müller" and data["number"] == "+491712345678"
        assert data["url"] == f"/contacts/{contact.id}"
        assert elapsed < 1.0
        stream.close()
    finally:
        service.stop()


def test_the_stream_needs_a_login(client):
    response = client.get("/events/calls")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def read_event(response: http.client.HTTPResponse, within: float = 30.0) -> list[bytes]:
    """The next event's lines (keepalive comments skipped); fails when none comes ``within`` seconds."""
    lines: list[bytes] = []
    deadline = time.monotonic() + within
    while True:
        assert time.monotonic() < deadline, f"no event within {within} s"
        line = response.readline()
        if not line:
            return lines  # the stream ended
        if line == b"\n":
            if any(not part.startswith(b":") for part in lines):
                return lines
            lines = []
            continue
        lines.append(line)


def log_in(base: str, email: str) -> str:
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login_page = browser.open(f"{base}/login", timeout=10).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)  # type: ignore[union-attr]
    browser.open(f"{base}/login", data=urllib.parse.urlencode(
        {"email": email, "password": "richtig-geheim", "csrf_token": csrf}).encode(), timeout=10).read()
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def open_stream(port: int, cookie: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/events/calls", headers={"Cookie": cookie, "Accept": "text/event-stream"})
    return connection, connection.getresponse()


def serve_with_threads(settings, factory, threads: int) -> Service:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        for name in ("jonas", "mia"):
            add_staff(session, f"{name}@beispiel-firma.de", name.title(), password="richtig-geheim")
    service = Service(replace(settings, web={"port": 0, "threads": threads}), smtp=False)
    service.start()
    return service


def test_a_users_newest_streams_replace_their_oldest(settings, factory):
    service = serve_with_threads(settings, factory, threads=12)  # room for 4 streams
    try:
        cookie = log_in(f"http://127.0.0.1:{service.web_port}", "jonas@beispiel-firma.de")
        streams = [open_stream(service.web_port, cookie) for _ in range(3)]
        assert [response.status for _, response in streams] == [200, 200, 200]
        fourth = open_stream(service.web_port, cookie)
        assert fourth[1].status == 200
        first = streams[0][1]
        assert b"event: replaced\n" in read_event(first)
        assert first.readline() == b""  # and that stream ended, freeing its thread
        for connection, _ in [*streams, fourth]:
            connection.close()
    finally:
        service.stop()


def test_past_the_limit_a_stream_is_refused_and_pages_still_answer(settings, factory):
    service = serve_with_threads(settings, factory, threads=10)  # room for 2 streams
    try:
        base = f"http://127.0.0.1:{service.web_port}"
        jonas, mia = log_in(base, "jonas@beispiel-firma.de"), log_in(base, "mia@beispiel-firma.de")
        held = [open_stream(service.web_port, jonas) for _ in range(2)]
        assert [response.status for _, response in held] == [200, 200]
        refused = open_stream(service.web_port, mia)
        assert refused[1].status == 503 and refused[1].headers["Retry-After"] == "30"
        page = urllib.request.Request(f"{base}/dashboard", headers={"Cookie": mia})
        with urllib.request.urlopen(page, timeout=10) as answer:
            assert answer.status == 200 and b"Dashboard" in answer.read()
        for connection, _ in [*held, refused]:
            connection.close()
    finally:
        service.stop()


def test_streams_of_browsers_that_went_away_free_their_threads_within_seconds(settings, factory):
    service = serve_with_threads(settings, factory, threads=10)  # room for 2 streams
    try:
        cookie = log_in(f"http://127.0.0.1:{service.web_port}", "jonas@beispiel-firma.de")
        for connection, response in [open_stream(service.web_port, cookie) for _ in range(2)]:
            assert response.status == 200
            connection.close()  # the tab was closed: the server learns it at the next keepalive
        mia = log_in(f"http://127.0.0.1:{service.web_port}", "mia@beispiel-firma.de")
        deadline = time.monotonic() + 15
        while True:
            connection, response = open_stream(service.web_port, mia)
            connection.close()
            if response.status == 200:
                break
            assert time.monotonic() < deadline, "the closed streams still hold their threads"
            time.sleep(0.2)  # polling for the freed slot, as the page's script would (later)
        assert time.monotonic() < deadline
    finally:
        service.stop()


@pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason="several nodes share one database only on PostgreSQL")
def test_a_call_that_reaches_one_node_pops_up_on_the_others_once(settings, factory):
    settings = replace(settings, web={"port": 0}, cti={"token": "pbx-secret"})
    contact = jonas_and_a_customer(factory)
    here, there = Service(settings, smtp=False), Service(settings, smtp=False)  # two nodes, one database
    here.start()
    there.start()
    try:
        connection, events = open_stream(here.web_port, log_in(f"http://127.0.0.1:{here.web_port}",
                                                                "jonas@beispiel-firma.de"))
        assert [events.readline(), events.readline()] == [b": connected\n", b"\n"]

        def call(node: Service, call_id: str) -> None:
            posted = urllib.request.urlopen(
                f"http://127.0.0.1:{node.web_port}/api/v1/sipgate/pbx-secret/in", data=urllib.parse.urlencode(
                    {"event": "newCall", "direction": "in", "from": "491712345678", "to": "4989123456",
                     "callId": call_id}).encode(), timeout=10)
            assert posted.status == 200

        def next_call() -> dict[str, object]:
            lines = read_event(events, within=5)
            return json.loads(next(line for line in lines if line.startswith(b"data: "))[6:])

        started = time.monotonic()
        call(there, "other-node")
        event = next_call()
        assert time.monotonic() - started < 1.0
        assert event["name"] == "Klaus Müller" and event["url"] == f"/contacts/{contact.id}"
        # A call to this node's own webhook pops up once: heard back from PostgreSQL, it is not shown again.
        call(here, "this-node")
        call(there, "other-node-again")
        with factory() as session:
            ids = dict(session.execute(select(Call.call_id, Call.id)).all())
        assert [next_call()["call_id"], next_call()["call_id"]] == [ids["this-node"], ids["other-node-again"]]
        connection.close()
    finally:
        here.stop()
        there.stop()


def test_a_pop_names_its_caller_as_the_webhook_read_them_and_reads_only_the_nameless(engine, factory):
    """The webhook hands the sender the caller's name it matched the number with: nothing is read again for it
    (on PostgreSQL only the NOTIFY to the other nodes is sent). A person without a name is read, by an address."""
    with unit_of_work(factory) as session:
        named = Contact(name="Klaus Müller", tags=[], fields={})
        nameless = Contact(name=None, tags=[], fields={})
        nameless.emails.append(ContactEmail(email="anna@kunde.example"))
        session.add_all([named, nameless])
    broker = Broker()
    subscription = broker.subscribe(1)
    sender = PopSender(engine, broker)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        sender._deliver([Pop(1, "+491712345678", named.id, f"/contacts/{named.id}", None, "Klaus Müller"),
                         Pop(2, "withheld", None, None, None)])
        assert [s for s in statements if "pg_notify" not in s] == []
        sender._deliver([Pop(3, "+491712345679", nameless.id, f"/contacts/{nameless.id}", frozenset({1}))])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    names = [subscription.queue.get_nowait()["name"] for _ in range(3)]  # type: ignore[index]
    assert names == ["Klaus Müller", None, "anna@kunde.example"]

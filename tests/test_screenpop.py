"""The screen pop: a logged-in staff browser hears about an incoming call within a second, over the
real server (waitress), with a link to the caller's customer page."""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import re
import time
import urllib.parse
import urllib.request

from crm_inbox.config import replace
from crm_inbox.db import unit_of_work
from crm_inbox.models import Contact, ContactPhone
from crm_inbox.runtime import Service
from crm_inbox.staff import add_staff


def test_incoming_call_reaches_the_logged_in_browser_within_a_second(settings, factory):
    settings = replace(settings, web={"port": 0}, cti={"token": "pbx-secret"})
    with unit_of_work(factory) as session:
        add_staff(session, "jonas@beispiel-firma.de", "Jonas Becker", password="richtig-geheim")
        contact = Contact(name="Klaus Müller", tags=[], fields={})
        contact.phones.append(ContactPhone(raw="0171 2345678", e164="+491712345678"))
        session.add(contact)
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
        lines = []
        while not lines or lines[-1] != b"\n":
            lines.append(events.readline())
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

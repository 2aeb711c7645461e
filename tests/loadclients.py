"""The load for the crash harness (tests/crashload.py): the mail each SMTP client process sends, the client
process itself (an MTA: what gets no 250 is sent again, the same bytes, a little later), and a phone system
that posts call events to the webhooks until each gets a 2xx."""

from __future__ import annotations

import contextlib
import json
import random
import smtplib
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from tests.serveproc import CRM, SUPPORT

CTI_TOKEN = "crash-test-cti-token"

# --- what is sent ---

def message_id(run: str, client: int, n: int) -> str:
    return f"<crash-{run}-{client}-{n}@load.example>"


def token(run: str, client: int, n: int) -> str:
    return f"crash-token-{run}-{client}-{n}"


def build_mail(run: str, client: int, n: int) -> tuple[str, str, bytes]:
    """(envelope sender, recipient, raw bytes): a few senders per client (leads, then known contacts);
    every fifth mail goes to the support address (a ticket)."""
    sender = f"kunde{n % 7}@firma{client}.example"
    rcpt = SUPPORT if n % 5 == 0 else CRM
    raw = (f"From: Kunde {n % 7} <{sender}>\r\nTo: {rcpt}\r\nSubject: Anfrage {client}-{n}\r\n"
           f"Date: {format_datetime(datetime.now(UTC))}\r\nMessage-ID: {message_id(run, client, n)}\r\n"
           f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           f"Guten Tag,\r\n\r\nbitte um ein Angebot. Kennung {token(run, client, n)}\r\n\r\nGrüße\r\n").encode()
    return sender, rcpt, raw


def call_id(run: str, n: int) -> str:
    return f"crash-{run}-call-{n}"


def missed_calls(calls: int) -> list[int]:
    return [n for n in range(calls) if n % 2 == 1]


def call_events(run: str, n: int, start: datetime) -> list[dict[str, Any]]:
    """new, (answer), hangup in the generic JSON format; odd calls are missed."""
    base = {"call_id": call_id(run, n)}
    events = [{**base, "event": "new", "at": start.isoformat(), "direction": "in",
               "from": f"+49 30 1234{n:04d}", "to": "+49 89 4711-22"}]
    if n % 2 == 0:
        events.append({**base, "event": "answer", "at": (start + timedelta(seconds=5)).isoformat()})
        events.append({**base, "event": "hangup", "at": (start + timedelta(seconds=65)).isoformat(),
                       "cause": "normalClearing"})
    else:
        events.append({**base, "event": "hangup", "at": (start + timedelta(seconds=20)).isoformat(),
                       "cause": "noAnswer"})
    return events


# --- an SMTP client process ---

def send_one(client: smtplib.SMTP, sender: str, rcpt: str, raw: bytes) -> tuple[int, str]:
    """One SMTP transaction; the first reply that is not a success ends it."""
    client.ehlo_or_helo_if_needed()
    for code, reply in (client.mail(sender), client.rcpt(rcpt)):
        if code >= 300:
            return code, reply.decode(errors="replace")
    code, reply = client.data(raw)
    return code, reply.decode(errors="replace")


def client_main(index: int, run: str, count: int, ports: list[int], progress: Any, result: str,
                deadline: float, seed: int) -> None:
    """Send ``count`` messages, each until it gets a 250 (or ``deadline``, a time.time(), passes);
    message n goes to node ``ports[(index + n) % len(ports)]``. Writes what happened to ``result``."""
    rng = random.Random(seed * 100 + index)
    connections: dict[int, smtplib.SMTP] = {}
    acked: dict[int, str] = {}
    failed: Counter[int] = Counter()
    rejected: dict[int, str] = {}
    for n in range(count):
        sender, rcpt, raw = build_mail(run, index, n)
        while time.time() < deadline:
            port = ports[(index + n + failed[n]) % len(ports)]
            try:
                if port not in connections:
                    connections[port] = smtplib.SMTP("127.0.0.1", port, timeout=120)
                code, reply = send_one(connections[port], sender, rcpt, raw)
            except (OSError, smtplib.SMTPException) as exc:
                code, reply = 0, f"{exc.__class__.__name__}: {exc}"
            if code == 250:
                acked[n] = reply
                with progress.get_lock():
                    progress.value += 1
                break
            if 500 <= code < 600:  # never right for this mail: recorded, and the test fails
                rejected[n] = f"{code} {reply}"
                break
            failed[n] += 1
            with contextlib.suppress(Exception):
                connections.pop(port).close()
            time.sleep(rng.uniform(0.1, 0.4))  # as an MTA: later, the same bytes
    for connection in connections.values():
        with contextlib.suppress(Exception):
            connection.quit()
    Path(result).write_text(json.dumps({"acked": acked, "failed": failed, "rejected": rejected}))


# --- the phone system ---

class PhoneSystem(threading.Thread):
    """Posts the call events spread over the load (event k once k/E of the mail is acknowledged), each
    until it gets a 2xx, alternating between the nodes, as a PBX retries a webhook."""

    def __init__(self, run: str, calls: int, messages: int, web_ports: list[int], progress: Any,
                 deadline: float) -> None:
        super().__init__(name="crash-phone-system", daemon=True)
        self.mail_done = threading.Event()  # no more progress to wait for: post the rest at once
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        calls = [call_events(run, n, start + timedelta(seconds=n)) for n in range(calls)]
        # Interleaved (call 0's new, call 1's new, …) so calls are open across kills, in order per call.
        self.events = [e for step in range(3) for c in calls if step < len(c) for e in [c[step]]]
        self.web_ports, self.progress, self.deadline = web_ports, progress, deadline
        self.total = messages
        self.posted = self.retries = 0
        self.problems: list[str] = []

    def run(self) -> None:
        for k, event in enumerate(self.events):
            while (self.progress.value < self.total * k / len(self.events) and not self.mail_done.is_set()
                   and time.time() < self.deadline):
                time.sleep(0.05)
            attempt = 0
            while time.time() < self.deadline:
                port = self.web_ports[(k + attempt) % len(self.web_ports)]
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/v1/calls/events", data=json.dumps(event).encode(),
                    headers={"Content-Type": "application/json", "Authorization": f"Bearer {CTI_TOKEN}"})
                try:
                    with urllib.request.urlopen(request, timeout=60):
                        break
                except urllib.error.HTTPError as exc:
                    if exc.code < 500:
                        self.problems.append(f"call event {event} answered {exc.code}")
                        break
                except (OSError, urllib.error.URLError):
                    pass
                attempt += 1
                self.retries += 1
                time.sleep(0.2)
            else:
                self.problems.append(f"call event {event} never accepted")
            self.posted += 1

"""The outbox's parts for campaigns, checked at a real SMTP sink: a held mail is never sent until released; a
mail with an HTML part arrives as multipart/alternative from its own sender address; a claim of a sender that
died mid-send is taken over and the mail is marked uncertain (it may have arrived twice), as is a mail whose
relay had the whole message but did not answer in time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from crm_inbox import outbox
from crm_inbox.config import replace
from crm_inbox.db import unit_of_work
from crm_inbox.models import OutboxState, OutgoingMail, utcnow
from handlers.smtp import SmtpServer
from tests.test_tickets import sink  # noqa: F401  (sink is a fixture)

LONG = "eyJjIjoxLCJjaCI6ImVtYWlsIiwidCI6MTc2NDY2MDAwMCwiYSI6IjVmNGRjYzNiNWFhNzY1ZDYxZDgzMjdkZWI4ODJjZjk5In0." + "x" * 43


def _settings(settings, port):  # type: ignore[no-untyped-def]
    return replace(settings, notifications={"smtp_host": "127.0.0.1", "smtp_port": port, "timeout_seconds": 5,
                                            "from_address": "crm@beispiel-firma.de"})


def test_a_held_mail_waits_until_it_is_released(factory, settings, sink):  # noqa: F811
    handler, port = sink
    settings = _settings(settings, port)
    with unit_of_work(factory) as session:
        mail = outbox.enqueue(session, settings, purpose="campaign", dedupe_key="c:1", to="a@kunde.de",
                              subject="Neuheiten", body="Guten Tag", held=True)
        assert mail is not None and mail.state == OutboxState.HELD
        mail_id = mail.id
    assert outbox.send_pending(factory, settings) == {"sent": 0, "failed": 0}
    assert handler.received == []
    with unit_of_work(factory) as session:
        assert outbox.release(session, mail_id) is True
        assert outbox.release(session, mail_id) is False  # released once only
    assert outbox.send_pending(factory, settings) == {"sent": 1, "failed": 0}
    (received,) = handler.received
    assert received.rcpt_tos == ["a@kunde.de"]


def test_html_part_and_own_sender_address(factory, settings, sink):  # noqa: F811
    handler, port = sink
    settings = _settings(settings, port)
    with unit_of_work(factory) as session:
        outbox.enqueue(session, settings, purpose="campaign", dedupe_key="c:2", to="a@kunde.de", subject="Neuheiten",
                       body="Guten Tag\n", html="<p>Guten Tag</p>", from_address="news@beispiel-firma.de",
                       from_name="Muster GmbH", headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                                                         "List-Unsubscribe": f"<https://crm.example/unsubscribe/{LONG}>"})
    outbox.send_pending(factory, settings)
    (received,) = handler.received
    msg = received.message
    assert msg.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["From"] == "Muster GmbH <news@beispiel-firma.de>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # on the wire as RFC 8058 wants it: the URL itself in angle brackets, not an encoded-word
    assert f"\r\nList-Unsubscribe: <https://crm.example/unsubscribe/{LONG}>\r\n".encode() in received.raw


def test_a_dead_senders_claim_is_taken_over_and_marked_uncertain(factory, settings, sink):  # noqa: F811
    handler, port = sink
    settings = _settings(settings, port)
    with unit_of_work(factory) as session:
        first = outbox.enqueue(session, settings, purpose="campaign", dedupe_key="c:3", to="a@kunde.de",
                               subject="x", body="x")
        second = outbox.enqueue(session, settings, purpose="campaign", dedupe_key="c:4", to="b@kunde.de",
                                subject="x", body="x")
        assert first is not None and second is not None
        first_id, second_id = first.id, second.id
        # the first was claimed by a process that then died (its claim is older than the lease)
        session.execute(update(OutgoingMail).where(OutgoingMail.id == first_id).values(
            state=OutboxState.SENDING, claimed_at=utcnow() - outbox.lease(settings) - timedelta(seconds=1),
            attempts=1))
    assert outbox.send_pending(factory, settings) == {"sent": 2, "failed": 0}
    assert sorted(m.rcpt_tos[0] for m in handler.received) == ["a@kunde.de", "b@kunde.de"]
    with factory() as session:
        assert session.get_one(OutgoingMail, first_id).uncertain is True
        assert session.get_one(OutgoingMail, second_id).uncertain is False


@dataclass
class SlowRelay:
    """A relay that reads the whole message and answers ``reply`` only once ``release`` is set."""

    reply: str = "250 2.0.0 Ok"
    received: list[bytes] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    closing: bool = False
    in_flight: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.original_content)
        await asyncio.to_thread(self.release.wait, 30)
        return self.reply


@pytest.fixture
def slow_relay() -> Iterator[tuple[SlowRelay, int]]:
    handler = SlowRelay()
    server = SmtpServer(handler, "127.0.0.1", 0, max_message_bytes=1_000_000)  # type: ignore[arg-type]
    port = server.start()
    yield handler, port
    handler.release.set()
    server.stop()


def _one_mail(factory, settings) -> int:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        mail = outbox.enqueue(session, settings, purpose="campaign", dedupe_key="c:5", to="a@kunde.de",
                              subject="Neuheiten", body="Guten Tag")
        assert mail is not None
        return mail.id


def test_no_answer_after_the_whole_message_marks_the_mail_uncertain(factory, settings, slow_relay, caplog):
    """The relay took the message but its 250 never came within the timeout: the mail may have arrived, so its
    next attempt may deliver it twice. It stays pending and the campaign page lists it as uncertain."""
    handler, port = slow_relay
    settings = replace(_settings(settings, port), notifications={"timeout_seconds": 1})
    mail_id = _one_mail(factory, settings)
    assert outbox.send_pending(factory, settings) == {"sent": 0, "failed": 1}
    handler.release.set()
    assert len(handler.received) == 1  # the relay has it
    with factory() as session:
        mail = session.get_one(OutgoingMail, mail_id)
        assert (mail.state, mail.uncertain) == (OutboxState.PENDING, True)
        assert mail.error is not None and "no answer after the message was written" in mail.error
    assert "not sent (attempt 1): no answer after the message was written" in caplog.text


def test_a_refusal_is_no_uncertainty(factory, settings, slow_relay):
    """A relay that answers with an error code did not take the mail: its next attempt is no double."""
    handler, port = slow_relay
    handler.reply = "451 4.3.0 try again later"
    handler.release.set()
    settings = _settings(settings, port)
    mail_id = _one_mail(factory, settings)
    assert outbox.send_pending(factory, settings) == {"sent": 0, "failed": 1}
    with factory() as session:
        mail = session.get_one(OutgoingMail, mail_id)
        assert (mail.state, mail.uncertain) == (OutboxState.PENDING, False)
        assert mail.error is not None and "451" in mail.error

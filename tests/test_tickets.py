"""Support tickets end to end: a real Service, mail over SMTP with smtplib as a real client, and a real SMTP
sink that captures the acknowledgements the CRM sends. Synchronised with the worker's and the sender's
``wait_idle``, never with sleeps."""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, store
from crm_inbox.models import (
    Contact,
    ContactEmail,
    Direction,
    InboundMessage,
    Interaction,
    InteractionContact,
    InteractionKind,
    OutgoingMail,
    Reminder,
    Role,
    Ticket,
    TicketEvent,
    TicketState,
    utcnow,
)
from crm_inbox.pipeline.runner import process
from crm_inbox.runtime import Service
from crm_inbox.staff.service import add_staff
from crm_inbox.tickets import service as ticket_service
from crm_inbox.tickets.inputs import TicketChanges
from handlers.smtp import SmtpServer
from tests.conftest import CRM, SUPPORT, make_settings
from tests.mailfactory import make_mail

CUSTOMER = "petra.weber@weber-logistik.de"
CUSTOMER_FROM = f"Petra Weber <{CUSTOMER}>"
STAFF = "anna.schmidt@beispiel-firma.de"
STAFF_FROM = f"Anna Schmidt <{STAFF}>"


# --- a real SMTP sink for the mail the CRM sends ---

@dataclass
class Captured:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=default_policy)  # type: ignore[return-value]


@dataclass
class CollectingHandler:
    """aiosmtpd handler that keeps every message (``closing``/``in_flight`` are what SmtpServer.stop reads)."""

    received: list[Captured] = field(default_factory=list)
    closing: bool = False
    in_flight: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(Captured(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Ok: captured"


@pytest.fixture
def sink() -> Iterator[tuple[CollectingHandler, int]]:
    handler = CollectingHandler()
    server = SmtpServer(handler, "127.0.0.1", 0, max_message_bytes=10_000_000)  # type: ignore[arg-type]
    port = server.start()
    yield handler, port
    server.stop()


# --- the service under test ---

@dataclass
class Crm:
    service: Service

    @property
    def factory(self):  # type: ignore[no-untyped-def]
        return self.service.factory

    def send(self, raw: bytes, rcpts: list[str] | None = None, envelope_from: str = CUSTOMER) -> dict:
        with smtplib.SMTP("127.0.0.1", self.service.smtp_port, timeout=60) as client:
            return client.sendmail(envelope_from, rcpts or [SUPPORT], raw)

    def settle(self) -> None:
        """Everything sent so far processed, and everything that queued sent (or attempted)."""
        self.service.worker.wait_idle()
        assert self.service.sender.wait_idle(), "the outbox sender did not become idle"

    def tickets(self) -> list[Ticket]:
        with self.factory() as session:
            return list(session.execute(select(Ticket).order_by(Ticket.id)).scalars())

    def ticket(self, ticket_id: int) -> Ticket:
        with self.factory() as session:
            return session.get_one(Ticket, ticket_id)

    def interaction(self, message_id: str) -> Interaction:
        with self.factory() as session:
            return session.execute(select(Interaction).where(Interaction.source_ref == message_id)).scalar_one()

    def events(self, ticket_id: int) -> list[TicketEvent]:
        with self.factory() as session:
            return list(session.execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
                                        .order_by(TicketEvent.id)).scalars())

    def count(self, model: Any, *where: Any) -> int:
        with self.factory() as session:
            return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


@contextmanager
def running(settings) -> Iterator[Crm]:  # type: ignore[no-untyped-def]
    service = Service(settings, web=False)
    service.start()
    try:
        yield Crm(service)
    finally:
        service.stop()


@pytest.fixture
def tmp_instance(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def crm(database_url: str, tmp_instance: Path) -> Iterator[Crm]:
    with running(make_settings(database_url, tmp_instance)) as crm:
        yield crm


@pytest.fixture
def acking(database_url: str, tmp_instance: Path, sink) -> Iterator[tuple[Crm, CollectingHandler]]:  # type: ignore[no-untyped-def]
    handler, port = sink
    settings = make_settings(database_url, tmp_instance, tickets={"acknowledge": True},
                             notifications={"smtp_host": "127.0.0.1", "smtp_port": port, "from_address": SUPPORT,
                                            "timeout_seconds": 10})
    with running(settings) as crm:
        yield crm, handler


def staff_user(crm: Crm, email: str = STAFF, name: str = "Anna Schmidt") -> int:
    with unit_of_work(crm.factory) as session:
        return add_staff(session, email, name).id


def mid(local: str, domain: str = "weber-logistik.de") -> str:
    return f"<{local}.{make_msgid().strip('<>').split('@')[0]}@{domain}>"


def customer_mail(subject: str = "Lieferung 4711 beschädigt", message_id: str | None = None,
                  sender: str = CUSTOMER_FROM, to: str = SUPPORT, **kwargs: Any) -> tuple[bytes, str]:
    message_id = message_id or mid("q")
    return make_mail(sender=sender, to=to, subject=subject, message_id=message_id,
                     body="Guten Tag,\n\ndie Lieferung kam beschädigt an.\n\nPetra Weber\n", **kwargs), message_id


def open_one(crm: Crm, subject: str = "Lieferung 4711 beschädigt") -> tuple[Ticket, str]:
    raw, message_id = customer_mail(subject)
    crm.send(raw)
    crm.settle()
    (ticket,) = crm.tickets()
    return ticket, message_id


def timeline_items(crm: Crm, contact_id: int) -> list[Interaction]:
    with crm.factory() as session:
        return list(session.execute(
            select(Interaction).join(InteractionContact).where(InteractionContact.contact_id == contact_id)
            .order_by(Interaction.id)).scalars())


# --- opening ---

def test_mail_to_support_from_an_unknown_sender_opens_a_ticket_on_the_new_lead(crm):
    raw, message_id = customer_mail("Lieferung 4711 beschädigt")
    assert crm.send(raw) == {}
    crm.settle()

    (ticket,) = crm.tickets()
    assert ticket.number == 10001 and ticket.label == "#10001"
    assert ticket.subject == "Lieferung 4711 beschädigt"
    assert ticket.state == TicketState.NEW
    assert ticket.opened_by_email == CUSTOMER
    mail = crm.interaction(message_id)
    assert mail.ticket_id == ticket.id and mail.direction == Direction.IN
    assert "opened ticket #10001" in (mail.attribution_reason or "")
    with crm.factory() as session:
        lead = session.get_one(Contact, ticket.contact_id)
        assert lead.role == Role.LEAD
        assert [e.email for e in lead.emails] == [CUSTOMER]
    assert [(e.kind, e.interaction_id) for e in crm.events(ticket.id)] == [("opened", mail.id)]
    # The opening is on the lead's timeline too, next to the mail itself.
    items = timeline_items(crm, ticket.contact_id)
    assert [(i.kind, i.ticket_id) for i in items] == [(InteractionKind.EMAIL, ticket.id),
                                                     (InteractionKind.TICKET, ticket.id)]
    assert items[1].subject == "#10001: opened: Lieferung 4711 beschädigt"


def test_mail_only_to_the_crm_address_opens_no_ticket(crm):
    raw, message_id = customer_mail(to=CRM)
    crm.send(raw, rcpts=[CRM])
    crm.settle()
    assert crm.tickets() == []
    assert crm.interaction(message_id).ticket_id is None


def test_support_in_cc_with_the_envelope_to_the_crm_opens_a_ticket(crm):
    raw, _ = customer_mail(to=CRM, cc=SUPPORT)
    crm.send(raw, rcpts=[CRM])
    crm.settle()
    assert len(crm.tickets()) == 1


# --- follow-ups ---

@pytest.mark.parametrize("how", ["number", "in_reply_to", "references"])
def test_customer_follow_up_lands_in_the_ticket(crm, how):
    ticket, first_id = open_one(crm)
    if how == "number":
        raw, follow_id = customer_mail(f"AW: [#{ticket.number}] Lieferung 4711 beschädigt")
    elif how == "in_reply_to":
        raw, follow_id = customer_mail("Noch eine Frage", headers={"In-Reply-To": first_id})
    else:  # a long thread: only one of the five ids is a message in the ticket
        refs = " ".join([mid("x", "elsewhere.example"), mid("y", "elsewhere.example"), first_id,
                         mid("z", "elsewhere.example"), mid("w", "elsewhere.example")])
        raw, follow_id = customer_mail("Noch eine Frage", headers={"References": refs})
    crm.send(raw)
    crm.settle()

    assert [t.id for t in crm.tickets()] == [ticket.id]
    follow = crm.interaction(follow_id)
    assert follow.ticket_id == ticket.id
    assert f"follow-up in ticket #{ticket.number}" in (follow.attribution_reason or "")
    assert [e.kind for e in crm.events(ticket.id)] == ["opened", "customer_reply"]


def test_the_same_subject_alone_does_not_thread(crm):
    ticket, _ = open_one(crm, "Rechnung 2026-17")
    raw, again = customer_mail("Re: Rechnung 2026-17")
    crm.send(raw)
    crm.settle()
    tickets = crm.tickets()
    assert len(tickets) == 2
    assert crm.interaction(again).ticket_id == tickets[1].id != ticket.id


def test_unknown_ticket_number_and_unknown_references_open_a_new_ticket(crm):
    raw, message_id = customer_mail("Re: [#99999] Rückfrage",
                                    headers={"In-Reply-To": mid("nowhere", "elsewhere.example")})
    crm.send(raw)
    crm.settle()
    (ticket,) = crm.tickets()
    assert ticket.subject == "Rückfrage"
    assert crm.interaction(message_id).ticket_id == ticket.id


def test_staff_reply_via_bcc_makes_it_pending_and_the_customer_reply_reopens_it(crm):
    anna = staff_user(crm)
    ticket, first_id = open_one(crm)
    assert ticket.assignee_id is None

    reply_id = mid("r", "beispiel-firma.de")
    staff_raw = make_mail(sender=STAFF_FROM, to=CUSTOMER_FROM, subject="Re: Lieferung 4711 beschädigt",
                          message_id=reply_id, headers={"In-Reply-To": first_id, "References": first_id},
                          body="Guten Tag Frau Weber,\n\nwir senden Ersatz.\n\nAnna Schmidt\n")
    crm.send(staff_raw, rcpts=[CRM], envelope_from=STAFF)  # the CRM only in the envelope: a BCC
    crm.settle()
    ticket = crm.ticket(ticket.id)
    assert ticket.state == TicketState.PENDING
    assert ticket.assignee_id == anna  # whoever answers first takes it
    assert ticket.last_staff_reply_at is not None
    reply = crm.interaction(reply_id)
    assert reply.direction == Direction.OUT and reply.ticket_id == ticket.id
    assert crm.events(ticket.id)[-1].kind == "staff_reply"
    assert crm.events(ticket.id)[-1].staff_id == anna

    raw, answer_id = customer_mail(f"AW: [#{ticket.number}] Lieferung 4711 beschädigt",
                                   headers={"In-Reply-To": reply_id, "References": f"{first_id} {reply_id}"})
    crm.send(raw)
    crm.settle()
    ticket = crm.ticket(ticket.id)
    assert ticket.state == TicketState.OPEN
    assert crm.interaction(answer_id).ticket_id == ticket.id
    last = crm.events(ticket.id)[-1]
    assert (last.kind, last.details["state_before"], last.details["state"]) == ("customer_reply", "pending", "open")
    assert any(i.kind == InteractionKind.TICKET and "reopened" in (i.text or "")
               for i in timeline_items(crm, ticket.contact_id))
    assert len(crm.tickets()) == 1


def test_reply_to_a_closed_ticket_opens_a_new_linked_ticket(crm):
    ticket, first_id = open_one(crm)
    with unit_of_work(crm.factory) as session:
        ticket_service.change(session, session.get_one(Ticket, ticket.id), None, TicketChanges(state="closed"))

    raw, late_id = customer_mail(f"Re: [#{ticket.number}] Lieferung 4711 beschädigt",
                                 headers={"In-Reply-To": first_id})
    crm.send(raw)
    crm.settle()
    old, new = crm.tickets()
    assert old.state == TicketState.CLOSED
    assert (new.number, new.previous_ticket_id, new.state) == (10002, old.id, TicketState.NEW)
    assert new.contact_id == old.contact_id and new.subject == "Lieferung 4711 beschädigt"
    assert crm.interaction(late_id).ticket_id == new.id
    assert crm.events(new.id)[0].details["previous_ticket"] == "#10001"
    assert crm.events(old.id)[-1].kind == "followed_by" and crm.events(old.id)[-1].details["label"] == "#10002"

    # The customer writes once more in the same old thread: it joins the new ticket, not a third one.
    raw, again_id = customer_mail(f"Re: [#{ticket.number}] Lieferung 4711 beschädigt",
                                  headers={"In-Reply-To": late_id, "References": f"{first_id} {late_id}"})
    crm.send(raw)
    crm.settle()
    assert len(crm.tickets()) == 2
    assert crm.interaction(again_id).ticket_id == new.id


def test_reply_to_a_recently_closed_ticket_reopens_it_when_configured(database_url, tmp_instance):
    settings = make_settings(database_url, tmp_instance, tickets={"new_ticket_after_closed_days": 7})
    with running(settings) as crm:
        ticket, first_id = open_one(crm)
        with unit_of_work(crm.factory) as session:
            ticket_service.change(session, session.get_one(Ticket, ticket.id), None, TicketChanges(state="closed"))
        raw, late_id = customer_mail("Re: Lieferung 4711 beschädigt", headers={"In-Reply-To": first_id})
        crm.send(raw)
        crm.settle()
        assert [t.id for t in crm.tickets()] == [ticket.id]
        assert crm.interaction(late_id).ticket_id == ticket.id
        # Nobody looks into closed tickets: the customer's new mail must bring it back.
        assert crm.ticket(ticket.id).state == TicketState.OPEN

        # Closed long ago: a new, linked ticket.
        with unit_of_work(crm.factory) as session:
            ticket_service.change(session, session.get_one(Ticket, ticket.id), None, TicketChanges(state="closed"))
            session.execute(update(Ticket).where(Ticket.id == ticket.id)
                            .values(closed_at=utcnow() - timedelta(days=8)))
        raw, later_id = customer_mail("Re: Lieferung 4711 beschädigt", headers={"In-Reply-To": late_id})
        crm.send(raw)
        crm.settle()
        old, new = crm.tickets()
        assert new.previous_ticket_id == old.id and crm.interaction(later_id).ticket_id == new.id


# --- automatic mail, loops, duplicates ---

def dsn(to: str = SUPPORT) -> tuple[bytes, str]:
    """A delivery status notification (RFC 3464) about a failed customer address, without Auto-Submitted."""
    message_id = mid("dsn", "mx.beispiel-firma.de")
    raw = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.beispiel-firma.de>\r\n"
        f"To: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {message_id}\r\nDate: Wed, 18 Nov 2026 09:05:33 +0100\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"\r\n\r\n'
        "--BOUND\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour message could not be delivered.\r\n"
        "--BOUND\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.beispiel-firma.de\r\n\r\n"
        f"Final-Recipient: rfc822; {CUSTOMER}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--BOUND--\r\n").encode()
    return raw, message_id


AUTOMATIC = {
    "auto-reply": {"headers": {"Auto-Submitted": "auto-replied"}, "subject": "Abwesenheitsnotiz"},
    "precedence-bulk": {"headers": {"Precedence": "bulk"}, "subject": "Newsletter November"},
    "list": {"headers": {"List-Id": "Kunden-Info <kunden.weber-logistik.de>",
                         "List-Unsubscribe": "<mailto:leave@weber-logistik.de>"}, "subject": "Rundschreiben"},
    "x-autoreply": {"headers": {"X-Autoreply": "yes"}, "subject": "Out of office"},
}


def send_automatic(crm: Crm, kind: str) -> str:
    if kind == "dsn":
        raw, message_id = dsn()
        crm.send(raw, envelope_from="")  # the null sender of a bounce
        return message_id
    spec = AUTOMATIC[kind]
    raw, message_id = customer_mail(spec["subject"], headers=spec["headers"])
    crm.send(raw)
    return message_id


@pytest.mark.parametrize("kind", [*AUTOMATIC, "dsn"])
def test_automatic_mail_opens_no_ticket_and_gets_no_acknowledgement(acking, kind):
    crm, sink = acking
    message_id = send_automatic(crm, kind)
    crm.settle()
    assert crm.tickets() == []
    assert crm.count(InboundMessage) == 1
    item = crm.interaction(message_id) if crm.count(Interaction) else None
    assert item is None or item.ticket_id is None
    assert crm.count(OutgoingMail) == 0
    assert sink.received == []


def test_an_auto_reply_joins_its_ticket_but_changes_nothing(crm):
    anna = staff_user(crm)
    ticket, first_id = open_one(crm)
    with unit_of_work(crm.factory) as session:
        ticket_service.change(session, session.get_one(Ticket, ticket.id), anna, TicketChanges(state="pending"))
    raw, ooo_id = customer_mail(f"Automatische Antwort: [#{ticket.number}] Lieferung",
                                headers={"Auto-Submitted": "auto-replied", "In-Reply-To": first_id})
    crm.send(raw)
    crm.settle()
    assert len(crm.tickets()) == 1
    assert crm.ticket(ticket.id).state == TicketState.PENDING  # not reopened by a robot
    assert crm.interaction(ooo_id).ticket_id == ticket.id
    assert crm.events(ticket.id)[-1].kind == "automatic_reply"


def test_an_import_of_old_support_mail_opens_every_request_of_one_customer(database_url, tmp_instance, factory):
    # Ten years of a customer's requests are imported within minutes: that is history, not a mail loop.
    settings = make_settings(database_url, tmp_instance, tickets={"loop_max_tickets": 3, "loop_window_minutes": 30})
    ids = [store(factory, customer_mail(f"Störung Anlage {n}")[0],
                 Envelope(rcpt_to=(SUPPORT,), source="file")).inbound_id for n in range(6)]
    for inbound_id in ids:
        process(factory, settings, inbound_id)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 6
        # Nor a reminder to answer each of them, which would be overdue at once.
        assert session.scalar(select(func.count()).select_from(Reminder)) == 0


def test_a_mailbox_history_fetched_over_imap_opens_every_request_and_acknowledges_none(database_url, tmp_instance,
                                                                                        factory):
    # The first fetch of a shared mailbox brings years of requests at once: tickets, but no loop and no
    # acknowledgement of mail answered long ago. Today's mail in the same fetch is acknowledged as usual.
    settings = make_settings(database_url, tmp_instance, tickets={"loop_max_tickets": 3, "loop_window_minutes": 30,
                                                                  "acknowledge": True})
    old = [customer_mail(f"Störung Anlage {n}", date=utcnow() - timedelta(days=700 - n))[0] for n in range(6)]
    today = customer_mail("Störung heute", sender="Jens Koch <jens.koch@koch-bau.de>")[0]
    for raw in [*old, today]:
        process(factory, settings, store(factory, raw, Envelope(rcpt_to=(SUPPORT,), source="imap")).inbound_id)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 7
        acknowledged = session.execute(select(OutgoingMail.to_address)).scalars().all()
        assert acknowledged == ["jens.koch@koch-bau.de"]


def test_the_loop_limit_stops_new_tickets_from_one_sender(database_url, tmp_instance):
    settings = make_settings(database_url, tmp_instance, tickets={"loop_max_tickets": 3, "loop_window_minutes": 30})
    with running(settings) as crm:
        ids = []
        for n in range(5):
            raw, message_id = customer_mail(f"Störung Anlage {n}")  # not automatic, each a new request
            crm.send(raw)
            ids.append(message_id)
        crm.settle()
        assert len(crm.tickets()) == 3
        for message_id in ids[3:]:
            item = crm.interaction(message_id)
            assert item.ticket_id is None  # still recorded on the timeline, only no ticket
            assert f"suspected mail loop from {CUSTOMER}" in (item.attribution_reason or "")

        # Another sender is not affected.
        raw, other = customer_mail("Frage zur Rechnung", sender="Jens Koch <jens.koch@koch-bau.de>")
        crm.send(raw, envelope_from="jens.koch@koch-bau.de")
        crm.settle()
        assert crm.interaction(other).ticket_id is not None

        # Once the window has passed, the first sender can open tickets again.
        with unit_of_work(crm.factory) as session:
            session.execute(update(Ticket).values(opened_at=utcnow() - timedelta(minutes=31)))
        raw, later = customer_mail("Störung Anlage 6")
        crm.send(raw)
        crm.settle()
        assert crm.interaction(later).ticket_id is not None
        assert len(crm.tickets()) == 5


def test_duplicate_delivery_opens_one_ticket_and_sends_one_acknowledgement(acking):
    crm, sink = acking
    raw, _ = customer_mail()
    crm.send(raw)
    crm.send(b"Received: from relay2.example (relay2.example [192.0.2.7])\r\n" + raw)
    crm.settle()
    assert len(crm.tickets()) == 1
    assert crm.count(Interaction, Interaction.kind == InteractionKind.EMAIL, Interaction.direction == Direction.IN) == 1
    assert len(sink.received) == 1


def test_two_concurrent_deliveries_of_one_mail_open_one_ticket(acking):
    """On PostgreSQL (CRM_INBOX_TEST_DATABASE_URL) two connections race for real; on SQLite it must hold too."""
    crm, sink = acking
    raw, message_id = customer_mail()
    barrier = threading.Barrier(2)
    codes: list[int] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            with smtplib.SMTP("127.0.0.1", crm.service.smtp_port, timeout=60) as client:
                client.ehlo()
                client.mail(CUSTOMER)
                client.rcpt(SUPPORT)
                barrier.wait(30)
                codes.append(client.data(raw)[0])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and codes == [250, 250]
    crm.settle()
    assert crm.count(InboundMessage) == 1
    (ticket,) = crm.tickets()
    assert crm.interaction(message_id).ticket_id == ticket.id
    assert len(sink.received) == 1


# --- the acknowledgement ---

def test_acknowledgement_is_sent_once_with_the_right_headers(acking):
    crm, sink = acking
    raw, first_id = customer_mail("Lieferung 4711 beschädigt")
    crm.send(raw)
    crm.settle()
    (ack,) = sink.received
    msg = ack.message
    assert ack.rcpt_tos == [CUSTOMER]
    assert msg["To"] == CUSTOMER
    assert msg["From"] == SUPPORT
    assert msg["Subject"] == "[#10001] Lieferung 4711 beschädigt"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["In-Reply-To"] == first_id
    assert msg["References"] == first_id
    assert "#10001" in msg.get_content()
    with crm.factory() as session:
        out = session.execute(select(OutgoingMail)).scalar_one()
        assert out.state.value == "sent" and out.message_id == msg["Message-ID"].strip()
        # The acknowledgement is in the ticket's thread, so a reply to it threads by Message-ID.
        ack_id = msg["Message-ID"].strip()
        item = session.execute(select(Interaction).where(Interaction.source_ref == ack_id)).scalar_one()
        assert item.direction == Direction.OUT and item.ticket_id == 1

    # A reply to the acknowledgement (no tag in the subject) joins the ticket, and is not acknowledged.
    raw, reply_id = customer_mail("Re: Ihre Nachricht", headers={"In-Reply-To": msg["Message-ID"]})
    crm.send(raw)
    # A second, new request within the window gets its ticket but no second acknowledgement.
    raw, second_id = customer_mail("Andere Frage")
    crm.send(raw)
    crm.settle()
    assert crm.interaction(reply_id).ticket_id == 1
    assert crm.interaction(second_id).ticket_id == 2
    assert len(sink.received) == 1
    assert crm.count(OutgoingMail) == 1


def test_our_own_acknowledgement_coming_back_to_support_opens_nothing(acking):
    crm, sink = acking
    raw, _ = customer_mail()
    crm.send(raw)
    crm.settle()
    (ack,) = sink.received
    # A customer's mailbox forwards everything to our support address: the loop must end here.
    crm.send(ack.raw, envelope_from=SUPPORT)
    crm.settle()
    assert len(crm.tickets()) == 1
    assert len(sink.received) == 1


@pytest.mark.parametrize("staff_domains", [("beispiel-firma.de",), ()])
@pytest.mark.parametrize("own", [SUPPORT, CRM])
def test_mail_from_the_crms_own_addresses_is_never_acknowledged(database_url, tmp_instance, sink, own, staff_domains):
    handler, port = sink
    settings = make_settings(database_url, tmp_instance, tickets={"acknowledge": True},
                             notifications={"smtp_host": "127.0.0.1", "smtp_port": port, "from_address": CRM},
                             mail={"crm_addresses": (CRM,), "support_addresses": (SUPPORT,),
                                   "staff_domains": staff_domains})
    with running(settings) as crm:
        raw, _ = customer_mail("Testnachricht", sender=f"CRM <{own}>")
        crm.send(raw, envelope_from=own)
        crm.settle()
        assert crm.count(InboundMessage) == 1
        assert handler.received == []
        assert crm.count(OutgoingMail) == 0


def test_acknowledgements_are_not_sent_when_switched_off(crm, sink):
    raw, _ = customer_mail()
    crm.send(raw)
    crm.settle()
    assert len(crm.tickets()) == 1
    assert crm.count(OutgoingMail) == 0
    assert sink[0].received == []


def test_an_unreachable_relay_keeps_the_acknowledgement_queued(database_url, tmp_instance):
    settings = make_settings(database_url, tmp_instance, tickets={"acknowledge": True},
                             notifications={"smtp_host": "127.0.0.1", "smtp_port": 1, "timeout_seconds": 5})
    with running(settings) as crm:
        raw, _ = customer_mail()
        crm.send(raw)
        crm.settle()
        with crm.factory() as session:
            out = session.execute(select(OutgoingMail)).scalar_one()
        assert out.state.value == "pending" and out.attempts == 1 and "refused" in (out.error or "").lower()
        # The next rounds (every processed mail wakes the sender) leave it alone until RETRY_AFTER has passed,
        # instead of burning all attempts within a second.
        assert crm.service.sender.wait_idle() and crm.service.sender.wait_idle()
        with crm.factory() as session:
            assert session.get_one(OutgoingMail, out.id).attempts == 1


def test_lead_email_is_normalised_for_the_acknowledgement(acking):
    crm, sink = acking
    raw, _ = customer_mail(sender="Petra Weber <Petra.Weber@Weber-Logistik.DE>")
    crm.send(raw)
    crm.settle()
    assert [a.rcpt_tos for a in sink.received] == [[CUSTOMER]]
    with crm.factory() as session:
        assert session.execute(select(ContactEmail.email)).scalar_one() == CUSTOMER



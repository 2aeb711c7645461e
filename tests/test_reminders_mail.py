"""Reminders that mail makes: a ticket nobody answers (and its completion when someone does), and a
forwarding note such as "Wiedervorlage Freitag". A real Service with mail over SMTP, as in test_tickets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_inbox.db import unit_of_work
from crm_inbox.models import Reminder, ReminderState, Ticket
from crm_inbox.staff.service import add_staff
from crm_inbox.tickets import service as ticket_service
from crm_inbox.tickets.inputs import TicketChanges
from tests.conftest import CRM, make_settings
from tests.mailfactory import make_mail
from tests.test_tickets import (
    CUSTOMER_FROM,
    STAFF,
    STAFF_FROM,
    Crm,
    customer_mail,
    mid,
    running,
    staff_user,
)


@pytest.fixture
def crm(database_url: str, tmp_path: Path) -> Iterator[Crm]:
    settings = make_settings(database_url, tmp_path / "instance", reminders={"ticket_no_reply_minutes": 60})
    with running(settings) as crm:
        yield crm


def ticket_reminders(crm: Crm) -> list[Reminder]:
    with crm.factory() as session:
        return list(session.execute(select(Reminder).where(Reminder.reason == "ticket_no_reply")
                                    .order_by(Reminder.id)).scalars())


def open_ticket(crm: Crm) -> tuple[Ticket, str]:
    raw, message_id = customer_mail()
    crm.send(raw)
    crm.settle()
    (ticket,) = crm.tickets()
    return ticket, message_id


def staff_answers(crm: Crm, ticket: Ticket, first_id: str) -> str:
    reply_id = mid("r", "beispiel-firma.de")
    crm.send(make_mail(sender=STAFF_FROM, to=CUSTOMER_FROM, subject=f"Re: [#{ticket.number}] {ticket.subject}",
                       message_id=reply_id, headers={"In-Reply-To": first_id, "References": first_id},
                       body="Guten Tag Frau Weber,\n\nwir senden Ersatz.\n\nAnna Schmidt\n"),
             rcpts=[CRM], envelope_from=STAFF)
    crm.settle()
    return reply_id


def test_a_ticket_without_staff_reply_gets_a_reminder_that_the_answer_completes(crm):
    anna = staff_user(crm)
    ticket, first_id = open_ticket(crm)
    [reminder] = ticket_reminders(crm)
    assert reminder.state == ReminderState.OPEN and reminder.ticket_id == ticket.id
    assert reminder.contact_id == ticket.contact_id and reminder.assignee_id is None  # nobody has it yet: the team
    assert reminder.due_at == ticket.opened_at + timedelta(minutes=60)
    assert reminder.title == f"Answer ticket #{ticket.number}: Lieferung 4711 beschädigt"

    reply_id = staff_answers(crm, ticket, first_id)
    [reminder] = ticket_reminders(crm)
    assert reminder.state == ReminderState.DONE and reminder.completion == "answered by staff"
    assert reminder.completed_by_id == anna and reminder.fire_at is None

    # the customer writes again: waiting again, from this reply on, for the assignee (who answered first)
    raw, _ = customer_mail(f"AW: [#{ticket.number}] Lieferung 4711 beschädigt",
                           headers={"In-Reply-To": reply_id, "References": f"{first_id} {reply_id}"})
    crm.send(raw)
    crm.settle()
    first, again = ticket_reminders(crm)
    assert first.state == ReminderState.DONE
    ticket = crm.ticket(ticket.id)
    assert again.state == ReminderState.OPEN and again.assignee_id == anna
    assert again.due_at == ticket.last_customer_reply_at + timedelta(minutes=60)


def test_a_second_customer_mail_keeps_the_first_waiting_time(crm):
    ticket, _ = open_ticket(crm)
    raw, _ = customer_mail(f"[#{ticket.number}] Noch eine Frage")
    crm.send(raw)
    crm.settle()
    [reminder] = ticket_reminders(crm)
    assert reminder.due_at == crm.ticket(ticket.id).opened_at + timedelta(minutes=60)


def test_closing_or_merging_the_ticket_completes_its_reminder_and_reassigning_moves_it(crm):
    jonas = staff_user(crm, "jonas.becker@beispiel-firma.de", "Jonas Becker")
    ticket, _ = open_ticket(crm)
    with unit_of_work(crm.factory) as session:
        ticket_service.change(session, session.get_one(Ticket, ticket.id), None, TicketChanges(assignee_id=jonas))
    [reminder] = ticket_reminders(crm)
    assert reminder.assignee_id == jonas and reminder.state == ReminderState.OPEN
    with unit_of_work(crm.factory) as session:
        ticket_service.change(session, session.get_one(Ticket, ticket.id), jonas, TicketChanges(state="closed"))
    [reminder] = ticket_reminders(crm)
    assert reminder.state == ReminderState.DONE and reminder.completion == "ticket set to closed"
    assert reminder.completed_by_id == jonas


def test_the_ticket_rule_can_be_switched_off(database_url, tmp_path):
    settings = make_settings(database_url, tmp_path / "instance", reminders={"ticket_no_reply": False})
    with running(settings) as crm:
        open_ticket(crm)
        assert ticket_reminders(crm) == []


FORWARD = """{note}

---------- Weitergeleitete Nachricht ---------
Von: Klaus Müller <klaus.mueller@mueller-maschinenbau.de>
Date: Di., 3. Nov. 2026 um 10:58 Uhr
Subject: Ersatzteilbestellung Prägestempel
To: Tom Becker <tom.becker@beispiel-firma.de>

Hallo Herr Becker,

wir benötigen fünf Prägestempel PS-12 als Ersatz.

Mit freundlichen Grüßen
Klaus Müller
"""


def forward(crm: Crm, note: str) -> None:
    raw = make_mail(sender="Tom Becker <tom.becker@beispiel-firma.de>", to=CRM,
                    subject="Fwd: Ersatzteilbestellung Prägestempel", body=FORWARD.format(note=note))
    crm.send(raw, rcpts=[CRM], envelope_from="tom.becker@beispiel-firma.de")
    crm.settle()


def test_wiedervorlage_in_a_forwarding_note_makes_a_reminder_for_the_forwarder(crm):
    with unit_of_work(crm.factory) as session:
        tom = add_staff(session, "tom.becker@beispiel-firma.de", "Tom Becker").id
    forward(crm, "Wiedervorlage Freitag 10 Uhr")
    with crm.factory() as session:
        [reminder] = session.execute(select(Reminder)).scalars().all()
        from crm_inbox.models import Contact, ContactEmail, Interaction

        klaus = session.execute(select(Contact).join(ContactEmail).where(
            ContactEmail.email == "klaus.mueller@mueller-maschinenbau.de")).scalar_one()
        mail = session.get_one(Interaction, reminder.interaction_id)
    assert reminder.reason == "mail_note" and reminder.assignee_id == tom and reminder.created_by_id == tom
    assert reminder.contact_id == klaus.id and mail.subject == "Ersatzteilbestellung Prägestempel"
    assert reminder.title == "Follow up: Ersatzteilbestellung Prägestempel"
    local = reminder.due_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    assert (local.strftime("%A"), local.hour, local.minute) == ("Friday", 10, 0)
    assert "reminder" in (mail.attribution_reason or "")


def test_a_forwarding_note_without_a_follow_up_makes_no_reminder(crm):
    with unit_of_work(crm.factory) as session:
        add_staff(session, "tom.becker@beispiel-firma.de", "Tom Becker")
    forward(crm, "FYI, bitte Liefertermin prüfen")
    forward(crm, "Wiedervorlage irgendwann mal")
    with crm.factory() as session:
        assert session.execute(select(Reminder)).scalars().all() == []

"""Names and titles are one line, whatever the input (API, forms, mail headers): control characters become
spaces, so no name can add lines to a notification mail. Subjects are stored whole, but lists show at most
200 characters, so a 4 MB subject makes no page 4 MB."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from typing import Any

import pytest

from crm_inbox import outbox
from crm_inbox.config import replace
from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, accept
from crm_inbox.models import (
    Company,
    Contact,
    ContactEmail,
    Direction,
    InteractionKind,
    Reminder,
    StaffUser,
    Ticket,
    utcnow,
)
from crm_inbox.pipeline.runner import process
from crm_inbox.reminders.service import fire_due
from crm_inbox.staff.service import add_staff, find_staff
from crm_inbox.text import LIST_LENGTH, shorten, single_line
from crm_inbox.timeline.service import record_interaction
from tests.conftest import CRM
from tests.test_outgoing_headers import assert_no_injection
from tests.test_pages import PASSWORD, STAFF, csrf_token, log_in
from tests.test_tickets import sink  # noqa: F401  (a fixture: an SMTP listener that keeps what it gets)

HOSTILE = "Claus\r\nBcc: victim@evil.example\tX\x0bY\x7fZ\x85W\x9b1m\u2028Jürgens"
ONE_LINE = re.compile(r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$")
BIG = 4 * 1024 * 1024


def one_line(text: str | None) -> bool:
    return text is not None and bool(ONE_LINE.match(text))


@pytest.mark.parametrize(("typed", "stored"), [
    ("Claus\r\nJürgens", "Claus Jürgens"), ("\tClaus\x00\x01 Jürgens\x7f", "Claus  Jürgens"),
    ("A\x85B\x9fC\u2028D\u2029E", "A B C D E"), ("Müller & Söhne GmbH", "Müller & Söhne GmbH"),
])
def test_single_line_turns_every_control_character_into_a_space(typed, stored):
    assert single_line(typed) == stored


def test_lists_show_at_most_200_characters_marked_by_an_ellipsis():
    assert shorten("x" * LIST_LENGTH) == "x" * LIST_LENGTH
    assert shorten("x" * (LIST_LENGTH + 1)) == "x" * (LIST_LENGTH - 1) + "…"
    assert len(shorten("y" * BIG)) == LIST_LENGTH
    assert shorten(None) == ""


def test_names_from_the_api_are_one_line(client, auth):
    answer = client.post("/api/v1/contacts", json={"name": HOSTILE, "emails": ["claus@kunde.de"],
                                                   "tags": ["VIP\r\nBcc: x"]}, headers=auth)
    assert answer.status_code == 201, answer.get_json()
    contact = answer.get_json()
    assert contact["name"] == "Claus Bcc: victim@evil.example X Y Z W 1m Jürgens"
    assert contact["tags"] == ["VIP Bcc: x"]
    answer = client.patch(f"/api/v1/contacts/{contact['id']}", json={"name": "Eve\nX-Injected: yes"}, headers=auth)
    assert answer.get_json()["name"] == "Eve X-Injected: yes"
    assert client.patch(f"/api/v1/contacts/{contact['id']}", json={"name": "\r\n\t"},
                        headers=auth).get_json()["name"] is None  # nothing but control characters: no name

    answer = client.post("/api/v1/companies", json={"name": "Müller\r\nGmbH", "industry": "Maschinen\tbau"},
                         headers=auth)
    assert answer.status_code == 201
    assert (answer.get_json()["name"], answer.get_json()["industry"]) == ("Müller GmbH", "Maschinen bau")
    company_id = answer.get_json()["id"]
    answer = client.patch(f"/api/v1/companies/{company_id}", json={"name": "Müller\x85AG"}, headers=auth)
    assert answer.get_json()["name"] == "Müller AG"
    assert client.patch(f"/api/v1/companies/{company_id}", json={"name": "\r\n"}, headers=auth).status_code == 400


def test_titles_and_subjects_staff_set_over_the_api_are_one_line(client, auth, factory):
    with unit_of_work(factory) as session:
        ticket = Ticket(subject="Lieferung", number=10001)
        session.add(ticket)
        session.flush()
        ticket_id = ticket.id
    answer = client.patch(f"/api/v1/tickets/{ticket_id}", json={"subject": "Lieferung\r\nBcc: x\x01y"}, headers=auth)
    assert answer.status_code == 200, answer.get_json()
    answer = client.post("/api/v1/reminders", json={"title": "Anrufen\r\nBcc: x\x7f", "due": "tomorrow 9:00"},
                         headers=auth)
    assert answer.status_code == 201, answer.get_json()
    reminder_id = answer.get_json()["id"]
    answer = client.patch(f"/api/v1/reminders/{reminder_id}", json={"title": "Nochmal\x0b\x0canrufen"}, headers=auth)
    assert answer.status_code == 200, answer.get_json()
    with factory() as session:
        assert session.get_one(Ticket, ticket_id).subject == "Lieferung Bcc: x y"
        assert session.get_one(Reminder, reminder_id).title == "Nochmal anrufen"


def test_names_from_the_pages_forms_are_one_line(app, factory):
    with unit_of_work(factory) as session:
        admin = add_staff(session, STAFF, "Jonas Becker", "admin", password=PASSWORD)
        colleague = add_staff(session, "anna@beispiel-firma.de", "Anna\r\nBcc: x")
        person = Contact(name="Claus", tags=[], fields={})
        session.add(person)
        session.flush()
        admin_id, colleague_id, contact_id = admin.id, colleague.id, person.id
    browser = app.test_client()
    log_in(browser)

    def post(url: str, page: str, data: dict[str, str]) -> Any:
        token = csrf_token(browser.get(page).get_data(as_text=True))
        return browser.post(url, data={"csrf_token": token, **data})

    page = f"/contacts/{contact_id}"
    assert post(f"{page}/edit", page, {"name": "Claus\x85Jürgens", "company": "Müller\x1fGmbH",
                                       "tags": "A\tB"}).status_code == 302
    url = f"/admin/users/{admin_id}"
    assert post(url, url, {"name": "Jonas\x0bBecker\x9b", "emails": STAFF, "role": "admin",
                           "active": "on"}).status_code == 302
    with factory() as session:
        person = session.get_one(Contact, contact_id)
        assert (person.name, person.tags) == ("Claus Jürgens", ["A B"])
        assert session.get_one(Company, person.company_id).name == "Müller GmbH"
        assert session.get_one(StaffUser, admin_id).name == "Jonas Becker"
        assert session.get_one(StaffUser, colleague_id).name == "Anna Bcc: x"  # add_staff (CLI, admin page)


def test_a_display_name_with_encoded_line_breaks_makes_a_one_line_lead(factory, settings):
    encoded = base64.b64encode("Eve\r\nX-Injected: yes\x85Mallory\x01\x9b[31m".encode()).decode()
    raw = (f"From: =?utf-8?B?{encoded}?= <eve@evil-kunde.de>\r\nTo: {CRM}\r\nSubject: Anfrage\r\n"
           "Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <lead.1@evil-kunde.de>\r\n\r\nHallo\r\n").encode()
    with unit_of_work(factory) as session:
        inbound_id = accept(session, raw, Envelope(mail_from="eve@evil-kunde.de", rcpt_to=(CRM,))).inbound_id
    process(factory, settings, inbound_id)
    with factory() as session:
        lead = session.query(Contact).join(ContactEmail).filter(ContactEmail.email == "eve@evil-kunde.de").one()
        assert one_line(lead.name) and "Mallory" in (lead.name or ""), lead.name


def test_no_name_or_title_adds_a_line_to_a_reminder_mail(client, auth, factory, settings, sink):  # noqa: F811
    handler, port = sink
    settings = replace(settings, notifications={"smtp_host": "127.0.0.1", "smtp_port": port, "timeout_seconds": 10})
    answer = client.post("/api/v1/contacts", json={"name": "Claus\r\nOpen: https://evil.example/login"},
                         headers=auth)
    contact_id = answer.get_json()["id"]
    with unit_of_work(factory) as session:
        # A company name from before names were cleaned on input: the mail still keeps it on one line.
        company = Company(name="Müller\nKlick hier: https://evil.example", tags=[], fields={})
        session.add(company)
        session.flush()
        session.get_one(Contact, contact_id).company_id = company.id
    answer = client.post("/api/v1/reminders", json={
        "title": "Anrufen\r\nBcc: victim@evil.example", "due_at": (utcnow() - timedelta(minutes=1)).isoformat(),
        "contact_id": contact_id, "assignee_id": find_staff_id(factory)}, headers=auth)
    assert answer.status_code == 201, answer.get_json()

    assert fire_due(factory, settings) == 1
    assert outbox.send_pending(factory, settings) == {"sent": 1, "failed": 0}
    (mail,) = handler.received
    assert_no_injection(mail.raw)
    body = mail.message.get_content().splitlines()
    assert "Wiedervorlage / Reminder: Anrufen Bcc: victim@evil.example" in body
    assert "Customer: Claus Open: https://evil.example/login (Müller Klick hier: https://evil.example)" in body
    assert not [line for line in body if line.startswith(("Bcc:", "Open:", "Klick hier:"))]


def find_staff_id(factory: Any) -> int:
    with factory() as session:
        user = find_staff(session, "anna.schmidt@beispiel-firma.de")  # the token's user (conftest)
        assert user is not None
        return user.id


def test_a_4_mb_subject_is_kept_whole_but_makes_no_list_big(app, client, auth, factory):
    subject = "Angebot " + "x" * BIG
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        person = Contact(name="Claus Jürgens", tags=[], fields={})
        person.emails = [ContactEmail(email="claus@kunde.de")]
        session.add(person)
        session.flush()
        linked = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.IN,
                                    occurred_at=utcnow(), subject=subject, text="Hallo", contacts=[(person, "from")])
        waiting = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.IN,
                                     occurred_at=utcnow(), subject=subject, text="Hallo", contacts=[])
        session.flush()
        contact_id, linked_id, waiting_id = person.id, linked.id, waiting.id
    browser = app.test_client()
    log_in(browser)
    for page in ("/dashboard", f"/contacts/{contact_id}", "/triage", "/search/mail?q=Angebot"):
        answer = browser.get(page)
        assert answer.status_code == 200, page
        html = answer.get_data(as_text=True)
        assert len(answer.data) < 200_000, (page, len(answer.data))
        assert "Angebot " + "x" * (LIST_LENGTH - 10) in html and "x" * (LIST_LENGTH + 1) not in html, page

    page = browser.get(f"/interactions/{linked_id}").get_data(as_text=True)
    assert subject in page  # its own page shows all of it
    answer = client.get(f"/api/v1/interactions/{waiting_id}", headers=auth)
    assert answer.get_json()["subject"] == subject

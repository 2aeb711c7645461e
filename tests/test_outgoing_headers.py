"""Header injection in the mail the CRM sends: CR/LF in anything copied into a header (a customer's subject
or display name, a reminder title, a Message-ID) is encoded, never a new header line; a recipient that is
not one plain address is refused. Checked on the bytes an SMTP sink really receives."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest

from crm_inbox import outbox
from crm_inbox.config import replace
from crm_inbox.db import unit_of_work
from crm_inbox.models import OutgoingMail, utcnow
from crm_inbox.reminders.service import ReminderInput, create, fire_due
from crm_inbox.staff.service import add_staff
from tests.conftest import SUPPORT, make_settings
from tests.test_tickets import CollectingHandler, running, sink  # noqa: F401  (sink is a fixture)

INJECTED = "Hallo\r\nBcc: victim@evil.example\r\nX-Injected: yes"
EXPECTED_HEADERS = {"from", "to", "subject", "date", "message-id", "content-type", "content-transfer-encoding",
                    "mime-version", "auto-submitted", "x-auto-response-suppress", "precedence", "x-crm-inbox-ticket",
                    "in-reply-to", "references", "x-crm-inbox-reminder"}


def header_lines(raw: bytes) -> list[str]:
    """The names of the header fields as a mail client reads them (continuation lines belong to the one before)."""
    head = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n")
    return [line.split(":", 1)[0].lower() for line in head.decode("ascii").split("\n") if line[:1] not in (" ", "\t")]


def assert_no_injection(raw: bytes) -> None:
    names = header_lines(raw)
    assert "bcc" not in names and "x-injected" not in names, names
    assert set(names) <= EXPECTED_HEADERS, set(names) - EXPECTED_HEADERS
    assert len(names) == len(set(names)), names  # no header twice
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in head and b"\nX-Injected:" not in head


def test_a_hostile_subject_and_name_in_a_customer_mail_do_not_inject_into_the_acknowledgement(
        database_url: str, tmp_path: Path, sink):  # noqa: F811
    handler, port = sink
    settings = make_settings(database_url, tmp_path / "instance",
                             tickets={"acknowledge": True, "ack_body": "Guten Tag {name},\n\n{ticket}: {subject}\n"},
                             notifications={"smtp_host": "127.0.0.1", "smtp_port": port, "from_address": SUPPORT,
                                            "timeout_seconds": 10})
    subject = "=?utf-8?B?" + base64.b64encode(INJECTED.encode()).decode() + "?="
    raw = ("From: =?utf-8?Q?Eve=0D=0AX-Injected:=20name?= <eve@evil-kunde.de>\r\n"
           f"To: {SUPPORT}\r\nSubject: {subject}\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n"
           "Message-ID:\r\n <hostile.1@evil-kunde.de>\r\n X-Injected: yes\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nBitte um Rueckruf.\r\n").encode()
    with running(settings) as crm:
        crm.send(raw, envelope_from="eve@evil-kunde.de")
        crm.settle()
    (ack,) = handler.received
    assert ack.rcpt_tos == ["eve@evil-kunde.de"]  # nobody else, whatever the headers said
    assert_no_injection(ack.raw)
    msg = ack.message
    assert "Bcc: victim@evil.example" in msg["Subject"]  # the text is kept, as harmless words in one line
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]


def test_a_reminder_title_with_line_breaks_stays_in_the_subject(factory, settings, sink):  # noqa: F811
    handler, port = sink
    settings = replace(settings, notifications={"smtp_host": "127.0.0.1", "smtp_port": port, "timeout_seconds": 10})
    with unit_of_work(factory) as session:
        anna = add_staff(session, "anna@beispiel-firma.de", "Anna\r\nBcc: victim@evil.example")
        create(session, ReminderInput(title=INJECTED, due_at=utcnow() - timedelta(minutes=1),
                                      note="Zeile 1\r\n.\r\nMAIL FROM:<x@evil.example>\r\n"), anna.id)
    assert fire_due(factory, settings) == 1
    assert outbox.send_pending(factory, settings) == {"sent": 1, "failed": 0}
    (mail,) = handler.received
    assert mail.rcpt_tos == ["anna@beispiel-firma.de"]
    assert_no_injection(mail.raw)
    assert mail.message["Subject"].startswith("Wiedervorlage: Hallo Bcc: victim@evil.example")
    assert "MAIL FROM:<x@evil.example>" in mail.message.get_content()  # the body is text, dot-stuffed on the wire


@pytest.mark.parametrize("to", [
    "a@kunde.de, victim@evil.example", "a@kunde.de\r\nBcc: victim@evil.example", "Eve <a@kunde.de>",
    "a@kunde.de;victim@evil.example", "@relay:a@kunde.de", "a@b@kunde.de", "", "a@kunde..de",
])
def test_a_recipient_that_is_not_one_plain_address_is_never_queued(factory, settings, to):
    with unit_of_work(factory) as session:
        assert outbox.enqueue(session, settings, purpose="test", dedupe_key=f"t:{to}", to=to, subject="x",
                              body="x") is None
    with factory() as session:
        assert session.query(OutgoingMail).count() == 0


def test_header_values_and_names_from_callers_are_one_line(factory, settings):
    with unit_of_work(factory) as session:
        mail = outbox.enqueue(session, settings, purpose="test", dedupe_key="t:1", to="a@kunde.de",
                              subject=INJECTED, body="x",
                              headers={"In-Reply-To": "<a@b>\r\nBcc: victim@evil.example", "Bad\r\nName": "x",
                                       "X-Ok": "1\n2\x00"})
        assert mail is not None
        raw = outbox.build_message(settings, mail).as_bytes(policy=outbox.EmailMessage().policy.clone(linesep="\r\n"))
    names = header_lines(raw)
    assert "bcc" not in names and "bad" not in names and "x-injected" not in names
    assert mail.headers == {"In-Reply-To": "<a@b> Bcc: victim@evil.example", "X-Ok": "1 2"}

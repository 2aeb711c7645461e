"""Robots never become leads: every bounce, delivery report, feedback report, list-manager error and
auto-reply in tests/mail-robots/ goes through the real intake and pipeline, is recognised as automatic,
creates no lead and names the recipients that failed; a known contact's failed address is marked
bouncing. Human mail in the same corpus that only looks a bit like a robot stays ordinary."""

from __future__ import annotations

import json
import smtplib
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, envelope_sender, store
from crm_inbox.mail.addresses import NULL_SENDER
from crm_inbox.models import Contact, ContactEmail, InboundMessage, Interaction
from crm_inbox.pipeline.runner import process
from crm_inbox.staff.service import add_staff
from tests.conftest import CRM

CORPUS = Path(__file__).parent / "mail-robots"
KLAUS = "klaus.mueller@mueller-maschinenbau.de"
NAMES = sorted(p.stem for p in CORPUS.glob("*.eml"))


def expected(name: str) -> dict:
    return json.loads((CORPUS / f"{name}.json").read_text(encoding="utf-8"))


def load_world(factory) -> int:
    with unit_of_work(factory) as session:
        add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt")
        klaus = Contact(name="Klaus Müller", tags=[], fields={}, origin="manual")
        klaus.emails = [ContactEmail(email=KLAUS)]
        session.add(klaus)
        session.flush()
        return klaus.id


@dataclass
class Landed:
    automatic: str | None
    reason: str
    contact_ids: list[int]


def deliver(factory, settings, name: str, *, cr_only: bool = False) -> Landed:
    """As the corpus says it arrived: over SMTP with its envelope, or from IMAP/a file without one; ``cr_only``
    with old Mac line ends (a lone CR), as an archive may hold them."""
    spec = expected(name)
    raw = (CORPUS / f"{name}.eml").read_bytes()
    if cr_only:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r")
    envelope = Envelope(mail_from=spec["mail_from"] if spec["source"] == "smtp" else None, rcpt_to=(CRM,),
                        peer="203.0.113.5", source=spec["source"])
    outcome = process(factory, settings, store(factory, raw, envelope).inbound_id)
    assert outcome.interaction_id is not None, f"{name}: {outcome}"
    with factory() as session:
        interaction = session.get_one(Interaction, outcome.interaction_id)
        return Landed(interaction.details.get("automatic"), interaction.attribution_reason or "",
                      list(interaction.contact_ids))


def contacts(factory) -> list[str]:
    with factory() as session:
        return list(session.execute(select(ContactEmail.email).order_by(ContactEmail.email)).scalars())


def bouncing(factory) -> list[str]:
    with factory() as session:
        return list(session.execute(select(ContactEmail.email).where(ContactEmail.bouncing)).scalars())


def test_corpus_covers_the_shapes():
    kinds = [expected(n)["kind"] for n in NAMES]
    assert len(NAMES) >= 80
    for kind in ("dsn", "bounce", "arf", "list", "auto-reply", "mdn", "human"):
        assert kind in kinds, kind
    assert sum(len(expected(n)["failed"]) > 1 for n in NAMES) >= 5  # several failed recipients in one report


# SMTP refuses a bare CR, so old Mac line ends only come from files and mailboxes.
CASES = [pytest.param(n, False, id=n) for n in NAMES] + [
    pytest.param(n, True, id=f"{n}-cr-only") for n in NAMES if expected(n)["source"] != "smtp"]


@pytest.mark.parametrize(("name", "cr_only"), CASES)
def test_robot_creates_no_lead_and_names_its_failed_recipients(name, cr_only, settings, factory):
    spec = expected(name)
    klaus_id = load_world(factory)
    interaction = deliver(factory, settings, name, cr_only=cr_only)
    why = f"{name}: {spec['description']} — reason: {interaction.reason}"

    assert bool(interaction.automatic) == spec["automatic"], why
    if not spec["automatic"]:  # a person: an ordinary mail that makes its sender a lead
        assert len(contacts(factory)) == 2, why
        return
    assert contacts(factory) == [KLAUS], f"{why}: a robot created a lead"
    for email in spec["failed"]:
        assert email in interaction.reason, f"{why}: failed recipient {email} not named"
    assert bouncing(factory) == ([KLAUS] if KLAUS in spec["failed"] else []), why
    if KLAUS in spec["failed"]:
        assert interaction.contact_ids == [klaus_id], why


def test_every_per_recipient_block_of_a_report_is_kept(settings, factory):
    load_world(factory)
    reason = deliver(factory, settings, "dsn-mixed-actions").reason
    # delivered, delayed and failed: all three blocks with their status and diagnostic
    assert f"{KLAUS} delivered 2.0.0" in reason
    assert "m.weber@example.org delayed 4.4.1 (smtp; connection timed out)" in reason
    assert "j.vos@example.net failed 5.1.1 (smtp; 550 unknown user)" in reason
    assert bouncing(factory) == []  # Klaus's copy was delivered: his address is fine


def test_a_known_contacts_failed_address_is_marked_bouncing_among_several(settings, factory):
    klaus_id = load_world(factory)
    interaction = deliver(factory, settings, "dsn-postfix-three")
    assert bouncing(factory) == [KLAUS]
    assert f"marked {KLAUS} as bouncing" in interaction.reason  # only the contact's address, not the others
    assert interaction.contact_ids == [klaus_id]
    assert contacts(factory) == [KLAUS]
    for status in ("5.1.1", "5.2.2"):
        assert status in interaction.reason


@pytest.mark.parametrize("given", ["<>", "", "< >", " <> "])
def test_the_null_sender_has_one_stored_form(given):
    assert envelope_sender(given, b"Subject: x\r\n\r\nbody\r\n") == NULL_SENDER


def test_imap_and_files_take_the_null_sender_from_return_path():
    assert envelope_sender(None, b"Return-Path: <>\r\nSubject: x\r\n\r\nbody\r\n") == NULL_SENDER
    assert envelope_sender(None, b"Return-Path: <a@example.org>\r\nSubject: x\r\n\r\n") is None
    assert envelope_sender(None, b"Subject: x\r\n\r\nReturn-Path: <>\r\n") is None  # the body is no header
    assert envelope_sender("a@example.org", b"Return-Path: <>\r\n\r\n") == "a@example.org"


AUTO_REPLY = (b"From: Hanna Koenig <h.koenig@example.org>\r\nTo: crm@beispiel-firma.de\r\nSubject: Ihre Nachricht\r\n"
              b"Date: Tue, 1 Dec 2026 10:15:00 +0100\r\nMessage-ID: <null-sender-regression@example.org>\r\n\r\n"
              b"Vielen Dank, wir melden uns bald.\r\n")


def test_mail_from_null_over_real_smtp_creates_no_lead(service, factory):
    """The regression: MAIL FROM:<> was stored as "<>" and the rule looked for "", so this became a lead."""
    with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=60) as client:
        assert client.sendmail("", [CRM], AUTO_REPLY) == {}  # smtplib sends MAIL FROM:<>
    service.worker.wait_idle()
    with factory() as session:
        stored = session.execute(select(InboundMessage)).scalar_one()
        assert stored.envelope_from == NULL_SENDER
        assert session.execute(select(func.count()).select_from(Contact)).scalar_one() == 0
        interaction = session.execute(select(Interaction)).scalar_one()
        assert "null envelope sender" in str(interaction.details.get("automatic"))


def test_nul_characters_in_a_report_never_stop_it_being_recorded(settings, factory):
    """PostgreSQL cannot store NUL: the per-recipient blocks and header text go into the reason without it."""
    load_world(factory)
    raw = ("From: MAILER-DAEMON@mx.example.net\r\nTo: anna.schmidt@beispiel-firma.de\r\nSubject: Undelivered\r\n"
           "Auto-Submitted: auto-replied\x00\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
           "--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
           f"Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; {KLAUS}\r\nAction: failed\x00\r\n"
           "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 no\x00 such user\r\n--B--\r\n").encode()
    outcome = process(factory, settings, store(factory, raw, Envelope(mail_from="<>", rcpt_to=(CRM,))).inbound_id)
    assert outcome.interaction_id is not None
    with factory() as session:
        reason = session.get_one(Interaction, outcome.interaction_id).attribution_reason or ""
    assert f"{KLAUS} failed 5.1.1 (smtp; 550 no such user)" in reason
    assert bouncing(factory) == [KLAUS]

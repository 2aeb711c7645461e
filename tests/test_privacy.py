"""Data protection: a person's data as an archive, erasing the person everywhere (and staying erased when
their mail comes again), retention of raw mail and call records, the CLI and the API.

Mail and calls arrive the real way (intake, worker, call events); afterwards every table is searched for
the person's address, name and number."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import pytest
from sqlalchemy import ForeignKey, select, update

from crm_inbox import cli
from crm_inbox.calls.service import CallEvent, apply_event
from crm_inbox.contacts.merge import CONTACT_REFERENCES
from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, accept
from crm_inbox.models import (
    AuditEntry,
    Base,
    Call,
    Direction,
    InboundMessage,
    InboundState,
    Interaction,
    Ticket,
    utcnow,
)
from crm_inbox.pipeline.runner import process
from crm_inbox.privacy.redaction import Redactor
from crm_inbox.privacy.retention import purge
from crm_inbox.scheduler import RETENTION, Scheduler
from tests.conftest import CRM, SUPPORT, make_settings, make_token
from tests.test_api import API, assert_error, create_contact

PETRA = "petra.privat@privat-mail.example"
PETRA_NAME = "Petra Privat"
PETRA_PHONE = "0171 5550123"
PETRA_DIGITS = "1715550123"
BERT = "bert.bekannt@bekannt.example"
STAFF_SENDER = "anna.schmidt@beispiel-firma.de"  # the admin of the ``auth`` fixture


def mail(sender: str, to: str, subject: str, body: str, *, message_id: str,
         attachment: tuple[str, bytes] | None = None, when: datetime | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when or datetime.now(UTC))
    msg["Message-ID"] = message_id
    msg.set_content(body)
    if attachment:
        msg.add_attachment(attachment[1], maintype="application", subtype="pdf", filename=attachment[0])
    return msg.as_bytes()


def deliver(factory, settings, raw: bytes, mail_from: str, rcpt: str = CRM) -> tuple[int, Any]:  # type: ignore[no-untyped-def]
    """Accept over the intake and process; returns (inbound id, outcome or None for a duplicate)."""
    with unit_of_work(factory) as session:
        accepted = accept(session, raw, Envelope(mail_from=mail_from, rcpt_to=(rcpt,), peer="127.0.0.1"))
    if accepted.duplicate:
        return accepted.inbound_id, None
    return accepted.inbound_id, process(factory, settings, accepted.inbound_id)


def call(factory, settings, call_id: str, number: str, when: datetime) -> int:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        event = CallEvent("generic", call_id, "hangup", when, direction=Direction.IN, from_number=number,
                          to_number="22", cause="noAnswer")
        made, _ = apply_event(session, settings, event)
        return made.id


@pytest.fixture
def world(client, auth, factory, settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Petra (mail with an attachment, a support ticket with a note, a missed call, a reminder, a note, a
    mail shared with Bert) and Bert, who stays."""
    bert = create_contact(client, auth, name="Bert Bekannt", emails=[BERT], role="customer")
    # Before she is known: her out-of-office reply, which creates no lead and waits in triage.
    auto = mail(f"{PETRA_NAME} <{PETRA}>", CRM, "Abwesenheitsnotiz", "Ich bin bis Montag nicht da.\n",
                message_id="<ooo@privat-mail.example>")
    auto = auto.replace(b"Subject:", b"Auto-Submitted: auto-replied\nSubject:", 1)
    _, ooo = deliver(factory, settings, auto, PETRA)
    unassigned = client.get(f"{API}/interactions", query_string={"unassigned": 1}, headers=auth).json["items"]
    assert [i["id"] for i in unassigned] == [ooo.interaction_id]
    first = mail(f"{PETRA_NAME} <{PETRA}>", CRM, "Angebot bitte", "Guten Tag,\nbitte ein Angebot.\nPetra Privat\n",
                 message_id="<angebot-1@privat-mail.example>", attachment=("anfrage.pdf", b"%PDF-1.4 Petra Privat"))
    first_inbound, outcome = deliver(factory, settings, first, PETRA)
    petra_id = contact_for(client, auth, PETRA)
    response = client.patch(f"{API}/contacts/{petra_id}", headers=auth,
                            json={"phones": [PETRA_PHONE], "tags": ["Messe"], "fields": {"Hobby": "Segeln"}})
    assert response.status_code == 200, response.json
    _, support = deliver(factory, settings, mail(f"{PETRA_NAME} <{PETRA}>", SUPPORT, "Drucker defekt",
                                                 "Der Drucker druckt nicht.\n",
                                                 message_id="<drucker@privat-mail.example>"), PETRA, rcpt=SUPPORT)
    assert support.state == InboundState.PROCESSED
    with factory() as session:
        ticket = session.execute(select(Ticket).where(Ticket.contact_id == petra_id)).scalar_one()
    assert client.post(f"{API}/tickets/{ticket.id}/notes", headers=auth,
                       json={"text": "Petra Privat ruft morgen an"}).status_code == 201
    call_id = call(factory, settings, "petra-1", PETRA_PHONE, datetime.now(UTC) - timedelta(hours=1))
    assert client.post(f"{API}/reminders", headers=auth, json={
        "title": "Petra Privat zurückrufen", "due": "tomorrow 9:00", "contact_id": petra_id}).status_code == 201
    assert client.post(f"{API}/contacts/{petra_id}/notes", headers=auth,
                       json={"text": f"Privatnummer {PETRA_PHONE}"}).status_code == 201
    shared_raw = mail(f"Anna Schmidt <{STAFF_SENDER}>", f"{PETRA_NAME} <{PETRA}>, Bert Bekannt <{BERT}>",
                      "Termin", f"Hallo Petra Privat, hallo Bert,\nTermin am Montag. Petra: {PETRA_PHONE}.\n",
                      message_id="<termin@beispiel-firma.de>")
    _, shared = deliver(factory, settings, shared_raw, STAFF_SENDER)
    assert client.patch(f"{API}/contacts/{bert['id']}", headers=auth,
                        json={"fields": {"Kontakt": f"Kollege von {PETRA_NAME} ({PETRA})"}}).status_code == 200
    # A mail of hers that failed to process (it waits in triage with its raw bytes).
    with unit_of_work(factory) as session:
        stuck = accept(session, mail(f"{PETRA_NAME} <{PETRA}>", CRM, "Kaputt", "kaputt\n",
                                     message_id="<kaputt@privat-mail.example>"),
                       Envelope(mail_from="bounce-relay@relay.example", rcpt_to=(CRM,), peer="127.0.0.1"))
        session.execute(update(InboundMessage).where(InboundMessage.id == stuck.inbound_id)
                        .values(state=InboundState.FAILED, error="RuntimeError: simulated bug"))
    return {"petra": petra_id, "bert": bert["id"], "first_raw": first, "first_inbound": first_inbound,
            "first_interaction": outcome.interaction_id, "ticket": ticket.id, "call": call_id,
            "shared": shared.interaction_id}


def contact_for(client, auth, email: str) -> int:  # type: ignore[no-untyped-def]
    items = client.get(f"{API}/contacts", query_string={"email": email}, headers=auth).json["items"]
    assert len(items) == 1, items
    return int(items[0]["id"])


def traces(factory) -> list[str]:  # type: ignore[no-untyped-def]
    """Where in the database Petra's address, name or number still is (raw bytes and JSON included)."""
    needles = (PETRA, PETRA_NAME.casefold(), "privat-mail.example")
    found = []
    with factory() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    if isinstance(value, bytes):
                        text = value.decode("latin-1")
                    elif isinstance(value, str):
                        text = value
                    else:
                        text = json.dumps(value, ensure_ascii=False, default=str)
                    if any(n in text.casefold() for n in needles) or PETRA_DIGITS in re.sub(r"\D", "", text):
                        found.append(f"{table.name}.{column} (id {row.get('id')}): {text[:120]!r}")
    return found


def test_every_table_that_references_a_contact_is_known_to_merge_and_erasure():
    handled = {"contact_emails", "contact_phones", "interaction_contacts", "campaign_recipients",
               *(m.__tablename__ for m in CONTACT_REFERENCES)}
    referencing = {fk.parent.table.name for table in Base.metadata.sorted_tables for fk in table.foreign_keys
                   if isinstance(fk, ForeignKey) and fk.column.table.name == "contacts"}
    assert referencing == handled


def test_export_holds_everything_about_the_person(client, auth, factory, world):
    response = client.get(f"{API}/contacts/{world['petra']}/export", headers=auth)
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    data = json.loads(archive.read("contact.json"))
    assert data["format"] == "crm-inbox-export/1"
    person = data["contact"]
    assert person["name"] == PETRA_NAME and [e["email"] for e in person["emails"]] == [PETRA]
    assert person["phones"][0]["e164"] == "+49" + PETRA_DIGITS
    assert person["tags"] == ["Messe"] and person["fields"] == {"Hobby": "Segeln"}

    by_subject = {i["subject"]: i for i in data["interactions"]}
    first = by_subject["Angebot bitte"]
    assert "bitte ein Angebot" in first["text"] and first["attribution_reason"]
    assert [a["filename"] for a in first["attachments"]] == ["anfrage.pdf"]
    assert archive.read(first["attachments"][0]["file"]) == b"%PDF-1.4 Petra Privat"
    assert archive.read(first["raw_message"]) == world["first_raw"]
    assert "Termin" in by_subject  # the shared mail is part of her data too
    assert any(i["kind"] == "call" for i in data["interactions"])
    assert any(i["kind"] == "note" and PETRA_PHONE in i["text"] for i in data["interactions"])

    [ticket] = data["tickets"]
    assert ticket["subject"] == "Drucker defekt" and ticket["opened_by_email"] == PETRA
    assert {e["kind"] for e in ticket["events"]} >= {"opened", "note"}
    [phone_call] = data["calls"]
    assert phone_call["remote_e164"] == "+49" + PETRA_DIGITS and phone_call["events"][0]["kind"] == "hangup"
    titles = {r["title"] for r in data["reminders"]}
    assert "Petra Privat zurückrufen" in titles and any(r["reason"] == "missed_call" for r in data["reminders"])
    assert any(a["action"] == "update" and a["object_type"] == "contact" for a in data["audit_log"])

    with factory() as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "export")).scalar_one()
        assert entry.object_id == world["petra"] and entry.staff_id is not None


def test_erasure_removes_the_person_everywhere_and_keeps_what_others_need(client, auth, factory, settings, world):
    assert traces(factory)  # the search does find her before
    response = client.post(f"{API}/contacts/{world['petra']}/erase", headers=auth)
    assert response.status_code == 200, response.json
    counts = response.json["counts"]
    assert counts["tickets"] == 1 and counts["calls"] == 1 and counts["reminders"] >= 3
    assert counts["shared_interactions_kept"] == 1 and counts["attachments"] == 1

    assert traces(factory) == []
    assert_error(client.get(f"{API}/contacts/{world['petra']}", headers=auth), 404)
    # The mail shared with Bert stays for him, without her.
    bert_timeline = client.get(f"{API}/contacts/{world['bert']}/timeline", headers=auth).json["items"]
    assert [i["subject"] for i in bert_timeline] == ["Termin"]
    shared = client.get(f"{API}/interactions/{world['shared']}", headers=auth).json
    assert shared["contact_ids"] == [world["bert"]]
    assert "hallo Bert" in shared["text"] and "[erased]" in shared["text"]
    assert client.get(f"{API}/contacts/{world['bert']}", headers=auth).json["fields"] == {
        "Kontakt": "Kollege von [erased] ([erased])"}
    with factory() as session:
        assert session.get(Interaction, world["first_interaction"]) is None
        tombstone = session.get_one(InboundMessage, world["first_inbound"])
        assert tombstone.state == InboundState.ERASED and tombstone.raw == b"" and tombstone.envelope_from is None
        assert tombstone.message_id is None and tombstone.message_id_sha256
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "erase")).scalar_one()
        assert entry.object_id == world["petra"] and entry.staff_id is not None
        assert all(isinstance(v, int) for v in entry.details.values())  # counts only
        assert session.execute(select(Ticket)).scalars().all() == []
        assert session.execute(select(Call)).scalars().all() == []


def test_erased_mail_stays_erased_and_a_new_mail_makes_a_fresh_lead(client, auth, factory, settings, world):
    assert client.post(f"{API}/contacts/{world['petra']}/erase", headers=auth).status_code == 200
    contacts_before = client.get(f"{API}/contacts", headers=auth).json["items"]

    # The same message delivered again: a duplicate of the tombstone, nothing is processed.
    inbound_id, outcome = deliver(factory, settings, world["first_raw"], PETRA)
    assert inbound_id == world["first_inbound"] and outcome is None
    # A copy a relay changed (another header): the same Message-ID, still erased.
    changed = world["first_raw"].replace(b"Subject:", b"X-Relay-Note: rewritten\nSubject:", 1)
    copy_id, outcome = deliver(factory, settings, changed, PETRA)
    assert copy_id != inbound_id and outcome.state == InboundState.ERASED and outcome.interaction_id is None
    assert client.get(f"{API}/contacts", headers=auth).json["items"] == contacts_before
    assert traces(factory) == []

    # A new mail from her address: a fresh lead that knows nothing of the old data.
    _, outcome = deliver(factory, settings, mail(f"{PETRA_NAME} <{PETRA}>", CRM, "Wieder da", "Hallo!\n",
                                                 message_id="<neu@privat-mail.example>"), PETRA)
    assert outcome.state == InboundState.PROCESSED
    fresh = contact_for(client, auth, PETRA)
    body = client.get(f"{API}/contacts/{fresh}", headers=auth).json
    assert body["phones"] == [] and body["tags"] == [] and body["fields"] == {} and body["role"] == "lead"
    timeline = client.get(f"{API}/contacts/{fresh}/timeline", headers=auth).json["items"]
    assert [i["subject"] for i in timeline] == ["Wieder da"]
    assert client.get(f"{API}/tickets", query_string={"contact_id": fresh}, headers=auth).json["items"] == []
    assert client.get(f"{API}/reminders", query_string={"contact_id": fresh}, headers=auth).json["items"] == []
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"{API}/contacts/{fresh}/export", headers=auth).data))
    exported = json.loads(archive.read("contact.json"))
    assert [i["subject"] for i in exported["interactions"]] == ["Wieder da"]
    assert exported["calls"] == [] and exported["tickets"] == [] and exported["reminders"] == []
    assert all(a["action"] != "erase" for a in exported["audit_log"])  # not even with a reused id
    assert archive.namelist() == ["mail/" + archive.namelist()[0][5:], "contact.json"]


def test_retention_purges_old_raw_mail_and_calls_but_not_recent_ones(factory, settings, database_url, tmp_path):
    old = utcnow() - timedelta(days=40)
    old_raw = mail("Olga Alt <olga@alt.example>", CRM, "Alt", "alt\n", message_id="<alt@alt.example>", when=old)
    old_inbound, old_outcome = deliver(factory, settings, old_raw, "olga@alt.example")
    new_inbound, _ = deliver(factory, settings, mail("Nina Neu <nina@neu.example>", CRM, "Neu", "neu\n",
                                                     message_id="<neu@neu.example>"), "nina@neu.example")
    failed_inbound, failed = deliver(factory, settings, b"", "x@y.example")
    assert failed.state == InboundState.FAILED
    with unit_of_work(factory) as session:
        session.execute(update(InboundMessage).where(InboundMessage.id.in_([old_inbound, failed_inbound]))
                        .values(received_at=old))
    old_call = call(factory, settings, "old-1", "+49 30 1234567", old)
    new_call = call(factory, settings, "new-1", "+49 30 7654321", utcnow() - timedelta(days=1))
    with factory() as session:
        old_call_entry = session.get_one(Call, old_call).interaction_id

    keep = make_settings(database_url, tmp_path / "instance")
    assert purge(factory, keep) == {"raw_messages": 0, "calls": 0, "events": 0}  # 0 days: kept for ever
    retention = make_settings(database_url, tmp_path / "instance",
                              retention={"inbound_raw_days": 30, "call_days": 30})
    assert purge(factory, retention) == {"raw_messages": 1, "calls": 1, "events": 0}
    assert purge(factory, retention) == {"raw_messages": 0, "calls": 0, "events": 0}  # nothing twice

    with factory() as session:
        purged = session.get_one(InboundMessage, old_inbound)
        assert purged.raw == b"" and purged.raw_deleted_at is not None and purged.content_hash
        assert session.get_one(Interaction, old_outcome.interaction_id).text.strip() == "alt"  # the timeline keeps it
        assert session.get_one(InboundMessage, new_inbound).raw != b""
        # Failed mail keeps its bytes until someone resolves it.
        assert session.get_one(InboundMessage, failed_inbound).raw_deleted_at is None
        assert session.get(Call, old_call) is None and session.get(Interaction, old_call_entry) is None
        assert session.get(Call, new_call) is not None
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "purge")).scalar_one()
        assert entry.details["raw_messages"] == 1 and entry.details["calls"] == 1
    # A redelivery of the purged message is still the same message.
    again, outcome = deliver(factory, settings, old_raw, "olga@alt.example")
    assert again == old_inbound and outcome is None


def test_serve_runs_the_retention_purge_on_a_fixed_job(factory, database_url, tmp_path):
    settings = make_settings(database_url, tmp_path / "instance", retention={"inbound_raw_days": 1})
    old = utcnow() - timedelta(days=3)
    inbound_id, _ = deliver(factory, settings, mail("Olga Alt <olga@alt.example>", CRM, "Alt", "alt\n",
                                                    message_id="<alt2@alt.example>", when=old), "olga@alt.example")
    with unit_of_work(factory) as session:
        session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id).values(received_at=old))
    scheduler = Scheduler(factory, settings)
    scheduler.start()
    try:
        assert RETENTION in scheduler.job_ids()
        assert scheduler.wait_runs(RETENTION, 1, timeout=60)
    finally:
        scheduler.stop()
    with factory() as session:
        assert session.get_one(InboundMessage, inbound_id).raw_deleted_at is not None
    plain = Scheduler(factory, make_settings(database_url, tmp_path / "instance", retention={"event_days": 0}))
    plain.start()
    try:
        assert RETENTION not in plain.job_ids()  # nothing to purge: no job
    finally:
        plain.stop()


def test_privacy_api_is_for_admins_only(client, auth, factory, world):
    staff = {"Authorization": f"Bearer {make_token(factory, 'staff@beispiel-firma.de', role='staff')}"}
    readonly = {"Authorization": f"Bearer {make_token(factory, 'ro@beispiel-firma.de', role='readonly')}"}
    petra = world["petra"]
    for headers in (staff, readonly):
        assert_error(client.get(f"{API}/contacts/{petra}/export", headers=headers), 403)
        assert_error(client.post(f"{API}/contacts/{petra}/erase", headers=headers), 403)
    assert_error(client.get(f"{API}/contacts/{petra}/export"), 401)
    assert_error(client.post(f"{API}/contacts/{petra}/erase"), 401)
    assert_error(client.get(f"{API}/contacts/999999/export", headers=auth), 404)
    assert_error(client.post(f"{API}/contacts/999999/erase", headers=auth), 404)
    assert client.get(f"{API}/contacts/{petra}", headers=auth).status_code == 200  # refused means nothing done


def test_opening_a_mail_is_audited_when_configured(client, auth, factory, database_url, tmp_path, world):
    client.get(f"{API}/interactions/{world['first_interaction']}", headers=auth)
    with factory() as session:
        assert session.execute(select(AuditEntry).where(AuditEntry.action == "view")).first() is None
    from web import create_app

    settings = make_settings(database_url, tmp_path / "instance", privacy={"audit_mail_views": True})
    watched = create_app(settings, factory).test_client()
    assert watched.get(f"{API}/interactions/{world['first_interaction']}", headers=auth).status_code == 200
    with factory() as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "view")).scalar_one()
        assert (entry.object_type, entry.object_id) == ("interaction", world["first_interaction"])
        assert entry.staff_id is not None and entry.at is not None

    # The page too, with the logged-in user as who.
    from crm_inbox.staff.service import add_staff
    from tests.test_pages import log_in

    with unit_of_work(factory) as session:
        reader = add_staff(session, "leser@beispiel-firma.de", "Leser", "readonly", password="richtig-geheim-42").id
    log_in(watched, "leser@beispiel-firma.de", "richtig-geheim-42")
    assert watched.get(f"/interactions/{world['first_interaction']}").status_code == 200
    assert watched.get(f"/interactions/{world['shared']}").status_code == 200
    with factory() as session:
        views = session.execute(select(AuditEntry.object_id).where(AuditEntry.action == "view",
                                                                   AuditEntry.staff_id == reader)).scalars().all()
        assert sorted(views) == sorted([world["first_interaction"], world["shared"]])


def test_cli_exports_erases_and_purges(factory, settings, client, auth, world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CRM_INBOX_DATABASE_URL", settings.database.url)
    monkeypatch.setenv("CRM_INBOX_SERVICE_INSTANCE_DIR", str(tmp_path / "instance"))
    target = tmp_path / "petra.zip"
    assert cli.main(["privacy", "export", PETRA, "-o", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    data = json.loads(zipfile.ZipFile(target).read("contact.json"))
    assert data["contact"]["id"] == world["petra"] and data["tickets"]

    assert cli.main(["privacy", "export", "nobody@nowhere.example"]) == 2
    assert "no contact" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal: erasing must be confirmed with --yes
    assert cli.main(["privacy", "erase", str(world["petra"])]) == 2
    assert "--yes" in capsys.readouterr().err
    assert cli.main(["privacy", "erase", str(world["petra"]), "--yes"]) == 0
    assert f"contact {world['petra']} erased" in capsys.readouterr().out
    assert traces(factory) == []
    assert cli.main(["privacy", "purge"]) == 0
    assert "raw messages emptied: 0" in capsys.readouterr().out
    with factory() as session:
        actions = [a for a, in session.execute(select(AuditEntry.action).where(AuditEntry.object_type == "contact",
                                                                              AuditEntry.object_id == world["petra"]))]
        assert "export" in actions and "erase" in actions


def test_admins_export_and_erase_on_the_customer_page(client, auth, factory, world):
    from crm_inbox.staff.service import add_staff
    from tests.test_pages import csrf_token, log_in

    with unit_of_work(factory) as session:
        add_staff(session, "chefin@beispiel-firma.de", "Chefin", "admin", password="richtig-geheim-42")
        add_staff(session, "jonas@beispiel-firma.de", "Jonas", "staff", password="richtig-geheim-42")
    petra = world["petra"]
    log_in(client, "jonas@beispiel-firma.de", "richtig-geheim-42")
    page = client.get(f"/contacts/{petra}").get_data(as_text=True)
    assert "Export data" not in page and "Erase person" not in page
    assert client.get(f"/contacts/{petra}/export").status_code == 403
    assert client.post(f"/contacts/{petra}/erase", data={"csrf_token": csrf_token(page), "confirm": "1"}
                       ).status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(page)})

    log_in(client, "chefin@beispiel-firma.de", "richtig-geheim-42")
    page = client.get(f"/contacts/{petra}").get_data(as_text=True)
    assert "Export data" in page and "Erase person" in page
    download = client.get(f"/contacts/{petra}/export")
    assert download.status_code == 200 and download.mimetype == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(download.data)).read("contact.json")
    token = csrf_token(page)
    assert client.post(f"/contacts/{petra}/erase", data={"confirm": "1"}).status_code == 400  # no CSRF token
    confirm = client.post(f"/contacts/{petra}/erase", data={"csrf_token": token})
    assert confirm.status_code == 200 and "Erase for good" in confirm.get_data(as_text=True)
    assert client.get(f"/contacts/{petra}").status_code == 200  # asking is not erasing
    done = client.post(f"/contacts/{petra}/erase", data={"csrf_token": token, "confirm": "1"})
    assert done.status_code == 302
    assert client.get(f"/contacts/{petra}").status_code == 404
    assert traces(factory) == []
    german = client.get(f"/contacts/{world['bert']}?lang=de").get_data(as_text=True)
    assert "Daten exportieren" in german and "Person löschen" in german



def test_redaction_finds_every_spelling_of_the_number_and_the_whole_name_only():
    redact = Redactor(emails=["j.oezdemir@firma.example"], phones_e164=["+491715550123"],
                      names=["Jürgen Özdemir", "Max"])
    for spelling in ("+49 171 5550123", "0171/5550123", "0049 (0)171 555 01 23", "+491715550123", "01715550123"):
        assert redact.text(f"Tel. {spelling}, bitte") == "Tel. [erased], bitte", spelling
    assert redact.text("Tel. 0171 55501234") == "Tel. 0171 55501234"  # a longer, other number
    assert redact.text("JÜRGEN ÖZDEMIR schrieb an J.Oezdemir@Firma.example") == "[erased] schrieb an [erased]"
    assert redact.text("Max Mustermann, Maximilian") == "Max Mustermann, Maximilian"  # "Max" alone is too short
    assert redact.value({"to": ["Jürgen Özdemir <j.oezdemir@firma.example>"], "n": 3}) == {
        "to": ["[erased] <[erased]>"], "n": 3}


def test_erasure_finds_a_name_with_umlauts_in_other_records_and_the_audit_log(client, auth, factory):
    person = create_contact(client, auth, name="Jürgen Özdemir", emails=["j.oezdemir@firma.example"])
    other = create_contact(client, auth, name="Bert Bekannt", fields={"Chef": "Jürgen Özdemir"})
    assert client.post(f"{API}/contacts/{other['id']}/notes", headers=auth,
                       json={"text": "Vertretung für Jürgen Özdemir"}).status_code == 201
    assert client.post(f"{API}/contacts/{person['id']}/erase", headers=auth).status_code == 200
    assert client.get(f"{API}/contacts/{other['id']}", headers=auth).json["fields"] == {"Chef": "[erased]"}
    [note] = client.get(f"{API}/contacts/{other['id']}/timeline", headers=auth).json["items"]
    assert note["excerpt"] == "Vertretung für [erased]"
    with factory() as session:
        for entry in session.execute(select(AuditEntry)).scalars():
            text = json.dumps(entry.details, ensure_ascii=False)
            assert "Özdemir" not in text and "oezdemir" not in text, (entry.action, entry.details)


# --- files with personal data are private ---

@pytest.fixture
def open_umask():  # type: ignore[no-untyped-def]
    """The most permissive umask: the modes below must not depend on it."""
    import os

    previous = os.umask(0)
    yield
    os.umask(previous)


def mode(path: Any) -> int:
    import os
    import stat

    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_cli_export_zip_is_readable_by_its_owner_only(factory, settings, world, tmp_path, monkeypatch, open_umask):
    monkeypatch.setenv("CRM_INBOX_DATABASE_URL", settings.database.url)
    monkeypatch.setenv("CRM_INBOX_SERVICE_INSTANCE_DIR", str(tmp_path / "instance"))
    target = tmp_path / "petra.zip"
    assert cli.main(["privacy", "export", PETRA, "-o", str(target)]) == 0
    assert mode(target) == 0o600
    target.write_bytes(b"")
    target.chmod(0o644)
    assert cli.main(["privacy", "export", PETRA, "-o", str(target)]) == 0  # written anew: private again
    assert mode(target) == 0o600


def test_an_export_into_a_missing_folder_is_one_error_line(factory, settings, world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CRM_INBOX_DATABASE_URL", settings.database.url)
    monkeypatch.setenv("CRM_INBOX_SERVICE_INSTANCE_DIR", str(tmp_path / "instance"))
    target = tmp_path / "missing-dir" / "x.zip"
    assert cli.main(["privacy", "export", PETRA, "-o", str(target)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"crm-inbox: privacy export: cannot write {target}: No such file or directory\n"
    with factory() as session:  # nothing was exported, so nothing is audited as exported
        assert session.execute(select(AuditEntry).where(AuditEntry.action == "export")).first() is None


def test_a_new_sqlite_database_and_its_companions_are_readable_by_their_owner_only(tmp_path, open_umask):
    from sqlalchemy import text

    from crm_inbox.db import make_engine, write_lock

    db = tmp_path / "data" / "crm.db"
    engine = make_engine(f"sqlite:///{db}")
    with write_lock(engine), engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x TEXT)"))
        conn.execute(text("INSERT INTO t VALUES ('Petra Weber')"))
        for companion in ("-wal", "-shm", "-writelock"):
            assert mode(f"{db}{companion}") == 0o600, companion
    assert mode(db) == 0o600
    engine.dispose()


def test_the_generated_session_key_is_readable_by_its_owner_only(settings, factory, open_umask):
    from web import create_app

    create_app(settings, factory)
    key_file = settings.instance_path / "secret_key"
    assert mode(key_file) == 0o600
    assert create_app(settings, factory).secret_key == key_file.read_text()  # and it is kept

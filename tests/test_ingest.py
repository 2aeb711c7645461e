"""`crm-inbox ingest`: .eml files, mbox files and Maildir folders through the same pipeline."""

from __future__ import annotations

import json
import mailbox
import re
import smtplib
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_inbox.cli import main
from crm_inbox.intake.store import Envelope, commit_batch
from crm_inbox.models import Contact, InboundMessage, InboundState, Interaction, Ticket
from crm_inbox.runtime import Service
from tests.conftest import CRM, SUPPORT, shared_samples
from tests.mailfactory import make_mail


@pytest.fixture
def config_file(settings, tmp_path) -> Path:
    path = tmp_path / "crm.toml"
    path.write_text(
        f"[service]\ninstance_dir = '{settings.service.instance_dir}'\n"
        f"[database]\nurl = '{settings.database.url}'\n"
        f"[mail]\ncrm_addresses = ['{CRM}']\nsupport_addresses = ['{SUPPORT}']\n"
        "staff_domains = ['beispiel-firma.de']\n")
    return path


def run_cli(config_file: Path, *args: str, capsys) -> tuple[int, str, str]:
    code = main(["--config", str(config_file), *args])
    out, err = capsys.readouterr()
    return code, out, err


def states(factory) -> dict[str, int]:
    with factory() as session:
        rows = session.execute(select(InboundMessage.state, func.count()).group_by(InboundMessage.state)).all()
    return {state.value: n for state, n in rows}


def test_mbox_import_records_each_message_and_is_idempotent(config_file, factory, tmp_path, capsys):
    path = tmp_path / "export.mbox"
    box = mailbox.mbox(path)
    for i in range(3):
        box.add(make_mail(sender=f"Kunde {i} <kunde{i}@example.com>", subject=f"Frage {i}"))
    box.flush()
    box.close()
    code, out, _ = run_cli(config_file, "ingest", str(path), capsys=capsys)
    assert code == 0
    assert out.strip() == "processed: 3, duplicates: 0, failed: 0, ignored: 0"
    code, out, _ = run_cli(config_file, "ingest", str(path), capsys=capsys)
    assert out.strip() == "processed: 0, duplicates: 3, failed: 0, ignored: 0"
    with factory() as session:
        subjects = sorted(session.execute(select(Interaction.subject)).scalars())
        assert subjects == ["Frage 0", "Frage 1", "Frage 2"]
        assert session.execute(select(func.count()).select_from(Contact)).scalar_one() == 3


def test_maildir_and_eml_folder_import_with_json_lines(config_file, factory, tmp_path, capsys):
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    maildir.add(make_mail(subject="aus Maildir 1"))
    maildir.add(make_mail(subject="aus Maildir 2"))
    folder = tmp_path / "eml"
    folder.mkdir()
    (folder / "a.eml").write_bytes(make_mail(subject="aus Datei"))
    (folder / "broken.eml").write_bytes(b"\r\n\r\n")
    code, out, err = run_cli(config_file, "ingest", str(tmp_path / "Maildir"), str(folder), "--json",
                             capsys=capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1  # something failed: the exit status says so
    assert [line["state"] for line in lines] == ["processed", "processed", "processed", "failed"]
    assert lines[3]["source"].endswith("broken.eml")
    assert lines[3]["error"] == "message is empty"
    assert err.strip().endswith("processed: 3, duplicates: 0, failed: 1, ignored: 0")
    assert states(factory) == {"processed": 3, "failed": 1}


def test_inbox_failed_lists_and_retry_reprocesses(config_file, factory, tmp_path, capsys):
    (tmp_path / "empty.eml").write_bytes(b"\n\n")
    run_cli(config_file, "ingest", str(tmp_path / "empty.eml"), capsys=capsys)
    code, out, _ = run_cli(config_file, "inbox", "failed", capsys=capsys)
    assert code == 0
    assert "message is empty" in out
    code, out, _ = run_cli(config_file, "inbox", "retry", "--all", capsys=capsys)
    assert code == 1
    assert out.split("\t")[1:] == ["failed", "message is empty\n"]
    code, _, err = run_cli(config_file, "inbox", "retry", capsys=capsys)
    assert code == 2
    assert "name message ids or use --all" in err


def test_missing_path_is_one_clear_error(config_file, tmp_path, capsys):
    code, _, err = run_cli(config_file, "ingest", str(tmp_path / "nothing.mbox"), capsys=capsys)
    assert code == 2
    assert err.strip() == f"crm-inbox: {tmp_path / 'nothing.mbox'}: no such file or folder"


def test_real_world_corpus_through_ingest_never_crashes_or_loses_a_message(config_file, factory, capsys):
    samples = shared_samples()
    run_cli(config_file, "ingest", *map(str, samples), "--json", capsys=capsys)
    counts = states(factory)
    assert sum(counts.values()) == len(samples)
    assert counts.get("received", 0) == 0
    with factory() as session:
        for failed in session.execute(select(InboundMessage).where(InboundMessage.state == InboundState.FAILED)):
            assert failed[0].error


def test_real_world_corpus_through_smtp(settings, factory):
    samples = shared_samples()
    service = Service(settings, web=False)
    service.start()
    try:
        with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=60) as client:
            for sample in samples:
                # The files have LF endings; an MTA relaying them speaks CRLF on the wire.
                wire = re.sub(rb"\r\n|\r|\n", b"\r\n", sample.read_bytes())
                client.sendmail("sender@example.com", [CRM], wire)
        service.worker.wait_idle()
    finally:
        service.stop()
    counts = states(factory)
    assert sum(counts.values()) == len(samples)
    assert counts.get("received", 0) == 0


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "crm_inbox", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert "ingest" in result.stdout and "serve" in result.stdout


# A bounce saved as one .eml by a mail client that keeps the mbox envelope line: the quoted original
# carries its own envelope line and headers, inside the report's MIME structure.
BOUNCE_EML = b"""From MAILER-DAEMON Mon Nov  9 10:00:05 2026
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.com>
To: crm@beispiel-firma.de
Subject: Undelivered Mail Returned to Sender
Date: Mon, 9 Nov 2026 10:00:05 +0100
Message-ID: <20261109090005.1A2B3@mx.example.com>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.com.

From the mail system: your message could not be delivered.

--B1
Content-Type: text/plain; charset=us-ascii
Content-Description: Undelivered Message

From lisa.klein@example.net Mon Nov  9 09:59:58 2026
Return-Path: <lisa.klein@example.net>
From: Lisa Klein <lisa.klein@example.net>
To: nobody@example.com
Subject: Angebot

Hallo.

--B1--
"""

# One plain message saved with its envelope line; its body quotes a line that starts with "From ".
PLAIN_EML = b"""From eva@wagner-technik.de Tue Nov 10 08:00:00 2026
From: Eva Wagner <eva@wagner-technik.de>
To: crm@beispiel-firma.de
Subject: Weitergeleitet
Date: Tue, 10 Nov 2026 08:00:00 +0100
Message-ID: <plain-envelope-line@wagner-technik.de>

Unten die Antwort:

From Lisa: the price is fine.
"""


@pytest.mark.parametrize("raw", [BOUNCE_EML, PLAIN_EML], ids=["bounce-quoting-original", "plain-from-in-body"])
def test_a_single_eml_starting_with_an_envelope_line_is_one_message(config_file, factory, tmp_path, capsys, raw):
    path = tmp_path / "saved.eml"
    path.write_bytes(raw)
    code, out, _ = run_cli(config_file, "ingest", str(path), "--json", capsys=capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(line["source"], line["state"]) for line in lines] == [(str(path), "processed")]
    with factory() as session:
        assert session.execute(select(func.count()).select_from(Interaction)).scalar_one() == 1
        emails = [e for c in session.execute(select(Contact)).scalars() for e in (x.email for x in c.emails)]
        assert "lisa.klein@example.net" not in emails  # the quoted original made no lead
        raw_stored = session.execute(select(InboundMessage.raw)).scalar_one()
        assert not raw_stored.startswith(b"From ")  # the envelope line is not part of the message


def test_an_mbox_starting_with_a_bounce_still_splits_into_its_messages(config_file, factory, tmp_path, capsys):
    path = tmp_path / "export.mbox"
    box = mailbox.mbox(path)  # escapes "From " at the start of body lines, as mbox writers do
    for raw in (BOUNCE_EML, PLAIN_EML, make_mail(subject="dritte")):
        box.add(raw.split(b"\n", 1)[1] if raw.startswith(b"From ") else raw)
    box.flush()
    box.close()
    code, out, _ = run_cli(config_file, "ingest", str(path), capsys=capsys)
    assert code == 0
    assert out.strip() == "processed: 3, duplicates: 0, failed: 0, ignored: 0"


# --- a mailbox's history: hundreds of messages in one mbox (stored in batches, processed as they are stored) ---

def write_mbox(path: Path, messages: list[bytes]) -> Path:
    """An mbox as mail programs export it: LF line ends, "From " at the start of a body line escaped."""
    with path.open("wb") as out:
        for n, raw in enumerate(messages):
            body = raw.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From ")
            out.write(f"From sender{n}@example.com Mon Nov  9 10:00:00 2026\n".encode() + body
                      + (b"\n" if body.endswith(b"\n") else b"\n\n"))
    return path


def history(n: int) -> list[bytes]:
    """``n`` mails of 40 customers; the first ten are requests to support, each answered by its customer right
    after it (the answer may well be processed side by side with its request)."""
    out = []
    for i in range(n):
        mid = f"<request-{i}@kunde{i % 40}.example>"
        out.append(make_mail(sender=f"Kunde {i % 40} <info@kunde{i % 40}.example>", to=SUPPORT if i < 10 else CRM,
                             subject=f"Anfrage {i}", message_id=mid))
        if i < 10:
            out.append(make_mail(sender=f"Kunde {i % 40} <info@kunde{i % 40}.example>", to=SUPPORT,
                                 subject=f"AW: Anfrage {i}", headers={"In-Reply-To": mid, "References": mid}))
    return out


def crm_data(factory) -> dict[str, object]:
    """What the CRM shows: interactions per message, contacts, tickets, stored messages."""
    with factory() as session:
        return {
            "per_message": dict(Counter(session.execute(
                select(Interaction.inbound_message_id).where(Interaction.inbound_message_id.is_not(None))).scalars())),
            "contacts": session.execute(select(func.count()).select_from(Contact)).scalar_one(),
            "tickets": session.execute(select(func.count()).select_from(Ticket)).scalar_one(),
            "stored": session.execute(select(func.count()).select_from(InboundMessage)).scalar_one(),
        }


def test_an_mbox_of_hundreds_imports_each_once_and_a_rerun_changes_nothing(config_file, factory, tmp_path, capsys):
    mails = history(300)
    path = write_mbox(tmp_path / "history.mbox", mails)
    code, out, _ = run_cli(config_file, "ingest", str(path), capsys=capsys)
    assert code == 0
    assert out.strip() == f"processed: {len(mails)}, duplicates: 0, failed: 0, ignored: 0"
    after = crm_data(factory)
    assert after["stored"] == len(mails)
    assert sorted(after["per_message"].values()) == [1] * len(mails)  # one interaction for every message
    assert after["contacts"] == 40  # one lead per sender, however many of its mails were processed side by side
    assert after["tickets"] == 10  # the ten answers went into their requests' tickets

    code, out, _ = run_cli(config_file, "ingest", str(path), capsys=capsys)
    assert code == 0
    assert out.strip() == f"processed: 0, duplicates: {len(mails)}, failed: 0, ignored: 0"
    assert crm_data(factory) == after


@pytest.mark.parametrize("processes", [1, 2])
def test_a_reply_in_the_same_mbox_threads_into_its_originals_ticket(config_file, factory, tmp_path, capsys, processes):
    with config_file.open("a") as config:
        config.write(f"[worker]\nprocesses = {processes}\n")
    path = write_mbox(tmp_path / "history.mbox", history(30))
    run_cli(config_file, "ingest", str(path), capsys=capsys)
    with factory() as session:
        for i in range(10):
            ticket_ids = session.execute(select(Interaction.ticket_id).where(
                Interaction.subject.in_([f"Anfrage {i}", f"AW: Anfrage {i}"]))).scalars().all()
            assert len(ticket_ids) == 2 and ticket_ids[0] is not None and ticket_ids[0] == ticket_ids[1], i


def test_json_lines_carry_each_messages_final_state_in_the_order_read(config_file, factory, tmp_path, capsys):
    mails = [make_mail(subject=f"Frage {i}", sender=f"Kunde {i} <kunde{i}@example.com>") for i in range(250)]
    mails[120] = b""  # an empty message in the middle of the export
    mails.append(mails[3])  # the same mail twice in the file
    path = write_mbox(tmp_path / "export.mbox", mails)
    code, out, err = run_cli(config_file, "ingest", str(path), "--json", capsys=capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [line["source"] for line in lines] == [f"{path}#{i + 1}" for i in range(len(mails))]
    assert [line.get("state") for line in lines[:250]] == ["processed"] * 120 + ["failed"] + ["processed"] * 129
    assert lines[120]["error"] == "message is empty"
    assert lines[250]["duplicate"] is True and lines[250]["inbound_id"] == lines[3]["inbound_id"]
    with factory() as session:
        for line in lines[:250]:
            if line["state"] == "processed":
                assert session.get(Interaction, line["interaction_id"]).inbound_message_id == line["inbound_id"]
    assert err.strip().endswith("processed: 249, duplicates: 1, failed: 1, ignored: 0")

    code, out, _ = run_cli(config_file, "ingest", str(path), "--json", capsys=capsys)
    again = [json.loads(line) for line in out.splitlines()]
    assert code == 0  # the failed one is not tried again by a re-run (`inbox retry` does that)
    assert all(line["duplicate"] and "state" not in line for line in again)
    assert [line["inbound_id"] for line in again] == [line["inbound_id"] for line in lines]


def test_a_broken_message_fails_alone_and_is_kept_with_its_reason(config_file, factory, tmp_path, capsys):
    mails = [make_mail(subject=f"Frage {i}", sender=f"Kunde {i} <kunde{i}@example.com>") for i in range(200)]
    mails.insert(77, b"\r\n\r\n")
    path = write_mbox(tmp_path / "export.mbox", mails)
    code, out, _ = run_cli(config_file, "ingest", str(path), capsys=capsys)
    assert code == 1
    assert out.strip() == "processed: 200, duplicates: 0, failed: 1, ignored: 0"
    with factory() as session:
        failed = session.execute(select(InboundMessage).where(InboundMessage.state == InboundState.FAILED)).scalar_one()
        assert failed.error == "message is empty"
        assert session.execute(select(func.count()).select_from(Interaction)).scalar_one() == 200


def test_a_rerun_after_an_interrupted_import_processes_what_was_stored_but_not_processed(config_file, factory, engine,
                                                                                     tmp_path, capsys):
    mails = [make_mail(subject=f"Frage {i}", sender=f"Kunde {i} <kunde{i}@example.com>") for i in range(220)]
    path = write_mbox(tmp_path / "export.mbox", mails)
    # What a kill -9 right after the first batch's commit leaves behind: stored, not processed.
    stored = commit_batch(engine, [(raw.replace(b"\r\n", b"\n"), Envelope(rcpt_to=(CRM,), source="file"))
                                   for raw in mails[:150]])
    assert all(not s.duplicate for s in stored)
    code, out, _ = run_cli(config_file, "ingest", str(path), "--json", capsys=capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [line["duplicate"] for line in lines] == [True] * 150 + [False] * 70
    assert {line["state"] for line in lines} == {"processed"}
    assert states(factory) == {"processed": 220}
    assert sorted(crm_data(factory)["per_message"].values()) == [1] * 220


def test_ingest_killed_mid_import_and_run_again_records_every_message_once(config_file, factory, tmp_path):
    mails = [make_mail(subject=f"Frage {i}", sender=f"Kunde {i % 90} <kunde{i % 90}@example.com>")
             for i in range(1000)]
    path = write_mbox(tmp_path / "export.mbox", mails)
    command = [sys.executable, "-m", "crm_inbox", "--config", str(config_file), "ingest", str(path)]

    def stored() -> int:
        with factory() as session:
            return session.execute(select(func.count()).select_from(InboundMessage)).scalar_one()

    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while stored() == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # polls for the first committed batch
    finally:
        proc.kill()  # SIGKILL: no clean-up of any kind
        proc.wait(30)
    assert stored() > 0 and states(factory).get("processed", 0) < len(mails)  # it died with work undone
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert states(factory) == {"processed": len(mails)}
    data = crm_data(factory)
    assert sorted(data["per_message"].values()) == [1] * len(mails)  # nothing lost, nothing recorded twice
    assert data["contacts"] == 90  # one lead per sender, across the kill


def test_an_import_while_serve_runs_records_every_message_once(config_file, settings, factory, tmp_path, capsys):
    mails = history(400)
    path = write_mbox(tmp_path / "history.mbox", mails)
    service = Service(settings, web=False)  # its worker sweeps stored mail too: whoever claims one processes it
    service.start()
    try:
        code, out, _ = run_cli(config_file, "ingest", str(path), capsys=capsys)
        service.worker.wait_idle()
    finally:
        service.stop()
    assert code == 0
    summary = re.fullmatch(r"processed: (\d+), duplicates: 0, failed: 0, ignored: 0"
                           r"(?:, processed by a running serve: (\d+))?", out.strip())
    assert summary is not None, out
    assert int(summary[1]) + int(summary[2] or 0) == len(mails)
    assert states(factory) == {"processed": len(mails)}
    data = crm_data(factory)
    assert sorted(data["per_message"].values()) == [1] * len(mails)
    assert (data["contacts"], data["tickets"]) == (40, 10)

"""`crm-inbox ingest`: .eml files, mbox files and Maildir folders through the same pipeline."""

from __future__ import annotations

import json
import mailbox
import re
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_inbox.cli import main
from crm_inbox.models import Contact, InboundMessage, InboundState, Interaction
from crm_inbox.runtime import Service
from tests.conftest import CRM, shared_samples
from tests.mailfactory import make_mail


@pytest.fixture
def config_file(settings, tmp_path) -> Path:
    path = tmp_path / "crm.toml"
    path.write_text(
        f"[service]\ninstance_dir = '{settings.service.instance_dir}'\n"
        f"[database]\nurl = '{settings.database.url}'\n"
        f"[mail]\ncrm_addresses = ['{CRM}']\nstaff_domains = ['beispiel-firma.de']\n")
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

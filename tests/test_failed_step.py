"""A message that fails names the pipeline step it failed in: in the API, on the triage page's failed list and
in ``crm-inbox inbox failed``; a retry clears it."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.cli import main
from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, store
from crm_inbox.models import InboundMessage, InboundState
from crm_inbox.pipeline import DEFAULT_STEPS, MailContext, Step
from crm_inbox.pipeline.runner import process, retry
from crm_inbox.staff.service import add_staff
from tests.conftest import CRM
from tests.test_pages import PASSWORD, STAFF, log_in

HEAD = (b"From: Eva Wagner <eva@wagner-technik.de>\r\nTo: crm@beispiel-firma.de\r\n"
        b"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n")


def nesting_bomb(levels: int = 100) -> bytes:
    """Deeper than the MIME nesting limit (20): parsing refuses it."""
    out = [HEAD, b"Subject: nesting bomb\r\n"]
    for i in range(levels):
        out.append(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i))
    out.append(b"Content-Type: text/plain\r\n\r\nbottom\r\n")
    out.extend(b"--b%d--\r\n" % i for i in reversed(range(levels)))
    return b"".join(out)


PLAIN = HEAD + b"Subject: Angebot\r\nMessage-ID: <plain@wagner-technik.de>\r\n\r\nBitte ein Angebot.\r\n"


def stored(factory: sessionmaker[Session], raw: bytes) -> int:
    return store(factory, raw, Envelope(mail_from="eva@wagner-technik.de", rcpt_to=(CRM,),
                                        peer="203.0.113.9")).inbound_id


def test_a_mime_bomb_fails_in_parse_and_the_api_says_so(factory, settings, client, auth):
    inbound_id = stored(factory, nesting_bomb())
    outcome = process(factory, settings, inbound_id)
    assert outcome.state == InboundState.FAILED and outcome.failed_step == "parse"

    items = client.get("/api/v1/inbound?state=failed", headers=auth).get_json()["items"]
    assert [(m["id"], m["failed_step"]) for m in items] == [(inbound_id, "parse")]
    assert items[0]["error"] == "MIME parts nested deeper than 20 levels"


def test_the_triage_page_shows_the_step_in_german_too(factory, settings, client):
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
    process(factory, settings, stored(factory, nesting_bomb()))
    log_in(client)
    page = client.get("/triage", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "In step parse: MIME parts nested deeper than 20 levels" in page
    page = client.get("/triage", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Im Schritt parse: MIME parts nested deeper than 20 levels" in page


def test_a_crash_in_a_later_step_names_that_step_and_a_retry_clears_it(factory, settings, client, auth):
    def broken(ctx: MailContext) -> None:
        raise RuntimeError("disk full")

    steps = tuple(Step(s.name, s.description, broken) if s.name == "record" else s for s in DEFAULT_STEPS)
    inbound_id = stored(factory, PLAIN)
    assert process(factory, settings, inbound_id, steps).failed_step == "record"
    item = client.get("/api/v1/inbound?state=failed", headers=auth).get_json()["items"][0]
    assert (item["failed_step"], item["error"]) == ("record", "internal error: RuntimeError: disk full")

    assert retry(factory, [inbound_id]) == [inbound_id]
    assert process(factory, settings, inbound_id).state == InboundState.PROCESSED
    with factory() as session:
        row = session.get_one(InboundMessage, inbound_id)
        assert (row.state, row.failed_step, row.error) == (InboundState.PROCESSED, None, None)


def test_inbox_failed_lists_the_step(factory, settings: Settings, tmp_path: Path, capsys):
    inbound_id = stored(factory, nesting_bomb())
    process(factory, settings, inbound_id)
    config = tmp_path / "crm.toml"
    config.write_text(f"[database]\nurl = '{settings.database.url}'\n")

    assert main(["--config", str(config), "inbox", "failed"]) == 0
    assert capsys.readouterr().out.split("\t")[3] == "parse"
    assert main(["--config", str(config), "inbox", "failed", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["failed_step"] == "parse"

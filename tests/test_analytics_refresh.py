"""The analytics refresh: a small operative world, copied read-only into the DuckDB store, figures equal to SQL
on the operative database; incremental refreshes carry over new, edited and erased data; a failed or
concurrent refresh leaves the store alone; readers keep their snapshot across the swap."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.analytics import extract, load
from crm_inbox.analytics import refresh as refresh_module
from crm_inbox.analytics.refresh import RefreshFailed, refresh
from crm_inbox.analytics.source import snapshot, source_engine
from crm_inbox.analytics.store import StoreReader, open_store
from crm_inbox.cli import main
from crm_inbox.config import Settings, replace
from crm_inbox.contacts.inputs import ContactChanges
from crm_inbox.contacts.service import create_contact
from crm_inbox.models import (
    AuditEntry,
    Call,
    Campaign,
    CampaignRecipient,
    Category,
    Contact,
    Interaction,
    InteractionContact,
    Invoice,
    Reminder,
    Ticket,
    TicketEvent,
)
from crm_inbox.models.calls import CallState
from crm_inbox.models.interactions import Direction, InteractionKind
from crm_inbox.models.marketing import CampaignState, Channel, RecipientState
from crm_inbox.models.reminders import ReminderState
from crm_inbox.privacy.service import erase_contact
from crm_inbox.sales.inputs import OpportunityChanges
from crm_inbox.sales.opportunities import stages, update_opportunity
from crm_inbox.tickets.inputs import TicketChanges
from crm_inbox.tickets.service import change, customer_reply, merge, open_ticket, staff_reply
from crm_inbox.timeline.service import record_interaction
from tests import sales_data

OPENED = datetime(2026, 7, 1, 23, 30, tzinfo=UTC)  # 1:30 on 2 July in Berlin
MISSED = datetime(2026, 7, 2, 8, 0, tzinfo=UTC)


def _store(settings: Settings) -> Path:
    return settings.analytics.store_path(settings.service.instance_dir)


def _world(session: Session, settings: Settings) -> dict[str, Any]:
    w = sales_data.world(session, settings)
    w.company.category = Category.A
    w.contact.category = Category.C
    other = create_contact(session, ContactChanges(name="Max Weg", emails=("max@weg.de",)), "DE", w.staff.id)
    session.flush()
    mail = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.IN, occurred_at=OPENED,
                              subject="Drucker", contacts=[(w.contact, "from")], company_id=w.company.id)
    ticket = open_ticket(session, settings, subject="Drucker", contact=w.contact, interaction=mail,
                         opened_by="eva.mueller@kunde-ag.de")
    ticket.opened_at = OPENED
    answer = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.OUT,
                                occurred_at=OPENED + timedelta(minutes=90), subject="Re: Drucker",
                                contacts=[(w.contact, "to")], created_by_id=w.staff.id)
    staff_reply(session, ticket, answer, w.staff.id)
    change(session, ticket, w.staff.id, TicketChanges(state="solved"))
    again = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.IN,
                               occurred_at=OPENED + timedelta(days=1), contacts=[(w.contact, "from")])
    customer_reply(session, settings, ticket, again, automatic=False)  # reopens it
    # A missed call of Max, called back two hours later (60 s talk).
    session.add_all([
        Call(source="test", call_id="1", direction=Direction.IN, state=CallState.ENDED, remote_e164="+49891234",
             started_at=MISSED, ended_at=MISSED + timedelta(seconds=30), missed=True, contact_id=other.id),
        Call(source="test", call_id="2", direction=Direction.OUT, state=CallState.ENDED, remote_e164="+49891234",
             started_at=MISSED + timedelta(hours=2), answered_at=MISSED + timedelta(hours=2, seconds=5),
             ended_at=MISSED + timedelta(hours=2, seconds=65), staff_id=w.staff.id, contact_id=other.id)])
    session.flush()
    missed_call = session.scalars(select(Call).where(Call.call_id == "1")).one()
    # Its reminder marked done before the call even rang (clock skew, a demo): no call-back.
    session.add(Reminder(due_at=MISSED, title="Call back", reason="missed_call", state=ReminderState.DONE,
                         call_id=missed_call.id, completed_at=MISSED - timedelta(hours=1)))
    record_interaction(session, kind=InteractionKind.CALL, direction=Direction.IN, occurred_at=MISSED,
                       contacts=[(other, "party")])
    record_interaction(session, kind=InteractionKind.NOTE, direction=Direction.INTERNAL, occurred_at=MISSED,
                       contacts=[(other, "party"), (w.contact, "party")], created_by_id=w.staff.id)
    update_opportunity(session, settings, w.opp, OpportunityChanges(stage=stages(settings)[1].key), by=w.staff.id)
    session.add(Invoice(number="R-1", contact_id=w.contact.id, company_id=w.company.id, issued_on=date(2026, 7, 3),
                        net=Decimal("100.10"), gross=Decimal("119.12"), paid=Decimal("0.00"), status="open"))
    session.flush()
    return {"ticket": ticket.id, "other": other.id, "contact": w.contact.id, "staff": w.staff.id}


@pytest.fixture
def world(settings: Settings, factory: sessionmaker[Session]) -> dict[str, Any]:
    with factory.begin() as session:
        return _world(session, settings)


def _one(con: Any, sql: str, params: list[Any] | None = None) -> Any:
    row = con.execute(sql, params or []).fetchone()
    return row[0] if row else None


def test_a_full_refresh_copies_the_operative_figures(settings: Settings, factory: sessionmaker[Session],
                                                     world: dict[str, Any]) -> None:
    result = refresh(settings)
    assert result.mode == "full" and result.skipped is None  # no store yet: full whatever was asked
    with factory() as session:
        operative = {
            "fact_interaction": session.scalar(select(func.count()).select_from(Interaction)),
            "fact_interaction_contact": session.scalar(select(func.count()).select_from(InteractionContact)),
            "fact_call": session.scalar(select(func.count()).select_from(Call)),
            "fact_ticket_event": session.scalar(select(func.count()).select_from(TicketEvent)),
            "dim_contact": session.scalar(select(func.count()).select_from(Contact)),
        }
        gross = session.scalar(select(func.sum(Invoice.gross)))
        stage_audits = session.scalars(select(AuditEntry.details).where(
            AuditEntry.object_type == "opportunity")).all()
    assert {t: result.rows[t] for t in operative} == operative
    con = open_store(_store(settings))
    try:
        assert _one(con, "SELECT sum(gross) FROM fact_invoice") == Decimal(str(gross)) == Decimal("119.12")
        ticket = con.execute("SELECT channel, category, opened_date, first_response_minutes, reopen_count, state, "
                             "closed_at FROM fact_ticket WHERE ticket_id = ?", [world["ticket"]]).fetchone()
        # by mail; the company's category before the contact's; Berlin's date; answered after 90 minutes;
        # solved, then reopened by the customer's reply (so not resolved now)
        assert ticket == ("email", "A", date(2026, 7, 2), 90.0, 1, "open", None)
        missed = con.execute("SELECT missed, answered, ring_seconds, callback_minutes, local_hour FROM fact_call "
                             "WHERE direction = 'in'").fetchone()
        assert missed == (True, False, 30, 120.0, 10)
        assert _one(con, "SELECT talk_seconds FROM fact_call WHERE direction = 'out'") == 60
        assert _one(con, "SELECT count(*) FROM fact_stage_change") == sum(
            1 for d in stage_audits if "stage" in d)
        assert con.execute("SELECT from_stage IS NOT NULL, to_stage FROM fact_stage_change "
                           "ORDER BY changed_at DESC LIMIT 1").fetchone() == (True, stages(settings)[1].key)
        assert _one(con, "SELECT count(*) FROM dim_staff WHERE name IS NOT NULL") == 0  # works council default
        assert _one(con, "SELECT count(*) FROM dim_date WHERE date_key = DATE '2026-07-02'") == 1
        assert _one(con, "SELECT count(*) FROM fact_interaction_contact fic JOIN fact_interaction fi "
                         "USING (interaction_id) WHERE fic.occurred_at <> fi.occurred_at") == 0
    finally:
        con.close()


def test_an_incremental_refresh_carries_over_new_edited_and_erased_data(
        settings: Settings, factory: sessionmaker[Session], world: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The watermarks alone, as on a large database where the look-back windows are a small part of it.
    monkeypatch.setattr(refresh_module, "LOOKBACK_IDS", 0)
    monkeypatch.setattr(refresh_module, "UPDATED_MARGIN", timedelta(0))
    refresh(settings)
    assert b"Max Weg" in _store(settings).read_bytes()
    with factory.begin() as session:
        contact = session.get_one(Contact, world["contact"])
        new = record_interaction(session, kind=InteractionKind.CALL, direction=Direction.OUT,
                                 occurred_at=MISSED + timedelta(days=3), contacts=[(contact, "party")],
                                 created_by_id=world["staff"])
        change(session, session.get_one(Ticket, world["ticket"]), world["staff"], TicketChanges(state="closed"))
        erase_contact(session, world["other"], world["staff"], settings=settings)
        new_id = new.id
    result = refresh(settings)
    assert result.mode == "incremental"
    assert b"Max Weg" not in _store(settings).read_bytes()  # erased: not even in the file's freed blocks
    con = open_store(_store(settings))
    try:
        assert _one(con, "SELECT channel FROM fact_interaction WHERE interaction_id = ?", [new_id]) == "call"
        assert _one(con, "SELECT count(*) FROM fact_interaction_contact WHERE interaction_id = ?", [new_id]) == 1
        state, closed = con.execute("SELECT state, closed_at FROM fact_ticket WHERE ticket_id = ?",
                                    [world["ticket"]]).fetchone() or (None, None)
        assert state == "closed" and closed is not None
        for table in ("dim_contact", "fact_interaction_contact", "fact_call", "fact_ticket", "fact_reminder",
                      "fact_invoice", "fact_opportunity", "fact_campaign_send"):
            assert _one(con, f"SELECT count(*) FROM {table} WHERE contact_id = ?", [world["other"]]) == 0, table
    finally:
        con.close()
    with factory() as session:  # and still the same figures as the operative database
        assert {t: result.rows[t] for t in ("fact_interaction", "fact_interaction_contact", "dim_contact",
                                            "fact_call", "fact_ticket", "fact_ticket_event")} == {
            "fact_interaction": session.scalar(select(func.count()).select_from(Interaction)),
            "fact_interaction_contact": session.scalar(select(func.count()).select_from(InteractionContact)),
            "dim_contact": session.scalar(select(func.count()).select_from(Contact)),
            "fact_call": session.scalar(select(func.count()).select_from(Call)),
            "fact_ticket": session.scalar(select(func.count()).select_from(Ticket)),
            "fact_ticket_event": session.scalar(select(func.count()).select_from(TicketEvent))}


def test_a_failed_refresh_leaves_the_old_store(settings: Settings, world: dict[str, Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    refresh(settings)
    before = StoreReader(_store(settings)).info()

    def broken(*_args: Any) -> None:
        raise RuntimeError("disk full, say")

    monkeypatch.setattr(load, "load_dates", broken)
    with pytest.raises(RuntimeError):
        refresh(settings, full=True)
    unreachable = replace(settings, analytics={"source_url": "postgresql+psycopg://crm:s3cret@127.0.0.1:1/crm"})
    with pytest.raises(RefreshFailed) as failed:
        refresh(unreachable)
    assert "s3cret" not in str(failed.value)
    assert StoreReader(_store(settings)).info() == before
    assert sorted(p.name for p in _store(settings).parent.iterdir() if "duckdb" in p.name) == [
        "analytics.duckdb", "analytics.duckdb.lock"]  # no temporary file left


def test_a_second_refresh_at_the_same_time_is_skipped(settings: Settings, world: dict[str, Any]) -> None:
    store = _store(settings)
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.with_name(store.name + ".lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another refresh is running
        assert refresh(settings).skipped == "busy"
        assert not store.exists()
    killed = store.with_name(store.name + ".tmp-999999")  # the new file of a refresh killed mid-way
    killed.write_bytes(b"half a store")
    assert refresh(settings).skipped is None
    assert not killed.exists()


def test_readers_keep_their_snapshot_while_a_refresh_swaps_the_store(
        settings: Settings, factory: sessionmaker[Session], world: dict[str, Any]) -> None:
    umask = os.umask(0o022)  # and the files are the owner's only whatever the umask
    try:
        refresh(settings)
        reader = StoreReader(_store(settings))
        with reader.cursor() as old:
            count = _one(old, "SELECT count(*) FROM fact_interaction")
            with factory.begin() as session:
                record_interaction(session, kind=InteractionKind.NOTE, direction=Direction.INTERNAL,
                                   occurred_at=MISSED, created_by_id=world["staff"])
            assert refresh(settings).mode == "incremental"
            assert _one(old, "SELECT count(*) FROM fact_interaction") == count
            with reader.cursor() as new:
                assert _one(new, "SELECT count(*) FROM fact_interaction") == count + 1
        reader.close()
    finally:
        os.umask(umask)
    store = _store(settings)
    for path in (store, store.with_name(store.name + ".lock")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_source_connection_cannot_write(settings: Settings, world: dict[str, Any]) -> None:
    engine = source_engine(settings.database.url)
    try:
        with snapshot(engine) as conn, pytest.raises(Exception, match=r"(?i)read.?only"):
            conn.execute(text("UPDATE contacts SET name = 'x'"))
    finally:
        engine.dispose()


def test_the_command_prints_one_line_and_fails_clearly(settings: Settings, world: dict[str, Any],
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "crm.toml"
    config.write_text(f'[service]\ninstance_dir = "{settings.service.instance_dir}"\n'
                      f'[database]\nurl = "{settings.database.url}"\n')
    assert main(["--config", str(config), "analytics", "refresh"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("analytics: full refresh, 17 tables, ")
    assert main(["--config", str(config), "analytics", "status"]) == 0
    assert "fact_interaction" in capsys.readouterr().out
    config.write_text(config.read_text() + '[analytics]\nsource_url = "postgresql+psycopg://crm:s3cret@127.0.0.1:1/x"\n')
    assert main(["--config", str(config), "analytics", "refresh"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "s3cret" not in captured.err and "Traceback" not in captured.err
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    config.write_text(f'[service]\ninstance_dir = "{blocked}/instance"\n[database]\nurl = "{settings.database.url}"\n')
    assert main(["--config", str(config), "analytics", "refresh"]) == 1  # the store's folder cannot be made
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err


def test_staff_names_are_kept_only_with_per_person_reports(settings: Settings, world: dict[str, Any]) -> None:
    refresh(replace(settings, analytics={"per_person_reports": True}))
    con = open_store(_store(settings))
    try:
        assert con.execute("SELECT name FROM dim_staff").fetchall() == [("Anna Schmidt",)]
    finally:
        con.close()
    assert b"Anna Schmidt" in _store(settings).read_bytes()
    assert refresh(settings).mode == "full"  # switched off again: gone with the next refresh, bytes and all
    assert b"Anna Schmidt" not in _store(settings).read_bytes()
    con = open_store(_store(settings))
    try:
        assert con.execute("SELECT name, team, active FROM dim_staff").fetchall() == [(None, None, True)]
        assert con.execute("SELECT count(*) FROM mirror.staff WHERE name IS NOT NULL").fetchone() == (0,)
    finally:
        con.close()


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = open_store(path)
    try:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in ("fact_interaction", "fact_interaction_contact", "fact_ticket", "fact_ticket_event",
                          "fact_call")}
    finally:
        con.close()


def test_incremental_equals_full_after_a_ticket_merge_and_a_late_commit(
        settings: Settings, factory: sessionmaker[Session], world: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refresh_module, "LOOKBACK_IDS", 0)  # as on a big database: the windows are far behind
    monkeypatch.setattr(refresh_module, "UPDATED_MARGIN", timedelta(0))
    with factory.begin() as session:
        contact = session.get_one(Contact, world["contact"])
        mail = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.IN, occurred_at=OPENED,
                                  subject="Zweites", contacts=[(contact, "from")])
        second = open_ticket(session, settings, subject="Zweites", contact=contact, interaction=mail,
                             opened_by="eva.mueller@kunde-ag.de").id
        # An id taken by a long transaction that commits only after the next refresh (PostgreSQL).
        late = record_interaction(session, kind=InteractionKind.NOTE, direction=Direction.INTERNAL,
                                  occurred_at=OPENED, contacts=[(contact, "party")], created_by_id=world["staff"])
        record_interaction(session, kind=InteractionKind.NOTE, direction=Direction.INTERNAL, occurred_at=OPENED)
        late_id = late.id
        session.delete(late)
        calls = [Call(source="test", call_id=f"late-{n}", direction=Direction.IN, state=CallState.ENDED,
                      started_at=MISSED, missed=True) for n in range(2)]
        session.add_all(calls)
        session.flush()
        late_call_id = calls[0].id
        session.delete(calls[0])
    refresh(settings)
    with factory.begin() as session:
        merge(session, session.get_one(Ticket, second), session.get_one(Ticket, world["ticket"]), world["staff"])
        session.add(Interaction(id=late_id, kind=InteractionKind.NOTE, direction=Direction.INTERNAL,
                                occurred_at=OPENED, subject="late", created_by_id=world["staff"]))
        # A call committed late, its updated_at (the application's clock) long before the last refresh.
        session.add(Call(id=late_call_id, source="test", call_id="late-0", direction=Direction.IN,
                         state=CallState.ENDED, started_at=MISSED, missed=True, updated_at=MISSED))
    assert refresh(settings).mode == "incremental"
    incremental = _rows(_store(settings))
    refresh(settings, full=True)
    assert incremental == _rows(_store(settings))
    assert any(r[0] == late_id for r in incremental["fact_interaction"])
    assert any(r[0] == late_call_id for r in incremental["fact_call"])
    tickets = [r[0] for r in incremental["fact_ticket"]]
    assert world["ticket"] in tickets and second not in tickets  # the merged duplicate is no ticket of its own
    assert all(r[1] != second for r in incremental["fact_ticket_event"])


def test_campaign_ledger_changes_reach_an_incremental_refresh(
        settings: Settings, factory: sessionmaker[Session], world: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The ledger has no updated_at and is no longer read whole: its changes are found by what they leave.
    monkeypatch.setattr(refresh_module, "LOOKBACK_IDS", 0)
    monkeypatch.setattr(refresh_module, "UPDATED_MARGIN", timedelta(0))
    week_ago = datetime.now(UTC) - timedelta(days=7)
    with factory.begin() as session:
        third = create_contact(session, ContactChanges(name="Ida Dritt", emails=("ida@dritt.de",)), "DE", None)
        campaigns = [Campaign(name=name, channel=Channel.EMAIL, state=CampaignState.SENDING, subject=name,
                              body="{{ greeting }}", recipient_count=2, started_at=week_ago)
                     for name in ("Herbstaktion", "Sommeraktion")]
        session.add_all(campaigns)
        session.flush()
        rows = [CampaignRecipient(campaign_id=campaigns[n % 2].id, contact_id=cid, address=f"{n}@example.org",
                                  state=state, basis="consent", released_at=released)
                for n, (cid, state, released) in enumerate(((world["contact"], RecipientState.QUEUED, None),
                                                            (world["other"], RecipientState.RELEASED, week_ago),
                                                            (third.id, RecipientState.QUEUED, None)))]
        session.add_all(rows)
        session.flush()
        campaign_id, ids = campaigns[0].id, [r.id for r in rows]
    refresh(settings)
    with factory.begin() as session:
        queued, replied, released = (session.get_one(CampaignRecipient, i) for i in ids)
        # left out at release: no time of its own, but the campaign changes (its counts, its state)
        queued.state, queued.reason = RecipientState.LEFT_OUT, "no_consent"
        session.get_one(Campaign, campaign_id).state = CampaignState.DONE
        # a reply stamped with the mail's own date, hours before the last refresh (its campaign unchanged)
        replied.replied_at = datetime.now(UTC) - timedelta(hours=3)
        released.state, released.released_at = RecipientState.RELEASED, datetime.now(UTC)
        session.add(CampaignRecipient(campaign_id=campaign_id, contact_id=None, state=RecipientState.LEFT_OUT,
                                      reason="no_address"))
    assert refresh(settings).mode == "incremental"
    con = open_store(_store(settings))
    try:
        incremental = sorted(con.execute("SELECT * FROM fact_campaign_send").fetchall(), key=repr)
    finally:
        con.close()
    refresh(settings, full=True)
    con = open_store(_store(settings))
    try:
        assert incremental == sorted(con.execute("SELECT * FROM fact_campaign_send").fetchall(), key=repr)
        assert con.execute("SELECT state, replied_at IS NOT NULL FROM fact_campaign_send "
                           "ORDER BY recipient_id").fetchall() == [
            ("left_out", False), ("released", True), ("released", False), ("left_out", False)]
    finally:
        con.close()


def test_the_primary_postgresql_server_is_read_gently(settings: Settings, world: dict[str, Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Its backend runs at full priority beside mail and pages: a pause after each batch, as long as it took
    # (bounded); a replica ([analytics] source_url) and SQLite (read in the niced refresh itself) are not paused.
    assert [extract.pause_after(s) for s in (0.0, 0.5, 60.0)] == [0.0, 0.5, extract.MAX_PAUSE_SECONDS]
    pauses: list[float] = []

    def pause_after(seconds: float) -> float:
        pauses.append(seconds)
        return 0.0  # the test does not wait

    monkeypatch.setattr(extract, "pause_after", pause_after)
    refresh(settings, full=True)
    postgres = make_url(settings.database.url).get_backend_name() == "postgresql"
    assert bool(pauses) == postgres
    if postgres:
        pauses.clear()
        replica = replace(settings, analytics={"source_url": settings.database.url})
        assert refresh(replica, full=True).rows["fact_interaction"] > 0 and pauses == []


def test_the_automatic_acknowledgement_is_no_first_response(settings: Settings, factory: sessionmaker[Session],
                                                            world: dict[str, Any]) -> None:
    with factory.begin() as session:  # as tickets.service.queue_acknowledgement records it: nobody wrote it
        ack = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.OUT,
                                 occurred_at=OPENED + timedelta(minutes=1), subject="[T] received",
                                 details={"automatic": "acknowledgement"})
        ack.ticket_id = world["ticket"]
    refresh(settings)
    con = open_store(_store(settings))
    try:
        assert _one(con, "SELECT first_response_minutes FROM fact_ticket WHERE ticket_id = ?",
                    [world["ticket"]]) == 90.0  # the staff reply, not the acknowledgement after a minute
    finally:
        con.close()


def test_a_changed_timezone_or_an_old_full_refresh_makes_it_full(settings: Settings, world: dict[str, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    refresh(settings)
    new_york = replace(settings, reminders={"timezone": "America/New_York"})
    assert refresh(new_york).mode == "full"  # every local date again, in the new zone
    con = open_store(_store(settings))
    try:  # 23:30 UTC on 1 July is 19:30 on 1 July in New York (01:30 on 2 July in Berlin)
        assert _one(con, "SELECT opened_date FROM fact_ticket WHERE ticket_id = ?", [world["ticket"]]) == date(
            2026, 7, 1)
    finally:
        con.close()
    assert refresh(new_york).mode == "incremental"
    monkeypatch.setattr(refresh_module, "FULL_EVERY", timedelta(0))  # the last full one is "a day old"
    assert refresh(new_york).mode == "full"


def test_a_mistyped_source_url_is_one_clear_line(settings: Settings) -> None:
    for url in ("postgres://crm:s3cret@127.0.0.1/crm", "mysql://crm:s3cret@127.0.0.1/crm", "nonsense"):
        with pytest.raises(RefreshFailed) as failed:
            refresh(replace(settings, analytics={"source_url": url}))
        message = str(failed.value)
        assert "s3cret" not in message and len(message.splitlines()) == 1 and "database URL" in message, message


def test_building_the_cli_parser_loads_no_duckdb() -> None:
    code = ("from crm_inbox.cli import _parser; _parser(); import sys; "
            "assert 'duckdb' not in sys.modules and 'crm_inbox.analytics.refresh' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)

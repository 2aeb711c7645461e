"""Reminders fire exactly once across processes: two `crm-inbox serve` on one database, a crash while the
notification is being sent, and restarts. Notifications go to a real SMTP sink (aiosmtpd) that counts them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.models import OutboxState, OutgoingMail, Reminder, ReminderState, utcnow
from crm_inbox.runtime import Service
from crm_inbox.staff.service import add_staff
from tests import serveproc
from tests.conftest import make_settings
from tests.serveproc import CountingSink, counting_sink, notifications, serve


@pytest.fixture
def sink() -> Iterator[tuple[CountingSink, int]]:
    yield from counting_sink()


def config_file(tmp_path: Path, name: str, database_url: str, sink_port: int, smtp_timeout: int = 1,
                **reminders: Any) -> Path:
    return serveproc.config_file(tmp_path, name, database_url, smtp={"enabled": False},
                                 notifications=notifications(sink_port, smtp_timeout), reminders=reminders)


def add_due(factory: Any, count: int, assignee: int, due_in: timedelta = timedelta(0)) -> None:
    due = utcnow() + due_in
    with unit_of_work(factory) as session:
        session.execute(insert(Reminder), [
            {"title": f"Rückruf {n}", "reason": "manual", "due_at": due, "fire_at": due, "assignee_id": assignee,
             "state": ReminderState.OPEN, "created_at": utcnow(), "updated_at": utcnow()} for n in range(count)])


def staff(factory: Any) -> int:
    with unit_of_work(factory) as session:
        return add_staff(session, "jonas.becker@beispiel-firma.de", "Jonas Becker").id


def counts(factory: Any) -> tuple[int, int, int]:
    """(reminders fired, notification mails queued, of those sent)."""
    with factory() as session:
        fired = session.execute(select(func.count()).select_from(Reminder).where(Reminder.fired_at.is_not(None),
                                                                                Reminder.fire_at.is_(None)))
        queued = session.execute(select(func.count()).select_from(OutgoingMail))
        sent = session.execute(select(func.count()).select_from(OutgoingMail)
                               .where(OutgoingMail.state == OutboxState.SENT))
        return fired.scalar_one(), queued.scalar_one(), sent.scalar_one()


def test_two_serve_processes_fire_500_reminders_exactly_once(database_url, tmp_path, factory, sink):
    handler, port = sink
    jonas = staff(factory)
    one = serve(config_file(tmp_path, "one", database_url, port, tick_seconds=1), tmp_path / "one.log")
    two = serve(config_file(tmp_path, "two", database_url, port, tick_seconds=1), tmp_path / "two.log")
    try:
        # Both are running; 500 come due at once and both look every second.
        add_due(factory, 500, jonas)
        assert handler.wait_for(500, timeout=120), f"{len(handler.received)} of 500 arrived"
    finally:
        assert one.stop() == 0 and two.stop() == 0
    assert len(handler.received) == 500
    assert sorted(handler.received) == sorted({*handler.received})  # no reminder twice
    assert counts(factory) == (500, 500, 500)
    assert one.fired() + two.fired() == 500


def test_a_crash_while_the_notification_is_sent_gives_exactly_one_after_restart(database_url, tmp_path, factory,
                                                                                sink):
    handler, port = sink
    handler.hold_first = True
    jonas = staff(factory)
    add_due(factory, 1, jonas)
    # An SMTP timeout longer than the kill takes: the sender is still waiting for the sink's reply.
    config = config_file(tmp_path, "crashy", database_url, port, smtp_timeout=3)
    first = serve(config, tmp_path / "crashy.log")
    try:
        assert handler.arrived.wait(60), "the notification never reached the sink"
    finally:
        first.proc.kill()  # SIGKILL mid-send: no clean-up of any kind
        first.proc.wait(60)
    handler.release.set()  # the sink lets go of the dead connection (and does not deliver it)
    assert counts(factory) == (1, 1, 0)  # fired, queued, not sent: the claim of a dead process

    second = serve(config, tmp_path / "crashy.log")
    try:
        # The dead process's claim runs out (twice the SMTP timeout and 5 s), then the mail goes once.
        assert handler.wait_for(1, timeout=60)
    finally:
        assert second.stop() == 0  # a stop lets the sender finish its round: the delivery is recorded
    assert len(handler.received) == 1
    assert counts(factory) == (1, 1, 1)


def test_ten_restarts_in_a_row_make_no_duplicate_schedule_or_notification(settings: Settings, factory, sink):
    handler, port = sink
    jonas = staff(factory)
    add_due(factory, 1, jonas)  # due now: fires once, on the first start
    add_due(factory, 1, jonas, due_in=timedelta(days=2))  # stays planned through all restarts
    settings = make_settings(settings.database.url, settings.instance_path,
                             notifications={"smtp_host": "127.0.0.1", "smtp_port": port, "timeout_seconds": 5})
    for _ in range(10):
        service = Service(settings, web=False, smtp=False)
        service.start()
        try:
            assert service.scheduler.wait_runs("reminders-tick")
            assert service.scheduler.job_ids() == ["close-stale-calls", "reminders-tick", "retention-purge"]
            assert service.sender.wait_idle()
        finally:
            service.stop()
    assert len(handler.received) == 1
    with factory() as session:
        rows = session.execute(select(Reminder).order_by(Reminder.id)).scalars().all()
    assert [r.fired_at is not None for r in rows] == [True, False]
    assert rows[1].fire_at is not None and rows[1].state == ReminderState.OPEN
    assert counts(factory) == (1, 1, 1)

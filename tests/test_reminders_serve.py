"""Reminders fire exactly once across processes: two `crm-inbox serve` on one database, a crash while the
notification is being sent, and restarts. Notifications go to a real SMTP sink (aiosmtpd) that counts them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.models import OutboxState, OutgoingMail, Reminder, ReminderState, utcnow
from crm_inbox.runtime import Service
from crm_inbox.staff import add_staff
from handlers.smtp import SmtpServer
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CountingSink:
    """An aiosmtpd handler that counts notification mails per reminder. With ``hold_first`` the first
    message is held at DATA (the sender waits for its reply) until ``release`` is set, then refused."""

    hold_first: bool = False
    received: list[str] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)
    closing: bool = False
    in_flight: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.hold_first and not self.arrived.is_set():
            self.arrived.set()
            await asyncio.to_thread(self.release.wait, 60)
            return "451 4.3.0 the sender died meanwhile; this one is not delivered"
        header = re.search(rb"X-CRM-Inbox-Reminder: (\d+)", envelope.original_content)
        with self.changed:
            self.received.append(header.group(1).decode() if header else "?")
            self.changed.notify_all()
        return "250 2.0.0 Ok"

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.received) >= count, timeout)


@pytest.fixture
def sink() -> Iterator[tuple[CountingSink, int]]:
    handler = CountingSink()
    server = SmtpServer(handler, "127.0.0.1", 0, max_message_bytes=1_000_000)  # type: ignore[arg-type]
    port = server.start()
    yield handler, port
    handler.release.set()
    server.stop()


def config_file(tmp_path: Path, name: str, database_url: str, sink_port: int, smtp_timeout: int = 1,
                **reminders: Any) -> Path:
    extra = "".join(f"{key} = {value}\n" for key, value in reminders.items())
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"[service]\ninstance_dir = '{tmp_path / name}'\n[database]\nurl = '{database_url}'\n"
        f"[web]\nport = 0\nsecret_key = 'test'\n[smtp]\nenabled = false\n"
        f"[mail]\ncrm_addresses = ['crm@beispiel-firma.de']\n"
        f"[notifications]\nsmtp_host = '127.0.0.1'\nsmtp_port = {sink_port}\ntimeout_seconds = {smtp_timeout}\n"
        f"from_address = 'crm@beispiel-firma.de'\n[reminders]\n{extra}")
    return path


@dataclass
class Serve:
    proc: subprocess.Popen[str]
    log: Path

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def fired(self) -> int:
        return sum(int(n) for n in re.findall(r"reminders: (\d+) fired", self.log.read_text()))


def serve(config: Path, log: Path) -> Serve:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The log goes to a file: an unread pipe fills up and would block the server mid-write.
    proc = subprocess.Popen([sys.executable, "-m", "crm_inbox", "--config", str(config), "serve"],
                            stdout=subprocess.PIPE, stderr=log.open("a"), text=True, env=env)
    assert proc.stdout is not None
    banner = proc.stdout.readline()  # printed once the service is up
    assert "CRM Inbox: web" in banner, banner + log.read_text()
    return Serve(proc, log)


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
            assert service.scheduler.job_ids() == ["close-stale-calls", "reminders-tick"]
            assert service.sender.wait_idle()
        finally:
            service.stop()
    assert len(handler.received) == 1
    with factory() as session:
        rows = session.execute(select(Reminder).order_by(Reminder.id)).scalars().all()
    assert [r.fired_at is not None for r in rows] == [True, False]
    assert rows[1].fire_at is not None and rows[1].state == ReminderState.OPEN
    assert counts(factory) == (1, 1, 1)

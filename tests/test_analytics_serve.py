"""`serve` refreshes the analytical store on a schedule ([analytics] refresh_minutes), in a process of its own
at the lowest priority; a failing refresh is one log line and serve goes on; stopping serve ends a running
refresh."""

from __future__ import annotations

import logging
import os
import signal
import smtplib
import sys
import time
from pathlib import Path

from crm_inbox.analytics.store import open_store, read_info
from crm_inbox.config import Settings, replace
from crm_inbox.db import unit_of_work
from crm_inbox.models import Company
from crm_inbox.store_refresh import (
    STOP_GRACE_SECONDS,
    StoreRefresher,
    at_lowest_priority,
    next_refresh_at,
    refresh_command,
    refresh_environment,
)
from tests.conftest import CRM
from tests.mailfactory import make_mail
from tests.serveproc import config_file, serve, wait_until

HOUR = 3600.0


def test_when_the_next_refresh_is_due():
    now = 1_000_000.0
    assert next_refresh_at(now, None, None, HOUR) == now  # no store yet: at once
    assert next_refresh_at(now, now - 2 * HOUR, None, HOUR) == now - HOUR  # older than the interval: overdue
    assert next_refresh_at(now, now - 60, None, HOUR) == now - 60 + HOUR  # fresh: an interval after it
    # A refresh that failed (the store is as old as before, or still missing) is not retried in a loop.
    assert next_refresh_at(now, now - 2 * HOUR, now - 10, HOUR) == now - 10 + HOUR
    assert next_refresh_at(now, None, now - 10, HOUR) == now - 10 + HOUR


def test_the_child_runs_the_command_line_with_serves_settings(settings: Settings):
    command = refresh_command("/etc/crm-inbox.toml")
    at = command.index(sys.executable)
    assert command[at:] == [sys.executable, "-m", "crm_inbox", "--config", "/etc/crm-inbox.toml", "analytics",
                            "refresh"]
    assert "--config" not in refresh_command(None)
    # nice and ionice exec the refresh in the same process; no Python code runs between fork and exec.
    niced = at_lowest_priority(command)
    assert niced[1:3] == ["-n", "19"] and Path(niced[0]).name == "nice" and niced[-len(command):] == command

    # serve's settings may come from elsewhere than a file (the demo's own database): the child gets them.
    demo = replace(settings, database={"url": "sqlite:///instance/demo.db"},
                   analytics={"path": "instance/demo-analytics.duckdb", "per_person_reports": True})
    env = refresh_environment(demo, {"PATH": "/usr/bin", "CRM_INBOX_CONFIG": "x.toml"})
    assert env["PATH"] == "/usr/bin" and env["CRM_INBOX_CONFIG"] == "x.toml"
    assert env["CRM_INBOX_DATABASE_URL"] == "sqlite:///instance/demo.db"
    assert env["CRM_INBOX_ANALYTICS_PATH"] == "instance/demo-analytics.duckdb"
    assert env["CRM_INBOX_ANALYTICS_PER_PERSON_REPORTS"] == "true"
    from crm_inbox.config import settings_from_mapping

    child = settings_from_mapping({}, env)  # what the child reads from that environment
    assert child.database.url == demo.database.url
    for key in ("path", "source_url", "min_group_size", "per_person_reports"):
        assert getattr(child.analytics, key) == getattr(demo.analytics, key), key


def test_without_nice_or_ionice_the_refresh_runs_all_the_same(monkeypatch):
    command = refresh_command(None)
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert at_lowest_priority(command) == command
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}" if name == "nice" else None)
    assert at_lowest_priority(command) == ["/usr/bin/nice", "-n", "19", *command]


def _execed(pid: int) -> bool:
    """Whether the child got past nice and ionice (each sets its priority, then execs the next program)."""
    try:
        program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return Path(program.decode()).name not in ("nice", "ionice")


def _refresher(settings: Settings, tmp_path: Path, script: str) -> StoreRefresher:
    """A scheduled refresh whose child runs ``script`` instead of the real command."""
    scheduled = replace(settings, analytics={"refresh_minutes": 60, "path": str(tmp_path / "store.duckdb")})
    refresher = StoreRefresher(scheduled)
    refresher.command = [sys.executable, "-c", script]
    return refresher


def test_a_failing_refresh_is_one_log_line_and_is_not_retried_at_once(settings, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="crm_inbox.store_refresh")
    refresher = _refresher(settings, tmp_path, "import sys\nprint('Traceback …', file=sys.stderr)\n"
                                               "sys.exit('crm-inbox: the database cannot be read')")
    refresher.start()
    try:
        assert wait_until(lambda: refresher._last_attempt is not None, timeout=30)
        assert [r.getMessage() for r in caplog.records] == [
            "analytics: the scheduled refresh failed (exit status 1): crm-inbox: the database cannot be read"]
        assert caplog.records[0].levelno == logging.WARNING
        assert refresher._thread is not None and refresher._thread.is_alive()  # the schedule goes on
        assert refresher.child_pid is None  # and waits an interval before the next attempt
    finally:
        refresher.stop()


def test_the_refresh_runs_at_the_lowest_priority_and_stop_ends_it(settings, tmp_path, caplog):
    refresher = _refresher(settings, tmp_path, "import time\ntime.sleep(600)")
    refresher.start()
    try:
        assert wait_until(lambda: refresher.child_pid is not None, timeout=30)
        pid = refresher.child_pid
        assert pid is not None and wait_until(lambda: _execed(pid), timeout=30)
        assert os.getpriority(os.PRIO_PROCESS, pid) == 19
    finally:
        refresher.stop()
    assert refresher._child is not None and refresher._child.returncode is not None  # ended and reaped
    assert refresher._thread is not None and not refresher._thread.is_alive()
    assert not [r for r in caplog.records if r.name == "crm_inbox.store_refresh"]  # a stop is no failure


def test_a_stop_request_does_not_wait_for_the_refresh_and_the_reap_kills_it_after_a_short_grace(settings, tmp_path):
    # A child that ignores SIGTERM (a refresh deep in a DuckDB call may take a while to end).
    ready = tmp_path / "ready"
    refresher = _refresher(settings, tmp_path, "import pathlib, signal, sys, time\n"
                                               "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                               f"pathlib.Path({str(ready)!r}).touch()\ntime.sleep(600)")
    refresher.start()
    try:
        assert wait_until(ready.exists, timeout=30)
        child = refresher._child
        assert child is not None
        started = time.monotonic()
        refresher.request_stop()  # serve's stop asks first, then stops taking mail at once
        assert time.monotonic() - started < 1.0
        assert child.poll() is None  # still there: nobody waited for it
    finally:
        refresher.stop()  # after the operative parts: the rest of the grace, then killed and reaped
    assert child.returncode == -signal.SIGKILL
    assert time.monotonic() - started < STOP_GRACE_SECONDS + 5
    assert refresher._thread is not None and not refresher._thread.is_alive()


def test_refresh_minutes_zero_or_analytics_off_start_nothing(settings):
    assert not StoreRefresher(settings).enabled  # the tests' settings: refresh_minutes = 0
    off = replace(settings, analytics={"refresh_minutes": 60, "enabled": False})
    assert not StoreRefresher(off).enabled


def test_serve_builds_the_missing_store_in_a_nice_child_and_goes_on_taking_mail(settings, factory, tmp_path):
    with unit_of_work(factory) as session:
        session.add(Company(name="Müller Maschinenbau GmbH"))
    store = tmp_path / "store" / "analytics.duckdb"
    store.parent.mkdir()
    config = config_file(tmp_path, "scheduled", settings.database.url,
                         analytics={"refresh_minutes": 1, "path": str(store)})
    node = serve(config, tmp_path / "serve.log")
    try:
        def refresh_child() -> int | None:
            for pid in node.processes()[1:]:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"analytics" in cmdline and b"refresh" in cmdline and _execed(pid):
                    return pid
            return None

        # Right after start, since there is no store yet; seen while it runs (a Python process with DuckDB
        # takes far longer to start than this looks).
        pid = wait_until(refresh_child, timeout=30, interval=0.01)
        assert pid, "serve started no refresh"
        assert os.getpriority(os.PRIO_PROCESS, pid) == 19
        assert node.smtp_port is not None
        with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=60) as client:
            assert client.sendmail("k@example.com", [CRM], make_mail(subject="Während der Auswertung")) == {}
        assert wait_until(store.exists, timeout=60), node.log.read_text()[-3000:]
        con = open_store(store)
        try:
            info = read_info(con)
            assert info is not None and info.mode == "full"
            assert con.execute("SELECT count(*) FROM dim_company").fetchone() == (1,)
        finally:
            con.close()
        # One line says what the refresh did (its own summary), nothing else about it.
        def refresh_lines() -> list[str]:
            return [line for line in node.log.read_text().splitlines() if "crm_inbox.store_refresh" in line]

        assert wait_until(refresh_lines, timeout=30)
        (line,) = refresh_lines()
        assert "analytics: full refresh" in line and str(store) in line, line
        assert node.stop() == 0
    finally:
        node.ensure_gone()

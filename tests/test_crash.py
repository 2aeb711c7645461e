"""Crashes and stops under load (issue #9): `crm-inbox serve` is killed with SIGKILL (or stopped with SIGTERM)
five times while three SMTP client processes send mail and a phone system posts call events; every message
that got a 250 is stored exactly once and processed, every call is recorded once with its final state.
Runs on SQLite and, with CRM_INBOX_TEST_DATABASE_URL, on PostgreSQL; also alone:
``.venv/bin/pytest tests/test_crash.py``."""

from __future__ import annotations

import signal

from tests import crashload
from tests.crashload import Plan


def test_sigkill_five_times_under_load_loses_and_duplicates_nothing(database_url, tmp_path):
    report = crashload.run(Plan(clients=3, messages_per_client=150, kills=5, calls=12), database_url, tmp_path)
    summary = "\n".join(report.lines())
    assert report.ok, summary
    assert report.kills == 5, summary
    assert report.acknowledged == report.found == 450, summary
    assert (report.lost, report.duplicates, report.unprocessed) == (0, 0, 0), summary
    assert report.resent > 0, "no kill hit a message in flight: the test proved less than it claims\n" + summary
    assert report.calls_right == 12, summary


def test_sigterm_under_load_exits_0_promptly_and_loses_nothing(database_url, tmp_path):
    plan = Plan(clients=3, messages_per_client=100, kills=3, calls=6, stop_signal=signal.SIGTERM)
    report = crashload.run(plan, database_url, tmp_path)
    summary = "\n".join(report.lines()) + f"\nstop times: {report.stop_seconds}"
    assert report.ok, summary
    assert report.kills == 3, summary
    assert report.stop_exit_codes == [0] * 4, summary  # three stops under load and the last one
    assert max(report.stop_seconds) < 30, summary
    assert report.acknowledged == report.found == 300, summary
    assert (report.lost, report.duplicates, report.unprocessed) == (0, 0, 0), summary
    assert report.calls_right == 6, summary

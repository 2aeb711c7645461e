"""Crashes and stops under load (issue #9): `crm-inbox serve` is killed with SIGKILL (or stopped with SIGTERM)
five times while three SMTP client processes send mail and a phone system posts call events; every message
that got a 250 is stored exactly once and processed, every call is recorded once with its final state.
Two nodes (two serve processes on one PostgreSQL database) share mail and webhooks the same way; that
500 due reminders fire once across two nodes is tests/test_reminders_serve.py's. Runs on SQLite and, with
CRM_INBOX_TEST_DATABASE_URL, on PostgreSQL; also alone: ``.venv/bin/pytest tests/test_crash.py``."""

from __future__ import annotations

import os
import signal
import smtplib
import threading

import pytest
from sqlalchemy import select

from crm_inbox.models import ContactEmail, InboundMessage, InboundState
from tests import crashload
from tests.conftest import CRM, PG_URL_ENV
from tests.crashload import Plan
from tests.mailfactory import make_mail
from tests.serveproc import config_file, serve, wait_until


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


two_nodes = pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason="several serve processes share one database "
                               "only on PostgreSQL (on SQLite one process writes); runs in the PostgreSQL pass")


@two_nodes
def test_two_nodes_share_mail_and_calls_and_send_each_reminder_once(database_url, tmp_path):
    plan = Plan(clients=3, messages_per_client=100, kills=0, calls=12, nodes=2)
    report = crashload.run(plan, database_url, tmp_path)
    summary = "\n".join(report.lines())
    assert report.ok, summary
    assert report.acknowledged == report.found == 300, summary
    assert (report.lost, report.duplicates, report.duplicate_leads, report.unprocessed) == (0, 0, 0, 0), summary
    assert report.calls_right == 12, summary
    # Both nodes look for due reminders every second; each missed call's call-back is mailed exactly once.
    assert report.reminders_fired_once == 6, summary
    assert (report.notifications_delivered, report.notifications_twice) == (6, 0), summary


@two_nodes
def test_two_nodes_while_one_after_the_other_is_killed(database_url, tmp_path):
    plan = Plan(clients=3, messages_per_client=80, kills=3, calls=12, nodes=2)
    report = crashload.run(plan, database_url, tmp_path)
    summary = "\n".join(report.lines())
    assert report.ok, summary
    assert report.kills == 3, summary
    assert report.acknowledged == report.found == 240, summary
    assert (report.lost, report.duplicates, report.unprocessed) == (0, 0, 0), summary
    assert report.calls_right == 12 and report.reminders_fired_once == 6, summary


@two_nodes
def test_two_nodes_make_one_lead_for_a_new_sender_who_writes_to_both_at_once(database_url, factory, tmp_path):
    nodes = [serve(config_file(tmp_path, f"node{i}", database_url), tmp_path / f"node{i}.log") for i in range(2)]
    try:
        for k in range(20):
            mails = [(node.smtp_port, make_mail(sender=f"Neu {k} <neu{k}@kunde{k}.example>", subject=f"Frage {j}"))
                     for j, node in enumerate(nodes)]
            senders = [threading.Thread(target=deliver, args=mail) for mail in mails]
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join(120)

        def processed() -> bool:
            with factory() as session:
                return session.execute(select(InboundMessage.state)).scalars().all() == [InboundState.PROCESSED] * 40

        assert wait_until(processed, timeout=120)
    finally:
        assert [node.stop() for node in nodes] == [0, 0]
        for node in nodes:
            node.ensure_gone()
    with factory() as session:
        addresses = session.execute(select(ContactEmail.email)).scalars().all()
    assert sorted(addresses) == sorted(f"neu{k}@kunde{k}.example" for k in range(20))  # one lead each


def deliver(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.sendmail("neu@kunde.example", [CRM], raw)

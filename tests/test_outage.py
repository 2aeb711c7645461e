"""The database goes away under a running `crm-inbox serve` (issue #9): PostgreSQL unreachable (a TCP proxy in
between is cut), the disk full under SQLite (the process's file size limit drops to nothing), or the SQLite file
locked by another program for longer than the 30 s busy timeout. Meanwhile SMTP
answers 451 4.3.0 (try again later), never 250 and never a 5xx, and a phone system's webhook gets a 5xx (it
retries); once the database is back the same message is accepted and processed and the web app answers
again, without restarting anything."""

from __future__ import annotations

import json
import os
import resource
import smtplib
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from crm_inbox.models import Call, InboundMessage, InboundState
from handlers.smtp import TRY_LATER
from tests.conftest import CRM, PG_URL_ENV, make_token
from tests.loadclients import send_one
from tests.mailfactory import make_mail
from tests.serveproc import Serve, config_file, serve, wait_until
from tests.tcpproxy import CuttableProxy

CTI_TOKEN = "outage-cti-token"
on_postgresql = pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason="needs PostgreSQL (the database server "
                                   "becomes unreachable); runs in the PostgreSQL pass")
on_sqlite = pytest.mark.skipif(bool(os.environ.get(PG_URL_ENV)), reason="a full disk or a locked file is SQLite's "
                               "outage (runs in the SQLite pass); PostgreSQL's is the unreachable server")


def deliver(port: int, raw: bytes) -> tuple[int, str]:
    """One delivery on a fresh connection: the final reply, or (0, why) when the connection failed."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
            return send_one(client, "klaus.mueller@mueller-maschinenbau.de", CRM, raw)
    except (OSError, smtplib.SMTPException) as exc:
        return 0, f"{exc.__class__.__name__}: {exc}"


def http(node: Serve, method: str, path: str, token: str, body: dict | None = None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{node.web_port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def call_event(call_id: str) -> dict:
    return {"event": "new", "call_id": call_id, "at": datetime.now(UTC).isoformat(), "direction": "in",
            "from": "+49 30 98765012", "to": "+49 89 4711-22"}


def outage_and_recovery(node: Serve, factory, token: str, cut: Callable[[], None], restore: Callable[[], None],
                        attempts: int = 3):
    assert node.smtp_port is not None
    assert deliver(node.smtp_port, make_mail(subject="Vorher"))[0] == 250
    mail = make_mail(subject="Während der Störung")
    cut()
    try:
        # The mail and a phone system's webhook at the same time (each may wait for the database first).
        with ThreadPoolExecutor(2) as pool:
            smtp = pool.submit(lambda: [deliver(node.smtp_port, mail) for _ in range(attempts)])
            webhook = pool.submit(http, node, "POST", "/api/v1/calls/events", CTI_TOKEN, call_event("during"))
            assert smtp.result() == [(451, TRY_LATER[4:])] * attempts
            assert webhook.result() >= 500
    finally:
        restore()
    # The sender's queue tries the same bytes again; the service was not restarted.
    after: list[tuple[int, str]] = []
    wait_until(lambda: after.append(deliver(node.smtp_port, mail)) or after[-1][0] == 250, timeout=60, interval=0.5)
    assert after[-1][0] == 250, after
    assert all(400 <= code < 500 for code, _ in after[:-1]), after  # until then: try later, never refused
    assert node.proc.poll() is None

    def processed() -> bool:
        with factory() as session:
            states = session.execute(select(InboundMessage.state)).scalars().all()
        return len(states) == 2 and set(states) == {InboundState.PROCESSED}

    # Well within the worker's 30 s sweep: a message whose processing met the outage is retried sooner.
    assert wait_until(processed, timeout=20), "the mail accepted before or after the outage was not processed"
    # The phone system's retry, and the API, work again too.
    assert wait_until(lambda: http(node, "POST", "/api/v1/calls/events", CTI_TOKEN,
                                   call_event("during")) == 200, timeout=60)
    assert http(node, "GET", "/api/v1/calls", token) == 200
    with factory() as session:
        assert session.execute(select(Call.call_id)).scalars().all() == ["during"]
    assert node.stop() == 0


def start(tmp_path: Path, database_url: str) -> Serve:
    config = config_file(tmp_path, "outage", database_url, cti={"token": CTI_TOKEN}, reminders={"tick_seconds": 1},
                         phone={"own_numbers": ["+49 89 4711-0"]})
    return serve(config, tmp_path / "outage.log")


@on_postgresql
def test_postgresql_unreachable_gives_451_and_the_service_recovers_by_itself(database_url, factory, tmp_path):
    url = make_url(database_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    token = make_token(factory, "anna.schmidt@beispiel-firma.de")
    node = start(tmp_path, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    try:
        outage_and_recovery(node, factory, token, proxy.cut, proxy.restore)
    finally:
        node.ensure_gone()
        proxy.close()


@on_sqlite
def test_disk_full_gives_451_and_the_service_recovers_by_itself(database_url, factory, tmp_path):
    token = make_token(factory, "anna.schmidt@beispiel-firma.de")
    node = start(tmp_path, database_url)
    pids = node.processes()  # the service and its SMTP intake writer: the disk is full for both
    assert len(pids) == 2
    soft, hard = resource.prlimit(pids[0], resource.RLIMIT_FSIZE)

    def file_size_limit(limit: int) -> None:
        for pid in pids:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))

    try:
        # Every write past the first byte of any file fails with EFBIG, as on a full disk (Python ignores
        # SIGXFSZ, so the process is not killed by it). Reads still work.
        outage_and_recovery(node, factory, token, lambda: file_size_limit(1), lambda: file_size_limit(soft))
    finally:
        node.ensure_gone()


@on_postgresql
def test_mail_stored_before_an_outage_is_processed_soon_after_it(database_url, settings, factory, caplog):
    from crm_inbox.db import make_engine, make_sessionmaker
    from crm_inbox.intake.store import Envelope, store
    from crm_inbox.pipeline.worker import Worker

    url = make_url(database_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    engine = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    stored = store(factory, make_mail(subject="Vor der Störung angenommen"), Envelope(rcpt_to=(CRM,)))
    proxy.cut()
    # The periodic sweep is far away: only the retry after a database error can pick the message up in time.
    worker = Worker(make_sessionmaker(engine), settings, sweep_seconds=600)
    worker.start()
    try:
        def failures() -> int:
            return caplog.text.count("cannot look for waiting messages")

        assert wait_until(lambda: failures() >= 2, timeout=30)
        assert failures() <= 3  # it waits between tries (1 s, 2 s, …), it does not spin
        proxy.restore()

        def state() -> InboundState:
            with factory() as session:
                return session.get_one(InboundMessage, stored.inbound_id).state

        assert wait_until(lambda: state() == InboundState.PROCESSED, timeout=60)
    finally:
        worker.stop()
        engine.dispose()
        proxy.close()


@on_sqlite
def test_sqlite_locked_by_another_program_gives_451_and_the_service_recovers_by_itself(database_url, factory,
                                                                                       tmp_path):
    token = make_token(factory, "anna.schmidt@beispiel-firma.de")
    # A 3 s busy timeout instead of the default 30 s (the URL's ?timeout=): the same outage, sooner over.
    node = start(tmp_path, f"{database_url}?timeout=3")
    other = sqlite3.connect(make_url(database_url).database, isolation_level=None)  # say, a backup tool

    def lock() -> None:
        other.execute("BEGIN EXCLUSIVE")  # writers wait out their busy timeout, then give up

    try:
        outage_and_recovery(node, factory, token, lock, lambda: other.execute("ROLLBACK"), attempts=1)
    finally:
        other.close()
        node.ensure_gone()

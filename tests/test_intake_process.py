"""The SMTP intake's writer process (crm_inbox/intake/writer.py): when it dies, mail in flight gets 451 and the
next message starts a new one; it never outlives the service; the header split it relies on is exact. Which
mail it takes is SmtpStore's choice (crm_inbox/intake/smtp_store.py): below 1 MiB the writer, from there the
listener's own process."""

from __future__ import annotations

import os
import signal
import smtplib
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from crm_inbox.config import replace
from crm_inbox.intake.smtp_store import LARGE
from crm_inbox.intake.store import _HEADER_END, Envelope, accept, header_end
from crm_inbox.models import InboundMessage
from crm_inbox.runtime import Service
from handlers import smtp as smtp_replies
from tests.conftest import CRM, PG_URL_ENV
from tests.mailfactory import make_mail
from tests.serveproc import config_file, serve, wait_until
from tests.tcpproxy import CuttableProxy


def send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("kunde@example.org", [CRM], raw)


def stored(factory) -> int:
    with factory() as session:
        return session.execute(select(func.count()).select_from(InboundMessage)).scalar_one()


def writer_pid(service) -> int:
    writer = service.intake_process._writer
    assert writer is not None and writer.alive
    return writer.proc.pid


def test_mail_in_flight_when_the_writer_dies_gets_451_and_the_retry_is_stored_once(service, factory, caplog):
    send(service.smtp_port, make_mail(subject="before"))
    pid = writer_pid(service)
    os.kill(pid, signal.SIGSTOP)  # the writer holds the next message without answering…
    raw = make_mail(subject="in flight")
    outcome: list[BaseException | None] = []

    def deliver() -> None:
        try:
            send(service.smtp_port, raw)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    sender = threading.Thread(target=deliver)
    sender.start()
    try:
        wait_until(lambda: service.smtp.handler.in_flight == 1, timeout=10, interval=0.01)
    finally:
        os.kill(pid, signal.SIGKILL)  # …and dies with it
    sender.join(30)
    assert isinstance(outcome[0], smtplib.SMTPDataError), outcome
    assert outcome[0].smtp_code == 451
    assert outcome[0].smtp_error.decode() == smtp_replies.TRY_LATER[4:]
    # The operator's log says why in one line, without a traceback of the listener's side.
    (failure,) = [r for r in caplog.records if "answered 451" in r.getMessage()]
    assert failure.getMessage().endswith("answered 451: the intake writer process ended")
    assert not failure.exc_info
    # The sender tries again: a new writer takes it, once.
    send(service.smtp_port, raw)
    send(service.smtp_port, raw)
    assert stored(factory) == 2
    assert writer_pid(service) != pid


@pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason="needs PostgreSQL (its server becomes unreachable)")
def test_a_writer_started_while_the_database_is_unreachable_answers_451_and_then_stores(settings, factory):
    url = make_url(settings.database.url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    service = Service(replace(settings, database={"url": through_proxy}), web=False)
    service.start()
    try:
        send(service.smtp_port, make_mail(subject="before"))
        proxy.cut()
        old = writer_pid(service)
        os.kill(old, signal.SIGKILL)
        assert wait_until(lambda: not service.intake_process._writer.alive, timeout=10, interval=0.01)
        for attempt in range(2):  # the new writer cannot connect: 451, and it stays up for the next message
            with pytest.raises(smtplib.SMTPDataError) as caught:
                send(service.smtp_port, make_mail(subject=f"during {attempt}"))
            assert caught.value.smtp_code == 451
        new = writer_pid(service)
        assert new != old
        proxy.restore()
        send(service.smtp_port, make_mail(subject="after"))
        assert writer_pid(service) == new
        assert stored(factory) == 2
    finally:
        service.stop()
        proxy.close()


def blocked_by(factory, backend: int) -> bool:
    """Does a PostgreSQL session wait for a lock that the session of ``backend`` (its pid) holds?"""
    with factory() as session:
        return bool(session.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE CAST(:backend AS integer) = ANY(pg_blocking_pids(pid))"),
            {"backend": backend}).scalar_one())


@pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason="needs PostgreSQL (SQLite takes one writer at a time)")
def test_a_commit_that_waits_holds_up_no_other_sessions_mail_and_its_message_is_stored_once(service, factory):
    # Another node holds the very same message uncommitted: its delivery here must wait for that outcome.
    raw = make_mail(subject="held elsewhere")
    outcome: list[object] = []
    with factory() as elsewhere:
        accept(elsewhere, raw, Envelope(mail_from="kunde@example.org", rcpt_to=(CRM,), source="smtp"))
        elsewhere.flush()
        holder = elsewhere.execute(text("SELECT pg_backend_pid()")).scalar_one()

        def deliver() -> None:
            with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as client:
                client.ehlo()
                client.mail("kunde@example.org")
                client.rcpt(CRM)
                outcome.append(client.data(raw))

        waiting = threading.Thread(target=deliver)
        waiting.start()
        assert wait_until(lambda: blocked_by(factory, holder), timeout=10, interval=0.01)
        # Meanwhile other mail is committed and answered at once, not behind the waiting commit.
        send(service.smtp_port, make_mail(subject="another"))
        assert outcome == []
        elsewhere.commit()
    waiting.join(30)
    assert outcome == [(250, smtp_replies.OK_DUPLICATE[4:].encode())]
    with factory() as session:
        assert session.execute(select(InboundMessage.deliveries).order_by(InboundMessage.id)).scalars().all() == [2, 1]


def test_the_writer_never_outlives_a_killed_service(database_url, tmp_path):
    running = serve(config_file(tmp_path, "node", database_url), tmp_path / "node.log")
    try:
        send(running.smtp_port, make_mail())  # the writer has answered: it is running
        writers = {pid for pid in running.processes()
                   if b"crm_inbox.intake.writer" in Path(f"/proc/{pid}/cmdline").read_bytes()}
        assert len(writers) == 1
        running.kill()
        (writer,) = writers
        # Its input closed with the service: it exits by itself (a zombie until reaped counts as gone).
        assert wait_until(lambda: not Path(f"/proc/{writer}").exists()
                          or Path(f"/proc/{writer}/stat").read_text().split(") ")[1][0] == "Z", timeout=30)
    finally:
        running.ensure_gone()


def mail_of(size: int) -> bytes:
    """A message of exactly ``size`` bytes as stored (CRLF lines of 1,000 bytes, a shorter last one)."""
    head = f"From: kunde@example.org\r\nTo: {CRM}\r\nSubject: {size} bytes\r\n\r\n".encode()
    full_lines, rest = divmod(size - len(head) - 2, 1000)
    return head + (b"x" * 998 + b"\r\n") * full_lines + b"y" * rest + b"\r\n"


def test_mail_from_one_mebibyte_on_is_committed_by_the_listener_and_smaller_mail_by_the_writer(service, factory):
    large, just_below = mail_of(LARGE), mail_of(LARGE - 1)
    pid = writer_pid(service)
    os.kill(pid, signal.SIGSTOP)  # the writer answers nothing from now on
    outcome: list[BaseException | None] = []

    def deliver() -> None:
        try:
            send(service.smtp_port, just_below)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    try:
        send(service.smtp_port, large)  # 250 all the same: not the writer's
        sender = threading.Thread(target=deliver)
        sender.start()
        wait_until(lambda: service.smtp.handler.in_flight == 1, timeout=10, interval=0.01)
    finally:
        os.kill(pid, signal.SIGKILL)  # the writer held the smaller one: it goes with it
    sender.join(30)
    assert isinstance(outcome[0], smtplib.SMTPDataError) and outcome[0].smtp_code == 451, outcome
    with factory() as session:
        assert session.execute(select(InboundMessage.raw)).scalars().all() == [large]


def test_a_clean_stop_ends_the_writer_process_and_the_in_process_batcher(settings, factory):
    service = Service(settings, web=False)
    service.start()
    try:
        send(service.smtp_port, make_mail(subject="small"))
        send(service.smtp_port, mail_of(LARGE))
        writer = service.intake_process._writer
    finally:
        service.stop()
    assert writer.proc.returncode == 0  # its input closed: it exited by itself, nothing was killed
    assert not service.intake.in_process._thread.is_alive()
    assert stored(factory) == 2


def _by_pattern(raw: bytes) -> tuple[int, int]:
    match = _HEADER_END.search(raw)
    return (len(raw), len(raw)) if match is None else (match.start(), match.end())


@given(st.lists(st.sampled_from([b"a", b":", b" ", b"\r", b"\n", b"\r\n"]), max_size=40).map(b"".join))
def test_the_fast_header_split_agrees_with_its_definition(raw):
    # The content hash (duplicate detection) and the Message-ID both start at this split.
    assert header_end(raw) == _by_pattern(raw)


@pytest.mark.parametrize("raw", [b"A: 1\nB: 2\n\nbody\r\n\r\nmore", b"A: 1\r\n\nbody\r\n\r\n", b"A: 1\r\nbody"])
def test_a_bare_lf_empty_line_before_a_crlf_one_ends_the_header(raw):
    assert header_end(raw) == _by_pattern(raw)

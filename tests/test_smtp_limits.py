"""SMTP limits against the real listener: concurrent sessions (in total and per client address), idle clients,
recipients per message, and running out of file descriptors."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from sqlalchemy import select

from crm_inbox.config import replace
from crm_inbox.models import InboundMessage
from crm_inbox.runtime import Service
from handlers import smtp as replies
from handlers.smtp_sessions import Throttle
from tests.conftest import CRM
from tests.mailfactory import make_mail
from tests.serveproc import ROOT, config_file


@contextmanager
def serving(settings, **smtp) -> Iterator[Service]:  # type: ignore[no-untyped-def]
    service = Service(replace(settings, smtp={"port": 0, **smtp}), web=False)
    service.start()
    try:
        yield service
    finally:
        service.stop()


@contextmanager
def greeted(port: int) -> Iterator[tuple[socket.socket, bytes]]:
    """A connection and the server's first reply line."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        yield sock, sock.makefile("rb").readline()


def quit_and_wait_for_close(sock: socket.socket) -> None:
    """QUIT, then read to the end: the server closes after the session is counted out."""
    sock.sendall(b"QUIT\r\n")
    while sock.recv(4096):
        pass
    sock.close()


def stored(factory) -> list[tuple[bytes, list[str]]]:  # type: ignore[no-untyped-def]
    """(raw, envelope recipients) of each stored message."""
    with factory() as session:
        return [tuple(row) for row in session.execute(select(InboundMessage.raw, InboundMessage.envelope_to))]


def test_sessions_beyond_the_cap_get_421_and_a_freed_slot_is_used_again(settings, factory):
    with serving(settings, max_sessions=3) as service, ExitStack() as held:
        sessions = [held.enter_context(greeted(service.smtp_port)) for _ in range(3)]
        assert [first[:4] for _, first in sessions] == [b"220 "] * 3
        with pytest.raises(smtplib.SMTPConnectError) as caught:
            smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=20)
        assert (caught.value.smtp_code, caught.value.smtp_error.decode()) == (421, replies.TOO_MANY_SESSIONS[4:])
        quit_and_wait_for_close(sessions[0][0])
        with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=20) as client:
            assert client.sendmail("klaus@example.com", [CRM], make_mail()) == {}
    assert len(stored(factory)) == 1


def test_one_client_address_cannot_take_every_session(settings):
    untrusted = replace(settings, mail={"trusted_relays": ()})
    with serving(untrusted, max_sessions=10, max_sessions_per_client=2) as service, ExitStack() as held:
        assert [held.enter_context(greeted(service.smtp_port))[1][:4] for _ in range(2)] == [b"220 "] * 2
        third, first = held.enter_context(greeted(service.smtp_port))
        assert first.decode() == replies.TOO_MANY_FROM_CLIENT + "\r\n"
        assert third.recv(1) == b""  # and closed


def test_a_trusted_relay_is_capped_only_by_the_total(settings):
    # Our own MTA brings everyone's mail from one address (127.0.0.1 is a trusted relay by default).
    with serving(settings, max_sessions=4, max_sessions_per_client=2) as service, ExitStack() as held:
        replies_seen = [held.enter_context(greeted(service.smtp_port))[1][:4] for _ in range(5)]
    assert replies_seen == [b"220 "] * 4 + [b"421 "]


def test_an_idle_client_gets_421_and_is_closed(settings):
    with serving(settings, idle_timeout_seconds=1) as service, greeted(service.smtp_port) as (sock, _):
        sock.sendall(b"EHLO client.example\r\n")
        lines = sock.makefile("rb").read().splitlines()  # to the end: the server closes
    assert lines[-1].decode() == replies.IDLE_TIMEOUT


def test_a_slow_sender_is_not_cut_off_while_data_keeps_coming(settings, factory):
    # The idle timer runs from the last piece of data, not from the DATA command: a large message on a slow
    # link may take longer than the timeout in all.
    raw = make_mail()
    with serving(settings, idle_timeout_seconds=1) as service, \
            smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=20) as client:
        client.ehlo()
        client.mail("klaus@example.com")
        client.rcpt(CRM)
        client.putcmd("data")
        assert client.getreply()[0] == 354
        step = len(raw) // 5 + 1
        for start in range(0, len(raw), step):
            client.send(raw[start:start + step])
            time.sleep(0.4)  # the slow link itself: 2 s in all, each pause within the 1 s timeout
        client.send(b".\r\n")
        assert client.getreply()[0] == 250
    assert [body for body, _ in stored(factory)] == [raw]


def test_more_than_100_recipients_get_452(service, factory):
    with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=60) as client:
        client.ehlo()
        client.mail("klaus@example.com")
        codes = [client.rcpt(CRM)[0] for _ in range(100)]
        code, message = client.rcpt(CRM)
        assert client.data(make_mail())[0] == 250
    assert codes == [250] * 100
    assert (code, message.decode()) == (452, replies.TOO_MANY_RCPTS[4:])
    assert [rcpts for _, rcpts in stored(factory)] == [[CRM]]  # the message is taken for the 100 it had


LISTENER = """
import logging, os, resource, sys
from crm_inbox.config import load_settings
from crm_inbox.runtime import Service

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
service = Service(load_settings(sys.argv[1], environ={}), web=False)
service.start()
in_use = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 8, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
print(service.smtp_port, flush=True)
sys.stdin.read()  # until the test closes our stdin
service.stop()
"""


def test_out_of_file_descriptors_logs_a_few_lines_and_serves_again_when_they_are_free(database_url, tmp_path, factory):
    config = config_file(tmp_path, "listener", database_url)
    log = tmp_path / "listener.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", LISTENER, str(config)], cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err)
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        started = log.stat().st_size
        with ExitStack() as held:
            # Far more than the 8 spare descriptors: the rest wait in the kernel's backlog.
            for _ in range(40):
                held.enter_context(socket.create_connection(("127.0.0.1", port), timeout=20))
            deadline = time.monotonic() + 30
            while b"cannot accept connections" not in log.read_bytes()[started:]:
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.05)
            time.sleep(3)  # three seconds out of descriptors: asyncio alone logged ~600 tracebacks a second
            during = log.read_bytes()[started:].decode(errors="replace").splitlines()
        # Descriptors are free again: the listener takes mail.
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            assert client.sendmail("klaus@example.com", [CRM], make_mail()) == {}
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(60)
    assert "Traceback (most recent call last):" not in during
    assert sum("cannot accept connections" in line for line in during) == 1, during
    assert len(during) <= 10, during  # room for other parts' own lines; asyncio alone wrote ~1,800 here
    assert "smtp: accepting connections again" in log.read_text(errors="replace")
    assert len(stored(factory)) == 1


def test_the_log_throttle_lets_one_line_through_per_period_and_counts_the_rest():
    throttle = Throttle(every=10)
    assert [throttle.due(t) for t in (0.0, 1.0, 5.0, 9.9, 10.0, 12.0, 25.0)] == [0, None, None, None, 3, None, 1]


@pytest.mark.parametrize(("line", "message"), [
    ('bare_newline = "lenient"', 'config: [smtp] bare_newline must be "normalize" or "reject", got \'lenient\''),
    ("max_sessions = 0", "config: [smtp] max_sessions must be at least 1"),
    ("idle_timeout_seconds = 0", "config: [smtp] idle_timeout_seconds must be at least 1"),
    ("max_recipients = -1", "config: [smtp] max_recipients must be at least 1"),
])
def test_a_bad_smtp_limit_stops_start_up_with_one_line_naming_it(tmp_path, line, message):
    from crm_inbox.config import ConfigError, load_settings

    path = tmp_path / "config.toml"
    path.write_text(f"[smtp]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(caught.value) == message

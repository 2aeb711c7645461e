"""DATA read in large pieces (handlers/smtp_data.py) gives exactly what aiosmtpd's own line-by-line DATA
gives: the same replies and the same message bytes, for every way a client may send them."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from aiosmtpd.smtp import SMTP

from handlers.smtp_data import ChunkedData

LIMIT = 200_000


class Recorder:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.messages.append(envelope.original_content)
        return "250 2.0.0 stored"


class Server:
    def __init__(self, cls: type[SMTP]) -> None:
        self.handler = Recorder()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        factory = lambda: cls(self.handler, data_size_limit=LIMIT, decode_data=False)  # noqa: E731
        self.server = asyncio.run_coroutine_threadsafe(
            self.loop.create_server(factory, "127.0.0.1", 0), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    stock, chunked = Server(SMTP), Server(type("Chunked", (ChunkedData,), {}))
    yield stock, chunked
    stock.close()
    chunked.close()


def converse(port: int, pieces: list[bytes], replies: int) -> list[bytes]:
    """Send ``pieces`` (each its own write, so TCP may split the stream anywhere) after the greeting and
    HELO/MAIL/RCPT/DATA, then read ``replies`` reply lines."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        stream = sock.makefile("rb")
        lines = [stream.readline()]  # greeting
        sock.sendall(b"HELO test\r\nMAIL FROM:<a@b.de>\r\nRCPT TO:<crm@c.de>\r\nDATA\r\n")
        for _ in range(4):
            lines.append(stream.readline())
        for piece in pieces:
            sock.sendall(piece)
        for _ in range(replies):
            lines.append(stream.readline())
        sock.sendall(b"QUIT\r\n")
        lines.append(stream.readline())
    return [line.split(b" ")[0] for line in lines]


BIG = b"".join(b"Zeile %06d mit etwas Text, damit sie lang genug ist.\r\n" % i for i in range(3000))
CASES = {
    "plain": ([b"Subject: x\r\n\r\nHallo\r\n.\r\n"], 1),
    "dot-stuffed lines": ([b"Subject: x\r\n\r\n..punkt\r\n...\r\n.x\r\nEnde\r\n.\r\n"], 1),
    "first line with a dot": ([b"..erste\r\nzweite\r\n.\r\n"], 1),
    "one line": ([b"nur eine Zeile\r\n.\r\n"], 1),
    "empty": ([b".\r\n"], 1),
    "end marker split over writes": ([b"Subject: x\r\n\r\nHallo\r", b"\n", b".", b"\r", b"\n"], 1),
    "a bare LF before the dot does not end it": ([b"A\n.\r\nB\r\n.\r\n"], 1),
    "a bare LF after the dot does not end it": ([b"A\r\n.\nB\r\n.\r\n"], 1),
    "pipelined commands after the data": ([b"Hallo\r\n.\r\nRSET\r\nNOOP\r\n"], 3),
    "byte by byte": ([bytes([c]) for c in b"Sub: y\r\n\r\n.a\r\n.\r\n"], 1),
    "large, in many writes": ([BIG[i:i + 4096] for i in range(0, len(BIG), 4096)] + [b".\r\n"], 1),
    "over the size limit": ([BIG * 2, b".\r\n"], 1),
    "a second message after the first": ([b"eins\r\n.\r\nMAIL FROM:<a@b.de>\r\nRCPT TO:<c@d.de>\r\nDATA\r\n",
                                          b"zwei\r\n..\r\n.\r\n"], 4),
}


@pytest.mark.parametrize("name", CASES)
def test_chunked_data_is_what_aiosmtpd_gives(servers, name):
    stock, chunked = servers
    pieces, replies = CASES[name]
    before = len(stock.handler.messages), len(chunked.handler.messages)
    expected = converse(stock.port, pieces, replies)
    got = converse(chunked.port, pieces, replies)
    assert got == expected
    assert chunked.handler.messages[before[1]:] == stock.handler.messages[before[0]:]


@pytest.fixture(scope="module")
def normalizing() -> Iterator[Server]:
    server = Server(type("Normalizing", (ChunkedData,), {"normalize_bare_lf": True}))
    yield server
    server.close()


@pytest.mark.parametrize("name", CASES)
def test_normalizing_bare_lf_ends_data_where_aiosmtpd_does(servers, normalizing, name):
    stock, _ = servers
    pieces, replies = CASES[name]
    assert converse(normalizing.port, pieces, replies) == converse(stock.port, pieces, replies)


@pytest.mark.parametrize(("pieces", "message"), [
    ([b"A\nB\r\n.\r\n"], b"A\r\nB\r\n"),
    # smtplib stuffs the dot of a line after a bare LF: it is undone after the line end is made CRLF.
    ([b"A\n..b\n.\n..\nC\r\n.\r\n"], b"A\r\n.b\r\n\r\n.\r\nC\r\n"),
    ([b"..a\nb\n\r\n.\r\n"], b".a\r\nb\r\n\r\n"),
    # a false end of data is a line of the message, never its end
    ([b"A\n.\r\nB\r\n.\r\n"], b"A\r\n\r\nB\r\n"),
    ([b"A\r\n.\nB\r\n.\r\n"], b"A\r\n\r\nB\r\n"),
    ([b"A\n", b".", b"\n", b"B\n\r", b"\n.\r\n"], b"A\r\n\r\nB\r\n\r\n"),
    # a bare CR stays (the CRM's handler refuses it); CRLF data is untouched
    ([b"A\rB\r\n.\r\n"], b"A\rB\r\n"),
    ([b"A\r\n..\r\n.\r\n"], b"A\r\n.\r\n"),
])
def test_normalizing_makes_bare_lf_crlf_before_undoing_dot_stuffing(normalizing, pieces, message):
    before = len(normalizing.handler.messages)
    assert converse(normalizing.port, pieces, 1)[-2] == b"250"
    assert normalizing.handler.messages[before:] == [message]


def test_normalized_data_over_the_size_limit_gets_552(normalizing):
    # The limit holds for what would be stored: LF-only data grows by one byte a line when normalised.
    data = b"x\n" * (LIMIT // 2 - 10) + b"\r\n.\r\n"
    before = len(normalizing.handler.messages)
    assert converse(normalizing.port, [data], 1)[-2] == b"552"
    assert normalizing.handler.messages[before:] == []


def test_the_messages_are_the_unstuffed_data():
    from handlers.smtp_data import unstuff

    buffer = bytearray(b"\r\n..a\r\nb\r\n.c\r\n\r\n.\r\n")
    assert unstuff(buffer, buffer.find(b"\r\n.\r\n", 0)) == b".a\r\nb\r\nc\r\n\r\n"


def test_a_client_gone_mid_data_stores_nothing_and_the_server_goes_on(servers):
    _, chunked = servers
    before = len(chunked.handler.messages)
    with socket.create_connection(("127.0.0.1", chunked.port), timeout=20) as sock:
        stream = sock.makefile("rb")
        stream.readline()
        sock.sendall(b"HELO test\r\nMAIL FROM:<a@b.de>\r\nRCPT TO:<crm@c.de>\r\nDATA\r\n")
        for _ in range(4):
            stream.readline()
        sock.sendall(b"Subject: halb\r\n\r\nabgebrochen mitten im")
    assert converse(chunked.port, [b"danach\r\n.\r\n"], 1)[-2] == b"250"
    assert chunked.handler.messages[before:] == [b"danach\r\n"]


@pytest.mark.parametrize(("raw", "bare"), [
    (b"a\r\nb\r\n", False), (b"", False), (b"a\nb\r\n", True), (b"a\rb\r\n", True), (b"a\r\r\n", True),
    (b"a\r\n\n", True), (b"\n\r", True), (b"a\r", True), (b"\na", True)])
def test_bare_cr_or_lf_is_found(raw, bare):
    from handlers.smtp import has_bare_newline

    assert has_bare_newline(raw) is bare

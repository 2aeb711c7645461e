"""SMTP adapter (aiosmtpd handler protocol): RCPT allow-list, commit before 250, 451 on our errors.

The handler hands each message to a ``Store`` (crm_inbox.intake.store) and knows nothing else of the intake:
serve's commits in a writer process or, for large mail, in a thread of this one (docs/intake.md), so one
slow commit never stalls the other connections. The server runs its own event loop in a background thread.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.smtp import SMTP
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession

from crm_inbox.intake.store import Accepted, Envelope, Store, StoreFailed
from handlers.smtp_data import ChunkedData, line_ends
from handlers.smtp_sessions import (
    TOO_MANY_FROM_CLIENT,
    TOO_MANY_SESSIONS,
    SessionLimits,
    Sessions,
    accept_forever,
    listening_sockets,
)

log = logging.getLogger(__name__)

# Replies, each basic code agreeing with its enhanced code (RFC 3463); a test checks they do.
OK_RCPT = "250 2.1.5 Recipient ok"
OK_STORED = "250 2.0.0 Message accepted"
OK_DUPLICATE = "250 2.0.0 Message accepted (already received)"
REFUSED_RCPT = "550 5.7.1 Relaying denied: this server only accepts mail for its CRM addresses"
REFUSED_BARE_NEWLINE = "550 5.5.2 Bare CR or LF in message data is not accepted (RFC 5321 2.3.8)"
REFUSED_NO_RCPT = "554 5.5.1 No valid recipients"
REFUSED_RCPT_SYNTAX = "501 5.1.3 Syntax: RCPT TO:<address> (angle brackets, no source route)"
TRY_LATER = "451 4.3.0 Temporary problem storing the message, please try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, please try again later"
TOO_MANY_RCPTS = "452 4.5.3 Too many recipients"
IDLE_TIMEOUT = "421 4.4.2 Idle too long, closing connection"
REPLIES = (OK_RCPT, OK_STORED, OK_DUPLICATE, REFUSED_RCPT, REFUSED_BARE_NEWLINE, REFUSED_NO_RCPT, TRY_LATER,
           SHUTTING_DOWN, REFUSED_RCPT_SYNTAX, TOO_MANY_RCPTS, IDLE_TIMEOUT, TOO_MANY_SESSIONS, TOO_MANY_FROM_CLIENT)
# RFC 5321 RCPT TO:<local@domain>: anything else is a relay trick or a broken client. aiosmtpd accepts a
# bracketless address and silently drops a source route ("<@relay:crm@us>" becomes "crm@us"), so the raw
# argument is checked before it parses it.
_STRICT_RCPT = re.compile(r"^\s*TO:\s*<[^<>@\s,:]+@[^<>@\s,:%!]+>(\s+\S.*)?$", re.IGNORECASE)
# The path of MAIL FROM and RCPT TO as nearly every client writes it: "<local@domain>", both dot-atoms, then
# parameters. aiosmtpd reads it with the stdlib's header parser and defines a class on each call, a tenth of the
# SMTP thread's time in bench/ingest.py; anything else (quotes, comments, literals, UTF-8, <>) still goes there.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>[ \t]*")


def plain_path(arg: str) -> tuple[str, str] | None:
    """(address, the rest) of a plain path, as aiosmtpd's parser reads it; None for anything else."""
    match = _PLAIN_PATH.match(arg)
    if match is None or arg.startswith("(", match.end()):  # a comment after it: the parser's business
        return None
    return match.group(1), arg[match.end():]



def has_bare_newline(raw: bytes) -> bool:
    """A CR not followed by LF, or an LF not after a CR."""
    return any(line_ends(raw))

class _InThread:
    """A blocking store function as a ``Store``: each message in a worker thread."""

    def __init__(self, store: Callable[[bytes, Envelope], Accepted]) -> None:
        self._store = store

    async def store(self, raw: bytes, envelope: Envelope) -> Accepted:
        return await asyncio.to_thread(self._store, raw, envelope)

    async def close(self) -> None:
        """Nothing to finish: each call returned after its own commit."""


def in_thread(store: Callable[[bytes, Envelope], Accepted]) -> Store:
    """A blocking ``store`` (``intake.store.store`` with its session factory) as a listener's ``Store``, run in
    a worker thread so the event loop never waits for the database. No group commit, no writer process."""
    return _InThread(store)


class CrmSmtpHandler:
    """aiosmtpd handler: ``store`` commits the raw message; ``on_stored`` hands it on for processing."""

    def __init__(self, store: Store, accepted_rcpts: frozenset[str],
                 on_stored: Callable[[Accepted], None] | None = None, *, max_recipients: int = 100) -> None:
        self.store = store
        self.max_recipients = max_recipients  # RFC 5321 4.5.3.1.8: at least 100; 452 beyond (4.5.3.1.10)
        self.accepted_rcpts = frozenset(a.lower() for a in accepted_rcpts)
        self.on_stored = on_stored
        self.in_flight = 0
        self.closing = False
        self.last_data = 0.0  # time.monotonic() of the last DATA: while mail streams in, processing waits

    def busy(self, quiet_seconds: float = 0.01) -> bool:
        """Is mail arriving right now? (The worker gives way then: Python runs one thread at a time.)"""
        return self.in_flight > 0 or time.monotonic() - self.last_data < quiet_seconds

    async def handle_RCPT(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        # An exact match on the allow-list also refuses relay tricks (x%y@, source routes, x@y@z).
        if address.strip().lower() not in self.accepted_rcpts:
            log.info("smtp %s: refused RCPT %r", session.peer, address)
            return REFUSED_RCPT
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return TOO_MANY_RCPTS
        envelope.rcpt_tos.append(address)
        return OK_RCPT

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope) -> str:
        if self.closing:
            return SHUTTING_DOWN
        if not envelope.rcpt_tos:
            return REFUSED_NO_RCPT
        raw = envelope.original_content or b""
        checked = getattr(server, "bare_cr_left", None)  # counted already where bare LF was normalised
        if has_bare_newline(raw) if checked is None else checked:
            log.info("smtp %s: refused message with bare CR/LF", session.peer)
            return REFUSED_BARE_NEWLINE
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        meta = Envelope(mail_from=envelope.mail_from or "", rcpt_to=tuple(envelope.rcpt_tos), peer=peer,
                        source="smtp")
        self.in_flight += 1
        self.last_data = time.monotonic()
        try:
            accepted = await self.store.store(raw, meta)
        except Exception as exc:
            # Never a 5xx for our own trouble: the sender must keep the mail and try again. A StoreFailed
            # says its reason in full; a traceback of this side would only repeat the await.
            log.error("smtp %s: storing a %d byte message failed; answered 451: %s", peer, len(raw), exc,
                      exc_info=not isinstance(exc, StoreFailed))
            return TRY_LATER
        finally:
            self.in_flight -= 1
            self.last_data = time.monotonic()
        if self.on_stored is not None:
            try:
                self.on_stored(accepted)
            except Exception:  # processing is picked up by the worker's sweep anyway
                log.exception("smtp: handing inbound %s on failed", accepted.inbound_id)
        return OK_DUPLICATE if accepted.duplicate else OK_STORED


class CrmSMTP(ChunkedData):
    # RFC 5321 allows 1000 octets a line, but real mail (and Postfix, which relays it) has longer ones;
    # refusing them would bounce customer mail. Size is still bounded by data_size_limit.
    line_length_limit = 1 << 20
    on_closed: Callable[[], None] | None = None  # ends the session's count (handlers/smtp_sessions.py)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        if self.on_closed is not None:
            self.on_closed()

    def _timeout_cb(self) -> None:
        # aiosmtpd closes silently; like Postfix we say why first (RFC 5321 3.8 allows the close either way).
        # A client that does not read its replies leaves them in our buffer, and close() would wait for it to
        # drain for ever, holding the session's slot: that one is aborted.
        transport = self.transport
        if transport is None:
            return
        log.info("smtp %s: idle for %s s, closed", self.session.peer if self.session else "?", self._timeout_duration)
        transport.write(IDLE_TIMEOUT.encode("ascii") + b"\r\n")  # type: ignore[attr-defined]
        if transport.get_write_buffer_size():  # type: ignore[attr-defined]
            transport.abort()  # type: ignore[attr-defined]
        else:
            transport.close()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = plain_path(arg)
        if plain is None or (self.local_part_limit and len(plain[0].rpartition("@")[0]) > self.local_part_limit):
            return super()._getaddr(arg)
        return plain

    async def smtp_RCPT(self, arg: str | None) -> None:
        if arg is not None and self.envelope is not None and self.envelope.mail_from and not _STRICT_RCPT.match(arg):
            log.info("smtp %s: refused RCPT %r (syntax)", self.session.peer if self.session else "?", arg)
            await self.push(REFUSED_RCPT_SYNTAX)
            return
        await super().smtp_RCPT(arg)


class SmtpServer:
    """Runs the handler on its own event loop in a background thread."""

    def __init__(self, handler: CrmSmtpHandler, host: str, port: int, *, max_message_bytes: int,
                 hostname: str | None = None, on_drained: Callable[[], Awaitable[None]] | None = None,
                 limits: SessionLimits | None = None, idle_timeout: float = 300,
                 normalize_bare_lf: bool = True) -> None:
        self.handler = handler
        self.sessions = Sessions(limits or SessionLimits())
        self.idle_timeout = idle_timeout  # RFC 5321 4.5.3.2.7: at least 5 minutes awaiting a command
        self.normalize_bare_lf = normalize_bare_lf
        self.on_drained = on_drained  # runs on the loop once no message is being stored any more
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.hostname = hostname or None
        self.loop = asyncio.new_event_loop()
        self._sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._thread = threading.Thread(target=self.loop.run_forever, name="crm-inbox-smtp", daemon=True)

    def _factory(self, on_closed: Callable[[], None]) -> SMTP:
        kwargs: dict[str, Any] = {
            "data_size_limit": self.max_message_bytes, "enable_SMTPUTF8": True, "decode_data": False,
            "timeout": self.idle_timeout,
        }
        if self.hostname:
            kwargs["hostname"] = self.hostname
        protocol = CrmSMTP(self.handler, **kwargs)
        protocol.on_closed = on_closed
        protocol.normalize_bare_lf = self.normalize_bare_lf
        return protocol

    def start(self) -> int:
        """Start listening; returns the bound port (useful with port 0)."""
        self._sockets = listening_sockets(self.host, self.port)
        self._thread.start()

        async def accept() -> None:
            self._accepting = [asyncio.create_task(accept_forever(sock, self.sessions, self._factory))
                               for sock in self._sockets]

        asyncio.run_coroutine_threadsafe(accept(), self.loop).result(timeout=10)
        self.port = self._sockets[0].getsockname()[1]
        log.info("smtp: listening on %s:%s", self.host, self.port)
        return self.port

    async def _stop_accepting(self) -> None:
        for task in self._accepting:
            task.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        for sock in self._sockets:
            sock.close()

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting connections, let messages being stored finish, then close everything."""
        if not self._sockets:
            return
        self.handler.closing = True
        asyncio.run_coroutine_threadsafe(self._stop_accepting(), self.loop).result(timeout=10)

        async def drain() -> None:
            deadline = self.loop.time() + grace
            while self.handler.in_flight and self.loop.time() < deadline:
                await asyncio.sleep(0.05)
            if self.on_drained is not None:
                await self.on_drained()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(drain(), self.loop).result(timeout=grace + 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
        self._sockets = []
        log.info("smtp: stopped")

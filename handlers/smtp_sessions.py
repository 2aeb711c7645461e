"""Who may hold an SMTP session, and the accept loop that hands the sessions out.

Caps: at most ``max_sessions`` sessions at once, and ``max_sessions_per_client`` from one client address, so one
client cannot take every slot; beyond either the client gets ``421 4.7.0`` and is closed before any protocol
object exists. Trusted relays (our own MTA, which brings everyone's mail from one address) are not capped per
client, as Postfix exempts ``$mynetworks`` (``smtpd_client_event_limit_exceptions``); they count in the total.

The accept loop is ours, not ``loop.create_server``'s: when the process runs out of file descriptors, asyncio's
selector loop (3.11) goes on calling ``accept()`` up to ``backlog`` times after the first EMFILE, logging a
traceback and scheduling a retry for each (CPython issue 151615): 137,000 tracebacks in ten seconds. Here the
loop waits (50 ms, doubling to 1 s) and logs at most one line per ``REPORT_EVERY`` seconds; connections wait in
the kernel's backlog meanwhile and are served once descriptors are free again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import math
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

TOO_MANY_SESSIONS = "421 4.7.0 Too many connections, please try again later"
TOO_MANY_FROM_CLIENT = "421 4.7.0 Too many connections from your address, please try again later"
REPORT_EVERY = 10.0  # seconds between two log lines about one recurring condition
RETRY_FIRST, RETRY_MAX = 0.05, 1.0  # seconds to wait before accepting again after running out of descriptors


@dataclass(frozen=True)
class SessionLimits:
    max_sessions: int = 200
    max_sessions_per_client: int = 20
    uncapped_clients: tuple[str, ...] = ("127.0.0.0/8", "::1/128")  # not capped per client: [mail] trusted_relays


def refusal(limits: SessionLimits, open_total: int, open_from_client: int, uncapped: bool) -> str | None:
    """The reply that turns a new connection away, or None to admit it."""
    if open_total >= limits.max_sessions:
        return TOO_MANY_SESSIONS
    if not uncapped and open_from_client >= limits.max_sessions_per_client:
        return TOO_MANY_FROM_CLIENT
    return None


class Sessions:
    """The sessions open now, in total and per client address (used on the event loop only)."""

    def __init__(self, limits: SessionLimits) -> None:
        self.limits = limits
        self.total = 0
        self.by_client: Counter[str] = Counter()
        self._uncapped = tuple(ipaddress.ip_network(net, strict=False) for net in limits.uncapped_clients)

    def _is_uncapped(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:  # not an IP address (a Unix socket): nothing to exempt
            return False
        return any(address in net for net in self._uncapped)

    def refusal(self, client: str) -> str | None:
        return refusal(self.limits, self.total, self.by_client[client], self._is_uncapped(client))

    def enter(self, client: str) -> Callable[[], None]:
        """Count a session; returns what ends it (calling that twice ends it once)."""
        self.total += 1
        self.by_client[client] += 1
        ended = False

        def leave() -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            self.total -= 1
            self.by_client[client] -= 1
            if not self.by_client[client]:
                del self.by_client[client]

        return leave


class Throttle:
    """At most one log line per ``every`` seconds for a recurring condition; the occurrences between are counted."""

    def __init__(self, every: float = REPORT_EVERY) -> None:
        self.every = every
        self.last = -math.inf
        self.skipped = 0

    def due(self, now: float) -> int | None:
        """How many occurrences went unlogged since the last line, if a line is due now; else None."""
        if now - self.last >= self.every:
            skipped, self.skipped, self.last = self.skipped, 0, now
            return skipped
        self.skipped += 1
        return None


def listening_sockets(host: str, port: int, backlog: int = 100) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for ``host`` (every address it names), as ``create_server`` makes."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def turn_away(conn: socket.socket, reply: str) -> None:
    """Answer a connection we will not serve and close it (a fresh socket's buffer takes one line)."""
    with contextlib.suppress(OSError):
        conn.send(reply.encode("ascii") + b"\r\n")
    conn.close()


ProtocolFactory = Callable[[Callable[[], None]], asyncio.Protocol]


async def accept_forever(sock: socket.socket, sessions: Sessions, make_protocol: ProtocolFactory) -> None:
    """Accept connections on ``sock`` until cancelled. ``make_protocol(leave)`` makes the session's protocol,
    which calls ``leave`` when its connection is gone."""
    loop = asyncio.get_running_loop()
    delay = 0.0
    trouble_since: float | None = None  # when the reported trouble began
    trouble, refused = Throttle(), Throttle()
    while True:
        try:
            conn, address = await loop.sock_accept(sock)
        except (ConnectionAbortedError, InterruptedError):  # the client gave up before we took it
            continue
        except OSError as exc:  # EMFILE, ENFILE, ENOBUFS, ENOMEM: wait for resources, do not spin
            delay = min(max(delay * 2, RETRY_FIRST), RETRY_MAX)
            skipped = trouble.due(loop.time())
            if skipped is not None:
                trouble_since = trouble_since or loop.time()
                log.error("smtp: cannot accept connections: %s; trying again as resources are freed%s",
                          exc.strerror or exc, f" ({skipped} more failures since the last line)" if skipped else "")
            await asyncio.sleep(delay)
            continue
        delay = 0.0
        if trouble_since is not None:
            log.warning("smtp: accepting connections again after %.1f s", loop.time() - trouble_since)
            trouble_since = None
        client = address[0] if isinstance(address, tuple) else str(address)
        reply = sessions.refusal(client)
        if reply is not None:
            turn_away(conn, reply)
            skipped = refused.due(loop.time())
            if skipped is not None:
                log.warning("smtp %s: refused a connection: %s (%d open, %d from this address)%s", client, reply[10:],
                            sessions.total, sessions.by_client[client],
                            f"; {skipped} more refused since the last line" if skipped else "")
            continue
        leave = sessions.enter(client)
        try:
            await loop.connect_accepted_socket(functools.partial(make_protocol, leave), conn)
        except Exception as exc:  # the connection failed while being set up: nothing to serve
            leave()
            conn.close()
            log.info("smtp %s: connection could not be set up: %s", client, exc)

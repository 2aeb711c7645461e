"""Where a webhook may go, and the POST itself.

A subscription URL must not reach into the office network (SSRF): the host is resolved, every address is
checked, and the connection goes to the checked address, so a DNS answer that changes between check and
connect (rebinding) cannot slip past. https keeps SNI and the certificate check for the host name.

http.client rather than requests: connecting to an address chosen by us while keeping the host name for
TLS is a few lines here, and it adds no dependency (requests would need a transport adapter for it).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from crm_inbox.errors import ValidationError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL = 2000
_READ_LIMIT = 64 * 1024  # of a response body: we only need the status


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query


@dataclass(frozen=True)
class Response:
    status: int
    location: str | None


def parse_url(url: str) -> Target:
    """The parts of a subscription URL; ValidationError (field "url") for anything but plain http(s)."""
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise ValidationError("url", f"enter an http or https URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError("url", "not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("url", "must start with http:// or https:// and name a host")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("url", "must not contain a user name or password (the signature authenticates)")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ValidationError("url", "must not contain spaces or control characters")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address in the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: any prefix length an operator chose
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible ::a.b.c.d


def embedded_ipv4(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, which a NAT64 gateway, a 6to4 or Teredo relay or the
    host's own stack would reach: ::ffff:10.0.0.1, ::10.0.0.1, 64:ff9b::10.0.0.1, 2002:0a00:0001::, …
    A gateway or relay forwarding to the office network would let a webhook through to it otherwise."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    value = int(address)
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in _COMPATIBLE or address in _NAT64:
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address in _NAT64_LOCAL:
        # Either a /96 inside the prefix (the last 32 bits) or the /48 format (bits 48-63 and 72-87).
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
        found.append(ipaddress.IPv4Address(((value >> 64) & 0xFFFF) << 16 | ((value >> 40) & 0xFFFF)))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # the server and the (de-obfuscated) client
    return found


def _allowed(address: Address, allowed: tuple[str, ...]) -> bool:
    if address.is_global and not address.is_multicast:
        return True
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowed)


def refused(address: Address, allowed: Iterable[str]) -> bool:
    """Loopback, link-local, private, reserved, multicast or unspecified, and not in the allow-list; an IPv6
    address that embeds an IPv4 address is refused when that one would be (or when it is itself)."""
    allowed = tuple(allowed)
    inner = embedded_ipv4(address)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return not _allowed(address.ipv4_mapped, allowed)  # ::ffff:10.0.0.1 is 10.0.0.1 itself
    return not _allowed(address, allowed) or any(not _allowed(v4, allowed) for v4 in inner)


def _getaddrinfo(host: str, port: int, timeout: float) -> list[Any]:
    """getaddrinfo within ``timeout`` seconds: the C resolver has no timeout of its own (a dead DNS server
    holds it for its retries), so it runs in a daemon thread that is left behind when it takes too long."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # an address: nothing to look up, no thread needed
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    result: list[Any] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            result.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the caller
            failure.append(exc)

    worker = threading.Thread(target=work, name="webhook-resolve", daemon=True)
    worker.start()
    worker.join(max(timeout, 0.0))
    if worker.is_alive():
        raise TimeoutError(f"resolving {host} took longer than {timeout:.1f} s")
    if failure:
        raise failure[0]
    return result


def resolve(target: Target, allowed: Iterable[str], timeout: float = 10.0) -> list[str]:
    """The addresses to connect to: every address the host resolves to must be allowed (one private address
    among public ones refuses the lot: which one a client picks is not ours to know). ValidationError else;
    TimeoutError when the resolver does not answer within ``timeout`` seconds."""
    try:
        infos = _getaddrinfo(target.host, target.port, timeout)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValidationError("url", f"the host {target.host} cannot be resolved ({exc})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]
    if not addresses:
        raise ValidationError("url", f"the host {target.host} has no address")
    allowed = tuple(allowed)
    for address in addresses:
        if refused(address, allowed):
            raise ValidationError("url", f"{target.host} resolves to {address}, a loopback, private or reserved "
                                         "address; add its network to [webhooks] allowed_private_networks to "
                                         "allow it")
    return list(dict.fromkeys(str(a) for a in addresses))


def check(url: str, allowed: Iterable[str], timeout: float = 10.0) -> Target:
    target = parse_url(url)
    try:
        resolve(target, allowed, timeout)
    except TimeoutError:
        raise ValidationError("url", f"the host {target.host} cannot be resolved (no answer in time)") from None
    return target


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the checked addresses (the first that answers), never to a fresh DNS answer, each within
    what is left of the attempt's deadline."""

    def __init__(self, host: str, port: int, addresses: list[str], deadline: float) -> None:
        super().__init__(host, port, timeout=_left(deadline))
        self._addresses = addresses
        self.deadline = deadline

    def connect(self) -> None:
        failure: OSError | None = None
        for address in self._addresses:
            try:
                self.sock = socket.create_connection((address, self.port), _left(self.deadline))
                break
            except OSError as exc:
                failure = exc
        else:
            raise failure or OSError("no address to connect to")
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(_PinnedHTTP):
    def __init__(self, host: str, port: int, addresses: list[str], deadline: float) -> None:
        super().__init__(host, port, addresses, deadline)
        self._context = ssl.create_default_context()

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(_left(self.deadline))
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


def _left(deadline: float) -> float:
    """Seconds until ``deadline`` (time.monotonic()); TimeoutError when it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the attempt's deadline passed")
    return left


class _Watchdog:
    """Cuts the connection at the deadline: socket timeouts bound each read, not their sum, so a receiver
    trickling a byte at a time would otherwise hold the attempt open as long as it likes."""

    def __init__(self, connection: http.client.HTTPConnection, deadline: float) -> None:
        self.fired = False
        self._connection = connection
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._cut)
        self._timer.daemon = True

    def _cut(self) -> None:
        self.fired = True
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # the plain socket's shutdown, under TLS too: a read returns
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()


def post(url: str, body: bytes, headers: dict[str, str], *, allowed: Iterable[str], timeout: float) -> Response:
    """POST ``body``; the receiver's status (redirects are returned, not followed). ValidationError for a
    refused target, OSError/HTTPException for network failures. ``timeout`` bounds the whole attempt on the
    wall clock: resolving, connecting, sending and reading the answer (TimeoutError when it ran out)."""
    deadline = time.monotonic() + timeout
    target = parse_url(url)
    addresses = resolve(target, allowed, timeout)
    cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = cls(target.host, target.port, addresses, deadline)
    watchdog = _Watchdog(connection, deadline)
    try:
        with watchdog:
            connection.request("POST", target.path, body=body, headers={
                "Content-Type": "application/json", "User-Agent": "crm-inbox-webhooks/1", **headers})
            answer = connection.getresponse()
            answer.read(_READ_LIMIT)
    except (OSError, http.client.HTTPException) as exc:
        if watchdog.fired:
            raise TimeoutError(f"no complete answer within {timeout:g} s") from exc
        raise
    finally:
        connection.close()
    return Response(answer.status, answer.getheader("Location"))

"""Where a webhook may go, and the POST itself.

A subscription URL must not reach into the office network (SSRF): the host is resolved, every address is
checked, and the connection goes to the checked address, so a DNS answer that changes between check and
connect (rebinding) cannot slip past. https keeps SNI and the certificate check for the host name.

http.client rather than requests: connecting to an address chosen by us while keeping the host name for
TLS is a few lines here, and it adds no dependency (requests would need a transport adapter for it).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
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


def _plain(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return address


def refused(address: Address, allowed: Iterable[str]) -> bool:
    """Loopback, link-local, private, reserved, multicast or unspecified, and not in the allow-list."""
    address = _plain(address)
    if address.is_global and not address.is_multicast:
        return False
    return not any(address in ipaddress.ip_network(net, strict=False) for net in allowed)


def resolve(target: Target, allowed: Iterable[str]) -> list[str]:
    """The addresses to connect to: every address the host resolves to must be allowed (one private address
    among public ones refuses the lot: which one a client picks is not ours to know). ValidationError else."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
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


def check(url: str, allowed: Iterable[str]) -> Target:
    target = parse_url(url)
    resolve(target, allowed)
    return target


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the checked addresses (the first that answers), never to a fresh DNS answer."""

    def __init__(self, host: str, port: int, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self) -> None:
        failure: OSError | None = None
        for address in self._addresses:
            try:
                self.sock = socket.create_connection((address, self.port), self.timeout)
                break
            except OSError as exc:
                failure = exc
        else:
            raise failure or OSError("no address to connect to")
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(_PinnedHTTP):
    def __init__(self, host: str, port: int, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, addresses, timeout)
        self._context = ssl.create_default_context()

    def connect(self) -> None:
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], *, allowed: Iterable[str], timeout: float) -> Response:
    """POST ``body``; the receiver's status (redirects are returned, not followed). ValidationError for a
    refused target, OSError/HTTPException for network failures."""
    target = parse_url(url)
    addresses = resolve(target, allowed)
    cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = cls(target.host, target.port, addresses, timeout)
    try:
        connection.request("POST", target.path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": "crm-inbox-webhooks/1", **headers})
        answer = connection.getresponse()
        answer.read(_READ_LIMIT)
        return Response(answer.status, answer.getheader("Location"))
    finally:
        connection.close()

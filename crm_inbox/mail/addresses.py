"""E-mail addresses: parsing header values into (name, address) pairs and normalising them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses

_LOCAL_OK = re.compile(r"^[^\s@<>()\[\],;:\"\\]+$")
_DOMAIN_OK = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$|^\[[0-9a-f:.]+\]$")
_NOREPLY = re.compile(r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|noreply[-_.].*|.*[-_.]noreply)$")
_SYSTEM_LOCALS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "bounce", "bounces"})


@dataclass(frozen=True)
class Address:
    """A display name and a normalised (lower-case) address; ``email`` is empty when it is unusable."""

    name: str
    email: str

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]

    @property
    def local_part(self) -> str:
        return self.email.rpartition("@")[0]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


def normalise_email(value: str) -> str:
    """Lower-case ``value`` and check it is a plain ``local@domain``; '' when it is not one."""
    value = value.strip().strip("<>").strip().lower()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or "@" in local:
        return ""
    if not _LOCAL_OK.match(local) or not _DOMAIN_OK.match(domain) or "." not in domain.strip("[]"):
        return ""
    return value


def parse_addresses(*values: str | None) -> list[Address]:
    """Every address in the given header values, in order, without duplicates (first name wins)."""
    seen: set[str] = set()
    out: list[Address] = []
    for name, addr in getaddresses([v for v in values if v]):
        email = normalise_email(addr)
        key = email or name.strip()
        if not key or key in seen:
            continue
        seen.add(key)
        out.append(Address(" ".join(name.split()).strip("'\" "), email))
    return out


def is_noreply(email: str) -> bool:
    """No-reply and system senders: they never become contacts."""
    local = email.rpartition("@")[0]
    return bool(_NOREPLY.match(local)) or local in _SYSTEM_LOCALS

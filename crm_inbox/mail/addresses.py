"""E-mail addresses: parsing header values into (name, address) pairs and normalising them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from crm_inbox.mail.encoded_words import decode_words

# No control characters: a NUL from a broken header must not become an address (PostgreSQL refuses it in text).
_LOCAL_OK = re.compile(r"^[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f]+$")
_DOMAIN_OK = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$|^\[[0-9a-f:.]+\]$")
_NOREPLY = re.compile(r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|noreply[-_.].*|.*[-_.]noreply)$")
_SYSTEM_LOCALS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "bounce", "bounces"})

# The null reverse-path (RFC 5321 ``MAIL FROM:<>``: bounces and other notices), as it is stored.
NULL_SENDER = "<>"


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
        if not self.name:
            return self.email
        # A name that reads like an address is shown quoted, so "boss@our.example" <x@evil.example> is not
        # taken for mail from boss@ at a glance.
        name = '"' + self.name.replace("\\", "\\\\").replace('"', '\\"') + '"' if "@" in self.name else self.name
        return f"{name} <{self.email}>"


def normalise_email(value: str) -> str:
    """Lower-case ``value`` and check it is a plain ``local@domain``; '' when it is not one.

    A trailing dot (``name@example.com.``, the DNS root) is the same domain and is dropped."""
    value = value.strip().strip("<>").strip().lower()
    local, at, domain = value.rpartition("@")
    if domain.endswith(".") and not domain.endswith(".."):
        domain = domain[:-1]
    if not at or not local or not domain or "@" in local:
        return ""
    if not _LOCAL_OK.match(local) or not _DOMAIN_OK.match(domain) or "." not in domain.strip("[]"):
        return ""
    return f"{local}@{domain}"


def parse_addresses(*values: str | None) -> list[Address]:
    """Every address in the given header values, in order, without duplicates (first name wins).

    The list is split on the text as it was sent; RFC 2047 words are decoded in display names only,
    afterwards. So an encoded comma ("Müller, Bernd") cannot split a name, and an encoded name that reads
    like an address stays a name: the address that counts is the one in angle brackets, the one an MTA's
    DMARC check sees.
    """
    seen: set[str] = set()
    out: list[Address] = []
    for value in values:
        if not value:
            continue
        for raw_name, addr in split_address_list(value):
            email = normalise_email(addr)
            name = " ".join(decode_words(raw_name).replace("\x00", "").split()).strip("'\" ")
            key = email or name
            if not key or key in seen:
                continue
            seen.add(key)
            out.append(Address(name, email))
    return out


# One token of an address list: encoded word, quoted string, comment, angle address, separator, space, or atom.
_TOKEN = re.compile(r"""
    (?P<word>=\?[^?\s]+\?[bBqQ]\?[^?]*\?=)
  | "(?P<quoted>(?:[^"\\]|\\.)*)"?
  | (?P<comment>\()
  | <(?P<angle>[^>]*)>?
  | (?P<sep>[,;:])
  | (?P<space>\s+)
  | (?P<atom>[^\s"(<,;:]+|.)
""", re.X | re.S)


def _comment(text: str, start: int) -> tuple[str, int]:
    """The (nested) comment opening at ``start``, and the index after it."""
    depth, i, out = 0, start, []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == "(":
            depth += 1
            if depth > 1:
                out.append(ch)
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return "".join(out), i + 1
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out), i


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        match = _TOKEN.match(text, i)
        assert match is not None and match.end() > i  # the atom alternative matches any other character
        kind = match.lastgroup or "atom"
        if kind == "comment":
            value, i = _comment(text, i)
            tokens.append(("comment", value))
            continue
        value = match.group(kind) or ""
        if kind == "quoted":
            value = re.sub(r"\\(.)", r"\1", value)
        tokens.append((kind, value))
        i = match.end()
    return tokens


def split_address_list(text: str) -> list[tuple[str, str]]:
    """(raw display name, raw address) per mailbox of an address-list header, tolerant of real-world damage:
    groups, unquoted commas in a name before ``<…>``, junk after a bare address (a folded line), ``<>``."""
    mailboxes: list[list[tuple[str, str]]] = [[]]
    for kind, value in _tokens(text):
        if kind == "sep" and value in ",;":
            mailboxes.append([])
        elif kind == "sep" and not any(k == "angle" for k, _ in mailboxes[-1]):
            mailboxes[-1] = []  # "Group name:" introduces a group: the name is no mailbox
        else:
            mailboxes[-1].append((kind, value))
    found: list[tuple[str, str, bool]] = []  # name, address, had brackets
    for tokens in mailboxes:
        entry = _mailbox(tokens)
        if entry is None:
            continue
        name, addr, bracketed = entry
        # "Müller, Bernd <b@example.de>" without quotes: the part before the comma belongs to the name.
        if bracketed and found and not found[-1][1] and not found[-1][2] and "@" not in found[-1][0]:
            previous = found.pop()[0]
            name = f"{previous}, {name}" if name else previous
        found.append((name, addr, bracketed))
    return [(name, addr) for name, addr, _ in found]


def _mailbox(tokens: list[tuple[str, str]]) -> tuple[str, str, bool] | None:
    if not any(kind != "space" for kind, _ in tokens):
        return None
    comments = " ".join(value for kind, value in tokens if kind == "comment")
    angles = [i for i, (kind, _) in enumerate(tokens) if kind == "angle"]
    if angles:
        addrs = {tokens[i][1].strip() for i in angles}
        phrase = _phrase(tokens[:angles[0]]) or comments or _phrase(tokens[angles[-1] + 1:])
        if len(addrs) > 1:  # two addresses for one person: which one counts is a guess
            return phrase, "", True
        addr = tokens[angles[0]][1].strip()
        if addr.startswith("@") and ":" in addr:  # obsolete source route <@relay:user@host>
            addr = addr.split(":", 1)[1]
        if addr.lower().startswith("mailto:"):
            addr = addr[7:]
        return phrase, addr, True
    # A bare address: the first word, made of plain atoms (never a quoted or encoded name), and the only one
    # with "@"; words after it are debris (a folded line), words before it an unbracketed name: unusable.
    words: list[list[tuple[str, str]]] = [[]]
    for kind, value in tokens:
        if kind in {"space", "comment"}:
            words.append([])
        else:
            words[-1].append((kind, value))
    words = [word for word in words if word]
    with_at = [i for i, word in enumerate(words) if any("@" in value for _, value in word)]
    if with_at != [0] or any(kind != "atom" for kind, _ in words[0]):
        return _phrase(tokens) or comments, "", False
    return comments, "".join(value for _, value in words[0]), False


def _phrase(tokens: list[tuple[str, str]]) -> str:
    """The text of ``tokens`` (a display name): quoted strings unquoted, comments left out."""
    parts = [" " if kind == "space" else value for kind, value in tokens if kind != "comment"]
    return " ".join("".join(parts).split())


def is_noreply(email: str) -> bool:
    """No-reply and system senders: they never become contacts."""
    local = email.rpartition("@")[0]
    return bool(_NOREPLY.match(local)) or local in _SYSTEM_LOCALS

"""The one core entry for mail: accept raw bytes once and store them before anything else.

SMTP, IMAP and file import all call ``accept``; processing happens afterwards (see ``worker``).
A redelivery of the same message is recognised by its content hash and stored only once.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.db import insert_ignoring_conflicts, unit_of_work
from crm_inbox.models import InboundMessage, utcnow

log = logging.getLogger(__name__)

# Headers that relays add or change on the way; a redelivery over another path differs only in these.
_TRACE_HEADERS = re.compile(
    rb"^(received|x-received|return-path|delivered-to|x-original-to|x-envelope-(from|to)|"
    rb"authentication-results|arc-[a-z-]+|x-spam-[a-z-]+|x-virus-[a-z-]+|x-ms-exchange-[a-z-]+|"
    rb"x-forefront-[a-z-]+|x-microsoft-antispam[a-z-]*|x-gm-[a-z-]+|x-imap[a-z-]*|status|x-status|"
    rb"x-uid|x-keywords|lines|content-length)\s*:",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Envelope:
    """What the transport knows beyond the bytes: SMTP MAIL FROM / RCPT TO, the peer, the channel."""

    mail_from: str | None = None
    rcpt_to: tuple[str, ...] = ()
    peer: str | None = None
    source: str = "smtp"


@dataclass(frozen=True)
class Accepted:
    inbound_id: int
    duplicate: bool
    message_id_conflict: bool = False


def split_headers(raw: bytes) -> tuple[bytes, bytes]:
    """(header block, body), at the first empty line (CRLF or bare LF)."""
    match = re.search(rb"\r?\n\r?\n", raw)
    if match is None:
        return raw, b""
    return raw[: match.start()], raw[match.end():]


def content_hash(raw: bytes) -> str:
    """SHA-256 of the message without trace headers, line endings normalised."""
    head, body = split_headers(raw)
    kept: list[bytes] = []
    keep = True
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t"):  # continuation of the previous header
            if keep:
                kept.append(line)
            continue
        keep = not _TRACE_HEADERS.match(line)
        if keep:
            kept.append(line)
    digest = hashlib.sha256()
    digest.update(b"\n".join(kept))
    digest.update(b"\n\n")
    digest.update(body.replace(b"\r\n", b"\n").rstrip(b"\n"))
    return digest.hexdigest()


def raw_message_id(raw: bytes) -> str | None:
    """The Message-ID header exactly as sent (unfolded), without parsing the whole message."""
    head, _ = split_headers(raw)
    value = BytesHeaderParser(policy=compat32).parsebytes(head + b"\n\n").get("Message-ID")
    if value is None:
        return None
    text = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        text = text.encode("ascii", "surrogateescape").decode("utf-8", "backslashreplace")
    return " ".join(text.replace("\x00", "").split())[:998] or None


def accept(session: Session, raw: bytes, envelope: Envelope) -> Accepted:
    """Store ``raw`` unless the same message is already stored; the caller commits.

    Two different messages with one Message-ID are both kept and flagged, never merged.
    """
    chash = content_hash(raw)
    message_id = raw_message_id(raw)
    rcpts = sorted({r.strip().lower() for r in envelope.rcpt_to})
    new_id = insert_ignoring_conflicts(
        session,
        InboundMessage.__table__,
        {
            "raw": raw, "size": len(raw), "content_hash": chash, "message_id": message_id,
            "message_id_conflict": False, "envelope_to": rcpts,
            "envelope_from": envelope.mail_from.replace("\x00", "")[:998] if envelope.mail_from else None,
            "peer": envelope.peer, "source": envelope.source, "deliveries": 1, "received_at": utcnow(),
            "state": "received", "attempts": 0,
        },
        ["content_hash"],
    )
    if new_id is None:
        existing = session.execute(
            select(InboundMessage).where(InboundMessage.content_hash == chash)).scalar_one()
        existing.deliveries += 1
        merged = sorted(set(existing.envelope_to) | set(rcpts))
        if merged != existing.envelope_to:
            existing.envelope_to = merged
        log.info("inbound %s: duplicate delivery of message-id %s (delivery %d)",
                 existing.id, message_id, existing.deliveries)
        return Accepted(existing.id, duplicate=True, message_id_conflict=existing.message_id_conflict)

    conflict = False
    if message_id is not None:
        others = session.execute(
            update(InboundMessage)
            .where(InboundMessage.message_id == message_id, InboundMessage.content_hash != chash)
            .values(message_id_conflict=True)
        ).rowcount
        if others:
            conflict = True
            session.execute(update(InboundMessage).where(InboundMessage.id == new_id)
                            .values(message_id_conflict=True))
            log.warning("inbound %s: message-id %s reused by a different message; both kept",
                        new_id, message_id)
    log.info("inbound %s: stored %d bytes, message-id %s, from %s via %s",
             new_id, len(raw), message_id, envelope.mail_from, envelope.source)
    return Accepted(new_id, duplicate=False, message_id_conflict=conflict)


def store(factory: sessionmaker[Session], raw: bytes, envelope: Envelope) -> Accepted:
    """Accept ``raw`` in its own unit of work: when this returns, the message is committed."""
    with unit_of_work(factory) as session:
        return accept(session, raw, envelope)

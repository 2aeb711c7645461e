"""The one core entry for mail: accept raw bytes once and store them before anything else.

Every channel ends in ``accept_many``: file import through ``store`` (one message, one unit of work), IMAP
inside the commit that also advances its folder (``imap_folders``), SMTP through a ``Store`` (serve's is
``smtp_store.SmtpStore``) whose writers commit batches with ``commit_batch``. Processing happens afterwards
(``pipeline.runner``). A redelivery of the same message is recognised by its content hash and stored only
once. Acceptance does as little as possible: one INSERT per batch, and concurrent SMTP sessions share one
commit (``BatchingStore``, the writer process). docs/intake.md follows a message from socket to row.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import logging
import queue
import re
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.db import unit_of_work, write_lock
from crm_inbox.intake.memory import release_after
from crm_inbox.mail.addresses import NULL_SENDER
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
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_CHUNK = 1 << 20
_RETURN_PATH = re.compile(rb"^return-path[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)



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


class StoreFailed(Exception):
    """Storing failed for a reason its text says in full (the writer process's own error, or that it is gone):
    the listener logs that one line, without a traceback of its own side."""


class Store(Protocol):
    """What a listener hands its mail to; the SMTP handler knows nothing else of the intake.

    ``store`` returns once the message is committed (the listener may answer 250) and raises when it was not
    (451: the sender keeps the mail and tries again). ``close`` is awaited once, on the listener's event loop,
    after the last ``store`` has returned: it finishes what was handed over, then frees what the store holds.
    Implementations: ``intake.smtp_store.SmtpStore`` (serve's), ``handlers.smtp.in_thread`` (a blocking
    ``store`` function). The path behind serve's is drawn in docs/intake.md."""

    async def store(self, raw: bytes, envelope: Envelope) -> Accepted: ...

    async def close(self) -> None: ...


def header_end(raw: bytes) -> tuple[int, int]:
    """(end of the header block, start of the body), at the first empty line (CRLF or bare LF)."""
    crlf = raw.find(b"\r\n\r\n")  # nearly all mail: a plain search, several times faster than the pattern
    # …unless a bare-LF empty line comes first (its first LF at or before ``crlf``)
    if crlf != -1 and raw.find(b"\n\n", 0, crlf + 2) == -1 and raw.find(b"\n\r\n", 0, crlf + 3) == -1:
        return crlf, crlf + 4
    match = _HEADER_END.search(raw)
    return (len(raw), len(raw)) if match is None else (match.start(), match.end())


def _lf_chunks(view: memoryview) -> Iterator[bytes]:
    """The body in 1 MiB pieces with CRLF turned into LF, without copying the whole message at once."""
    carry = b""
    for start in range(0, len(view), _CHUNK):
        piece = carry + bytes(view[start:start + _CHUNK])
        carry = b""
        if piece.endswith(b"\r"):  # a CRLF split across two pieces
            piece, carry = piece[:-1], b"\r"
        yield piece.replace(b"\r\n", b"\n")
    if carry:
        yield carry


def content_hash(raw: bytes) -> str:
    """SHA-256 of the message without trace headers, line endings normalised, trailing newlines ignored."""
    head_end, body_start = header_end(raw)
    kept: list[bytes] = []
    keep = True
    for line in raw[:head_end].replace(b"\r\n", b"\n").split(b"\n"):
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
    body = memoryview(raw)[body_start:]
    end = len(body)
    while end and body[end - 1] in (0x0A, 0x0D):  # trailing line ends differ between transports
        end -= 1
    for piece in _lf_chunks(body[:end]):
        digest.update(piece)
    return digest.hexdigest()


def raw_message_id(raw: bytes) -> str | None:
    """The Message-ID header exactly as sent (unfolded), without parsing the whole message."""
    head_end, _ = header_end(raw)
    match = _MESSAGE_ID.search(raw, 0, head_end)
    if match is None:
        return None
    text = match.group(1).decode("utf-8", "backslashreplace").replace("\x00", "")
    return " ".join(text.split())[:998] or None


def envelope_sender(mail_from: str | None, raw: bytes) -> str | None:
    """The envelope sender as stored: ``NULL_SENDER`` for the null reverse-path however it came (SMTP's
    ``<>``, ``""``, ``< >``; for IMAP and files, which have no envelope, a ``Return-Path: <>`` that the
    delivering MTA wrote); None when unknown; otherwise the address as given."""
    if mail_from is not None:
        value = mail_from.replace("\x00", "").strip()
        return NULL_SENDER if not value.strip("<> \t") else value[:998]
    head_end, _ = header_end(raw)
    match = _RETURN_PATH.search(raw, 0, head_end)  # the topmost one: the final delivery's
    if match is not None and not match.group(1).strip(b"<> \t\r\n"):
        return NULL_SENDER
    return None


def accept(session: Session, raw: bytes, envelope: Envelope) -> Accepted:
    """Store ``raw`` unless the same message is already stored; the caller commits."""
    return accept_many(session, [(raw, envelope)])[0]


def accept_many(session: Session | Connection, items: list[tuple[bytes, Envelope]]) -> list[Accepted]:
    """Store several messages with one INSERT; a message already stored (or twice in ``items``) is
    counted as another delivery of the stored one. The caller commits."""
    now = utcnow()
    rows: list[dict[str, object]] = []
    hashes: list[str] = []
    for raw, envelope in items:
        chash = content_hash(raw)
        hashes.append(chash)
        if any(r["content_hash"] == chash for r in rows):
            continue
        rows.append({
            "raw": raw, "size": len(raw), "content_hash": chash, "message_id": raw_message_id(raw),
            "message_id_conflict": False, "envelope_to": sorted({r.strip().lower() for r in envelope.rcpt_to}),
            "envelope_from": envelope_sender(envelope.mail_from, raw),
            "peer": envelope.peer, "source": envelope.source, "deliveries": 1, "received_at": now,
            "state": "received", "attempts": 0,
        })
    dialect = session.dialect if isinstance(session, Connection) else session.get_bind().dialect
    statement = _insert_statement(dialect.name)
    # A list of rows is one "insertmanyvalues" round trip with a cached statement; rows that were
    # already stored (ON CONFLICT DO NOTHING) return nothing, so the answers are matched by hash.
    inserted: dict[str, int] = {new.content_hash: new.id for new in session.execute(statement, rows)} if rows else {}
    results: list[Accepted] = []
    first_seen: set[str] = set()
    for (raw, envelope), chash in zip(items, hashes, strict=True):
        if chash in inserted and chash not in first_seen:
            first_seen.add(chash)
            log.info("inbound %s: stored %d bytes from %s via %s", inserted[chash], len(raw), envelope.mail_from,
                     envelope.source)
            results.append(Accepted(inserted[chash], duplicate=False))
        else:
            results.append(_another_delivery(session, chash, envelope))
    return results


_COLUMNS = ("raw", "size", "content_hash", "message_id", "message_id_conflict", "envelope_from", "envelope_to",
            "peer", "source", "deliveries", "received_at", "state", "attempts")


@functools.cache
def _insert_statement(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING, built once so its compiled form is cached."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    table = InboundMessage.__table__
    values = {c: bindparam(c, type_=table.c[c].type) for c in _COLUMNS}
    return (dialect_insert(table).values(values).on_conflict_do_nothing(index_elements=["content_hash"])
            .returning(table.c.id, table.c.content_hash))


def _another_delivery(session: Session | Connection, chash: str, envelope: Envelope) -> Accepted:
    existing_id, rcpts_before = session.execute(
        select(InboundMessage.id, InboundMessage.envelope_to).where(InboundMessage.content_hash == chash)).one()
    merged = sorted(set(rcpts_before) | {r.strip().lower() for r in envelope.rcpt_to})
    values: dict[str, object] = {"deliveries": InboundMessage.deliveries + 1}
    if merged != rcpts_before:
        values["envelope_to"] = merged
    session.execute(update(InboundMessage).where(InboundMessage.id == existing_id).values(**values))
    log.info("inbound %s: duplicate delivery", existing_id)
    return Accepted(existing_id, duplicate=True)


def store(factory: sessionmaker[Session], raw: bytes, envelope: Envelope) -> Accepted:
    """Accept ``raw`` in its own unit of work: when this returns, the message is committed."""
    with write_lock(factory), unit_of_work(factory) as session:
        return accept(session, raw, envelope)


def raw_chunks(session: Session, inbound_id: int, size: int = 1 << 16) -> Generator[bytes, None, None]:
    """A stored message's raw bytes in pieces. On SQLite they are read through the incremental blob
    API, so neither SQLite nor Python ever holds a 20 MB message whole; elsewhere it is one piece."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        dbapi = connection.connection.dbapi_connection
        with dbapi.blobopen("inbound_messages", "raw", inbound_id, readonly=True) as blob:  # type: ignore[union-attr]
            while chunk := blob.read(size):
                yield chunk
        return
    yield session.execute(select(InboundMessage.raw).where(InboundMessage.id == inbound_id)).scalar_one()


@dataclass
class _Pending:
    raw: bytes
    envelope: Envelope
    done: threading.Event | None = None  # a thread waiting …
    future: asyncio.Future[Accepted] | None = None  # … or an asyncio task (the SMTP listener)
    result: Accepted | None = None
    error: BaseException | None = None

    def finish(self) -> None:
        if self.done is not None:
            self.done.set()
        if self.future is not None:
            self.future.get_loop().call_soon_threadsafe(_resolve, self.future, self.result, self.error)


def _resolve(future: asyncio.Future[Accepted], result: Accepted | None, error: BaseException | None) -> None:
    if future.done():  # the SMTP session went away meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


class BatchingStore:
    """``store`` for many concurrent callers: whatever has arrived while the previous commit ran is
    committed together (group commit), so the commit and its fsync are paid once per batch, not per
    message. Each caller still returns only after its own message is committed. If a batch fails, its
    messages are stored one by one, so one bad message cannot fail the others.

    Small messages go before large ones, and a batch stops growing at ``max_batch_bytes``: ten 20 MB
    mails arriving at once must not make an ordinary mail wait for all of them to be written."""

    SMALL = 1 << 20

    def __init__(self, factory: sessionmaker[Session], max_batch: int = 64, max_batch_bytes: int = 8 << 20) -> None:
        self.factory = factory
        self.engine: Engine = factory.kw["bind"]
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        # (size class, arrival number, item): small before large, otherwise first come first served
        self._queue: queue.PriorityQueue[tuple[int, int, _Pending | None]] = queue.PriorityQueue()
        self._arrivals = itertools.count()
        self._thread = threading.Thread(target=self._run, name="crm-inbox-intake", daemon=True)
        self._thread.start()

    def _put(self, item: _Pending | None) -> None:
        size_class = 2 if item is None else int(len(item.raw) >= self.SMALL)
        self._queue.put((size_class, next(self._arrivals), item))

    def __call__(self, raw: bytes, envelope: Envelope) -> Accepted:
        item = _Pending(raw, envelope, done=threading.Event())
        self._put(item)
        assert item.done is not None
        item.done.wait()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    async def submit(self, raw: bytes, envelope: Envelope) -> Accepted:
        """The same for asyncio callers, without tying up a thread while the commit runs."""
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._put(_Pending(raw, envelope, future=future))
        return await future

    def close(self) -> None:
        self._put(None)  # sorts after every message: what is queued is still written
        self._thread.join(30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()[2]
            if first is None:
                return
            batch, size = [first], len(first.raw)
            while len(batch) < self.max_batch and size < self.max_batch_bytes:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry[2] is None or size + len(entry[2].raw) > self.max_batch_bytes:
                    self._queue.put(entry)  # the next batch takes it (or stops, after this one)
                    break
                batch.append(entry[2])
                size += len(entry[2].raw)
            self._write(batch)
            batch = first = entry = None  # type: ignore[assignment]  # do not keep the bytes alive

    def _write(self, batch: list[_Pending]) -> None:
        outcomes = commit_batch(self.engine, [(p.raw, p.envelope) for p in batch])
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Accepted):
                pending.result = outcome
            else:
                pending.error = outcome
            pending.finish()
        release_after(max(len(p.raw) for p in batch))


def commit_batch(bind: Engine | Connection, items: list[tuple[bytes, Envelope]]) -> list[Accepted | Exception]:
    """Store ``items`` with one commit (one fsync); for each, what was stored or why not. If the batch
    fails, its messages are stored one by one, so one bad message cannot fail the others.

    ``bind`` is an engine (a pooled connection per batch) or a connection kept open by the caller. With an
    AUTOCOMMIT connection (the intake writer) the INSERT commits on its own, saving the round trips of
    BEGIN and COMMIT; should a redelivery's update after it fail, the retry counts the new messages as
    delivered twice, the one imprecision this allows (nothing is lost or stored twice)."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    try:
        with write_lock(engine), _transaction(bind) as connection:
            return list(accept_many(connection, items))
    except Exception as exc:
        if len(items) == 1:
            return [exc]
        return [outcome for item in items for outcome in commit_batch(bind, [item])]


@contextmanager
def _transaction(bind: Engine | Connection) -> Iterator[Connection]:
    # A plain connection, not an ORM session: nothing here needs the unit of work's bookkeeping.
    if isinstance(bind, Engine):
        with bind.begin() as connection:
            yield connection
    else:
        with bind.begin():
            yield bind

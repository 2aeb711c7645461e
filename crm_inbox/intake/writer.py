"""Acceptance in a process of its own: the SMTP listener hands each message to a writer process, which
commits what has arrived meanwhile together (group commit) and answers with the stored ids.

Why a process: Python runs one thread at a time. In one process the SMTP event loop and the thread
that commits take turns at the interpreter lock around every database call, and a commit that costs
0.2 ms alone took over 1 ms under load. A writer process commits while the listener talks SMTP.
Messages of ``smtp_store.LARGE`` or more stay in-process (``smtp_store.SmtpStore`` decides): sending them
across would hold them twice.

To the writer: frames of ``!IQ`` (meta length, raw length), the meta as JSON, the raw bytes; the first
frame is the configuration. From the writer: one JSON line per message. The writer exits when its
input closes, so it never outlives the service, not even after a SIGKILL; when it dies, the messages
it had not answered get 451 (the senders retry) and the next message starts a new writer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import queue
import select
import signal
import struct
import sys
import threading
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import make_url

from crm_inbox.db import make_engine
from crm_inbox.intake.store import Accepted, Envelope, StoreFailed, commit_batch

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!IQ")
MAX_BATCH = 64
MAX_BATCH_BYTES = 8 << 20
# PostgreSQL: how long the writer's commit waits for a row lock (another node inserting the same message right
# now) before that message goes to the patient committer (see ``_Committer``).
LOCK_TIMEOUT = "20ms"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class IntakeError(StoreFailed):
    """The writer could not store the message (its reason), or the writer itself is gone."""


def frame(meta: dict[str, Any], raw: bytes) -> bytes:
    head = json.dumps(meta).encode()
    return _HEADER.pack(len(head), len(raw)) + head + raw


# --- the writer process ---

class FrameReader:
    """Frames from a file descriptor: ``next(block=False)`` returns None when no whole frame is ready."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.eof = False

    def _frame_size(self) -> int | None:
        if len(self.buffer) < _HEADER.size:
            return None
        meta_len, raw_len = _HEADER.unpack_from(self.buffer)
        size = _HEADER.size + meta_len + raw_len
        return size if len(self.buffer) >= size else None

    def next(self, block: bool) -> tuple[dict[str, Any], bytes] | None:
        while (size := self._frame_size()) is None:
            if self.eof or (not block and not select.select([self.fd], [], [], 0)[0]):
                return None
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                self.eof = True
                return None
            self.buffer += chunk
        meta_len, _ = _HEADER.unpack_from(self.buffer)
        meta = json.loads(bytes(self.buffer[_HEADER.size:_HEADER.size + meta_len]))
        raw = bytes(self.buffer[_HEADER.size + meta_len:size])
        del self.buffer[:size]
        return meta, raw


def _answer(number: int, outcome: Accepted | Exception) -> bytes:
    if isinstance(outcome, Accepted):
        body: dict[str, Any] = {"n": number, "id": outcome.inbound_id, "duplicate": outcome.duplicate}
    else:
        body = {"n": number, "error": f"{outcome.__class__.__name__}: {outcome}"[:2000]}
    return json.dumps(body).encode() + b"\n"


def serve(inp: int, out: BinaryIO) -> None:
    """The writer's loop: take what has arrived (up to a batch) and commit it; until input ends."""
    frames = FrameReader(inp)
    first = frames.next(block=True)
    if first is None:
        return
    config = first[0]
    # The service logs each stored message itself, where its own logging goes; the writer's stderr (the
    # service's, inherited) gets only what goes wrong here.
    logging.basicConfig(level=max(config["log_level"], logging.WARNING), format=LOG_FORMAT)
    # Each committer keeps one connection for the writer's life, each INSERT committing by itself (see
    # ``commit_batch``), no ping: a batch that meets a dropped connection is tried again message by message,
    # and SQLAlchemy reconnects for the first of them. This costs the fewest round trips per batch.
    url = make_url(config["url"])
    answers = _Answers(out)
    patient: _Committer | None = None
    if url.get_backend_name() == "postgresql":
        patient = _Committer(_autocommit_engine(config["url"]), answers, threaded=True)
    committer = _Committer(_autocommit_engine(config["url"], lock_timeout=patient is not None), answers,
                           threaded=False, patient=patient)
    try:
        while (item := frames.next(block=True)) is not None:
            # While the last batch was committed, more mail gathered in the pipe: it goes in one batch now.
            batch, size = [item], len(item[1])
            while len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES and (item := frames.next(block=False)):
                batch.append(item)
                size += len(item[1])
            committer.hand(batch)
    finally:
        committer.stop()
        if patient is not None:
            patient.stop()


def _autocommit_engine(url: str, lock_timeout: bool = False) -> Engine:
    engine = make_engine(url, pool_size=1, pre_ping=False)
    if lock_timeout:
        event.listen(engine, "connect", _set_lock_timeout)  # every connection, also one made after a drop
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _set_lock_timeout(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cur:
        cur.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    dbapi_connection.commit()


def _waited_too_long(outcome: Accepted | Exception) -> bool:
    return getattr(getattr(outcome, "orig", None), "sqlstate", None) == "55P03"  # lock_not_available


class _Answers:
    """The writer's stdout, shared by its committers: one JSON line per message, whole lines only."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.lock = threading.Lock()

    def send(self, batch: list[tuple[dict[str, Any], bytes]], outcomes: list[Accepted | Exception]) -> None:
        lines = b"".join(_answer(meta["n"], o) for (meta, _), o in zip(batch, outcomes, strict=True))
        with self.lock:
            self.out.write(lines)
            self.out.flush()


class _Committer:
    """Its own connection, committing the batches handed to it one at a time, in the writer's loop (a thread
    would only add a hand-over per batch), or, for the patient committer, in a thread of its own.

    Why a patient committer on PostgreSQL: another node may be inserting the very same message (a sender's
    retry that reached both), and this commit then waits on the unique index until that node's transaction
    ends. The writer's loop would wait with it, and all other mail behind it. So the loop's connection waits
    for a lock at most ``LOCK_TIMEOUT``; a message that waited longer is handed to the patient committer,
    which waits as long as it takes, and the loop goes on. SQLite takes one writer at a time: no second
    committer there. (Two committers taking turns made batches of one or two, one INSERT and one fsync
    each, and the SMTP intake on PostgreSQL 20 % slower: docs/intake.md.)"""

    def __init__(self, engine: Engine, answers: _Answers, threaded: bool, patient: _Committer | None = None) -> None:
        self.engine = engine
        self.answers = answers
        self.patient = patient
        self.connection: Connection | None = None
        self.jobs: queue.SimpleQueue[list[tuple[dict[str, Any], bytes]] | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        if threaded:
            self.thread = threading.Thread(target=self._run, name="crm-inbox-intake-commit", daemon=True)
            self.thread.start()

    def hand(self, batch: list[tuple[dict[str, Any], bytes]]) -> None:
        if self.thread is None:
            self._commit_and_answer(batch)
        else:
            self.jobs.put(batch)

    def _run(self) -> None:
        try:
            while (batch := self.jobs.get()) is not None:
                self._commit_and_answer(batch)
        except BrokenPipeError:  # the listener is gone (serve was killed): nobody waits for an answer any more
            os._exit(0)
        except BaseException:  # the writer ends, and the listener answers 451 for what it had not answered
            log.exception("intake writer: a committer failed; the writer ends")
            sys.stderr.flush()
            os._exit(70)
        self._close()

    def _commit_and_answer(self, batch: list[tuple[dict[str, Any], bytes]]) -> None:
        items = [(raw, Envelope(**meta["envelope"])) for meta, raw in batch]
        outcomes: list[Accepted | Exception]
        try:
            self.connection = self.connection or self.engine.connect()
        except Exception as exc:  # the database is down: 451 for these, try again with the next batch
            outcomes = [exc] * len(items)
        else:
            outcomes = commit_batch(self.connection, items)
        waited = [k for k, outcome in enumerate(outcomes) if _waited_too_long(outcome)]
        if self.patient is not None and waited:
            self.answers.send([b for k, b in enumerate(batch) if k not in waited],
                              [o for k, o in enumerate(outcomes) if k not in waited])
            self.patient.hand([batch[k] for k in waited])
        else:
            self.answers.send(batch, outcomes)

    def _close(self) -> None:
        if self.connection is not None:
            self.connection.close()

    def stop(self) -> None:
        """Commit and answer what was handed over, then close the connection."""
        if self.thread is None:
            self._close()
        else:
            self.jobs.put(None)
            self.thread.join()
        self.engine.dispose()


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group: the service decides when the writer stops
    # (by closing its input), so it finishes the batch it has and nothing accepted is cut off.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    serve(sys.stdin.fileno(), sys.stdout.buffer)
    # Everything is committed and answered, the connection closed: skip the interpreter's teardown, which
    # takes longer than the work (0.2 s of CPU, 0.5-1 s on a busy machine) and which serve's stop waits for.
    # (After an error, the normal exit prints its traceback.)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(0)


# --- the listener's side (asyncio, on the SMTP event loop) ---

class _Writer:
    """One writer process and the messages it has not answered yet."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pending: dict[int, asyncio.Future[Accepted]] = {}
        self.alive = True
        self.reader = asyncio.create_task(self._read_answers())

    async def _read_answers(self) -> None:
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                answer = json.loads(line)
                future = self.pending.pop(answer["n"], None)
                if future is None or future.done():  # the SMTP session went away meanwhile
                    continue
                if "error" in answer:
                    future.set_exception(IntakeError(answer["error"]))
                else:
                    future.set_result(Accepted(answer["id"], answer["duplicate"]))
        except (ValueError, KeyError, TypeError):  # not an answer: this writer cannot be trusted any more
            log.error("intake: the writer process answered %r; replacing it", line[:200])
        finally:
            self.alive = False
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(IntakeError("the intake writer process ended"))
            self.pending.clear()


class IntakeProcess:
    """``submit(raw, envelope)`` for the SMTP listener: returns once the message is committed."""

    def __init__(self, database_url: str, log_level: int | None = None) -> None:
        self.database_url = database_url
        self.log_level = logging.getLogger().getEffectiveLevel() if log_level is None else log_level
        self._writer: _Writer | None = None
        self._starting = asyncio.Lock()
        self._numbers = itertools.count(1)

    async def start(self) -> None:
        async with self._starting:
            if self._writer is not None and self._writer.alive:
                return
            if self._writer is not None:  # it died, or answered nonsense: make sure it is gone
                if self._writer.proc.returncode is None:
                    self._writer.proc.kill()
                log.error("intake: the writer process ended (exit code %s); starting a new one",
                          await self._writer.proc.wait())
            # The child imports this very code, wherever it was loaded from.
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "crm_inbox.intake.writer", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, env=env)
            assert proc.stdin is not None
            proc.stdin.write(frame({"url": self.database_url, "log_level": self.log_level}, b""))
            self._writer = _Writer(proc)

    async def submit(self, raw: bytes, envelope: Envelope) -> Accepted:
        if self._writer is None or not self._writer.alive:
            await self.start()
        writer = self._writer
        assert writer is not None and writer.proc.stdin is not None
        number = next(self._numbers)
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        writer.pending[number] = future
        meta = {"n": number, "envelope": {"mail_from": envelope.mail_from, "rcpt_to": list(envelope.rcpt_to),
                                          "peer": envelope.peer, "source": envelope.source}}
        try:
            writer.proc.stdin.write(frame(meta, raw))
            await writer.proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:  # the pipe broke: the writer is gone
            writer.pending.pop(number, None)
            if future.done():  # failed meanwhile by the answer reader (a message bigger than the pipe's buffer)
                future.exception()  # taken, so asyncio does not log it as never retrieved: this raise reports it
            raise IntakeError("the intake writer process ended") from exc
        accepted = await future
        if accepted.duplicate:
            log.info("inbound %s: duplicate delivery", accepted.inbound_id)
        else:
            log.info("inbound %s: stored %d bytes from %s via %s", accepted.inbound_id, len(raw), envelope.mail_from,
                     envelope.source)
        return accepted

    async def close(self, timeout: float = 30.0) -> None:
        """Let the writer answer what it has, then let it exit."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        assert writer.proc.stdin is not None
        writer.proc.stdin.close()
        try:
            await asyncio.wait_for(writer.proc.wait(), timeout)
        except TimeoutError:
            log.error("intake: the writer process did not exit in %.0f s; killing it", timeout)
            writer.proc.kill()
            await writer.proc.wait()
        await writer.reader


if __name__ == "__main__":
    main()

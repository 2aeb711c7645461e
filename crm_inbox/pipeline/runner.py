"""Processing stored inbound mail: claim a ``received`` row, run the pipeline, record the outcome.

Processing is one unit of work: the interaction, new leads and the state change commit together,
so a crash half-way leaves the row ``received`` and it is processed again later, never twice.
A message that fails keeps its raw bytes with state ``failed`` and the reason, and can be retried.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass

from sqlalchemy import Select, and_, bindparam, case, exists, func, literal, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox import audit
from crm_inbox.config import Settings
from crm_inbox.contacts.directory import Directory, staff_version
from crm_inbox.db import affected, unit_of_work, write_lock
from crm_inbox.intake.memory import release_after
from crm_inbox.mail.parse import MailParseError
from crm_inbox.models import InboundMessage, InboundState, utcnow
from crm_inbox.pipeline import DEFAULT_STEPS, MailContext, Step, run_pipeline
from crm_inbox.pipeline.context import InboundView
from crm_inbox.privacy.service import tombstone_values

_VIEW_FIELDS = ("id", "size", "content_hash", "message_id", "envelope_from", "envelope_to", "peer", "source",
                "received_at")
# Built once: SQLAlchemy then reuses the compiled form for every message.
_T = InboundMessage.__table__
_OTHER = InboundMessage.__table__.alias("other")
_REUSED = exists().where(_OTHER.c.message_id == _T.c.message_id, _OTHER.c.content_hash != _T.c.content_hash)
_LOAD = select(_T.c.state, *(_T.c[f] for f in _VIEW_FIELDS), _REUSED.label("message_id_reused")).where(
    _T.c.id == bindparam("id"))
# PostgreSQL: one round trip brings what the first steps would each ask for (the raw bytes, the erasure and
# reuse checks, the version of the staff directory), and the row lock is the claim: another worker that
# reaches this row waits, then finds it processed. (SQLite answers each in microseconds, and has no row locks.)
_ERASED = exists().where(
    _OTHER.c.message_id_sha256 == func.encode(func.sha256(func.convert_to(_T.c.message_id, literal("UTF8"))),
                                              literal("hex")),
    and_(_OTHER.c.state == InboundState.ERASED.value, _OTHER.c.id != _T.c.id))
# Large messages are read apart, by the parse step, so the row does not hold them through the whole pipeline.
RAW_WITH_ROW = 1 << 20
_LOAD_PG = (select(_T.c.state, *(_T.c[f] for f in _VIEW_FIELDS),
                   case((_T.c.size <= RAW_WITH_ROW, _T.c.raw), else_=None).label("raw"),
                   _REUSED.label("message_id_reused"),
                   _ERASED.label("erased_copy"), staff_version())
            .where(_T.c.id == bindparam("id")).with_for_update(of=_T))
_CLAIM = (update(_T).where(_T.c.id == bindparam("row_id"), _T.c.state == InboundState.RECEIVED.value)
          .values(attempts=_T.c.attempts + 1))
_DONE = update(_T).where(_T.c.id == bindparam("row_id")).values(
    state=bindparam("new_state"), error=bindparam("new_error"), processed_at=bindparam("done_at"))
_DONE_COUNTING = _DONE.values(attempts=_T.c.attempts + 1)  # where the row lock was the claim

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    inbound_id: int
    state: InboundState | None  # None: somebody else had already processed it (or it was not waiting)
    interaction_id: int | None = None
    error: str | None = None
    queued_mail: bool = False
    retry_soon: bool = False  # the database failed, not the message: it stays received for another try
    failed_step: str | None = None  # the pipeline step that raised (None: outside the steps)


def process(factory: sessionmaker[Session], settings: Settings, inbound_id: int,
            steps: tuple[Step, ...] = DEFAULT_STEPS) -> Outcome:
    """Process one stored message. Parsing and the pure decisions run first without any lock; then the
    message is claimed (a conditional update: two workers never both process it) and the writes and
    the state change commit together, so the write lock is held only briefly."""
    ctx: MailContext | None = None
    try:
        with factory() as session, ExitStack() as locked:
            row_locked = session.get_bind().dialect.name == "postgresql"
            row = session.execute(_LOAD_PG if row_locked else _LOAD, {"id": inbound_id}).first()
            if row is None or row.state != InboundState.RECEIVED.value:
                return Outcome(inbound_id, None)
            extra = {"raw": row.raw, "erased_copy": row.erased_copy} if row_locked else {}
            inbound = InboundView(**{f: getattr(row, f) for f in _VIEW_FIELDS},
                                  message_id_reused=row.message_id_reused, **extra)
            release_after(inbound.size)  # what receiving a large message left behind, before parsing it
            directory = Directory(session, settings.mail,
                                  staff_version=row.staff_digest if row_locked else None)
            ctx = MailContext(session, settings, inbound, directory)

            def claim() -> bool:
                if row_locked:
                    return True
                locked.enter_context(write_lock(factory))
                return bool(affected(session.execute(_CLAIM, {"row_id": inbound_id})))

            try:
                if not run_pipeline(ctx, steps, before_writes=claim):
                    session.rollback()
                    return Outcome(inbound_id, None)
                state = InboundState.IGNORED if ctx.stopped else InboundState.PROCESSED
                session.execute(_DONE_COUNTING if row_locked else _DONE, {
                    "row_id": inbound_id, "new_state": state.value, "new_error": ctx.stopped, "done_at": utcnow()})
                if ctx.erased:
                    state = InboundState.ERASED
                    session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id)
                                    .values(**tombstone_values(inbound.message_id)))
                session.commit()
                release_after(inbound.size)
            except BaseException:
                session.rollback()
                raise
            return Outcome(inbound_id, state, ctx.interaction.id if ctx.interaction else None,
                           queued_mail=ctx.queued_mail)
    except (OperationalError, InterfaceError) as exc:
        # Our outage, not the message's fault: it stays 'received' and is picked up again later.
        log.error("inbound %s: database error while processing, will retry: %s", inbound_id, exc.orig)
        return Outcome(inbound_id, None, error=f"database error: {exc.orig}", retry_soon=True)
    except MailParseError as exc:
        step = ctx.step if ctx else None
        log.warning("inbound %s: cannot be processed (step %s): %s", inbound_id, step or "-", exc)
        return _mark_failed(factory, inbound_id, str(exc), step)
    except Exception as exc:
        step = ctx.step if ctx else None
        log.exception("inbound %s: processing failed (step %s)", inbound_id, step or "-")
        return _mark_failed(factory, inbound_id, f"internal error: {exc.__class__.__name__}: {exc}", step)


def _mark_failed(factory: sessionmaker[Session], inbound_id: int, error: str, step: str | None) -> Outcome:
    try:
        with write_lock(factory), unit_of_work(factory) as session:
            session.execute(
                update(InboundMessage)
                .where(InboundMessage.id == inbound_id, InboundMessage.state == InboundState.RECEIVED)
                # The claim's attempts+1 was rolled back with the failed attempt: count it here.
                .values(state=InboundState.FAILED, error=error[:4000], failed_step=step, processed_at=utcnow(),
                        attempts=InboundMessage.attempts + 1))
    except (OperationalError, DBAPIError) as exc:
        log.error("inbound %s: could not record the failure (stays received): %s", inbound_id, exc.orig)
    return Outcome(inbound_id, InboundState.FAILED, error=error, failed_step=step)


def waiting_ids(session: Session, limit: int = 1000, after: int = 0) -> list[int]:
    return list(session.execute(
        select(InboundMessage.id).where(InboundMessage.state == InboundState.RECEIVED, InboundMessage.id > after)
        .order_by(InboundMessage.id).limit(limit)).scalars())


def failed_messages() -> Select[InboundMessage]:
    """Messages that failed to process, oldest first (the triage page, ``crm-inbox inbox failed``)."""
    return select(InboundMessage).where(InboundMessage.state == InboundState.FAILED).order_by(InboundMessage.id)


def failed_count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(InboundMessage)
                           .where(InboundMessage.state == InboundState.FAILED)).scalar_one()


def retry(factory: sessionmaker[Session], ids: Iterable[int] | None) -> list[int]:
    """Put failed messages back to ``received`` (all of them when ``ids`` is None); returns their ids."""
    with unit_of_work(factory) as session:
        query = select(InboundMessage.id).where(InboundMessage.state == InboundState.FAILED)
        if ids is not None:
            query = query.where(InboundMessage.id.in_(list(ids)))
        chosen = list(session.execute(query.order_by(InboundMessage.id)).scalars())
        if chosen:
            session.execute(update(InboundMessage).where(InboundMessage.id.in_(chosen))
                            .values(state=InboundState.RECEIVED, error=None, failed_step=None))
    return chosen


def retry_now(factory: sessionmaker[Session], settings: Settings, ids: Iterable[int] | None,
              actor: int | None) -> list[Outcome]:
    """Staff's retry (page, API, command line): put failed messages back, process each at once and audit it
    as retried by ``actor`` with the state it ended in. Ids that were not failed are left out of the result."""
    outcomes = []
    for inbound_id in retry(factory, ids):
        outcome = process(factory, settings, inbound_id)
        with write_lock(factory), unit_of_work(factory) as session:
            # Read back, not taken from the outcome: it has no state when another worker got there first.
            now = session.get_one(InboundMessage, inbound_id).state
            audit.record(session, actor, "retry", "inbound_message", inbound_id, {"state": now.value})
        outcomes.append(outcome)
    return outcomes


class Worker:
    """A background thread that processes accepted messages as they arrive, and sweeps for any
    ``received`` rows left behind (a restart, a database outage, another node's crash)."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings, sweep_seconds: float = 30.0,
                 on_processed: Callable[[], None] | None = None, busy: Callable[[], bool] | None = None,
                 max_defer_seconds: float = 2.0) -> None:
        self.factory = factory
        self.settings = settings
        self.on_processed = on_processed
        # While a burst of mail arrives, accepting it (the sender is waiting) goes before processing it
        # (nobody waits; the rows are already safe). Deferral is bounded, so processing never starves.
        self.busy = busy
        self.max_defer_seconds = max_defer_seconds
        self.sweep_seconds = sweep_seconds
        # After a database error the next sweep comes sooner (1 s, doubling up to sweep_seconds), so mail
        # that waited through an outage is processed soon after the database is back.
        self._retry_pause: float | None = None
        self._next_sweep = time.monotonic() + sweep_seconds
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="crm-inbox-worker", daemon=True)
        self._stopping = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def submit(self, inbound_id: int) -> None:
        self._queue.put(inbound_id)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def wait_idle(self) -> None:
        """Block until everything submitted so far is processed (tests, benchmarks, shutdown)."""
        self._queue.join()

    def _give_way(self) -> None:
        if self.busy is None:
            return
        deadline = time.monotonic() + self.max_defer_seconds
        while self.busy() and time.monotonic() < deadline and not self._stopping.is_set():
            self._stopping.wait(0.01)

    def sweep(self) -> int:
        """Process every waiting message (page by page); returns how many were tried. A sweep that meets a
        database error stops and plans the next one soon (1 s, doubling up to ``sweep_seconds``)."""
        tried = 0
        after = 0
        while not self._stopping.is_set():
            try:
                with self.factory() as session:
                    ids = waiting_ids(session, after=after)
            except (OperationalError, DBAPIError) as exc:
                log.error("worker: cannot look for waiting messages: %s", exc.orig)
                self._next_sweep = time.monotonic() + self._database_failed()
                return tried
            for inbound_id in ids:
                if process(self.factory, self.settings, inbound_id).retry_soon:
                    self._next_sweep = time.monotonic() + self._database_failed()
                    return tried
                tried += 1
            if not ids:
                break
            after = ids[-1]  # a message that stays received (its failure could not be recorded) waits
        self._retry_pause = None
        self._next_sweep = time.monotonic() + self.sweep_seconds
        return tried

    def _database_failed(self) -> float:
        """A message stayed received because the database failed: the pause until the next sweep (1 s after
        the first failure, doubling with each failed sweep up to ``sweep_seconds``)."""
        pause = 1.0 if self._retry_pause is None else min(self._retry_pause * 2, self.sweep_seconds)
        self._retry_pause = pause
        return pause

    def _run(self) -> None:
        self.sweep()
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, self._next_sweep - time.monotonic()))
            except queue.Empty:
                if not self._stopping.is_set():
                    self.sweep()
                continue
            try:
                if item is None:
                    if self._queue.empty():
                        return
                    continue
                self._give_way()
                outcome = process(self.factory, self.settings, item)
                if outcome.retry_soon:  # sweep soon, unless one is planned sooner
                    self._next_sweep = min(self._next_sweep, time.monotonic() + self._database_failed())
                elif self._retry_pause is not None:
                    self._next_sweep = time.monotonic()  # the database answers again: no need to wait out the pause
                if outcome.queued_mail and self.on_processed is not None:
                    self.on_processed()  # wake the sender only when there is something to send
            finally:
                self._queue.task_done()
            if self._retry_pause is not None and time.monotonic() >= self._next_sweep and not self._stopping.is_set():
                self.sweep()  # mail keeps arriving, but what the outage left behind must not wait for a lull

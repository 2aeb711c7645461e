"""Processing stored inbound mail: claim a ``received`` row, run the pipeline, record the outcome.

Processing is one unit of work: the interaction, new leads and the state change commit together,
so a crash half-way leaves the row ``received`` and it is processed again later, never twice.
A message that fails keeps its raw bytes with state ``failed`` and the reason, and can be retried.
On PostgreSQL a worker process commits several messages together (``process_batch``), each with its own outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace

from sqlalchemy import (
    ColumnElement,
    Exists,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox import audit, events
from crm_inbox.config import Settings
from crm_inbox.contacts.directory import Directory, staff_version, staff_version_sqlite
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
# The Message-IDs of messages other workers are processing right now (``others``) and that are not done yet: a
# reply to one of them waits for it (see ``process``). Read with the row, so a worker pays no round trip for it.
_OTHERS = _T.alias("others")
_OTHER_PAIR = cast(_OTHERS.c.id, String) + literal(" ") + _OTHERS.c.message_id  # "id message-id"
# "Not done yet" is the aggregate's FILTER, not the WHERE: PostgreSQL's generic plan cannot tell 'received' from
# any other state, so with it in the WHERE it chose the state index, read every message still waiting (4,000 in
# a backlog of 4,000) and took 2 ms per claim instead of 0.1 (auto_explain).
_OTHERS_WAITING = (select(func.aggregate_strings(_OTHER_PAIR, "\n")
                          .filter(_OTHERS.c.state == InboundState.RECEIVED.value))
                   .where(_OTHERS.c.id.in_(bindparam("others", expanding=True)))
                   .scalar_subquery().label("others_waiting"))

# One statement brings what the first steps would each ask for: the erasure and reuse checks and the version of
# the staff directory (and on PostgreSQL the raw bytes; SQLite reads those as a blob, piece by piece).
def _erased(message_id_sha256: ColumnElement[str]) -> Exists:
    """A tombstone of an erased message with this message's Message-ID (hashed as the tombstone keeps it)."""
    return exists().where(_OTHER.c.message_id_sha256 == message_id_sha256,
                          and_(_OTHER.c.state == InboundState.ERASED.value, _OTHER.c.id != _T.c.id))


_LOAD = select(_T.c.state, *(_T.c[f] for f in _VIEW_FIELDS), _REUSED.label("message_id_reused"),
               _erased(func.sha256_hex(_T.c.message_id)).label("erased_copy"),  # db.py defines sha256_hex
               staff_version_sqlite(), _OTHERS_WAITING).where(_T.c.id == bindparam("id"))
# PostgreSQL: the claim is the first statement. It takes the row lock (another worker that reaches this row waits,
# then finds it no longer received) and records the outcome of a normal run, processed and the attempt counted,
# which the transaction commits with everything else or rolls back with it: one statement for the read, the
# claim and the state change.
_ERASED = _erased(func.encode(func.sha256(func.convert_to(_T.c.message_id, literal("UTF8"))), literal("hex")))
# Large messages are read apart, by the parse step, so the row does not hold them through the whole pipeline.
RAW_WITH_ROW = 1 << 20
_CLAIM_PG = (update(_T).where(_T.c.id == bindparam("row_id"), _T.c.state == InboundState.RECEIVED.value)
             .values(state=InboundState.PROCESSED.value, error=None, processed_at=bindparam("done_at"),
                     attempts=_T.c.attempts + 1)
             .returning(*(_T.c[f] for f in _VIEW_FIELDS),
                        case((_T.c.size <= RAW_WITH_ROW, _T.c.raw), else_=None).label("raw"),
                        _REUSED.label("message_id_reused"), _ERASED.label("erased_copy"), staff_version(),
                        _OTHERS_WAITING))
# A run that stopped early (a robot's mail, ignored) on PostgreSQL: the claim had recorded it processed.
_STOPPED_PG = update(_T).where(_T.c.id == bindparam("row_id")).values(
    state=InboundState.IGNORED.value, error=bindparam("new_error"))
# SQLite: the outcome and the attempt counted are the claim, made last: under the write lock nobody else writes,
# so "still received" at the end of the transaction is what it was at its start (one statement fewer per
# message); found processed meanwhile, everything is rolled back.
_DONE_CLAIMING = update(_T).where(_T.c.id == bindparam("row_id"), _T.c.state == InboundState.RECEIVED.value).values(
    state=bindparam("new_state"), error=bindparam("new_error"), processed_at=bindparam("done_at"),
    attempts=_T.c.attempts + 1)

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
    waits_for: int | None = None  # the id of a message it replies to, still being processed: try after that one
    deliveries_written: bool = False  # webhook deliveries are due (a worker process's commit wakes no runner)


def process(factory: sessionmaker[Session], settings: Settings, inbound_id: int,
            steps: tuple[Step, ...] = DEFAULT_STEPS, *, others: Sequence[int] = ()) -> Outcome:
    """Process one stored message. Parsing and the pure decisions run first without any lock; then the
    message is claimed (the row lock on PostgreSQL, the write lock and a conditional state change on SQLite:
    two workers never both process it) and the writes and the state change commit together, so the write lock
    is held only briefly.

    ``others``: the messages other workers are processing at this moment (workers side by side). A reply to
    one of them is not processed now (``Outcome.waits_for``) but after it, so it threads into its ticket."""
    run = _Run(inbound_id, others)
    try:
        with factory() as session, ExitStack() as locked:
            try:
                outcome = _run(session, factory, settings, steps, run, locked)
                if run.rolled_back:
                    session.rollback()
                    return outcome
                deliveries = events.wrote_deliveries(session)
                session.commit()
            except BaseException:
                session.rollback()
                raise
            release_after(run.size)
            return replace(outcome, deliveries_written=deliveries)
    except (OperationalError, InterfaceError) as exc:
        # Our outage, not the message's fault: it stays 'received' and is picked up again later.
        log.error("inbound %s: database error while processing, will retry: %s", inbound_id, exc.orig)
        return Outcome(inbound_id, None, error=f"database error: {exc.orig}", retry_soon=True)
    except MailParseError as exc:
        step = run.ctx.step if run.ctx else None
        log.warning("inbound %s: cannot be processed (step %s): %s", inbound_id, step or "-", exc)
        return _mark_failed(factory, inbound_id, str(exc), step)
    except Exception as exc:
        step = run.ctx.step if run.ctx else None
        outcome = _mark_failed(factory, inbound_id, f"internal error: {exc.__class__.__name__}: {exc}", step)
        if outcome.state is None:  # SQLite: a write met what another process recorded of it meanwhile
            log.info("inbound %s: recorded by another process meanwhile; this attempt is rolled back (%s)",
                     inbound_id, exc.__class__.__name__)
        else:
            log.exception("inbound %s: processing failed (step %s)", inbound_id, step or "-")
        return outcome


def process_batch(factory: sessionmaker[Session], settings: Settings,
                  requests: Sequence[tuple[int, Sequence[int]]], steps: tuple[Step, ...] = DEFAULT_STEPS
                  ) -> list[Outcome]:
    """Process several stored messages (``(id, others)`` each, as for ``process``) in one transaction on
    PostgreSQL: one BEGIN and one COMMIT for all of them (a transaction of its own cost a message about 0.4 ms
    of CPU, a tenth of the whole; docs/processing.md). Each outcome stays the message's own: when one of them
    fails, waits for its original, was taken by another worker meanwhile or meets a database error, the whole
    transaction is rolled back and each message is processed alone (``process``), so a failing message still
    fails alone, with its reason.

    SQLite processes one message per transaction: its write lock would be held from the first message's writes
    to the last one's, through the parsing of those between."""
    dialect = factory.kw["bind"].dialect.name
    if len(requests) < 2 or dialect != "postgresql":
        return [process(factory, settings, inbound_id, steps, others=others) for inbound_id, others in requests]
    runs = [_Run(inbound_id, others) for inbound_id, others in requests]
    try:
        with factory() as session, ExitStack() as locked:
            try:
                outcomes = []
                for run in runs:
                    outcome = _run(session, factory, settings, steps, run, locked)
                    if run.rolled_back or outcome.state is None:
                        raise _AloneAfterAll(outcome)
                    outcomes.append(outcome)
                deliveries = events.wrote_deliveries(session)
                session.commit()
            except BaseException:
                session.rollback()
                raise
    except Exception as exc:  # each message again, alone: its own outcome says what happened
        log.info("a batch of %d messages is processed one by one (inbound %s): %s", len(runs),
                 ", ".join(str(r.inbound_id) for r in runs), exc)
        return [process(factory, settings, run.inbound_id, steps, others=run.others) for run in runs]
    for run in runs:
        release_after(run.size)
    return [replace(outcome, deliveries_written=deliveries) for outcome in outcomes]


class _AloneAfterAll(Exception):
    """A message of a batch ended without being recorded (it waits for its original, or another worker had
    it): the batch is rolled back, so this message's claim is too, and each is processed alone."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"inbound {outcome.inbound_id} "
                         + ("waits for " + str(outcome.waits_for) if outcome.waits_for else "was not waiting"))


@dataclass
class _Run:
    """One message's run in a transaction: what the caller needs after it, or after it raised."""
    inbound_id: int
    others: Sequence[int]
    ctx: MailContext | None = None
    size: int = 0
    rolled_back: bool = False  # the run wrote nothing that may stay: the caller rolls the transaction back


def _run(session: Session, factory: sessionmaker[Session], settings: Settings, steps: tuple[Step, ...],
         run: _Run, locked: ExitStack) -> Outcome:
    """Claim and process one message in ``session``'s transaction, without committing it (see ``process``)."""
    inbound_id = run.inbound_id
    row_locked = session.get_bind().dialect.name == "postgresql"
    # Core statements on the session's connection: the ORM's execution path costs more than they do.
    connection = session.connection()
    if row_locked:
        row = connection.execute(_CLAIM_PG, {"row_id": inbound_id, "others": list(run.others),
                                             "done_at": utcnow()}).first()
    else:
        row = connection.execute(_LOAD, {"id": inbound_id, "others": list(run.others)}).first()
        if row is not None and row.state != InboundState.RECEIVED.value:
            row = None
    if row is None:  # not waiting (any more): processed by another worker, or gone
        run.rolled_back = True
        return Outcome(inbound_id, None)
    inbound = InboundView(**{f: getattr(row, f) for f in _VIEW_FIELDS},
                          message_id_reused=row.message_id_reused, erased_copy=bool(row.erased_copy),
                          raw=row.raw if row_locked else None)
    run.size = inbound.size
    release_after(inbound.size)  # what receiving a large message left behind, before parsing it
    directory = Directory(session, settings.mail, staff_version=row.staff_digest)
    ctx = run.ctx = MailContext(session, settings, inbound, directory)
    waits_for: int | None = None

    def claim() -> bool:
        nonlocal waits_for
        waits_for = _original_of(ctx, row.others_waiting) if row.others_waiting else None
        if waits_for is not None:
            return False
        if not row_locked:
            locked.enter_context(write_lock(factory))
        return True

    if not run_pipeline(ctx, steps, before_writes=claim):
        run.rolled_back = True
        return Outcome(inbound_id, None, waits_for=waits_for)
    state = InboundState.IGNORED if ctx.stopped else InboundState.PROCESSED
    if not row_locked:
        done = connection.execute(_DONE_CLAIMING, {
            "row_id": inbound_id, "new_state": state.value, "new_error": ctx.stopped, "done_at": utcnow()})
        if not affected(done):  # another process had it meanwhile
            run.rolled_back = True
            return Outcome(inbound_id, None)
    elif ctx.stopped:
        connection.execute(_STOPPED_PG, {"row_id": inbound_id, "new_error": ctx.stopped})
    if ctx.erased:
        state = InboundState.ERASED
        session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id)
                        .values(**tombstone_values(inbound.message_id)))
    return Outcome(inbound_id, state, ctx.interaction.id if ctx.interaction else None, queued_mail=ctx.queued_mail)


def _original_of(ctx: MailContext, others_waiting: str) -> int | None:
    """The id of the message (among the others', "id message-id" per line) this one replies to, if any."""
    parsed = ctx.parsed
    if parsed is None:
        return None
    refs = {*parsed.in_reply_to, *parsed.references}
    for line in others_waiting.split("\n"):
        other_id, _, message_id = line.partition(" ")
        if message_id in refs:
            return int(other_id)
    return None


def _mark_failed(factory: sessionmaker[Session], inbound_id: int, error: str, step: str | None) -> Outcome:
    """The message failed: kept with the reason. Not received any more (another process recorded it): None."""
    try:
        with write_lock(factory), unit_of_work(factory) as session:
            marked = session.execute(
                update(InboundMessage)
                .where(InboundMessage.id == inbound_id, InboundMessage.state == InboundState.RECEIVED)
                # The attempt's count (made with the state change) was rolled back with it: count it here.
                .values(state=InboundState.FAILED, error=error[:4000], failed_step=step, processed_at=utcnow(),
                        attempts=InboundMessage.attempts + 1))
            if not affected(marked):
                return Outcome(inbound_id, None)
    except (OperationalError, DBAPIError) as exc:
        log.error("inbound %s: could not record the failure (stays received): %s", inbound_id, exc.orig)
    return Outcome(inbound_id, InboundState.FAILED, error=error, failed_step=step)


CRASHES_BEFORE_FAILED = 3


def worker_ended(factory: sessionmaker[Session], inbound_id: int) -> Outcome:
    """A worker process ended while it had this message (killed, out of memory, a crash in a library): its
    transaction never committed, so the message is still received. Counted as an attempt; the third such end
    fails the message with its reason, so mail that kills its worker does not do so at every sweep forever."""
    error = f"a worker process ended while processing it ({CRASHES_BEFORE_FAILED} times)"
    try:
        with write_lock(factory), unit_of_work(factory) as session:
            attempts = session.execute(
                update(InboundMessage).where(InboundMessage.id == inbound_id,
                                             InboundMessage.state == InboundState.RECEIVED)
                .values(attempts=InboundMessage.attempts + 1).returning(InboundMessage.attempts)).scalar()
            if attempts is not None and attempts >= CRASHES_BEFORE_FAILED:
                session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id).values(
                    state=InboundState.FAILED, error=error, processed_at=utcnow()))
                log.error("inbound %s: %s; kept as failed", inbound_id, error)
                return Outcome(inbound_id, InboundState.FAILED, error=error)
    except (OperationalError, DBAPIError) as exc:
        log.error("inbound %s: could not count the worker's end: %s", inbound_id, exc.orig)
    return Outcome(inbound_id, None, error="the worker process ended", retry_soon=True)


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

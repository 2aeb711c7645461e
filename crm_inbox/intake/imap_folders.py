"""The import state of each IMAP folder, and the pure decisions over it.

Safety comes from the order: the raw messages of a batch and the folder's new ``last_uid`` commit in ONE
transaction; only then is anything moved or flagged on the server. A crash before the commit fetches the
batch again; a crash after it and before the move fetches nothing again (the UIDs are below ``last_uid``),
and if UIDVALIDITY changes meanwhile, the rescan finds the messages already stored (intake's content hash),
so nothing is recorded twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.db import insert_ignoring_conflicts, unit_of_work, write_lock
from crm_inbox.intake.store import Accepted, Envelope, accept_many
from crm_inbox.models import ImapFolder, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int | None
    last_uid: int


@dataclass(frozen=True)
class SyncPlan:
    """What one pass over a folder does, given the stored state and the server's UIDVALIDITY."""

    after_uid: int  # fetch UIDs above this one
    rescan: bool  # UIDVALIDITY changed: every UID means something else now, start from the beginning
    first_import: bool  # nothing imported from this folder yet (a ``since`` date applies)
    previous_uidvalidity: int | None = None


def plan_sync(state: FolderState | None, server_uidvalidity: int) -> SyncPlan:
    if state is None or state.uidvalidity is None:
        return SyncPlan(0, rescan=False, first_import=True)
    if state.uidvalidity != server_uidvalidity:
        return SyncPlan(0, rescan=True, first_import=True, previous_uidvalidity=state.uidvalidity)
    return SyncPlan(state.last_uid, rescan=False, first_import=state.last_uid == 0)


def uids_to_fetch(found: Iterable[int], after_uid: int) -> list[int]:
    """The UIDs a ``UID SEARCH UID n:*`` found that are really new: ``n:*`` always includes the highest
    UID in the folder, even when it is below ``n`` (RFC 3501 6.4.8), so the last message comes back
    every time nothing is new."""
    return sorted({uid for uid in found if uid > after_uid})


def batches(uids: list[int], sizes: Mapping[int, int], max_count: int, max_bytes: int) -> Iterator[list[int]]:
    """``uids`` in order, in groups of at most ``max_count`` messages and ``max_bytes`` (a larger message
    goes alone), so one FETCH round trip and one commit carry many small messages but memory stays bounded."""
    batch: list[int] = []
    size = 0
    for uid in uids:
        n = sizes.get(uid, 0)
        if batch and (len(batch) >= max_count or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(uid)
        size += n
    if batch:
        yield batch


def load_state(session: Session, account: str, folder: str) -> FolderState | None:
    row = session.execute(select(ImapFolder.uidvalidity, ImapFolder.last_uid)
                          .where(ImapFolder.account == account, ImapFolder.folder == folder)).first()
    return None if row is None else FolderState(row.uidvalidity, row.last_uid)


def _ensure_row(session: Session, account: str, folder: str) -> None:
    now = utcnow()
    insert_ignoring_conflicts(session, ImapFolder.__table__, {
        "account": account, "folder": folder, "uidvalidity": None, "last_uid": 0, "imported": 0,
        "uidvalidity_changes": 0, "created_at": now, "updated_at": now}, ["account", "folder"])


def begin_pass(factory: sessionmaker[Session], account: str, folder: str, plan: SyncPlan,
               server_uidvalidity: int) -> None:
    """Record the server's UIDVALIDITY; after a change, start the folder over (and say so on the row)."""
    now = utcnow()
    values: dict[str, object] = {"uidvalidity": server_uidvalidity, "updated_at": now}
    if plan.rescan:
        values.update(last_uid=0, uidvalidity_changes=ImapFolder.uidvalidity_changes + 1, last_error_at=now,
                      last_error=f"UIDVALIDITY changed from {plan.previous_uidvalidity} to {server_uidvalidity}: "
                                 "the folder was scanned again (messages already stored were not stored twice)")
    with write_lock(factory), unit_of_work(factory) as session:
        _ensure_row(session, account, folder)
        session.execute(update(ImapFolder).where(ImapFolder.account == account, ImapFolder.folder == folder)
                        .values(**values))


def store_batch(factory: sessionmaker[Session], account: str, folder: str, uidvalidity: int,
                messages: list[bytes], envelope: Envelope, up_to_uid: int) -> list[Accepted]:
    """Store ``messages`` and advance the folder to ``up_to_uid``, in one transaction."""
    engine = factory.kw["bind"]
    with write_lock(factory), engine.begin() as connection:
        accepted = accept_many(connection, [(raw, envelope) for raw in messages]) if messages else []
        new = sum(not a.duplicate for a in accepted)
        table = ImapFolder.__table__
        connection.execute(
            update(table).where(table.c.account == account, table.c.folder == folder,
                                table.c.uidvalidity == uidvalidity)
            .values(last_uid=case((table.c.last_uid < up_to_uid, up_to_uid), else_=table.c.last_uid),
                    imported=table.c.imported + new, updated_at=utcnow()))
    return accepted


def record_success(factory: sessionmaker[Session], account: str, folder: str) -> None:
    with write_lock(factory), unit_of_work(factory) as session:
        _ensure_row(session, account, folder)
        session.execute(update(ImapFolder).where(ImapFolder.account == account, ImapFolder.folder == folder)
                        .values(last_success_at=utcnow(), updated_at=utcnow()))


def record_error(factory: sessionmaker[Session], account: str, folder: str, error: str) -> None:
    """Keep the last problem on the folder's row for the operator (best effort: the database may be
    the problem)."""
    try:
        with write_lock(factory), unit_of_work(factory) as session:
            _ensure_row(session, account, folder)
            session.execute(update(ImapFolder).where(ImapFolder.account == account, ImapFolder.folder == folder)
                            .values(last_error=error[:4000], last_error_at=utcnow(), updated_at=utcnow()))
    except Exception as exc:  # never let bookkeeping hide the original problem
        log.error("imap %s: could not record the error: %s", account, exc)

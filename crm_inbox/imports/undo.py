"""Undoing a whole import. What it changed is restored to the values before, field by field (free fields key
by key, tags tag by tag), unless the field was changed again since (then the newer value is kept and counted
as "kept"); the addresses, numbers and domains it added are removed. What it created is removed with its
addresses and numbers, unless someone edited it since or something else has used it (mail or calls on its
timeline, a ticket, a deal, a reminder, a document; for a company also people the import did not create):
that record is kept and counted as "kept", since removing it would take the newer work with it.

A record is only ever the one the import touched if it still is that row: SQLite may give a deleted
contact's id (merged, erased) to a new one, so a created record must still carry the import's origin and
creation time, and an updated one must be older than the import; otherwise it counts as "gone". People erased
since (data protection) took the import's records of them along: nothing of theirs is restored, and the
batch's ``erased`` count says how many records are missing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox import audit, events
from crm_inbox.db import affected, unit_of_work, write_lock
from crm_inbox.errors import Conflict, NotFound
from crm_inbox.ids import MAX_ID
from crm_inbox.imports.index import State, chunks, company_states, contact_states
from crm_inbox.imports.write import ORIGIN, plain
from crm_inbox.models import (
    Base,
    Company,
    CompanyDomain,
    CompanyPhone,
    Contact,
    ContactEmail,
    ContactPhone,
    ImportBatch,
    ImportChange,
    ImportState,
)
from crm_inbox.models.base import utcnow

_PARTS = {"contacts": {"contact_emails", "contact_phones"}, "companies": {"company_domains", "company_phones"}}
_LISTS = {"emails": (ContactEmail.__table__, "contact_id", "email"),
          "phones": (ContactPhone.__table__, "contact_id", "raw"),
          "domains": (CompanyDomain.__table__, "company_id", "domain")}
_COMPANY_LISTS = {"phones": (CompanyPhone.__table__, "company_id", "raw")}


def undo_import(factory: sessionmaker[Session], batch_id: int, actor: int | None) -> dict[str, int]:
    """Take import ``batch_id`` back; NotFound, Conflict when it was undone already. Returns
    {"removed": records removed, "restored": fields restored, "kept": records and fields kept, "gone": records
    deleted since by other means, "erased": the import's records of people erased since, which it cannot
    restore}."""
    if not 0 < batch_id <= MAX_ID:  # PostgreSQL would refuse the number itself
        raise NotFound(f"no import {batch_id}")
    with write_lock(factory), unit_of_work(factory) as session:
        batch = session.execute(select(ImportBatch).where(ImportBatch.id == batch_id).with_for_update()
                                ).scalar_one_or_none()
        if batch is None:
            raise NotFound(f"no import {batch_id}")
        if batch.state == ImportState.UNDONE:
            raise Conflict(f"import {batch_id} was undone already")
        changes = list(session.execute(select(ImportChange).where(ImportChange.batch_id == batch_id)
                                       .order_by(ImportChange.id)).scalars())
        counts = {"removed": 0, "restored": 0, "kept": 0, "gone": 0,
                  "erased": int((batch.counts or {}).get("erased", 0))}
        for kind, table in (("contact", Contact.__table__), ("company", Company.__table__)):
            _restore(session, kind, table, [c for c in changes if c.object_type == kind and c.action == "updated"],
                     batch, counts)
        for kind, table in (("contact", Contact.__table__), ("company", Company.__table__)):
            created = _still_there(session, table, [c for c in changes
                                                    if c.object_type == kind and c.action == "created"], batch, counts)
            _remove(session, table, created, counts)
        batch.state, batch.undone_by_id, batch.undone_at = ImportState.UNDONE, actor, utcnow()
        audit.record(session, actor, "undo", "import_batch", batch.id, {"filename": batch.filename, **counts})
        events.record(session, "import.undone", "import", batch.id,
                      {"id": batch.id, "filename": batch.filename, "counts": counts,
                       "changes": f"/api/v1/imports/{batch.id}/changes"})
    return counts


def _restore(session: Session, kind: str, table: Table, changes: list[ImportChange], batch: ImportBatch,
             counts: dict[str, int]) -> None:
    loader = contact_states if kind == "contact" else company_states
    states = loader(session, [c.object_id for c in changes])
    born = _creation_times(session, table, list(states))
    now = utcnow()
    for change in changes:
        state = states.get(change.object_id)
        # The import wrote at after["updated_at"] (older records: after the batch began) to a record older than
        # that; a younger one got the id of one deleted since.
        written = datetime.fromisoformat(change.after["updated_at"]) if "updated_at" in change.after \
            else batch.created_at
        if state is None or born[change.object_id] > written:
            counts["gone"] += 1
            continue
        values: dict[str, Any] = {}
        kept = counts["kept"]
        for column, old in change.before.items():
            if column in ("emails", "phones", "domains", "updated_at"):
                continue
            current = plain(state.values[column])
            if column == "fields":
                _restore_fields(current or {}, old or {}, change.after.get(column) or {}, values, counts)
            elif column == "tags":
                _restore_tags(current or [], old or [], change.after.get(column) or [], values, counts)
            elif column == "company_id" and old is not None and session.get(Company, old) is None:
                counts["kept"] += 1  # the company it was at is gone since
            elif current == change.after.get(column):
                values[column] = old
                counts["restored"] += 1
            else:
                counts["kept"] += 1
        earlier = _time_before(change, state) if counts["kept"] == kept else None
        if values or earlier is not None:
            session.execute(update(table).where(table.c.id == change.object_id)
                            .values(**values, updated_at=earlier or now))
        lists = _LISTS if kind == "contact" else {**_LISTS, **_COMPANY_LISTS}
        for key in ("emails", "phones", "domains"):
            if key not in change.before or (kind == "contact" and key == "domains"):
                continue
            list_table, owner, column = lists[key]
            added = set(change.after.get(key, [])) - set(change.before[key])
            if added:
                session.execute(delete(list_table).where(list_table.c[owner] == change.object_id,
                                                         list_table.c[column].in_(added)))
            counts["restored"] += 1


def _time_before(change: ImportChange, state: State) -> datetime | None:
    """The record's time of change from before the import, when nobody changed it since: taking back all of
    the import's changes then leaves it as it was (a record an earlier import created stays removable)."""
    if "updated_at" in change.before and state.updated_at is not None \
            and state.updated_at == datetime.fromisoformat(change.after["updated_at"]):
        return datetime.fromisoformat(change.before["updated_at"])
    return None


_MISSING = object()


def _restore_fields(current: dict[str, Any], before: dict[str, Any], after: dict[str, Any], values: dict[str, Any],
                    counts: dict[str, int]) -> None:
    """Free fields key by key: a key the import set goes back to its old value (or away) unless someone changed
    it since; keys others set meanwhile stay as they are."""
    restored = dict(current)
    for key in before.keys() | after.keys():
        old, new = before.get(key, _MISSING), after.get(key, _MISSING)
        if old == new:
            continue
        if current.get(key, _MISSING) != new:
            counts["kept"] += 1
            continue
        if old is _MISSING:
            restored.pop(key, None)
        else:
            restored[key] = old
        counts["restored"] += 1
    if restored != current:
        values["fields"] = restored


def _restore_tags(current: list[str], before: list[str], after: list[str], values: dict[str, Any],
                  counts: dict[str, int]) -> None:
    """The import only adds tags: those of them still there are taken away, tags added since stay."""
    added = set(after) - set(before)
    if added & set(current):
        values["tags"] = [t for t in current if t not in added]
        counts["restored"] += 1
    elif added:
        counts["kept"] += 1


def _creation_times(session: Session, table: Table, ids: list[int]) -> dict[int, datetime]:
    out: dict[int, datetime] = {}
    for batch in chunks(ids):
        rows = session.execute(select(table.c.id, table.c.created_at).where(table.c.id.in_(batch)))
        out.update({ident: created for ident, created in rows})
    return out


def _still_there(session: Session, table: Table, changes: list[ImportChange], batch: ImportBatch,
                 counts: dict[str, int]) -> list[int]:
    """The ids of the records this import created that are still those very rows (origin and creation time as
    the import wrote them) and that nobody edited since (``updated_at`` is still the creation time); the others
    are counted as "gone" or "kept"."""
    rows: dict[int, Any] = {}
    for ids in chunks(c.object_id for c in changes):
        for found in session.execute(select(table.c.id, table.c.origin, table.c.name, table.c.created_at,
                                          table.c.updated_at).where(table.c.id.in_(ids))):
            rows[found.id] = found
    out: list[int] = []
    for change in changes:
        row = rows.get(change.object_id)
        if row is None or not _same_row(row, change.after, batch):
            counts["gone"] += 1
        elif row.updated_at != row.created_at:
            counts["kept"] += 1
        else:
            out.append(change.object_id)
    return out


def _same_row(row: Any, after: dict[str, Any], batch: ImportBatch) -> bool:
    if row.origin != after.get("origin", ORIGIN):
        return False
    if "created_at" in after:
        return bool(row.created_at == datetime.fromisoformat(after["created_at"]))
    # Recorded before the creation time was: made by this import's transaction, under the same name.
    return bool(row.created_at >= batch.created_at and row.name == after.get("name"))


def _remove(session: Session, table: Table, ids: list[int], counts: dict[str, int]) -> None:
    """Delete the created records nothing else refers to now; the others are kept."""
    if not ids:
        return
    used: set[int] = set()
    parts = _PARTS[table.name]
    for other in Base.metadata.sorted_tables:
        for fk in other.foreign_keys:
            if fk.column.table is table and other.name not in parts:
                for batch in chunks(ids):
                    used.update(session.execute(select(fk.parent).where(fk.parent.in_(batch)).distinct()).scalars())
    gone = [i for i in ids if i not in used]
    counts["kept"] += len(ids) - len(gone)
    for batch in chunks(gone):
        for part in parts:
            part_table = Base.metadata.tables[part]
            owner = "contact_id" if table.name == "contacts" else "company_id"
            session.execute(delete(part_table).where(part_table.c[owner].in_(batch)))
        counts["removed"] += affected(session.execute(delete(table).where(table.c.id.in_(batch))))

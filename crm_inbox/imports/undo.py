"""Undoing a whole import. What it changed is restored to the values before, field by field, unless the field
was changed again since (then the newer value is kept and counted as "kept"); the addresses, numbers and
domains it added are removed. What it created is removed with its addresses and numbers, unless something
else has used it since (mail or calls on its timeline, a ticket, a deal, a reminder, a document; for a company
also people the import did not create): that record is kept and counted as "kept", since removing it would
take the newer history with it. People erased since (data protection) took the import's records of them
along: nothing of theirs is restored, and the batch's ``erased`` count says how many records are missing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox import audit, events
from crm_inbox.db import affected, unit_of_work, write_lock
from crm_inbox.errors import Conflict, NotFound
from crm_inbox.imports.index import chunks, company_states, contact_states
from crm_inbox.imports.write import plain
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
    {"removed": records removed, "restored": fields restored, "kept": records and fields kept, "erased": the
    import's records of people erased since, which it cannot restore}."""
    with write_lock(factory), unit_of_work(factory) as session:
        batch = session.execute(select(ImportBatch).where(ImportBatch.id == batch_id).with_for_update()
                                ).scalar_one_or_none()
        if batch is None:
            raise NotFound(f"no import {batch_id}")
        if batch.state == ImportState.UNDONE:
            raise Conflict(f"import {batch_id} was undone already")
        changes = list(session.execute(select(ImportChange).where(ImportChange.batch_id == batch_id)
                                       .order_by(ImportChange.id)).scalars())
        counts = {"removed": 0, "restored": 0, "kept": 0, "erased": int((batch.counts or {}).get("erased", 0))}
        for kind, table in (("contact", Contact.__table__), ("company", Company.__table__)):
            _restore(session, kind, table, [c for c in changes if c.object_type == kind and c.action == "updated"],
                     counts)
        for kind, table in (("contact", Contact.__table__), ("company", Company.__table__)):
            created = [c.object_id for c in changes if c.object_type == kind and c.action == "created"]
            _remove(session, table, created, counts)
        batch.state, batch.undone_by_id, batch.undone_at = ImportState.UNDONE, actor, utcnow()
        audit.record(session, actor, "undo", "import_batch", batch.id, {"filename": batch.filename, **counts})
        events.record(session, "import.undone", "import", batch.id,
                      {"id": batch.id, "filename": batch.filename, "counts": counts})
    return counts


def _restore(session: Session, kind: str, table: Table, changes: list[ImportChange], counts: dict[str, int]) -> None:
    loader = contact_states if kind == "contact" else company_states
    states = loader(session, [c.object_id for c in changes])
    now = utcnow()
    for change in changes:
        state = states.get(change.object_id)
        if state is None:  # removed since (merged, erased, or created by a later import that was undone)
            counts["kept"] += 1
            continue
        values: dict[str, Any] = {}
        for column, old in change.before.items():
            if column in ("emails", "phones", "domains"):
                continue
            if column == "company_id" and old is not None and session.get(Company, old) is None:
                counts["kept"] += 1  # the company it was at is gone since
            elif plain(state.values[column]) == change.after.get(column):
                values[column] = old
                counts["restored"] += 1
            else:
                counts["kept"] += 1
        if values:
            session.execute(update(table).where(table.c.id == change.object_id).values(**values, updated_at=now))
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

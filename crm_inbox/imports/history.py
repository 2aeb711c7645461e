"""What past imports did, for the pages and the API alike: the batches, one batch with how many records it
created and updated, and its changes page by page, named by record and changed field only (the values before
are personal data's history: they stay with undo and the person's data-protection export)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_inbox.errors import NotFound
from crm_inbox.ids import MAX_ID
from crm_inbox.imports.write import changed_labels
from crm_inbox.models import ImportBatch, ImportChange


@dataclass(frozen=True)
class ChangeEntry:
    id: int  # the cursor for the next page
    object_type: str  # contact, company
    object_id: int  # the record's id when the import ran
    action: str  # created, updated
    fields: list[str]  # updated: the changed fields as the mapping names them (title, email, field:<name>, …)


def list_batches(session: Session, limit: int = 50) -> list[ImportBatch]:
    """The latest ``limit`` imports, newest first."""
    return list(session.execute(select(ImportBatch).order_by(ImportBatch.id.desc()).limit(limit)).scalars())


def get_batch(session: Session, batch_id: int) -> ImportBatch:
    batch = session.get(ImportBatch, batch_id) if 0 < batch_id <= MAX_ID else None
    if batch is None:
        raise NotFound(f"no import {batch_id}")
    return batch


def change_counts(session: Session, batch_id: int) -> dict[str, int]:
    """How many records the import created and updated (what an undo removes and restores)."""
    rows = session.execute(select(ImportChange.action, func.count()).where(ImportChange.batch_id == batch_id)
                           .group_by(ImportChange.action))
    return {action: n for action, n in rows}


def changes(session: Session, batch_id: int, after: int = 0, limit: int = 100) -> list[ChangeEntry]:
    """The batch's changes with an id above ``after``, in the order written, at most ``limit``; NotFound."""
    get_batch(session, batch_id)
    rows = session.execute(select(ImportChange).where(ImportChange.batch_id == batch_id, ImportChange.id > after)
                           .order_by(ImportChange.id).limit(limit)).scalars()
    return [ChangeEntry(c.id, c.object_type, c.object_id, c.action,
                        changed_labels(c.after, c.before.get("fields")) if c.action == "updated" else [])
            for c in rows]

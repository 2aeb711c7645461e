"""What imports recorded about a person (``import_changes`` rows of their contact: the values before and after,
names, addresses and numbers among them) in their data-protection export, and deleted on their erasure.

An erased person's rows are gone, so undoing such an import cannot bring the person or their old values back;
the batch counts them as ``erased`` (undo reports that number, the import's page shows it).

SQLite may give a new contact the id of a deleted one, so only the rows about the contact as it is now count:
from the import that created it (the last "created" row for that id) on, or, for a contact made otherwise,
from imports after its creation.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from crm_inbox.models import Contact, ImportBatch, ImportChange

_CHUNK = 500


def _rows(session: Session, contact: Contact) -> list[Any]:
    rows = list(session.execute(
        select(ImportChange.id, ImportChange.batch_id, ImportChange.action, ImportChange.before, ImportChange.after,
               ImportBatch.filename, ImportBatch.created_at)
        .join(ImportBatch, ImportBatch.id == ImportChange.batch_id)
        .where(ImportChange.object_type == "contact", ImportChange.object_id == contact.id)
        .order_by(ImportChange.id)).all())
    created = [i for i, row in enumerate(rows) if row.action == "created"]
    if contact.origin == "import" and created:
        return rows[created[-1]:]
    return [row for row in rows if row.action == "updated" and row.created_at >= contact.created_at]


def export(session: Session, contact: Contact) -> dict[str, list[dict[str, Any]]]:
    """``{"imports": [...]}``: each import's record of the person, oldest first."""
    return {"imports": [{"batch_id": row.batch_id, "filename": row.filename,
                         "imported_at": row.created_at.isoformat(), "action": row.action,
                         "before": row.before, "after": row.after} for row in _rows(session, contact)]}


def erase(session: Session, contact: Contact) -> int:
    """Delete the person's import records and count them on their batches; how many were deleted."""
    rows = _rows(session, contact)
    ids = [row.id for row in rows]
    for start in range(0, len(ids), _CHUNK):
        session.execute(delete(ImportChange).where(ImportChange.id.in_(ids[start:start + _CHUNK])))
    for batch_id, n in Counter(row.batch_id for row in rows).items():
        counts = session.execute(select(ImportBatch.counts).where(ImportBatch.id == batch_id)).scalar_one()
        counts = {**(counts or {}), "erased": int((counts or {}).get("erased", 0)) + n}
        session.execute(update(ImportBatch).where(ImportBatch.id == batch_id).values(counts=counts))
    return len(ids)

"""Past imports over the API, so a webhook receiver told ``import.finished`` or ``import.undone`` can learn what
the import did: the batches, one batch with its counts, its changes page by page (record and changed field
names, never the old values) and undoing it. The import itself is the pages' and the command line's."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from crm_inbox.ids import MAX_ID
from crm_inbox.imports import history
from crm_inbox.imports.service import SKIPPED
from crm_inbox.imports.undo import undo_import
from crm_inbox.models import ImportBatch
from web.api.blueprint import api
from web.api.errors import int_arg
from web.api.serialize import when
from web.auth import actor_id, require_token
from web.requestdb import db, state


def counts(batch: ImportBatch) -> dict[str, int]:
    """The batch's counts; the rows it left out (listed beside them for the batch's page) are not counts."""
    return {k: v for k, v in (batch.counts or {}).items() if k != SKIPPED}


def batch_json(batch: ImportBatch) -> dict[str, Any]:
    return {"id": batch.id, "filename": batch.filename, "file_format": batch.file_format,
            "state": batch.state.value, "counts": counts(batch), "created_at": when(batch.created_at),
            "created_by_id": batch.created_by_id, "undone_at": when(batch.undone_at),
            "undone_by_id": batch.undone_by_id, "changes": f"/api/v1/imports/{batch.id}/changes"}


@api.get("/imports")
@require_token()
def list_imports() -> Response:
    return jsonify(items=[batch_json(b) for b in history.list_batches(db(), int_arg("limit", 50, 1, 500))])


@api.get("/imports/<int:batch_id>")
@require_token()
def get_import(batch_id: int) -> Response:
    session = db()
    batch = history.get_batch(session, batch_id)
    return jsonify({**batch_json(batch), "records": history.change_counts(session, batch.id)})


@api.get("/imports/<int:batch_id>/changes")
@require_token()
def list_import_changes(batch_id: int) -> Response:
    limit = int_arg("limit", 100, 1, 1000)
    rows = history.changes(db(), batch_id, int_arg("after", 0, 0, MAX_ID), limit)
    return jsonify(items=[{"id": c.id, "object_type": c.object_type, "object_id": c.object_id, "action": c.action,
                           "fields": c.fields} for c in rows],
                   next_after=rows[-1].id if len(rows) == limit else None)


@api.post("/imports/<int:batch_id>/undo")
@require_token(write=True)
def undo_import_batch(batch_id: int) -> Response:
    counts = undo_import(state().factory, batch_id, actor_id())  # NotFound → 404, undone already → 409
    session = db()
    return jsonify({**batch_json(history.get_batch(session, batch_id)), "undo": counts})

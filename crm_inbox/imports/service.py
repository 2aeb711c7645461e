"""Importing an address book: the preview is the real import in a transaction that is rolled back, so it
cannot differ from what a confirmed import does; a confirmed import is one batch, audited once, with an
``import.finished`` event (no event per contact: a 100,000-row import would flood every webhook receiver),
that ``undo_import`` can take back as a whole."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from crm_inbox import audit, events
from crm_inbox.config import Settings
from crm_inbox.db import write_lock
from crm_inbox.errors import ValidationError
from crm_inbox.imports.history import list_batches
from crm_inbox.imports.index import KeyIndex
from crm_inbox.imports.mapping import Mapping, check_mapping
from crm_inbox.imports.plan import Planner, RowOutcome, read
from crm_inbox.imports.readers import Table
from crm_inbox.imports.rows import RowData
from crm_inbox.imports.undo import undo_import
from crm_inbox.imports.write import Writer
from crm_inbox.models import ImportBatch

log = logging.getLogger(__name__)

ACTIONS = ("new", "update", "unchanged", "duplicate", "error")
PROGRESS_EVERY = 1000
SKIPPED = "skipped"  # the key of ``ImportBatch.counts`` listing the rows left out (the other keys are numbers)
MAX_SKIPPED = 1000
# Of an error's parameters only these are kept with the batch: the others are the row's values (personal data).
_SAFE_PARAMS = ("field", "column", "limit")


@dataclass
class ImportResult:
    batch_id: int | None  # None for a dry run
    counts: dict[str, int]  # new, update, unchanged, duplicate, error, companies_new, companies_update
    rows: list[RowOutcome]  # every non-empty row, in file order


def preview_import(factory: sessionmaker[Session], settings: Settings, table: Table, mapping: Mapping, *,
                   filename: str, actor: int | None,
                   progress: Callable[[int], None] | None = None) -> ImportResult:
    """What ``run_import`` would do: the same import, rolled back. ``progress`` is called with the number of
    rows handled so far."""
    return _import(factory, settings, table, mapping, filename=filename, actor=actor, progress=progress,
                   commit=False)


def run_import(factory: sessionmaker[Session], settings: Settings, table: Table, mapping: Mapping, *,
               filename: str, actor: int | None, progress: Callable[[int], None] | None = None) -> ImportResult:
    """Import and commit: one ``ImportBatch``; its number undoes it."""
    return _import(factory, settings, table, mapping, filename=filename, actor=actor, progress=progress,
                   commit=True)


def _import(factory: sessionmaker[Session], settings: Settings, table: Table, mapping: Mapping, *, filename: str,
            actor: int | None, progress: Callable[[int], None] | None, commit: bool) -> ImportResult:
    checked = check_mapping(table.headers, mapping)
    if not any(checked.values()):
        raise ValidationError("mapping", "no column is mapped to a field")
    if len(table.rows) > settings.imports.max_rows:
        raise ValidationError("file", f"the file has more than {settings.imports.max_rows} rows")
    # Checking the rows' values needs no database and is most of the planning's time: done before the write
    # lock (on SQLite the database's only one; mail intake waits for it), which then covers matching and writing.
    region = settings.phone.default_region
    items: list[RowData | RowOutcome] = []
    for i, cells in enumerate(table.rows):
        item = read(i + 2, table.headers, cells, checked, region)
        if item is not None:  # None: an empty row
            items.append(item)
        if progress is not None and (i + 1) % PROGRESS_EVERY == 0:
            progress(i + 1)
    digest = _digest(table)
    with write_lock(factory), factory() as session:
        try:
            # A preview makes its batch too (rolled back with the rest): the same code writes both.
            batch = ImportBatch(filename=filename[:255], file_format=table.file_format, sha256=digest,
                                mapping=checked, counts={}, created_by_id=actor)
            session.add(batch)
            session.flush()
            planner = Planner(KeyIndex.load(session), frozenset(settings.mail.free_mail_domains),
                              frozenset(settings.mail.staff_domains))
            for item in items:
                planner.add(item)
            del items
            writer = Writer(session, planner, batch.id)
            writer.run()
            counts = dict.fromkeys(ACTIONS, 0)
            for outcome in planner.outcomes:
                counts[outcome.action] += 1
            counts.update(writer.counts)
            # The rows left out stay listed on the batch's page: numbers and reasons, never the values.
            batch.counts = {**counts, SKIPPED: skipped_rows(planner.outcomes)}
            audit.record(session, actor, "import", "import_batch", batch.id,
                         {"filename": batch.filename, "counts": counts})
            events.record(session, "import.finished", "import", batch.id,
                          {"id": batch.id, "filename": batch.filename, "counts": counts,
                           "changes": f"/api/v1/imports/{batch.id}/changes"})
            batch_id: int | None = batch.id
            if commit:
                session.commit()
                log.info("import %s: %s from %s", batch.id, counts, batch.filename)
            else:
                session.rollback()
                batch_id = None
                _forget_new_ids(planner.outcomes, writer)
        except BaseException:
            session.rollback()
            raise
    if progress is not None:
        progress(len(table.rows))
    return ImportResult(batch_id, counts, planner.outcomes)


def skipped_rows(outcomes: list[RowOutcome]) -> list[dict[str, Any]]:
    """The first ``MAX_SKIPPED`` rows left out (errors and duplicates): {"row", "action", "reason"} and what
    names the cause without the row's values: an error's field, column or limit; the row a duplicate repeats
    ("of_row"), the key they share ("key"), the records it matches ("records": [kind, id, key])."""
    out: list[dict[str, Any]] = []
    for outcome in outcomes:
        if outcome.action not in ("error", "duplicate"):
            continue
        if len(out) == MAX_SKIPPED:
            break
        entry: dict[str, Any] = {"row": outcome.row, "action": outcome.action, "reason": outcome.reason}
        if outcome.action == "error":
            entry["params"] = {k: outcome.params[k] for k in _SAFE_PARAMS if k in outcome.params}
        else:
            entry.update(of_row=outcome.duplicate_of_row, key=outcome.key,
                         records=[list(r) for r in outcome.duplicate_of])
        out.append(entry)
    return out


def _forget_new_ids(outcomes: list[RowOutcome], writer: Writer) -> None:
    """A preview's new records were rolled back: their ids are nobody's."""
    for outcome in outcomes:
        if outcome.contact_id in writer.created_contacts:
            outcome.contact_id = None
        if outcome.company_id in writer.created_companies:
            outcome.company_id = None


def _digest(table: Table) -> str:
    digest = hashlib.sha256(json.dumps(table.headers, ensure_ascii=False).encode())
    for row in table.rows:
        digest.update(json.dumps(row, ensure_ascii=False).encode())
    return digest.hexdigest()


__all__ = ["ImportResult", "RowOutcome", "list_batches", "preview_import", "run_import", "undo_import"]

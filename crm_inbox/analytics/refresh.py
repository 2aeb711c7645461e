"""``crm-inbox analytics refresh``: copy what reports need from the operative database into the store.

A refresh never touches the store readers have open: it writes a new file beside it (for an incremental
refresh a copy of the current store, brought up to date), checkpoints it and swaps it in with ``os.replace``.
A refresh that fails leaves the old store as it was. One refresh at a time (a lock file); a second one
returns at once as skipped "busy".

Incremental: the big tables (interactions and their contacts) are read by id watermark, with a look-back
window for rows committed out of id order and the entities the audit log names as changed since the last
refresh; deletions (erasure, retention) are found by comparing counts. Everything else (dimensions, calls,
tickets, …) is small enough to be read whole each time, which also carries over every edit and erasure.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from crm_inbox.analytics import extract, load, schema
from crm_inbox.analytics.source import SourceUnavailable, snapshot, source_engine, source_url
from crm_inbox.analytics.store import connect_file, open_store
from crm_inbox.config import Settings, mask_url
from crm_inbox.errors import AnalyticsUnavailable

# Ids below the watermark read again each time: a PostgreSQL transaction may commit a lower id after a higher
# one was already seen; recent rows are also the ones most likely edited since.
LOOKBACK_IDS = 5_000

# Read whole on every refresh (dimensions and the smaller facts).
WHOLE_SOURCES = ("staff", "companies", "contacts", "calls", "tickets", "ticket_events", "reminders",
                 "opportunities", "stage_audit", "quotes", "orders", "invoices", "campaign_sends")


class RefreshFailed(Exception):
    """The refresh could not run (operative database unreachable, store directory not writable); the old
    store is untouched. The message is fit to show (no password)."""


@dataclass(frozen=True)
class RefreshResult:
    mode: str  # full, incremental
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None  # "busy": another refresh holds the lock, nothing was done


def refresh(settings: Settings, *, full: bool = False) -> RefreshResult:
    """Bring the store up to date (``full``: rebuild it). Raises RefreshFailed."""
    store = settings.analytics.store_path(settings.service.instance_dir)
    started = time.monotonic()
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        lock_file = open(store.with_name(store.name + ".lock"), "a")  # noqa: SIM115 - held for the refresh
    except OSError as exc:
        raise RefreshFailed(f"cannot write the analytics store's directory {store.parent}: {exc.strerror}") from exc
    with lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return RefreshResult("incremental" if not full else "full", 0.0, {}, skipped="busy")
            raise
        mode = "full" if full or not _can_continue(store) else "incremental"
        rows = _rebuild(settings, store, mode, started)
    return RefreshResult(mode, time.monotonic() - started, rows)


def _can_continue(store: Path) -> bool:
    """Whether an incremental refresh can build on the store (it exists, is of this schema version and
    knows its watermarks)."""
    try:
        con = open_store(store)
    except AnalyticsUnavailable:
        return False
    try:
        row = con.execute("SELECT count(*) FROM meta_watermark WHERE table_name = 'fact_interaction'").fetchone()
        return bool(row and row[0])
    except duckdb.Error:
        return False
    finally:
        con.close()


def _rebuild(settings: Settings, store: Path, mode: str, started: float) -> dict[str, int]:
    tmp = store.with_name(f"{store.name}.tmp-{os.getpid()}")
    url = source_url(settings)
    try:
        _remove(tmp)
        try:
            if mode == "incremental":
                shutil.copyfile(store, tmp)
            duck = connect_file(tmp)
        except (OSError, duckdb.IOException) as exc:
            raise RefreshFailed(f"cannot write the analytics store {tmp}: {exc}") from exc
        try:
            if mode == "full":
                for statement in schema.create_statements():
                    duck.execute(statement)
            try:
                engine = source_engine(url)
            except SourceUnavailable as exc:
                raise RefreshFailed(f"operative database {mask_url(url)}: {exc}") from exc
            try:
                with snapshot(engine) as conn:
                    snapshot_at = datetime.now(UTC).replace(tzinfo=None)
                    duck.execute("BEGIN")
                    _copy(conn, duck, settings, mode)
                    duck.execute("COMMIT")
            except SQLAlchemyError as exc:
                detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
                raise RefreshFailed(f"cannot read the operative database {mask_url(url)}: {detail}") from exc
            finally:
                engine.dispose()
            rows = _counts(duck)
            duck.execute("INSERT INTO meta_refresh VALUES (?, ?, ?, ?, ?)",
                         [snapshot_at, mode, mask_url(url), schema.SCHEMA_VERSION, time.monotonic() - started])
            duck.execute("CHECKPOINT")
        finally:
            duck.close()
        try:
            os.replace(tmp, store)
            _fsync_dir(store.parent)
        except OSError as exc:
            raise RefreshFailed(f"cannot replace the analytics store {store}: {exc.strerror or exc}") from exc
        return rows
    finally:
        _remove(tmp)


def _remove(tmp: Path) -> None:
    """The new file and what DuckDB keeps beside it (its WAL, a folder for data spilled to disk)."""
    for path in (tmp, tmp.with_name(tmp.name + ".wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(tmp.with_name(tmp.name + ".tmp"), ignore_errors=True)


def _fsync_dir(directory: Path) -> None:
    # The rename itself durable: after a power cut the store is the old file or the new one, never neither.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _counts(duck: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = {}
    for table in (*schema.DIMENSIONS, *schema.FACTS):
        row = duck.execute(f"SELECT count(*) FROM {table}").fetchone()
        rows[table] = int(row[0]) if row else 0
    return rows


def _copy(conn: Connection, duck: duckdb.DuckDBPyConnection, settings: Settings, mode: str) -> None:
    load.prepare(duck, settings.reminders.timezone)
    for name in WHOLE_SOURCES:
        extract.stage(conn, duck, extract.SOURCES[name])
    max_id = int(extract.scalar(conn, "SELECT coalesce(max(id), 0) FROM interactions"))
    last_audit = int(extract.scalar(conn, "SELECT coalesce(max(id), 0) FROM audit_log"))
    if mode == "full":
        extract.stage(conn, duck, extract.SOURCES["interactions"])
        extract.stage(conn, duck, extract.SOURCES["interaction_contacts"])
        load.replace_table(duck, "fact_interaction", load.INTERACTION_SELECT)
        load.replace_table(duck, "fact_interaction_contact", load.INTERACTION_CONTACT_SELECT)
    else:
        _update_interactions(conn, duck)
    load.replace_table(duck, "dim_staff", load.dim_staff_select(settings.analytics.per_person_reports))
    for table, select in load.DIM_SELECTS.items():
        load.replace_table(duck, table, select)
    load.load_channels(duck)
    for table, select in load.FACT_SELECTS.items():
        load.replace_table(duck, table, select)
    load.load_dates(duck, datetime.now(ZoneInfo(settings.reminders.timezone)).date())
    duck.execute("DELETE FROM meta_watermark")
    duck.execute("INSERT INTO meta_watermark VALUES ('fact_interaction', ?, NULL, ?)", [max_id, last_audit])


def _update_interactions(conn: Connection, duck: duckdb.DuckDBPyConnection) -> None:
    """Bring fact_interaction and fact_interaction_contact up to date from the watermarks of the last refresh."""
    row = duck.execute(
        "SELECT max_id, last_audit_id FROM meta_watermark WHERE table_name = 'fact_interaction'").fetchone()
    assert row is not None  # _can_continue checked
    low = max(int(row[0] or 0) - LOOKBACK_IDS, 0)
    audit_low = max(int(row[1] or 0) - LOOKBACK_IDS, 0)
    audited_interactions = _audited(conn, "interaction", audit_low)
    audited_contacts = _audited(conn, "contact", audit_low)
    changed = f"id > {low}" + (f" OR id IN ({_ids(audited_interactions)})" if audited_interactions else "")
    extract.stage(conn, duck, extract.SOURCES["interactions"], changed)
    link_changed = f"interaction_id > {low}"
    if audited_interactions:
        link_changed += f" OR interaction_id IN ({_ids(audited_interactions)})"
    if audited_contacts:
        link_changed += f" OR contact_id IN ({_ids(audited_contacts)})"
    extract.stage(conn, duck, extract.SOURCES["interaction_contacts"], link_changed)

    # Deleted interactions below the window (erasure, retention): the counts differ only then.
    source_count = int(extract.scalar(conn, f"SELECT count(*) FROM interactions WHERE id <= {low}"))
    store_row = duck.execute(f"SELECT count(*) FROM fact_interaction WHERE interaction_id <= {low}").fetchone()
    if store_row is None or int(store_row[0]) != source_count:
        ids = extract.Source("interaction_ids", "interactions", (extract.Col("id", "int"),))
        extract.stage(conn, duck, ids, f"id <= {low}")
        duck.execute(f"DELETE FROM fact_interaction WHERE interaction_id <= {low} "
                     "AND interaction_id NOT IN (SELECT id FROM stage_interaction_ids)")

    refetched = f"interaction_id > {low} OR interaction_id IN (SELECT id FROM stage_interactions)"
    duck.execute(f"DELETE FROM fact_interaction WHERE {refetched}")
    duck.execute(f"INSERT INTO fact_interaction {load.INTERACTION_SELECT}")
    contacts_gone = "contact_id NOT IN (SELECT id FROM stage_contacts)"  # erased or merged away
    relinked = f" OR contact_id IN ({_ids(audited_contacts)})" if audited_contacts else ""
    duck.execute(f"DELETE FROM fact_interaction_contact WHERE {refetched}{relinked} OR {contacts_gone} "
                 "OR interaction_id NOT IN (SELECT interaction_id FROM fact_interaction)")
    duck.execute(f"INSERT INTO fact_interaction_contact {load.INTERACTION_CONTACT_SELECT}")


def _audited(conn: Connection, object_type: str, after_id: int) -> list[int]:
    rows = conn.exec_driver_sql(
        f"SELECT DISTINCT object_id FROM audit_log WHERE id > {int(after_id)} AND object_type = '{object_type}' "
        "AND object_id IS NOT NULL AND action NOT IN ('view', 'export')").scalars().all()
    return sorted(int(r) for r in rows)


def _ids(ids: list[int]) -> str:
    return ", ".join(str(int(i)) for i in ids)

"""``crm-inbox analytics refresh``: copy what reports need from the operative database into the store.

A refresh never touches the store readers have open: it writes a new file beside it (for an incremental
refresh a copy of the current store, brought up to date), checkpoints it and swaps it in with ``os.replace``.
A refresh that fails leaves the old store as it was. One refresh at a time (a lock file); a second one
returns at once as skipped "busy".

Incremental: interactions and their contacts go straight into their facts, read by id watermark (with a
look-back window for rows committed out of id order) and the entities the audit log names as changed since the
last refresh. The other source tables are kept as private copies in the store (schema ``mirror``), brought up
to date by id and ``updated_at`` (the campaign ledger, which has none, by the times its changes set); the facts
are rebuilt from them in DuckDB each time (fast: no source reads).
Deletions (erasure, retention) and rows committed late below the look-back window are found by comparing counts,
then the id lists both ways; the operative schema's ON DELETE SET NULL is repeated on the copies. Interactions
have no updated_at: those moved to another ticket or company (a ticket merge, a call matched later) are read
again when the audit log names the ticket or company.

What the incremental rules cannot see (an edit nobody audits) is bounded by a full rebuild at least every
FULL_EVERY: ``refresh`` itself makes the refresh full then, so cron and serve's schedule both bound any drift.
A change of the timezone or of per_person_reports (stored in the store's ``mirror.refresh_settings``) also
makes the next refresh full.

Erasure: DuckDB does not wipe the blocks of deleted rows. When an incremental refresh deleted anything, the
result is copied into a fresh file (``COPY FROM DATABASE``) before the swap, so no erased person's bytes
remain in the store. The new file is written inside a folder only this user can enter and is 0600.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from crm_inbox.analytics import extract, load, schema
from crm_inbox.analytics.source import SourceUnavailable, snapshot, source_engine, source_url
from crm_inbox.analytics.store import (
    DUCKDB_CONFIG,
    PRIVATE_FILE,
    REFRESH_MEMORY_LIMIT,
    REFRESH_THREADS,
    connect_file,
    open_store,
    private_folder,
)
from crm_inbox.config import Settings, mask_url
from crm_inbox.errors import AnalyticsUnavailable

# Ids below the watermark read again each time: a PostgreSQL transaction may commit a lower id after a higher
# one was already seen; recent rows are also the ones most likely edited since.
LOOKBACK_IDS = 5_000

# The longest an incremental refresh builds on the last full one (drift the rules cannot see ends then).
FULL_EVERY = timedelta(hours=24)
# Ids per ``IN (…)`` list sent to the source.
ID_CHUNK = 1_000
# The refresh's own bookkeeping in the store: the settings the facts were built with.
SETTINGS_TABLE = "mirror.refresh_settings"

# The source tables the store keeps a private copy of (schema ``mirror``, not part of the star, not exported):
# each refresh brings the copy up to date by id and updated_at and rebuilds the facts from it in DuckDB.
MIRRORED = ("staff", "companies", "contacts", "calls", "tickets", "ticket_events", "reminders", "opportunities",
            "stage_audit", "quotes", "orders", "invoices", "campaign_sends")
# Read whole each time: few rows, and a change leaves no trace (no updated_at).
WHOLE = ("staff",)
# updated_at is set by the application's clock before its commit: rows changed shortly before the last
# watermark may have committed after it was taken, so they are read again.
UPDATED_MARGIN = timedelta(minutes=10)
# A campaign ledger row has no updated_at: its changes are found by the times they set (see _campaign_window).
# Replies and bounces are stamped with the mail's own date, which may lie hours before it was processed: rows
# with such a time in the last day are read again (what comes later still is mended by the daily full rebuild).
CAMPAIGN_MARGIN = timedelta(days=1)

# The operative schema's ON DELETE SET NULL, done on the copies (a deleted row clears no updated_at).
SET_NULL: tuple[tuple[str, str, str], ...] = (
    ("mirror.contacts", "company_id", "mirror.companies"), ("mirror.contacts", "owner_id", "mirror.staff"),
    ("mirror.calls", "staff_id", "mirror.staff"), ("mirror.calls", "contact_id", "mirror.contacts"),
    ("mirror.calls", "company_id", "mirror.companies"),
    ("mirror.tickets", "contact_id", "mirror.contacts"), ("mirror.tickets", "company_id", "mirror.companies"),
    ("mirror.tickets", "assignee_id", "mirror.staff"), ("mirror.ticket_events", "staff_id", "mirror.staff"),
    ("mirror.reminders", "contact_id", "mirror.contacts"), ("mirror.reminders", "company_id", "mirror.companies"),
    ("mirror.reminders", "ticket_id", "mirror.tickets"), ("mirror.reminders", "call_id", "mirror.calls"),
    ("mirror.reminders", "assignee_id", "mirror.staff"),
    ("mirror.opportunities", "contact_id", "mirror.contacts"),
    ("mirror.opportunities", "company_id", "mirror.companies"), ("mirror.opportunities", "owner_id", "mirror.staff"),
    ("mirror.stage_audit", "staff_id", "mirror.staff"),
    ("mirror.quotes", "contact_id", "mirror.contacts"), ("mirror.quotes", "company_id", "mirror.companies"),
    ("mirror.quotes", "created_by_id", "mirror.staff"),
    ("mirror.orders", "contact_id", "mirror.contacts"), ("mirror.orders", "company_id", "mirror.companies"),
    ("mirror.orders", "created_by_id", "mirror.staff"), ("mirror.orders", "quote_id", "mirror.quotes"),
    ("mirror.orders", "opportunity_id", "mirror.opportunities"),
    ("mirror.invoices", "contact_id", "mirror.contacts"), ("mirror.invoices", "company_id", "mirror.companies"),
    ("mirror.invoices", "order_id", "mirror.orders"),
    ("fact_interaction", "company_id", "mirror.companies"), ("fact_interaction", "ticket_id", "mirror.tickets"),
    ("fact_interaction", "staff_id", "mirror.staff"),
)


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
        lock_fd = os.open(store.with_name(store.name + ".lock"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
        os.fchmod(lock_fd, PRIVATE_FILE)
        lock_file = os.fdopen(lock_fd, "a")  # held for the refresh
    except OSError as exc:
        raise RefreshFailed(f"cannot write the analytics store's directory {store.parent}: {exc.strerror}") from exc
    with lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return RefreshResult("incremental" if not full else "full", 0.0, {}, skipped="busy")
            raise
        _remove_stale(store)
        mode = "full" if full or not _can_continue(store, _settings_of(settings)) else "incremental"
        try:
            rows = _rebuild(settings, store, mode, started)
        except (OSError, duckdb.IOException) as exc:  # disk full, folder gone: the old store stays
            raise RefreshFailed(f"cannot write the analytics store beside {store}: {exc}") from exc
    return RefreshResult(mode, time.monotonic() - started, rows)


def _settings_of(settings: Settings) -> dict[str, str]:
    """The settings the facts depend on (local dates, staff names): another value means a full rebuild."""
    return {"timezone": settings.reminders.timezone,
            "per_person_reports": str(bool(settings.analytics.per_person_reports)).lower()}


def _can_continue(store: Path, wanted: dict[str, str]) -> bool:
    """Whether an incremental refresh can build on the store (it exists, is of this schema version, knows its
    watermarks, was built with the same settings and its last full rebuild is younger than FULL_EVERY)."""
    try:
        con = open_store(store)
    except AnalyticsUnavailable:
        return False
    try:
        row = con.execute("SELECT count(*) FROM meta_watermark WHERE table_name = 'fact_interaction'").fetchone()
        if not (row and row[0]):
            return False
        if dict(con.execute(f"SELECT name, value FROM {SETTINGS_TABLE}").fetchall()) != wanted:
            return False
        row = con.execute("SELECT max(refreshed_at) FROM meta_refresh WHERE mode = 'full'").fetchone()
        if not row or row[0] is None or row[0] < datetime.now(UTC).replace(tzinfo=None) - FULL_EVERY:
            return False
        for name in MIRRORED:  # the copies as this version of the refresh lays them out
            source = extract.SOURCES[name]
            columns = [d[0] for d in con.execute(f"SELECT * FROM {source.mirror_table} LIMIT 0").description]
            if columns != [c.name for c in source.cols]:
                return False
        return True
    except duckdb.Error:
        return False
    finally:
        con.close()


def _rebuild(settings: Settings, store: Path, mode: str, started: float) -> dict[str, int]:
    # A folder only this user can enter: the new file, its WAL and spilled data are nobody else's to read.
    work = store.with_name(f"{store.name}.tmp-{os.getpid()}")
    tmp = work / "new.duckdb"
    url = source_url(settings)
    try:
        _remove(work)
        try:
            private_folder(work)
            if mode == "incremental":
                shutil.copyfile(store, tmp)
                os.chmod(tmp, PRIVATE_FILE)
            duck = connect_file(tmp)
        except (OSError, duckdb.IOException) as exc:
            raise RefreshFailed(f"cannot write the analytics store {tmp}: {exc}") from exc
        try:
            if mode == "full":
                for statement in schema.create_statements():
                    duck.execute(statement)
            engine = _engine(url)
            try:
                with snapshot(engine) as conn:
                    conn.info[extract.THROTTLE] = extract.throttled(
                        conn.dialect.name, replica=bool(settings.analytics.source_url))
                    snapshot_at = datetime.now(UTC).replace(tzinfo=None)
                    removed = _copy(conn, duck, settings, mode)
            except (SQLAlchemyError, engine.dialect.loaded_dbapi.Error) as exc:  # extract reads via the driver
                detail = (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0]
                raise RefreshFailed(f"cannot read the operative database {mask_url(url)}: {detail}") from exc
            finally:
                engine.dispose()
            rows = _counts(duck)
            duck.execute("INSERT INTO meta_refresh VALUES (?, ?, ?, ?, ?)",
                         [snapshot_at, mode, mask_url(url), schema.SCHEMA_VERSION, time.monotonic() - started])
            duck.execute("CHECKPOINT")
        finally:
            duck.close()
        if removed:
            tmp = _fresh_copy(tmp, work / "fresh.duckdb")
        try:
            os.chmod(tmp, PRIVATE_FILE)
            os.replace(tmp, store)
            _fsync_dir(store.parent)
        except OSError as exc:
            raise RefreshFailed(f"cannot replace the analytics store {store}: {exc.strerror or exc}") from exc
        return rows
    finally:
        _remove(work)


def _engine(url: str) -> Engine:
    """The read-only source engine, or RefreshFailed in one line (a mistyped URL, an unknown driver)."""
    try:
        return source_engine(url)
    except SourceUnavailable as exc:
        raise RefreshFailed(f"operative database {mask_url(url)}: {exc}") from exc
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise RefreshFailed(f"operative database {mask_url(url)}: not a usable database URL ({detail}); "
                            "expected sqlite:///FILE or postgresql+psycopg://…") from exc


def _fresh_copy(used: Path, fresh: Path) -> Path:
    """``used`` copied table by table into a new file: none of the freed blocks of deleted rows (an erased
    person's data) come along. The new file."""
    con = duckdb.connect(":memory:", config={**DUCKDB_CONFIG, "threads": REFRESH_THREADS,
                                             "memory_limit": REFRESH_MEMORY_LIMIT,
                                             "temp_directory": str(fresh.parent / "spill")})
    try:
        con.execute("SET enable_progress_bar = false")  # cron's line stays one line
        con.execute("ATTACH ? AS used (READ_ONLY)", [str(used)])
        con.execute("ATTACH ? AS fresh", [str(fresh)])
        con.execute("COPY FROM DATABASE used TO fresh")
        con.execute("DETACH fresh")
    finally:
        con.close()
    used.unlink()
    return fresh


def _remove(work: Path) -> None:
    """The refresh's folder: the new file and what DuckDB keeps beside it (its WAL, spilled data)."""
    shutil.rmtree(work, ignore_errors=True)


def _remove_stale(store: Path) -> None:
    """New files of refreshes that were killed (power cut, SIGKILL): with the lock held, none is in use."""
    for path in store.parent.glob(store.name + ".tmp-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


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


def _copy(conn: Connection, duck: duckdb.DuckDBPyConnection, settings: Settings, mode: str) -> bool:
    """Bring the store up to date; whether rows were removed or blanked (then the file is copied fresh)."""
    removed = False
    load.prepare(duck, settings.reminders.timezone)
    max_id = int(extract.scalar(conn, "SELECT coalesce(max(id), 0) FROM interactions"))
    last_audit = int(extract.scalar(conn, "SELECT coalesce(max(id), 0) FROM audit_log"))
    if mode == "full":
        duck.execute("CREATE SCHEMA mirror")
        for name in MIRRORED:
            source = extract.SOURCES[name]
            extract.stage(conn, duck, source, table=source.mirror_table)
        _scrub_staff(duck, "mirror.staff", settings)
        extract.stage(conn, duck, extract.SOURCES["interactions"], table="fact_interaction",
                      transform=load.INTERACTION_SELECT)
        extract.stage(conn, duck, extract.SOURCES["interaction_contacts"], table="fact_interaction_contact",
                      transform=load.INTERACTION_CONTACT_SELECT)
        changed = {*MIRRORED, "interactions"}
    else:
        changed, deleted = set(), set()
        for name in MIRRORED:
            was_changed, had_deletions, had_removals = _update_mirror(
                conn, duck, extract.SOURCES[name], settings, contacts_deleted="contacts" in deleted)
            changed |= {name} if was_changed else set()
            deleted |= {name} if had_deletions else set()
            removed = removed or had_removals
        interactions_changed, interactions_removed = _update_interactions(
            conn, duck, contacts_deleted="contacts" in deleted)
        if interactions_changed:
            changed.add("interactions")
        removed = removed or interactions_removed
        for table, column, parent in SET_NULL:
            if parent.removeprefix("mirror.") in deleted:
                duck.execute(f"UPDATE {table} SET {column} = NULL WHERE {column} IS NOT NULL "
                             f"AND {column} NOT IN (SELECT id FROM {parent})")
                changed.add("interactions" if table == "fact_interaction" else table.removeprefix("mirror."))
    # Each star table is rebuilt (in DuckDB, from the copies) only when a copy it is made from changed.
    # Always: [analytics] per_person_reports may have been switched since.
    load.replace_table(duck, "dim_staff", load.dim_staff_select(settings.analytics.per_person_reports))
    for table, select in {**load.DIM_SELECTS, **load.FACT_SELECTS}.items():
        if load.DEPENDS[table] & changed:
            load.replace_table(duck, table, select)
    if mode == "full":
        load.load_channels(duck)
    load.load_dates(duck, datetime.now(ZoneInfo(settings.reminders.timezone)).date())
    duck.execute("DELETE FROM meta_watermark")
    duck.execute("INSERT INTO meta_watermark VALUES ('fact_interaction', ?, NULL, ?)", [max_id, last_audit])
    for name in MIRRORED:
        source = extract.SOURCES[name]
        updated = "max(updated_at)" if source.updated else "NULL"
        duck.execute(f"INSERT INTO meta_watermark SELECT '{source.mirror_table}', max(id), {updated}, NULL "
                     f"FROM {source.mirror_table}")
    duck.execute(f"CREATE OR REPLACE TABLE {SETTINGS_TABLE} (name VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
    duck.executemany(f"INSERT INTO {SETTINGS_TABLE} VALUES (?, ?)", [list(i) for i in _settings_of(settings).items()])
    return removed


def _apply_changes(duck: duckdb.DuckDBPyConnection, target: str, key: str, fresh: str) -> bool:
    """Replace the rows of ``target`` that the freshly read rows (``fresh``: a table or a query) differ from;
    whether there were any. Rows read again unchanged (the look-back windows) cost no write."""
    # Named as the target's columns (``fresh`` may name them otherwise: "id" for "interaction_id").
    duck.execute(f"CREATE OR REPLACE TEMP TABLE changed_rows AS SELECT * FROM {target} LIMIT 0")
    duck.execute(f"INSERT INTO changed_rows SELECT * FROM ({fresh}) EXCEPT SELECT * FROM {target}")
    row = duck.execute("SELECT count(*) FROM changed_rows").fetchone()
    if not row or not row[0]:
        return False
    duck.execute(f"DELETE FROM {target} WHERE {key} IN (SELECT {key} FROM changed_rows)")
    duck.execute(f"INSERT INTO {target} SELECT * FROM changed_rows")
    return True


def _scrub_staff(duck: duckdb.DuckDBPyConnection, table: str, settings: Settings) -> None:
    """Works council: staff names are not kept in the store at all (not even in the copy) unless per-person
    reports are switched on."""
    if not settings.analytics.per_person_reports:
        duck.execute(f"UPDATE {table} SET name = NULL")


def _update_mirror(conn: Connection, duck: duckdb.DuckDBPyConnection, source: extract.Source,
                   settings: Settings, *, contacts_deleted: bool = False) -> tuple[bool, bool, bool]:
    """Bring one copy up to date: rows new by id (with the look-back window), rows changed by updated_at,
    rows deleted or committed late below the windows (found by count, then by the full lists of ids compared
    both ways). Whether anything changed, whether rows may have been deleted (the SET NULL checks), whether
    rows were removed or personal data replaced (the file is then copied fresh)."""
    mirror = source.mirror_table
    if source.name in WHOLE:
        extract.stage(conn, duck, source)
        if source.name == "staff":
            _scrub_staff(duck, source.stage_table, settings)
        row = duck.execute(f"SELECT count(*) FROM (SELECT * FROM {source.stage_table} EXCEPT "
                           f"SELECT * FROM {mirror} UNION ALL SELECT * FROM {mirror} EXCEPT "
                           f"SELECT * FROM {source.stage_table})").fetchone()
        if row and row[0]:
            gone = duck.execute(f"SELECT count(*) FROM {mirror} WHERE id NOT IN "
                                f"(SELECT id FROM {source.stage_table})").fetchone()
            # A staff row changed may be a name (per-person reports): its old bytes must not stay either.
            removed = source.name == "staff" or bool(gone and gone[0])
            load.replace_table(duck, mirror, f"SELECT * FROM {source.stage_table}")
            return True, True, removed  # deleted: maybe (a staff login removed): the SET NULL checks are cheap
        return False, False, False
    updated = "max(updated_at)" if source.updated else "NULL"
    row = duck.execute(f"SELECT max(id), {updated} FROM {mirror}").fetchone()
    low = max(int(row[0] or 0) - LOOKBACK_IDS, 0) if row else 0
    since = f"{source.id_col} > {low}"
    if source.updated and row and row[1] is not None:
        since += f" OR {source.updated} >= {_timestamp(conn, row[1] - UPDATED_MARGIN)}"
    if source.name == "campaign_sends":
        since = _campaign_window(conn, duck, since, contacts_deleted=contacts_deleted)
    changed = bool(extract.stage(conn, duck, source, since)) and _apply_changes(
        duck, mirror, "id", f"SELECT * FROM {source.stage_table}")
    counted = f"SELECT count(*) FROM {source.from_sql}" + (f" WHERE {source.where}" if source.where else "")
    mine = duck.execute(f"SELECT count(*) FROM {mirror}").fetchone()
    if mine is not None and int(mine[0]) == int(extract.scalar(conn, counted)):
        return changed, False, False
    ids = extract.Source(f"{source.name}_ids", source.from_sql, (extract.Col("id", "int", source.id_col),),
                         where=source.where)
    extract.stage(conn, duck, ids)
    duck.execute(f"DELETE FROM {mirror} WHERE id NOT IN (SELECT id FROM {ids.stage_table})")
    removed = _changes(duck) > 0
    late = [int(r[0]) for r in duck.execute(
        f"SELECT id FROM {ids.stage_table} EXCEPT SELECT id FROM {mirror} ORDER BY 1").fetchall()]
    for chunk in _chunks(late):  # committed after the windows had moved past them
        extract.stage(conn, duck, source, f"{source.id_col} IN ({_ids(chunk)})")
        duck.execute(f"INSERT INTO {mirror} SELECT * FROM {source.stage_table}")
    return changed or removed or bool(late), removed, removed


def _campaign_window(conn: Connection, duck: duckdb.DuckDBPyConnection, new_ids: str, *,
                     contacts_deleted: bool) -> str:
    """Which campaign ledger rows to read again (a condition on the source; "" = all of them). A row has no
    updated_at, but its changes leave traces: new rows (``new_ids``, the look-back window), a release, reply,
    bounce or opt-out sets its time, a deal made from a reply is a new opportunity, a release that leaves
    people out or a cancel changes the campaign (its updated_at). A merge or an erasure moves or blanks the
    rows of a deleted contact: then all are read (rare). Deleted rows are found by the count check after."""
    row = duck.execute("SELECT max(refreshed_at) FROM meta_refresh").fetchone()
    deals = duck.execute("SELECT max_id FROM meta_watermark WHERE table_name = 'mirror.opportunities'").fetchone()
    if contacts_deleted or not row or row[0] is None or not deals:
        return ""
    # The application's clock (a release, a campaign's change): the usual margin; a mail's date: a day.
    ours, mails = _timestamp(conn, row[0] - UPDATED_MARGIN), _timestamp(conn, row[0] - CAMPAIGN_MARGIN)
    stamped = " OR ".join(f"r.{c} >= {mails}" for c in ("replied_at", "bounced_at", "opted_out_at"))
    return (f"{new_ids} OR c.updated_at >= {ours} OR r.released_at >= {ours} OR {stamped} "
            f"OR r.opportunity_id > {max(int(deals[0] or 0) - LOOKBACK_IDS, 0)}")


def _timestamp(conn: Connection, value: datetime) -> str:
    """A naive UTC time as a literal the source compares its own timestamps with."""
    text = value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if conn.dialect.name == "postgresql":
        return f"TIMESTAMPTZ '{text}+00'"
    return f"'{text}'"  # SQLite keeps them as text in this very format: compared as text


def _update_interactions(conn: Connection, duck: duckdb.DuckDBPyConnection, *,
                         contacts_deleted: bool) -> tuple[bool, bool]:
    """Bring fact_interaction and fact_interaction_contact up to date from the watermarks of the last refresh;
    whether fact_interaction changed, whether rows were removed."""
    row = duck.execute(
        "SELECT max_id, last_audit_id FROM meta_watermark WHERE table_name = 'fact_interaction'").fetchone()
    assert row is not None  # _can_continue checked
    low = max(int(row[0] or 0) - LOOKBACK_IDS, 0)
    audit_low = max(int(row[1] or 0) - LOOKBACK_IDS, 0)
    again = set(_audited(conn, "interaction", audit_low))
    audited_contacts = _audited(conn, "contact", audit_low)
    # Interactions moved to another ticket or company (a ticket merge audits the ticket, not its mail):
    # those on an audited ticket or company, in the source now or in the store before, are read again.
    for column, object_type in (("ticket_id", "ticket"), ("company_id", "company")):
        for chunk in _chunks(_audited(conn, object_type, audit_low)):
            again.update(int(i) for i in extract.scalars(
                conn, f"SELECT id FROM interactions WHERE {column} IN ({_ids(chunk)})"))
            again.update(int(r[0]) for r in duck.execute(
                f"SELECT interaction_id FROM fact_interaction WHERE {column} IN ({_ids(chunk)})").fetchall())

    # Deleted interactions (erasure, retention), or committed late below the window (a long transaction on
    # PostgreSQL): the counts differ only then; the id lists are compared both ways.
    removed = False
    source_count = int(extract.scalar(conn, f"SELECT count(*) FROM interactions WHERE id <= {low}"))
    store_row = duck.execute(f"SELECT count(*) FROM fact_interaction WHERE interaction_id <= {low}").fetchone()
    if store_row is None or int(store_row[0]) != source_count:
        ids = extract.Source("interaction_ids", "interactions", (extract.Col("id", "int"),))
        extract.stage(conn, duck, ids, f"id <= {low}")
        duck.execute(f"DELETE FROM fact_interaction WHERE interaction_id <= {low} "
                     "AND interaction_id NOT IN (SELECT id FROM stage_interaction_ids)")
        removed = _changes(duck) > 0
        again.update(int(r[0]) for r in duck.execute(
            "SELECT id FROM stage_interaction_ids EXCEPT SELECT interaction_id FROM fact_interaction").fetchall())
    again_below = sorted(i for i in again if i <= low)  # those above are read anyway

    interactions, links = extract.SOURCES["interactions"], extract.SOURCES["interaction_contacts"]
    extract.stage(conn, duck, interactions, f"id > {low}")
    extract.stage(conn, duck, links, f"interaction_id > {low}")
    for chunk in _chunks(again_below):
        extract.stage(conn, duck, interactions, f"id IN ({_ids(chunk)})", append=True)
        extract.stage(conn, duck, links, f"interaction_id IN ({_ids(chunk)})", append=True)
    for chunk in _chunks(audited_contacts):
        extract.stage(conn, duck, links, f"contact_id IN ({_ids(chunk)})", append=True)

    duck.execute(f"DELETE FROM fact_interaction WHERE interaction_id > {low} "
                 "AND interaction_id NOT IN (SELECT id FROM stage_interactions)")  # deleted in the window
    removed = removed or _changes(duck) > 0
    changed = _apply_changes(duck, "fact_interaction", "interaction_id",
                             load.INTERACTION_SELECT.format(rows="stage_interactions")) or removed

    # The links of every interaction read again (and of every contact audited) are replaced as read.
    scope = "interaction_id IN (SELECT id FROM stage_interactions)"
    if audited_contacts:
        scope += f" OR contact_id IN ({_ids(audited_contacts)})"
    if contacts_deleted:
        scope += " OR contact_id NOT IN (SELECT id FROM mirror.contacts)"  # erased or merged away
    if removed:
        scope += " OR interaction_id NOT IN (SELECT interaction_id FROM fact_interaction)"
    duck.execute(f"DELETE FROM fact_interaction_contact WHERE {scope}")
    removed = removed or (contacts_deleted and _changes(duck) > 0)
    duck.execute("INSERT INTO fact_interaction_contact "
                 + load.INTERACTION_CONTACT_SELECT.format(rows="(SELECT DISTINCT * FROM stage_interaction_contacts)"))
    return changed, removed


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i:i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)]


def _changes(duck: duckdb.DuckDBPyConnection) -> int:
    """The number of rows the last DELETE/UPDATE/INSERT changed."""
    row = duck.fetchone()
    return int(row[0]) if row else 0


def _audited(conn: Connection, object_type: str, after_id: int) -> list[int]:
    rows = conn.exec_driver_sql(
        f"SELECT DISTINCT object_id FROM audit_log WHERE id > {int(after_id)} AND object_type = '{object_type}' "
        "AND object_id IS NOT NULL AND action NOT IN ('view', 'export')").scalars().all()
    return sorted(int(r) for r in rows)


def _ids(ids: list[int]) -> str:
    return ", ".join(str(int(i)) for i in ids)

"""Reading the analytical store (a DuckDB file): open it read-only, tell why it cannot be read, and hand out
cursors that always see one complete snapshot.

The refresh never writes the store in place: it builds a new file and swaps it in with ``os.replace``. A reader
therefore keeps the file it opened until it notices the swap (another inode) and opens the new one; cursors in
use on the old file finish on the old snapshot.

DuckDB caches one database instance per path inside a process: ``duckdb.connect(path)`` after a swap would hand
back the old, still open file. So the store is ATTACHed (read-only) to a fresh in-memory connection instead,
which always opens the file that is at the path now, and made the default catalog with ``USE``.

Readers run inside serve, beside mail and calls: one thread and a small memory limit each, and nothing spilled
to disk (DuckDB's default would be every core, 80 % of RAM and a ``.tmp`` folder in the working directory).
A reader that sits idle does not pin a swapped-out file (an erased person's data) for long: a watcher closes
the connection once the file was swapped and no cursor uses it.

Store files hold personal data: they are this user's alone (0600), whatever the umask.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from crm_inbox.analytics import schema
from crm_inbox.errors import AnalyticsUnavailable

# Offline: DuckDB must never download an extension (no network here nor in many company networks); the wheel
# has parquet, json and icu built in.
DUCKDB_CONFIG: dict[str, Any] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}

# The catalog name the store file is attached under in a reader's connection.
STORE_ALIAS = "store"

# A reader's limits (per connection, i.e. per web process): the reports' queries over a store of a million
# interactions need far less; a query beyond it fails alone instead of squeezing the operative CRM.
READER_MEMORY_LIMIT = "256MB"
# The refresh (a process of its own, but on the same machine): enough for a full build of ~1M interactions
# (~270 MB measured). One core on a machine of two or fewer (the other stays for mail, calls and pages: with two
# threads the customer page's p95 doubled beside a refresh), else two.
REFRESH_MEMORY_LIMIT = "1GB"


def refresh_threads(cpus: int | None) -> int:
    """The refresh's DuckDB threads on a machine of ``cpus`` cores (None: unknown)."""
    return 1 if (cpus or 1) <= 2 else 2


REFRESH_THREADS = refresh_threads(os.cpu_count())
# How often an idle reader checks whether its file was swapped (then it lets go of the old one).
WATCH_SECONDS = 60.0
PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700


@dataclass(frozen=True)
class StoreInfo:
    """The last refresh that built the store."""

    refreshed_at: datetime  # naive UTC
    mode: str  # full, incremental
    seconds: float
    schema_version: int


def _quiet(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    # DuckDB draws a progress bar on stdout for queries over two seconds, terminal or not (a refresh's line
    # for cron must stay one line).
    con.execute("SET enable_progress_bar = false")
    return con


def connect_memory() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the offline configuration and a reader's limits (one thread,
    READER_MEMORY_LIMIT, no spilling to disk)."""
    config = {**DUCKDB_CONFIG, "threads": 1, "memory_limit": READER_MEMORY_LIMIT, "temp_directory": ""}
    return _quiet(duckdb.connect(":memory:", config=config))


def connect_file(path: Path) -> duckdb.DuckDBPyConnection:
    """A writable connection to a store file that nobody reads yet (the refresh's new file, build_store),
    with the refresh's limits; data spilled to disk goes beside the file (DuckDB's ``<file>.tmp``)."""
    config = {**DUCKDB_CONFIG, "threads": REFRESH_THREADS, "memory_limit": REFRESH_MEMORY_LIMIT}
    return _quiet(duckdb.connect(str(path), config=config))


def private_folder(path: Path) -> Path:
    """``path`` made (or kept) as a folder only this user can enter: what DuckDB writes inside (the new store,
    its WAL, spilled data) is nobody else's whatever the umask."""
    path.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_FOLDER)
    return path


def open_store(path: Path) -> duckdb.DuckDBPyConnection:
    """The store at ``path`` opened read-only. Raises AnalyticsUnavailable: "missing" (no file), "locked"
    (another process has it open for writing), "corrupt" (not a DuckDB file, or unreadable), "outdated"
    (built for another schema version: the next refresh rebuilds it).

    Cursors made from the returned connection must run ``USE store`` first (StoreReader.cursor does)."""
    path = Path(path)
    if not path.is_file():
        raise AnalyticsUnavailable("missing", str(path))
    con = connect_memory()
    try:
        try:
            con.execute(f"ATTACH ? AS {STORE_ALIAS} (READ_ONLY)", [str(path)])
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise AnalyticsUnavailable("locked", str(path)) from exc
            raise AnalyticsUnavailable("corrupt", str(path)) from exc
        except duckdb.Error as exc:
            raise AnalyticsUnavailable("corrupt", str(path)) from exc
        con.execute(f"USE {STORE_ALIAS}")
        version = _schema_version(con, path)
        if version != schema.SCHEMA_VERSION:
            raise AnalyticsUnavailable("outdated", f"{path}: schema version {version}, not {schema.SCHEMA_VERSION}")
    except BaseException:
        con.close()
        raise
    return con


def read_info(con: duckdb.DuckDBPyConnection) -> StoreInfo | None:
    """The last meta_refresh row of the store ``con`` reads (None when it has none)."""
    row = con.execute(
        "SELECT refreshed_at, mode, seconds, schema_version FROM meta_refresh ORDER BY refreshed_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return StoreInfo(refreshed_at=row[0], mode=str(row[1]), seconds=float(row[2]), schema_version=int(row[3]))


def _schema_version(con: duckdb.DuckDBPyConnection, path: Path) -> int | None:
    try:
        info = read_info(con)
    except duckdb.CatalogException:
        return None  # no meta_refresh: not a store of this layout at all
    except duckdb.Error as exc:
        raise AnalyticsUnavailable("corrupt", str(path)) from exc
    return None if info is None else info.schema_version


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    """What changes when the refresh swaps a new file in (inode) or someone rewrites it (mtime, size)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class _Opened:
    """One opened store file and how many cursors on it are in use (it is closed when retired and unused:
    closing a DuckDB connection closes its cursors, which must not happen to a reader mid-query)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, identity: tuple[int, int, int, int]) -> None:
        self.con = con
        self.identity = identity
        self.users = 0
        self.retired = False
        self.closed = threading.Event()

    def close(self) -> None:
        self.con.close()
        self.closed.set()


class StoreReader:
    """Thread-safe access to the store for the web app: one cached read-only connection, a cursor per use,
    reopened when the file was swapped by a refresh."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._current: _Opened | None = None

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the current store file (raises AnalyticsUnavailable like open_store)."""
        opened, cur = self._acquire()
        try:
            _quiet(cur).execute(f"USE {STORE_ALIAS}")
            yield cur
        finally:
            try:
                cur.close()
            finally:
                self._release(opened)

    def info(self) -> StoreInfo | None:
        """The last refresh of the store; None when it is missing or cannot be read."""
        try:
            with self.cursor() as cur:
                return read_info(cur)
        except (AnalyticsUnavailable, duckdb.Error):
            return None

    def close(self) -> None:
        """Let go of the cached connection (closed once its cursors are done)."""
        with self._lock:
            if self._current is not None:
                self._retire(self._current)
                self._current = None

    def _acquire(self) -> tuple[_Opened, duckdb.DuckDBPyConnection]:
        # The file's identity is read BEFORE opening: if a swap happens in between, the next use sees a
        # changed identity and reopens (the other order could pin the old file for good).
        identity = _identity(self.path)
        with self._lock:
            current = self._current
            if current is None or current.identity != identity:
                if current is not None:
                    self._retire(current)
                    self._current = None
                if identity is None:
                    raise AnalyticsUnavailable("missing", str(self.path))
                current = _Opened(open_store(self.path), identity)
                self._current = current
                threading.Thread(target=_watch, args=(weakref.ref(self), weakref.ref(current), current.closed),
                                 daemon=True, name="analytics-store-watch").start()
            current.users += 1
            try:
                cur = current.con.cursor()
            except BaseException:
                current.users -= 1
                raise
            return current, cur

    def _release(self, opened: _Opened) -> None:
        with self._lock:
            opened.users -= 1
            if opened.retired and opened.users == 0:
                opened.close()

    def _let_go_if_swapped(self, opened: _Opened) -> None:
        identity = _identity(self.path)
        with self._lock:
            if self._current is opened and identity != opened.identity:
                self._retire(opened)
                self._current = None

    @staticmethod
    def _retire(opened: _Opened) -> None:
        opened.retired = True
        if opened.users == 0:
            opened.close()


def _watch(reader_ref: weakref.ref[StoreReader], opened_ref: weakref.ref[_Opened], closed: threading.Event) -> None:
    """Until the opened file is closed: every WATCH_SECONDS, retire it if the file was swapped meanwhile (without
    requests nothing else would notice, and the old file, unlinked, would stay on disk while it is open). Holds
    neither the reader nor the connection: a reader dropped without close() is freed as before."""
    while not closed.wait(WATCH_SECONDS):
        reader, opened = reader_ref(), opened_ref()
        if reader is None or opened is None:
            return
        reader._let_go_if_swapped(opened)
        del reader, opened


def build_store(path: Path, rows: Mapping[str, Sequence[tuple[Any, ...]]]) -> None:
    """TEST/BENCH helper: a complete store file at ``path`` (every table created, a meta_refresh row written
    unless ``rows`` has one) with the given rows per table, tuples in the schema's column order; tables not
    named stay empty. Swapped in atomically like a refresh."""
    path = Path(path)
    unknown = set(rows) - set(schema.DIMENSIONS) - set(schema.FACTS) - set(schema.META)
    if unknown:
        raise ValueError(f"no such store tables: {sorted(unknown)}")
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    tmp.unlink(missing_ok=True)
    try:
        con = connect_file(tmp)
        try:
            for statement in schema.create_statements():
                con.execute(statement)
            for table, table_rows in rows.items():
                if table_rows:
                    marks = ", ".join("?" * len(table_rows[0]))
                    con.executemany(f"INSERT INTO {table} VALUES ({marks})", [list(r) for r in table_rows])
            if not rows.get("meta_refresh"):
                con.execute(
                    "INSERT INTO meta_refresh VALUES (?, 'full', 'build_store', ?, 0.0)",
                    [datetime.now(UTC).replace(tzinfo=None), schema.SCHEMA_VERSION],
                )
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.chmod(tmp, PRIVATE_FILE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

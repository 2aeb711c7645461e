"""Engine, sessions (one per unit of work) and the schema check against the Alembic head."""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, CursorResult, Engine, Result, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.private_files import PRIVATE, create_private

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaOutdated(Exception):
    """The database is not at the newest migration; the message says what to run."""


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10, durable: bool = True,
                pre_ping: bool = True) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and WAL mode with durable commits.

    ``durable=False`` is for work that can be redone from what is already durable (processing a stored
    message): its commits do not wait for the disk (SQLite: no fsync; PostgreSQL: ``synchronous_commit=off``),
    so a crash or power cut may undo the last of them, never corrupt them or reorder them. On PostgreSQL its
    statements also never run in parallel: they are short, and a prepared statement's generic plan can
    otherwise start parallel workers, which costs more than the statement (the reply look-up of
    ``pipeline.answered`` took over 3 ms so, against 0.3 ms without, 4,269 times in an import of 30,000 mails).

    ``pre_ping``: a PostgreSQL connection that sat in the pool for ``PING_AFTER_IDLE_SECONDS`` or longer is
    tried before it is handed out, and replaced if the server dropped it (a restart, an idle timeout). One
    used again at once is not: under load that ping was a round trip per request, one in seven of a phone
    webhook's. ``pre_ping=False`` never pings, where a failed transaction is simply tried again.
    """
    sa_url = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    busy_seconds = 30.0
    if sa_url.get_backend_name() == "sqlite":
        db = sa_url.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).parent.mkdir(parents=True, exist_ok=True)
            # Mail and customers' data: the file is ours alone, and SQLite gives its -wal and -shm the
            # file's mode. (SQLite itself would create it 0644 less the umask.)
            create_private(Path(db))
        # One connection per thread at most; SQLite serialises writers itself (busy_timeout: 30 s, or the
        # URL's ``?timeout=SECONDS``, as SQLAlchemy's SQLite dialect reads it).
        busy_seconds = float(str(sa_url.query.get("timeout", busy_seconds)))
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_seconds}
    else:
        kwargs.update(pool_size=pool_size, max_overflow=pool_size)
    engine = create_engine(sa_url, **kwargs)
    if engine.dialect.name == "postgresql" and pre_ping:
        _ping_after_idle(engine)
    if engine.dialect.name == "postgresql" and not durable:
        # A SET per connection, not libpq's ``options``: that would override PGOPTIONS, a service file's
        # options and the URL's own (a search_path), and PgBouncer refuses it.
        event.listen(engine, "connect", _processing_settings)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", partial(_sqlite_pragmas, synchronous="FULL" if durable else "NORMAL",
                                                busy_ms=int(busy_seconds * 1000)))
    return engine


PING_AFTER_IDLE_SECONDS = 1.0


def _ping_after_idle(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping`` pings at every checkout; this only after the connection sat idle. A
    connection the server dropped meanwhile is replaced: the pool retries a checkout that raises
    ``DisconnectionError`` with a new connection."""
    dialect = engine.dialect

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # a new connection, or one that was working a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"connection dropped while idle: {exc}") from exc

    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "checkout", checked_out)


def _processing_settings(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cur:
        cur.execute("SET synchronous_commit TO off")
        cur.execute("SET max_parallel_workers_per_gather TO 0")
    dbapi_connection.commit()  # psycopg opened a transaction for the SET: end it, so the setting is the session's


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, synchronous: str = "FULL", busy_ms: int = 30_000) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before SMTP says 250, even across a power cut, not only a crash.
    cur.execute(f"PRAGMA synchronous={synchronous}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={busy_ms}")
    cur.close()
    # What PostgreSQL spells encode(sha256(convert_to(x, 'UTF8')), 'hex'): lets the message processing compare
    # hashed Message-IDs (erasure tombstones) in the statement it reads the message with.
    dbapi_connection.create_function("sha256_hex", 1, _sha256_hex, deterministic=True)


def _sha256_hex(value: str | None) -> str | None:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest() if value is not None else None


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One session, committed when the block ends normally, rolled back on any exception."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


class _WriteLock:
    """This process's threads queue on a Python lock; processes queue on an ``flock`` of a file beside
    the database (the SMTP intake writer, ``crm-inbox ingest`` next to ``serve``)."""

    def __init__(self, lock_file: Path | None) -> None:
        self._threads = threading.Lock()
        self._lock_file = lock_file
        self._fd: int | None = None
        self._fd_pid = 0  # a forked child must open its own: an inherited descriptor shares the lock

    def __enter__(self) -> None:
        self._threads.acquire()
        if self._lock_file is None:
            return
        try:
            if self._fd is None or self._fd_pid != os.getpid():
                self._fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, PRIVATE)
                self._fd_pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError:  # cannot create the file (a read-only folder): SQLite's busy timeout still serialises
            self._fd = None

    def __exit__(self, *_exc: object) -> None:
        try:
            if self._fd is not None and self._fd_pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


_WRITE_LOCKS: dict[str, _WriteLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def write_lock(factory_or_engine: sessionmaker[Session] | Engine) -> AbstractContextManager[Any]:
    """Serialise write transactions on SQLite.

    SQLite allows one writer at a time; a waiting writer polls with growing sleeps (busy_timeout), which
    makes the SMTP listener wait up to 100 ms for a lock that was free after 2. Queueing on a lock
    hands the database over at once. PostgreSQL locks rows itself: no lock here.
    """
    engine = factory_or_engine if isinstance(factory_or_engine, Engine) else factory_or_engine.kw["bind"]
    if engine.dialect.name != "sqlite":
        return nullcontext()
    key = engine.url.render_as_string(hide_password=False)
    with _WRITE_LOCKS_GUARD:
        if key not in _WRITE_LOCKS:
            db = engine.url.database
            on_disk = db is not None and db not in ("", ":memory:") and not db.startswith("file:")
            _WRITE_LOCKS[key] = _WriteLock(Path(f"{Path(db).resolve()}-writelock") if db and on_disk else None)
        return _WRITE_LOCKS[key]


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def schema_revisions(engine: Engine) -> tuple[str | None, str]:
    """(the database's revision, the newest revision this code knows)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


def check_schema(engine: Engine, config_hint: str = "") -> None:
    current, head = schema_revisions(engine)
    if current != head:
        what = "has no schema yet" if current is None else f"is at schema {current}, this version needs {head}"
        raise SchemaOutdated(f"the database {engine.url.render_as_string(hide_password=True)} {what}; "
                             f"run: crm-inbox{config_hint} db upgrade")


def insert_ignoring_conflicts(session: Session, table: Any, values: dict[str, Any], conflict: list[str]) -> Any:
    """INSERT … ON CONFLICT DO NOTHING; the new row's primary key, or None when it already existed.

    Races between two deliveries are decided by the unique index, on SQLite and PostgreSQL alike.
    """
    session.flush()  # what the row refers to (as the ORM's execute would autoflush)
    connection = session.connection()
    key = (connection.dialect.name, table.name, tuple(conflict))
    stmt = _INSERTS_IGNORING.get(key)
    if stmt is None:
        # Built once per table: a statement holding the row's values would be compiled anew on every call.
        if key[0] == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
        stmt = _INSERTS_IGNORING[key] = (dialect_insert(table).on_conflict_do_nothing(index_elements=conflict)
                                         .returning(*table.primary_key.columns))
    return connection.execute(stmt, values).scalar_one_or_none()


_INSERTS_IGNORING: dict[tuple[str, str, tuple[str, ...]], Any] = {}


def insert_many_ignoring_conflicts(session: Session, table: Any, rows: list[dict[str, Any]], conflict: list[str],
                                   returning: list[Any]) -> list[Any]:
    """One multi-row INSERT … ON CONFLICT DO NOTHING RETURNING …; returns the rows actually inserted."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    stmt = dialect_insert(table).values(rows).on_conflict_do_nothing(index_elements=conflict)
    return list(session.execute(stmt.returning(*returning)).all())


def bulk_insert(session: Session, table: Any, rows: list[dict[str, Any]], *, conflict: str | None = None,
                 returning: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    """INSERT the rows (all with the same keys), ON CONFLICT (``conflict``) DO NOTHING; the ``returning``
    columns of the rows inserted.

    SQLite: SQLAlchemy's executemany, batched into multi-row statements. PostgreSQL: psycopg's own executemany
    (one short statement, pipelined): SQLAlchemy would send one statement with 16,000 placeholders per batch,
    which psycopg parses in Python each time (a third of a 50,000-recipient campaign's start)."""
    columns = list(rows[0])
    if session.get_bind().dialect.name != "postgresql":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert
        stmt = sqlite_insert(table)
        if conflict:
            stmt = stmt.on_conflict_do_nothing(index_elements=[conflict])
        if not returning:
            session.execute(stmt, rows)
            return []
        return [tuple(r) for r in session.execute(stmt.returning(*(table.c[c] for c in returning)), rows)]
    from psycopg.types.json import Json

    json_columns = {c for c in columns if isinstance(table.c[c].type, JSON)}
    sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
           + (f" ON CONFLICT ({conflict}) DO NOTHING" if conflict else "")
           + (f" RETURNING {', '.join(returning)}" if returning else ""))
    values = [tuple(Json(row[c]) if c in json_columns else row[c] for c in columns) for row in rows]
    cursor = session.connection().connection.cursor()
    try:
        cursor.executemany(sql, values, returning=bool(returning))  # type: ignore[call-arg]
        out: list[tuple[Any, ...]] = []
        while returning:
            out.extend(tuple(r) for r in cursor.fetchall())
            if not cursor.nextset():
                break
        return out
    finally:
        cursor.close()


def affected(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. ``Session.execute`` is typed to return a ``Result``; for DML it is a
    ``CursorResult``, which alone knows the count."""
    assert isinstance(result, CursorResult), "affected() takes the result of an UPDATE or DELETE"
    return result.rowcount

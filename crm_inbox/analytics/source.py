"""Read-only access to the operative database: the refresh reads it, never writes it.

SQLite is opened with ``mode=ro`` (the file cannot be written through this connection at all); PostgreSQL
sessions are read-only and repeatable read, so every SELECT of one refresh sees the same snapshot. On SQLite
the same comes from one explicit ``BEGIN``: in WAL mode a read transaction keeps the snapshot of its first
read while writers go on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from crm_inbox.config import Settings


class SourceUnavailable(Exception):
    """The operative database cannot be read (not there, not reachable)."""


def source_url(settings: Settings) -> str:
    """Where the refresh reads from: [analytics] source_url (ideally a replica), else [database] url."""
    return settings.analytics.source_url or settings.database.url


def source_engine(url: str) -> Engine:
    """A read-only engine for the operative database at ``url``."""
    sa_url = make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        database = sa_url.database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            raise SourceUnavailable(f"the source must be a SQLite file, not {database or 'in memory'}")
        path = Path(database)
        if not path.is_file():
            # mode=ro would fail later anyway; say it clearly (and never create an empty database).
            raise SourceUnavailable(f"no database file at {path}")
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"

        def connect() -> sqlite3.Connection:
            # isolation_level=None: the driver starts no transactions of its own; ``snapshot`` sends BEGIN.
            con = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30)
            con.execute("PRAGMA query_only=ON")
            return con

        engine = create_engine("sqlite://", creator=connect, poolclass=NullPool)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        return engine
    engine = create_engine(sa_url, pool_size=1, max_overflow=0, pool_pre_ping=True)
    event.listen(engine, "connect", _pg_read_only)
    return engine


def _pg_read_only(dbapi_connection: Any, _record: Any) -> None:
    # For the whole session, whatever the URL's options say otherwise: every transaction read-only and on one
    # snapshot (repeatable read).
    cur = dbapi_connection.cursor()
    cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    cur.execute("SET default_transaction_read_only = on")
    cur.close()
    dbapi_connection.commit()


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction: every SELECT through the connection sees the same state of the database.
    Rolled back at the end (it changed nothing)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        trans = conn.begin()
        try:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield conn
        finally:
            trans.rollback()

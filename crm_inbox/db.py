"""Engine, sessions (one per unit of work) and the schema check against the Alembic head."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaOutdated(Exception):
    """The database is not at the newest migration; the message says what to run."""


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and WAL mode with durable commits."""
    sa_url = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if sa_url.get_backend_name() == "sqlite":
        db = sa_url.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        # One connection per thread at most; SQLite serialises writers itself (busy_timeout).
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    engine = create_engine(sa_url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before SMTP says 250, even across a power cut, not only a crash.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


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
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table).values(**values).on_conflict_do_nothing(index_elements=conflict)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=conflict)
    return session.execute(stmt.returning(*table.primary_key.columns)).scalar_one_or_none()

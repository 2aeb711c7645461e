"""PostgreSQL connections as ``db.make_engine`` sets them up.

Processing: short statements, never parallel plans. A prepared statement's generic plan can start parallel
workers once a table is large; starting them costs milliseconds, the statement itself a fraction of one (the
reply look-up took over 3 ms so with 30,000 mails, 0.3 ms without).

The pool: a connection the server dropped while it sat idle is replaced unnoticed; one used again at once is
not pinged first (a round trip per request under load)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from crm_inbox import db
from crm_inbox.db import make_engine
from tests.conftest import PG_URL_ENV

pytestmark = pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason="PostgreSQL's connections")

# What a large table would do to the planner: parallel workers look free.
_PARALLEL_LOOKS_CHEAP = ("SET parallel_setup_cost = 0", "SET parallel_tuple_cost = 0",
                         "SET min_parallel_table_scan_size = 0", "SET min_parallel_index_scan_size = 0")


def _plan(url: str, *, durable: bool) -> str:
    engine = make_engine(url, durable=durable)
    try:
        with engine.connect() as conn:
            for setting in _PARALLEL_LOOKS_CHEAP:
                conn.execute(text(setting))
            rows = conn.execute(text("EXPLAIN SELECT count(*) FROM interactions WHERE ticket_id IS NOT NULL"))
            return "\n".join(row[0] for row in rows)
    finally:
        engine.dispose()


def test_processing_never_starts_parallel_workers_where_other_connections_would(database_url: str) -> None:
    assert "Gather" in _plan(database_url, durable=True)  # the planner would go parallel here
    assert "Gather" not in _plan(database_url, durable=False)



def _backend_of(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _drop_backend(database_url: str, pid: int) -> None:
    """What a server restart or an idle timeout does to a pooled connection."""
    admin = make_engine(database_url)
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


def test_a_connection_dropped_while_idle_is_replaced_unnoticed(database_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every pooled connection has been idle long enough
    engine = make_engine(database_url, pool_size=1)
    try:
        dropped = _backend_of(engine)
        _drop_backend(database_url, dropped)
        assert _backend_of(engine) != dropped  # no error: the ping found it dead and the pool connected anew
    finally:
        engine.dispose()


def test_a_connection_used_again_at_once_is_not_pinged(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    engine = make_engine(database_url, pool_size=1)
    try:
        _drop_backend(database_url, _backend_of(engine))
        # Without a ping the dead connection is handed out, and its first statement fails (then the pool
        # replaces it). This is the round trip the webhooks and pages no longer pay per request.
        with pytest.raises(OperationalError):
            _backend_of(engine)
        assert _backend_of(engine) > 0
    finally:
        engine.dispose()

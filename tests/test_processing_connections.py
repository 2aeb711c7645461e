"""The connections that process stored mail on PostgreSQL: short statements, never parallel plans.

A prepared statement's generic plan can start parallel workers once a table is large; starting them costs
milliseconds, the statement itself a tenth of one (the reply look-up took 5-10 ms so with 30,000 mails)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from crm_inbox.db import make_engine
from tests.conftest import PG_URL_ENV

pytestmark = pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason="parallel plans are PostgreSQL's")

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


"""Processing a mail stays on the indexes: after SQLite has gathered statistics (ANALYZE, which ``PRAGMA
optimize`` and administrators run) no statement scans a table that grows with the mail, and PostgreSQL's plan of
a prepared statement, made once for any values, reads the rows it needs by their key."""

from __future__ import annotations

import re
import sqlite3

import pytest
from psycopg import sql as psql
from sqlalchemy import event, select, text

from crm_inbox.db import make_engine, make_sessionmaker
from crm_inbox.intake.store import Envelope, store
from crm_inbox.pipeline.runner import _OTHERS_WAITING, process
from crm_inbox.privacy.service import message_id_hash
from tests.conftest import CRM
from tests.mailfactory import make_mail

# Tables that hold configuration, not mail: a handful of rows, read whole on purpose.
_SMALL = {"staff_emails", "webhook_subscriptions", "CONSTANT ROW"}


def _scanned(plan: list[str]) -> list[str]:
    names = (m.group(1) for line in plan if (m := re.match(r"SCAN (\w[\w ]*?)(?: USING|$)", line)))
    return [name for name in names if name not in _SMALL and not name.startswith("anon_")]


def test_after_analyze_no_statement_of_a_mails_processing_scans_a_growing_table(settings, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's planner and ANALYZE; PostgreSQL's plans: tests/test_postgresql_connections.py")
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    senders = [f"Kunde {i} <kunde{i}@firma{i % 7}.example>" for i in range(40)]
    ids = [store(factory, make_mail(sender=senders[i % 40], subject=f"Frage {i}"),
                 Envelope(mail_from=f"kunde{i % 40}@firma{i % 7}.example", rcpt_to=(CRM,))).inbound_id
           for i in range(400)]
    # Statistics of a mailbox imported and not yet processed, as an administrator's ANALYZE finds it.
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()

    executed: list[str] = []
    processing = make_engine(database_url, durable=False)
    event.listen(processing, "connect", lambda dbapi, _rec: dbapi.set_trace_callback(executed.append))
    pf = make_sessionmaker(processing)
    outcomes = [process(pf, settings, inbound_id) for inbound_id in ids[:60]]
    processing.dispose()
    assert all(o.state is not None and o.state.value == "processed" for o in outcomes), outcomes[:3]

    raw = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    raw.create_function("sha256_hex", 1, lambda v: message_id_hash(v), deterministic=True)
    scans: dict[str, list[str]] = {}
    for sql in dict.fromkeys(executed):
        if not sql.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
            continue
        plan = [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + sql)]
        if found := _scanned(plan):
            scans[sql[:160]] = found
    raw.close()
    assert any("FROM inbound_messages AS other" in sql for sql in executed)  # the erasure check was looked at
    assert scans == {}


def test_a_claims_generic_plan_reads_the_other_workers_messages_by_id_not_every_waiting_one(database_url):
    """PostgreSQL: psycopg prepares a statement after a few runs, and PostgreSQL then plans it once for any values
    (a generic plan). The claim asks which of the other workers' messages still wait; planned so, it must look
    them up by id, not read every message of the backlog that waits (2 ms a claim in a backlog of 4,000)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's generic plans of prepared statements (SQLite plans each statement: the test above)")
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    ids = [store(factory, make_mail(sender=f"Kunde {i} <kunde{i}@firma{i % 7}.example>", subject=f"Frage {i}"),
                 Envelope(mail_from=f"kunde{i}@firma{i % 7}.example", rcpt_to=(CRM,))).inbound_id
           for i in range(1500)]
    expanded = select(_OTHERS_WAITING).compile(dialect=engine.dialect).construct_expanded_state(
        {"others": ids[1:5]})
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", expanded.statement)))
    numbered = expanded.statement
    for n, name in enumerate(names, 1):
        numbered = numbered.replace(f"%({name})s", f"${n}")
    values = psql.SQL(", ").join(psql.Literal(expanded.parameters[name]) for name in names)
    try:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            raw.execute("SET plan_cache_mode = force_generic_plan")
            raw.execute(f"PREPARE others_waiting AS {numbered}")
            plan = "\n".join(row[0] for row in raw.execute(
                psql.SQL("EXPLAIN (ANALYZE, COSTS OFF) EXECUTE others_waiting({})").format(values)))
            waiting = raw.execute(psql.SQL("EXECUTE others_waiting({})").format(values)).fetchone()
    finally:
        engine.dispose()
    assert waiting is not None and sorted(int(line.split()[0]) for line in waiting[0].split("\n")) == ids[1:5]
    assert "pk_inbound_messages" in plan and "ix_inbound_messages_state" not in plan, plan

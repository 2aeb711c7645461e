"""The SELECTs on the operative database, one per source table, and their loading into DuckDB staging tables.

Values travel as plain ints and strings: timestamps and money are rendered as text by the source database and
parsed by DuckDB (much faster than building Python datetimes and Decimals row by row). Rows are streamed in
batches and each batch goes into DuckDB as one Arrow table (``INSERT … SELECT CAST(…) FROM batch``), so memory
stays bounded whatever the size of the table. Arrow rather than ``unnest`` of Python lists: DuckDB reads Arrow
columns without converting each value on its own (a full refresh's staging about twice as fast).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type hints
from sqlalchemy import Connection

BATCH_ROWS = 50_000
# Reading the primary PostgreSQL server runs in its backend at full priority (nice/ionice of the refresh do not
# reach it) beside mail, calls and pages: after each batch the refresh then pauses as long as the batch took
# (the backend's share of a core about halved), at most this long. Not on a replica ([analytics] source_url) nor
# on SQLite (read inside the refresh's own, niced process).
MAX_PAUSE_SECONDS = 2.0
# ``conn.info`` key: set by the refresh when the source is to be read gently (see above).
THROTTLE = "analytics_throttle"

# How each kind of value is selected (SQLite, PostgreSQL), passed to DuckDB and typed in the staging table.
# Timestamps are naive UTC: SQLite keeps them as text already; PostgreSQL's timestamptz is rendered in UTC.
_KINDS: dict[str, tuple[str, str, str, str]] = {
    #       sqlite expr            postgresql expr                                                  batch type cast to
    "int": ("{c}", "{c}", "BIGINT", "BIGINT"),
    "text": ("{c}", "{c}", "VARCHAR", "VARCHAR"),
    "ts": ("{c}", "({c} AT TIME ZONE 'UTC')::text", "VARCHAR", "TIMESTAMP"),
    "date": ("{c}", "{c}::text", "VARCHAR", "DATE"),
    "money": ("CAST({c} AS TEXT)", "{c}::text", "VARCHAR", "DECIMAL(18,2)"),
    "bool": ("{c}", "{c}::int", "BIGINT", "BOOLEAN"),
}
# The Arrow type of each batch type: the batch's columns as the driver hands them over (ints and strings).
_ARROW: dict[str, pa.DataType] = {"BIGINT": pa.int64(), "VARCHAR": pa.string()}
# The name a batch is registered under in DuckDB while it is inserted.
_BATCH = "analytics_batch"


@dataclass(frozen=True)
class Col:
    """A staged column: ``expr`` is the source expression (the column itself unless given); ``pg`` a
    PostgreSQL expression where the dialects differ (JSON)."""

    name: str
    kind: str
    expr: str | None = None
    pg: str | None = None

    def select(self, dialect: str) -> str:
        sqlite_form, pg_form, _, _ = _KINDS[self.kind]
        if dialect == "postgresql":
            return self.pg if self.pg is not None else pg_form.format(c=self.expr or self.name)
        return sqlite_form.format(c=self.expr or self.name)


@dataclass(frozen=True)
class Source:
    """One operative table (or join) as it is staged: ``stage_<name>`` in DuckDB."""

    name: str
    from_sql: str
    cols: tuple[Col, ...]
    where: str = ""
    id_col: str = "id"  # the source expression of the row id (incremental reads)
    # The source expression of the row's last change (staged as ``updated_at``); None: rows never change
    # (events, audit entries) or the table is read whole each time.
    updated: str | None = None

    def select_sql(self, dialect: str, where: str = "") -> str:
        conditions = " AND ".join(f"({c})" for c in (self.where, where) if c)
        return (f"SELECT {', '.join(c.select(dialect) for c in self.cols)} FROM {self.from_sql}"
                + (f" WHERE {conditions}" if conditions else ""))

    @property
    def stage_table(self) -> str:
        return f"stage_{self.name}"

    @property
    def mirror_table(self) -> str:
        return f"mirror.{self.name}"

    def columns_ddl(self) -> str:
        return ", ".join(f"{c.name} {_KINDS[c.kind][3]}" for c in self.cols)

    def stage_ddl(self, table: str | None = None) -> str:
        if table is None:
            return f"CREATE OR REPLACE TEMP TABLE {self.stage_table} ({self.columns_ddl()})"
        return f"CREATE OR REPLACE TABLE {table} ({self.columns_ddl()})"

    def insert_sql(self, table: str | None = None, transform: str | None = None) -> str:
        """One batch (the Arrow table registered as ``analytics_batch``, see ``batch``) into ``table``, as
        staged or through ``transform`` (a SELECT over ``{rows}``, the batch with the staged column names)."""
        parts = []
        for col in self.cols:
            _, _, batch_type, cast = _KINDS[col.kind]
            parts.append(f"{col.name if batch_type == cast else f'CAST({col.name} AS {cast})'} AS {col.name}")
        batch = f"SELECT {', '.join(parts)} FROM {_BATCH}"
        if transform is not None:
            return f"INSERT INTO {table} {transform.format(rows=f'({batch})')}"
        return f"INSERT INTO {table or self.stage_table} {batch}"

    def batch(self, rows: Sequence[Sequence[Any]]) -> pa.Table:
        """Rows as fetched, column by column as an Arrow table of the batch types."""
        columns = zip(*rows, strict=True)
        return pa.table({col.name: pa.array(values, type=_ARROW[_KINDS[col.kind][2]])
                         for col, values in zip(self.cols, columns, strict=True)})


def _json(path: str, *, pg: str) -> tuple[str, str]:
    # As text on both: SQLite's json_extract gives a number where the event stored one (an assignee event's
    # before/after are staff ids), PostgreSQL's ->> is text already.
    return f"CAST(json_extract(details, '{path}') AS TEXT)", pg


_STATE_AFTER = _json("$.after", pg="details->>'after'")
_STATE_BEFORE = _json("$.before", pg="details->>'before'")
_REPLY_BEFORE = _json("$.state_before", pg="details->>'state_before'")
_REPLY_AFTER = _json("$.state", pg="details->>'state'")

SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("staff", "staff_users", (
        Col("id", "int"), Col("team", "text"), Col("active", "bool"), Col("name", "text"))),
    Source("companies", "companies", updated="updated_at", cols=(Col("updated_at", "ts"),
        Col("id", "int"), Col("name", "text"), Col("category", "text"), Col("customer_type", "text"),
        Col("industry", "text"), Col("origin", "text"), Col("customer_number", "text"), Col("created_at", "ts"))),
    Source("contacts", "contacts", updated="updated_at", cols=(Col("updated_at", "ts"),
        Col("id", "int"), Col("name", "text"), Col("company_id", "int"), Col("role", "text"),
        Col("category", "text"), Col("origin", "text"), Col("owner_id", "int"), Col("created_at", "ts"))),
    Source("interactions", "interactions", (
        Col("id", "int"), Col("occurred_at", "ts"), Col("kind", "text"), Col("direction", "text"),
        Col("company_id", "int"), Col("ticket_id", "int"), Col("created_by_id", "int"))),
    Source("interaction_contacts", "interaction_contacts", (
        Col("interaction_id", "int"), Col("contact_id", "int"), Col("role", "text")),  # the time: its interaction
        id_col="interaction_id"),
    Source("calls", "calls", updated="updated_at", cols=(Col("updated_at", "ts"),
        Col("id", "int"), Col("started_at", "ts"), Col("answered_at", "ts"), Col("ended_at", "ts"),
        Col("direction", "text"), Col("missed", "bool"), Col("staff_id", "int"), Col("contact_id", "int"),
        Col("company_id", "int"), Col("remote_e164", "text"))),
    Source("tickets", "tickets", updated="updated_at", cols=(Col("updated_at", "ts"),
        Col("id", "int"), Col("number", "int"), Col("opened_at", "ts"), Col("closed_at", "ts"),
        Col("state", "text"), Col("priority", "text"), Col("contact_id", "int"), Col("company_id", "int"),
        Col("assignee_id", "int"), Col("merged_into_id", "int"),
        Col("by_email", "bool", "CASE WHEN opened_by_email IS NULL THEN 0 ELSE 1 END",
            "CASE WHEN opened_by_email IS NULL THEN 0 ELSE 1 END"))),
    Source("ticket_events", "ticket_events", (
        Col("id", "int"), Col("ticket_id", "int"), Col("happened_at", "ts", "at"), Col("kind", "text"),
        Col("staff_id", "int"),
        Col("state_before", "text", _STATE_BEFORE[0], _STATE_BEFORE[1]),
        Col("state_after", "text", _STATE_AFTER[0], _STATE_AFTER[1]),
        Col("reply_before", "text", _REPLY_BEFORE[0], _REPLY_BEFORE[1]),
        Col("reply_after", "text", _REPLY_AFTER[0], _REPLY_AFTER[1]))),
    Source("reminders", "reminders", updated="updated_at", cols=(Col("updated_at", "ts"),
        Col("id", "int"), Col("created_at", "ts"), Col("due_at", "ts"), Col("completed_at", "ts"),
        Col("state", "text"), Col("reason", "text"), Col("assignee_id", "int"), Col("contact_id", "int"),
        Col("company_id", "int"), Col("call_id", "int"), Col("ticket_id", "int"))),
    Source("opportunities", "opportunities", updated="updated_at", cols=(Col("updated_at", "ts"),
        Col("id", "int"), Col("created_at", "ts"), Col("closed_at", "ts"), Col("close_date", "date"),
        Col("stage", "text"), Col("probability", "int"), Col("amount", "money"), Col("source", "text"),
        Col("lost_reason", "text"), Col("owner_id", "int"), Col("contact_id", "int"), Col("company_id", "int"))),
    # Stage changes from the audit log (events are pruned by retention; the audit log is kept).
    Source("stage_audit", "audit_log", (
        Col("id", "int"), Col("happened_at", "ts", "at"), Col("staff_id", "int"),
        Col("opportunity_id", "int", "object_id"),
        Col("action", "text"),
        Col("created_stage", "text", "json_extract(details, '$.stage')", "details->>'stage'"),
        Col("stage_from", "text", "json_extract(details, '$.stage.from')", "details->'stage'->>'from'"),
        Col("stage_to", "text", "json_extract(details, '$.stage.to')", "details->'stage'->>'to'")),
        where="object_type = 'opportunity' AND action IN ('opportunity.create', 'opportunity.update')"),
    Source("quotes", "quotes", updated="updated_at", cols=(Col("updated_at", "ts"),
        Col("id", "int"), Col("opportunity_id", "int"), Col("number", "text"), Col("version", "int"),
        Col("state", "text"), Col("quote_date", "date"), Col("sent_at", "ts"), Col("decided_at", "ts"),
        Col("net_total", "money"), Col("contact_id", "int"), Col("company_id", "int"),
        Col("created_by_id", "int"))),
    Source("orders", "orders", updated="updated_at", cols=(Col("updated_at", "ts"),
        Col("id", "int"), Col("number", "text"), Col("quote_id", "int"), Col("opportunity_id", "int"),
        Col("order_date", "date"), Col("state", "text"), Col("net_total", "money"), Col("gross_total", "money"),
        Col("contact_id", "int"), Col("company_id", "int"), Col("created_by_id", "int"))),
    Source("invoices", "invoices", updated="updated_at", cols=(Col("updated_at", "ts"),
        Col("id", "int"), Col("number", "text"), Col("issued_on", "date"), Col("status", "text"),
        Col("net", "money"), Col("gross", "money"), Col("paid", "money"), Col("order_id", "int"),
        Col("contact_id", "int"), Col("company_id", "int"))),
    Source("campaign_sends", "campaign_recipients r JOIN campaigns c ON c.id = r.campaign_id", (
        Col("id", "int", "r.id"), Col("campaign_id", "int", "r.campaign_id"), Col("campaign_name", "text", "c.name"),
        Col("channel", "text", "c.channel"), Col("state", "text", "r.state"), Col("reason", "text", "r.reason"),
        Col("released_at", "ts", "r.released_at"), Col("started_at", "ts", "c.started_at"),
        Col("finished_at", "ts", "c.finished_at"), Col("replied_at", "ts", "r.replied_at"),
        Col("bounced_at", "ts", "r.bounced_at"), Col("opted_out_at", "ts", "r.opted_out_at"),
        Col("opportunity_id", "int", "r.opportunity_id"), Col("contact_id", "int", "r.contact_id")),
        id_col="r.id"),
)}


def stage(conn: Connection, duck: duckdb.DuckDBPyConnection, source: Source, where: str = "",
          params: Mapping[str, Any] | None = None, *, table: str | None = None,
          transform: str | None = None, append: bool = False) -> int:
    """Copy the source rows (``where``: an extra condition with ``:name`` parameters) into a fresh table:
    ``table`` (kept in the store) or the temporary ``stage_<name>``; with ``transform`` (a SELECT over
    ``{rows}``) into the existing ``table`` through it, batch by batch; ``append``: added to the table as it
    is. The number of rows."""
    if transform is None and not append:
        duck.execute(source.stage_ddl(table))
    sql = _driver_params(conn, source.select_sql(conn.dialect.name, where))
    insert = source.insert_sql(table, transform)
    # The driver's own cursor, in the snapshot's transaction: plain tuples, no Row objects per row (a second
    # per million rows). PostgreSQL: a server-side (named) cursor, so the result is streamed in batches.
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    postgres = conn.dialect.name == "postgresql"
    cursor = dbapi.cursor(name=f"analytics_{source.name}") if postgres else dbapi.cursor()
    gently = bool(conn.info.get(THROTTLE))
    total = 0
    try:
        cursor.execute(sql, dict(params or {}))
        while True:
            started = time.monotonic()
            rows = cursor.fetchmany(BATCH_ROWS)
            if gently:
                time.sleep(pause_after(time.monotonic() - started))
            if not rows:
                break
            duck.register(_BATCH, source.batch(rows))
            try:
                duck.execute(insert)
            finally:
                duck.unregister(_BATCH)
            total += len(rows)
    finally:
        cursor.close()
    return total


def pause_after(fetch_seconds: float) -> float:
    """How long a gentle read rests after a batch the source took ``fetch_seconds`` to produce."""
    return min(max(fetch_seconds, 0.0), MAX_PAUSE_SECONDS)


def throttled(dialect: str, *, replica: bool) -> bool:
    """Whether the source is read gently: a PostgreSQL primary (see MAX_PAUSE_SECONDS)."""
    return dialect == "postgresql" and not replica


def _driver_params(conn: Connection, sql: str) -> str:
    """``:name`` parameters in the driver's own style (exec_driver_sql passes the SQL through)."""
    style = "%({})s" if conn.dialect.name == "postgresql" else ":{}"
    return re.sub(r"(?<![:\w]):(\w+)", lambda m: style.format(m.group(1)), sql)


def scalars(conn: Connection, sql: str) -> list[Any]:
    """The first column of every row (lists of ids)."""
    return list(conn.exec_driver_sql(_driver_params(conn, sql)).scalars().all())


def scalar(conn: Connection, sql: str, params: Mapping[str, Any] | None = None) -> Any:
    """One value from the source (counts, maxima)."""
    return conn.exec_driver_sql(_driver_params(conn, sql), dict(params or {})).scalar()

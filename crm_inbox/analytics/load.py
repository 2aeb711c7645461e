"""From the copied source tables (extract.py, refresh.py) into the star schema: the rules that turn operative
rows into facts.

Every rule is one ``INSERT … SELECT`` in DuckDB over ``mirror.*`` tables (and fact_interaction, which is kept
incrementally): local dates in the configured timezone (DuckDB's built-in ICU), the channel of a ticket, its
first response and reopenings, call-backs of missed calls, stage changes from the audit log.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import duckdb

# The fixed channels; a note, a document or a letter is not contact with the customer.
CHANNELS: tuple[tuple[str, bool], ...] = (
    ("email", True), ("call", True), ("meeting", True), ("web_form", True),
    ("note", False), ("document", False), ("letter", False), ("other", False),
)
# Interaction kinds that are a channel of their own; ticket/reminder/deal changes and the rest are "other".
_CHANNEL_KINDS = ("email", "call", "note", "document", "meeting")
_CLOSED = "('solved', 'closed')"
_REOPENED = "('new', 'open', 'pending')"


def prepare(duck: duckdb.DuckDBPyConnection, timezone: str) -> None:
    """Macros the rules share: ``local_ts`` (naive UTC → local wall time) and ``channel_of`` (kind)."""
    ZoneInfo(timezone)  # a bad name fails here, clearly, before it reaches SQL
    zone = timezone.replace("'", "''")
    duck.execute(f"CREATE OR REPLACE TEMP MACRO local_ts(ts) AS timezone('{zone}', ts AT TIME ZONE 'UTC')")
    kinds = ", ".join(f"'{k}'" for k in _CHANNEL_KINDS)
    duck.execute(f"CREATE OR REPLACE TEMP MACRO channel_of(kind) AS CASE WHEN kind IN ({kinds}) THEN kind "
                 "ELSE 'other' END")


def replace_table(duck: duckdb.DuckDBPyConnection, table: str, select: str) -> None:
    duck.execute(f"DELETE FROM {table}")
    duck.execute(f"INSERT INTO {table} {select}")


# --- dimensions ---------------------------------------------------------------------------------------------

def dim_staff_select(per_person: bool) -> str:
    # Works council: the name only when per-person reports are switched on.
    return f"SELECT id, team, active, {'name' if per_person else 'NULL'} FROM mirror.staff"


DIM_SELECTS: dict[str, str] = {
    "dim_company": "SELECT id, name, category, customer_type, industry, origin, customer_number, created_at "
                   "FROM mirror.companies",
    "dim_contact": "SELECT id, name, company_id, role, category, origin, owner_id, created_at, "
                   "CAST(local_ts(created_at) AS DATE) FROM mirror.contacts",
}


def load_channels(duck: duckdb.DuckDBPyConnection) -> None:
    duck.execute("DELETE FROM dim_channel")
    duck.executemany("INSERT INTO dim_channel VALUES (?, ?)", [list(c) for c in CHANNELS])


# --- facts kept incrementally -------------------------------------------------------------------------------

# ``{rows}``: the staged rows (a staging table, or a batch as it is read: a full refresh loads these facts
# batch by batch, never holding the whole table in memory twice).
INTERACTION_SELECT = (
    "SELECT id, occurred_at, CAST(local_ts(occurred_at) AS DATE), kind, direction, channel_of(kind), "
    "company_id, ticket_id, created_by_id FROM {rows}")
INTERACTION_CONTACT_SELECT = (
    "SELECT l.interaction_id, l.contact_id, i.occurred_at, l.role, i.occurred_date FROM {rows} l "
    "JOIN fact_interaction i ON i.interaction_id = l.interaction_id")


# --- facts rebuilt from their staging tables ----------------------------------------------------------------

FACT_SELECTS: dict[str, str] = {
    "fact_call": """
        WITH c AS (SELECT *, local_ts(started_at) AS local_start FROM mirror.calls),
        missed AS (SELECT id, remote_e164, started_at FROM mirror.calls
                   WHERE missed AND direction = 'in' AND remote_e164 IS NOT NULL AND started_at IS NOT NULL),
        outbound AS (SELECT remote_e164, started_at FROM mirror.calls
                     WHERE direction = 'out' AND remote_e164 IS NOT NULL AND started_at IS NOT NULL),
        called AS (SELECT m.id, o.started_at AS at FROM missed m
                   ASOF LEFT JOIN outbound o ON o.remote_e164 = m.remote_e164 AND o.started_at > m.started_at),
        reminded AS (SELECT r.call_id AS id, min(r.completed_at) AS at
                     FROM mirror.reminders r JOIN mirror.calls k ON k.id = r.call_id
                     WHERE r.reason = 'missed_call' AND r.state = 'done' AND r.completed_at >= k.started_at
                     GROUP BY r.call_id),  -- a call-back never before the call
        back AS (SELECT c.id, CASE WHEN c.missed AND c.direction = 'in'
                                   THEN least(called.at, reminded.at) END AS at
                 FROM c LEFT JOIN called USING (id) LEFT JOIN reminded USING (id))
        SELECT c.id, c.started_at, CAST(c.local_start AS DATE), hour(c.local_start), isodow(c.local_start),
               c.direction, c.answered_at IS NOT NULL, c.missed,
               CAST(date_diff('second', c.started_at, coalesce(c.answered_at, c.ended_at)) AS INTEGER),
               CAST(date_diff('second', c.answered_at, c.ended_at) AS INTEGER),
               c.staff_id, c.contact_id, c.company_id,
               back.at, date_diff('second', c.started_at, back.at) / 60.0
        FROM c JOIN back USING (id)""",
    "fact_ticket": f"""
        WITH first_contact AS (
            SELECT ticket_id, arg_min(channel, occurred_at) AS channel FROM fact_interaction
            WHERE ticket_id IS NOT NULL AND kind NOT IN ('ticket', 'reminder', 'deal') GROUP BY ticket_id),
        -- A staff reply: its event, or outbound mail a person wrote (created_by set). The automatic
        -- acknowledgement and other mail the system sends has no author: it is no response.
        replies AS (
            SELECT ticket_id, happened_at AS at FROM mirror.ticket_events WHERE kind = 'staff_reply'
            UNION ALL
            SELECT ticket_id, occurred_at FROM fact_interaction
            WHERE ticket_id IS NOT NULL AND direction = 'out' AND staff_id IS NOT NULL),
        first_reply AS (
            SELECT t.id, min(r.at) AS at FROM mirror.tickets t JOIN replies r ON r.ticket_id = t.id
            AND r.at >= t.opened_at GROUP BY t.id),
        closings AS (
            SELECT ticket_id, max(happened_at) AS at FROM mirror.ticket_events
            WHERE kind = 'state' AND state_after IN {_CLOSED} GROUP BY ticket_id),
        reopens AS (
            SELECT ticket_id, count(*) AS n FROM mirror.ticket_events
            WHERE (kind = 'state' AND state_before IN {_CLOSED} AND state_after IN {_REOPENED})
               OR (kind = 'customer_reply' AND reply_before IN {_CLOSED} AND reply_after IN {_REOPENED})
            GROUP BY ticket_id),
        t AS (
            SELECT s.*, CASE WHEN s.state IN {_CLOSED} THEN coalesce(cl.at, s.closed_at) END AS done_at
            FROM mirror.tickets s LEFT JOIN closings cl ON cl.ticket_id = s.id
            WHERE s.merged_into_id IS NULL)  -- a merged ticket is a duplicate: its mail counts for the target
        SELECT t.id, t.number, t.opened_at, CAST(local_ts(t.opened_at) AS DATE),
               t.done_at, CAST(local_ts(t.done_at) AS DATE), t.state, t.priority,
               CASE WHEN t.by_email THEN 'email' ELSE coalesce(fc.channel, 'other') END,
               coalesce(co.category, ct.category), t.contact_id, t.company_id, t.assignee_id,
               fr.at, date_diff('second', t.opened_at, fr.at) / 60.0,
               date_diff('second', t.opened_at, t.done_at) / 60.0,
               coalesce(ro.n, 0)
        FROM t LEFT JOIN first_contact fc ON fc.ticket_id = t.id
        LEFT JOIN first_reply fr ON fr.id = t.id
        LEFT JOIN reopens ro ON ro.ticket_id = t.id
        LEFT JOIN mirror.companies co ON co.id = t.company_id
        LEFT JOIN mirror.contacts ct ON ct.id = t.contact_id""",
    "fact_ticket_event": """
        SELECT id, ticket_id, happened_at, CAST(local_ts(happened_at) AS DATE), kind,
               CASE WHEN kind = 'state' THEN state_after END, staff_id
        FROM mirror.ticket_events
        WHERE ticket_id NOT IN (SELECT id FROM mirror.tickets WHERE merged_into_id IS NOT NULL)""",
    "fact_reminder": """
        SELECT id, created_at, CAST(local_ts(created_at) AS DATE), due_at, completed_at, state, reason,
               assignee_id, contact_id, company_id, call_id, ticket_id
        FROM mirror.reminders""",
    "fact_opportunity": """
        SELECT o.id, o.created_at, CAST(local_ts(o.created_at) AS DATE), o.closed_at,
               CAST(local_ts(o.closed_at) AS DATE), o.close_date, o.stage,
               CASE o.stage WHEN 'won' THEN 'won' WHEN 'lost' THEN 'lost' ELSE 'open' END,
               o.probability, o.amount, o.source, o.lost_reason, o.owner_id, o.contact_id, o.company_id,
               coalesce(co.category, ct.category)
        FROM mirror.opportunities o LEFT JOIN mirror.companies co ON co.id = o.company_id
        LEFT JOIN mirror.contacts ct ON ct.id = o.contact_id""",
    "fact_stage_change": """
        SELECT a.opportunity_id, a.happened_at, CAST(local_ts(a.happened_at) AS DATE),
               CASE WHEN a.action = 'opportunity.create' THEN NULL ELSE a.stage_from END,
               CASE WHEN a.action = 'opportunity.create' THEN a.created_stage ELSE a.stage_to END,
               a.staff_id
        FROM mirror.stage_audit a SEMI JOIN mirror.opportunities o ON o.id = a.opportunity_id
        WHERE (a.action = 'opportunity.create' AND a.created_stage IS NOT NULL)
           OR (a.action = 'opportunity.update' AND a.stage_to IS NOT NULL)""",
    "fact_quote": """
        SELECT id, opportunity_id, number, version, state, quote_date, sent_at, decided_at, net_total,
               contact_id, company_id, created_by_id, CAST(local_ts(sent_at) AS DATE)
        FROM mirror.quotes""",
    "fact_order": """
        SELECT id, number, quote_id, opportunity_id, order_date, state, net_total, gross_total, contact_id,
               company_id, created_by_id
        FROM mirror.orders""",
    "fact_invoice": """
        SELECT id, number, issued_on, status, net, gross, paid, order_id, contact_id, company_id
        FROM mirror.invoices""",
    # Letters have no send time of their own: the campaign's print run (finished, else started).
    "fact_campaign_send": """
        WITH s AS (
            SELECT *, CASE WHEN channel = 'letter'
                           THEN CASE WHEN state = 'printed' THEN coalesce(finished_at, started_at) END
                           ELSE released_at END AS sent
            FROM mirror.campaign_sends)
        SELECT id, campaign_id, campaign_name, channel, state, reason, sent, CAST(local_ts(sent) AS DATE),
               replied_at, bounced_at, opted_out_at, opportunity_id, contact_id
        FROM s""",
}

# The copied source tables (and "interactions": fact_interaction) each star table is made from: an
# incremental refresh rebuilds a table only when one of them changed.
DEPENDS: dict[str, set[str]] = {
    "dim_company": {"companies"}, "dim_contact": {"contacts"},
    "fact_call": {"calls", "reminders"},
    "fact_ticket": {"tickets", "ticket_events", "interactions", "companies", "contacts"},
    "fact_ticket_event": {"ticket_events", "tickets"}, "fact_reminder": {"reminders"},
    "fact_opportunity": {"opportunities", "companies", "contacts"},
    "fact_stage_change": {"stage_audit", "opportunities"},
    "fact_quote": {"quotes"}, "fact_order": {"orders"}, "fact_invoice": {"invoices"},
    "fact_campaign_send": {"campaign_sends"},
}

# The date columns dim_date must cover.
DATE_COLUMNS: dict[str, tuple[str, ...]] = {
    "dim_contact": ("created_date",),
    "fact_interaction": ("occurred_date",), "fact_call": ("started_date",),
    "fact_ticket": ("opened_date", "closed_date"), "fact_ticket_event": ("occurred_date",),
    "fact_reminder": ("created_date",), "fact_opportunity": ("created_date", "closed_date", "close_date"),
    "fact_stage_change": ("changed_date",), "fact_quote": ("quote_date", "sent_date"), "fact_order": ("order_date",),
    "fact_invoice": ("issued_on",), "fact_campaign_send": ("sent_date",),
}


def load_dates(duck: duckdb.DuckDBPyConnection, today: date) -> None:
    """Every day from the earliest to the latest date any fact uses, and today."""
    bounds = " UNION ALL ".join(f"SELECT min({c}) AS lo, max({c}) AS hi FROM {t}"
                                for t, cols in DATE_COLUMNS.items() for c in cols)
    row = duck.execute(f"SELECT min(lo), max(hi) FROM ({bounds})").fetchone()
    lo = min(d for d in (row[0] if row else None, today) if d is not None)
    hi = max(d for d in (row[1] if row else None, today) if d is not None)
    duck.execute("DELETE FROM dim_date")
    duck.execute("""
        INSERT INTO dim_date
        SELECT d, year(d), quarter(d), month(d), isoyear(d), week(d), isodow(d), isodow(d) >= 6
        FROM (SELECT CAST(unnest(generate_series(CAST(? AS DATE), CAST(? AS DATE), INTERVAL 1 DAY)) AS DATE) AS d)
    """, [lo, hi])

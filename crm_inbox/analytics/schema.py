"""The analytical store's star schema (DuckDB): dimensions for date, contact, company, staff and channel; one
fact table per business process. Keys are the operative ids, so a fact joins its dimensions directly and an
incremental refresh replaces rows by id.

Times are naive UTC timestamps as the operative database keeps them; ``*_date`` columns are the local calendar
day ([reminders] timezone) that reports group by. Money is DECIMAL(18,2) (read back as ``Decimal``).

Staff data (works council): ``dim_staff`` keeps id, team and whether the login is active; the name only when
[analytics] per_person_reports is on. Facts keep the staff id of who did the work (assignee, who took the call,
owner), nothing about logins, sessions or audit.
"""

from __future__ import annotations

from collections.abc import Sequence

# The version of this layout: a store of another version is rebuilt by the next refresh (full), never patched.
SCHEMA_VERSION = 2

DIMENSIONS: dict[str, str] = {
    "dim_date": """
        date_key DATE PRIMARY KEY,
        year INTEGER NOT NULL, quarter INTEGER NOT NULL, month INTEGER NOT NULL,
        iso_year INTEGER NOT NULL, iso_week INTEGER NOT NULL,
        weekday INTEGER NOT NULL,            -- 1 Monday … 7 Sunday (ISO)
        is_weekend BOOLEAN NOT NULL""",
    "dim_company": """
        company_id BIGINT PRIMARY KEY,
        name VARCHAR,
        category VARCHAR,                    -- A, B, C or NULL as staff assigned it
        customer_type VARCHAR, industry VARCHAR, origin VARCHAR,
        customer_number VARCHAR,
        created_at TIMESTAMP""",
    "dim_contact": """
        contact_id BIGINT PRIMARY KEY,
        name VARCHAR,
        company_id BIGINT,
        role VARCHAR,                        -- lead, prospect, customer, debtor, supplier, other
        category VARCHAR,                    -- the contact's own A/B/C (reports prefer the company's)
        origin VARCHAR,                      -- how the contact came: mail, call, import, manual, web_form, …
        owner_id BIGINT,
        created_at TIMESTAMP, created_date DATE""",
    "dim_staff": """
        staff_id BIGINT PRIMARY KEY,
        team VARCHAR,                        -- NULL: no team
        active BOOLEAN NOT NULL,
        name VARCHAR                         -- NULL unless [analytics] per_person_reports""",
    "dim_channel": """
        channel VARCHAR PRIMARY KEY,         -- email, call, note, document, meeting, letter, web_form, other
        is_customer_contact BOOLEAN NOT NULL -- counts as contact with the customer (not a note or a letter)""",
}

FACTS: dict[str, str] = {
    # Every timeline entry: mail, calls, notes, documents, meetings (also ticket/reminder/deal changes: kind).
    "fact_interaction": """
        interaction_id BIGINT PRIMARY KEY,
        occurred_at TIMESTAMP NOT NULL, occurred_date DATE NOT NULL,
        kind VARCHAR NOT NULL,               -- InteractionKind
        direction VARCHAR NOT NULL,          -- in, out, internal
        channel VARCHAR NOT NULL,            -- dim_channel
        company_id BIGINT, ticket_id BIGINT,
        staff_id BIGINT                      -- who wrote it (created_by), NULL for mail that came in""",
    # Which contacts an interaction is about (many per mail: from, to, cc).
    "fact_interaction_contact": """
        interaction_id BIGINT NOT NULL, contact_id BIGINT NOT NULL,
        occurred_at TIMESTAMP NOT NULL, role VARCHAR,
        occurred_date DATE NOT NULL,         -- local, as fact_interaction's (the export's month)
        PRIMARY KEY (interaction_id, contact_id)""",
    "fact_call": """
        call_id BIGINT PRIMARY KEY,
        started_at TIMESTAMP, started_date DATE,
        local_hour INTEGER, local_weekday INTEGER,   -- of started_at in local time (heat map); weekday 1=Mon
        direction VARCHAR,                   -- in, out
        answered BOOLEAN NOT NULL, missed BOOLEAN NOT NULL,
        ring_seconds INTEGER, talk_seconds INTEGER,
        staff_id BIGINT, contact_id BIGINT, company_id BIGINT,
        -- a missed inbound call: when it was called back (the next outbound call to the number, or its
        -- missed-call reminder done), NULL while not called back
        called_back_at TIMESTAMP, callback_minutes DOUBLE""",
    "fact_ticket": """
        ticket_id BIGINT PRIMARY KEY,
        number BIGINT,
        opened_at TIMESTAMP NOT NULL, opened_date DATE NOT NULL,
        closed_at TIMESTAMP, closed_date DATE,      -- solved or closed, the last time
        state VARCHAR NOT NULL, priority VARCHAR NOT NULL,
        channel VARCHAR NOT NULL,            -- how it came: email, call, web_form, other (its first interaction)
        category VARCHAR,                    -- the customer's A/B/C (company's, else contact's) or NULL
        contact_id BIGINT, company_id BIGINT,
        assignee_id BIGINT,
        first_response_at TIMESTAMP, first_response_minutes DOUBLE,   -- first staff reply after opening
        resolution_minutes DOUBLE,           -- opened → last solved/closed
        reopen_count INTEGER NOT NULL""",
    "fact_ticket_event": """
        event_id BIGINT PRIMARY KEY,
        ticket_id BIGINT NOT NULL,
        occurred_at TIMESTAMP NOT NULL, occurred_date DATE NOT NULL,
        kind VARCHAR NOT NULL,               -- opened, customer_reply, staff_reply, state, priority, …
        new_state VARCHAR,                   -- for kind = state
        staff_id BIGINT""",
    "fact_reminder": """
        reminder_id BIGINT PRIMARY KEY,
        created_at TIMESTAMP NOT NULL, created_date DATE NOT NULL,
        due_at TIMESTAMP NOT NULL, completed_at TIMESTAMP,
        state VARCHAR NOT NULL, reason VARCHAR NOT NULL,
        assignee_id BIGINT, contact_id BIGINT, company_id BIGINT, call_id BIGINT, ticket_id BIGINT""",
    "fact_opportunity": """
        opportunity_id BIGINT PRIMARY KEY,
        created_at TIMESTAMP NOT NULL, created_date DATE NOT NULL,
        closed_at TIMESTAMP, closed_date DATE,
        close_date DATE,                     -- the expected close (forecast month)
        stage VARCHAR NOT NULL,
        outcome VARCHAR NOT NULL,            -- open, won, lost
        probability INTEGER NOT NULL,
        amount DECIMAL(18,2),
        source VARCHAR NOT NULL,             -- mail, call, web_form, campaign, manual
        lost_reason VARCHAR,
        owner_id BIGINT, contact_id BIGINT, company_id BIGINT,
        category VARCHAR""",
    "fact_stage_change": """
        opportunity_id BIGINT NOT NULL,
        changed_at TIMESTAMP NOT NULL, changed_date DATE NOT NULL,
        from_stage VARCHAR, to_stage VARCHAR NOT NULL,
        staff_id BIGINT""",
    "fact_quote": """
        quote_id BIGINT PRIMARY KEY,
        opportunity_id BIGINT,
        number VARCHAR, version INTEGER NOT NULL,
        state VARCHAR NOT NULL,              -- draft, final, sent, accepted, declined, superseded
        quote_date DATE, sent_at TIMESTAMP, decided_at TIMESTAMP,
        net_total DECIMAL(18,2) NOT NULL,
        contact_id BIGINT, company_id BIGINT, created_by_id BIGINT,
        sent_date DATE                       -- local day of sent_at""",
    "fact_order": """
        order_id BIGINT PRIMARY KEY,
        number VARCHAR NOT NULL,
        quote_id BIGINT, opportunity_id BIGINT,
        order_date DATE NOT NULL,
        state VARCHAR NOT NULL,              -- open, handed_off, cancelled
        net_total DECIMAL(18,2) NOT NULL, gross_total DECIMAL(18,2) NOT NULL,
        contact_id BIGINT, company_id BIGINT, created_by_id BIGINT""",
    "fact_invoice": """
        invoice_id BIGINT PRIMARY KEY,
        number VARCHAR NOT NULL,
        issued_on DATE NOT NULL,
        status VARCHAR NOT NULL,             -- open, paid, overdue, cancelled
        net DECIMAL(18,2) NOT NULL, gross DECIMAL(18,2) NOT NULL, paid DECIMAL(18,2) NOT NULL,
        order_id BIGINT, contact_id BIGINT, company_id BIGINT""",
    "fact_campaign_send": """
        recipient_id BIGINT PRIMARY KEY,
        campaign_id BIGINT NOT NULL, campaign_name VARCHAR NOT NULL,
        channel VARCHAR NOT NULL,            -- email, letter
        state VARCHAR NOT NULL,              -- left_out, queued, released, printed, cancelled
        reason VARCHAR,                      -- why left out
        sent_at TIMESTAMP, sent_date DATE,   -- released (mail) or the campaign's print (letter)
        replied_at TIMESTAMP, bounced_at TIMESTAMP, opted_out_at TIMESTAMP,
        opportunity_id BIGINT,
        contact_id BIGINT""",
}

# Bookkeeping of the store itself (not part of the star).
META: dict[str, str] = {
    "meta_refresh": """
        refreshed_at TIMESTAMP NOT NULL,     -- when the snapshot was taken (UTC)
        mode VARCHAR NOT NULL,               -- full, incremental
        source VARCHAR NOT NULL,             -- the source URL without its password
        schema_version INTEGER NOT NULL,
        seconds DOUBLE NOT NULL""",
    "meta_watermark": """
        table_name VARCHAR PRIMARY KEY,
        max_id BIGINT, max_updated_at TIMESTAMP, last_audit_id BIGINT""",
}

# The tables ``crm-inbox analytics export`` writes as Parquet, each with the date column it is partitioned by
# (month=YYYY-MM folders); None: one file.
EXPORT_PARTITIONS: dict[str, str | None] = {
    "dim_date": None, "dim_company": None, "dim_contact": None, "dim_staff": None, "dim_channel": None,
    "fact_interaction": "occurred_date", "fact_interaction_contact": "occurred_date", "fact_call": "started_date",
    "fact_ticket": "opened_date", "fact_ticket_event": "occurred_date", "fact_reminder": "created_date",
    "fact_opportunity": "created_date", "fact_stage_change": "changed_date", "fact_quote": "quote_date",
    "fact_order": "order_date", "fact_invoice": "issued_on", "fact_campaign_send": "sent_date",
}


def create_statements(tables: Sequence[str] | None = None) -> list[str]:
    """``CREATE TABLE`` for every table of the store (or the named ones)."""
    everything = {**DIMENSIONS, **FACTS, **META}
    names = list(everything) if tables is None else list(tables)
    return [f"CREATE TABLE {name} ({everything[name]}\n)" for name in names]  # a line comment may end the last column

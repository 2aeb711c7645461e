"""The customers report: ABC analysis by revenue against the category staff assigned, new leads per origin,
customers without contact for 90 days (cross- and up-selling candidates), campaign responses.

A *customer* is a company; a contact without a company is a customer of its own. Documents of a contact who
belongs to a company count for the company.

Revenue of a customer in a span of days: the net of its ERP invoices issued then (cancelled ones not counted)
plus the net of its orders dated then (cancelled ones not counted) that no invoice bills (an invoice that is
not cancelled, with the order's id, whenever issued). Invoices bill orders, so adding both would count a sale
twice; an order the ERP has not billed (yet) still counts, also for a customer with other orders billed;
invoices without an order count on their own.

Filters: the period; the category is the customer's assigned A/B/C (the company's; a lone contact's own;
"none": none assigned). None of these figures is about staff work, so the team filter does not apply to them
(and no works-council suppression is needed: no staff appear).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import MAXYEAR, MINYEAR, date, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from crm_inbox.analytics.model import Column, Figure, Filters, Report, StaffPolicy
from crm_inbox.analytics.reports._sql import TEAM_FILTER_NOT_APPLIED, category_condition, parameters, query
from crm_inbox.analytics.reports.rates import CATEGORIES, percent

# Classic ABC: customers by revenue, largest first; a customer is A while the cumulative share of the customers
# before it is under 80 %, B under 95 %, the rest (and everyone without positive revenue) C. By the share
# before it, the largest customer is always A, even with 90 % of the revenue.
A_SHARE, B_SHARE = 80, 95
MISMATCHES_SHOWN = 50
NO_CONTACT_DAYS = 90
NO_CONTACT_SHOWN = 100
NO_CATEGORY = "none"
# Roles that make a contact (and so its company) a customer even without orders or invoices.
CUSTOMER_ROLES = ("customer", "debtor")
# Roles that never came as leads (new leads count the others, whatever they have become since).
NOT_LEADS = ("supplier", "other")

# A customer's key in the queries: the company's id, or minus the id of a contact without a company (one
# BIGINT groups and joins much faster than kind and id).
# The customer a document belongs to: its company (or its contact's company), else its contact.
_CUSTOMER_OF = "COALESCE(f.company_id, c.company_id, -f.contact_id) AS customer_key"

# The run's customers, built once per report (a TEMP table of the report's own cursor, dropped at its end):
# the ABC analysis and the customers without contact both need every customer with its revenue, and reading
# the invoices and orders once instead of in both statements is most of the report's time on a large store.
CUSTOMERS_TABLE = "report_customers"

# Every customer (name, assigned category, creation) with
# - ``revenue``: the revenue in the period, NULL without any invoice or order counted in it (then not classified
#   unless a category is assigned),
# - ``revenue_12_months``: the same for the 12 months before the period's end,
# - ``is_customer``: orders or invoices (any state) before the period's end, or a contact in a customer role.
# Revenue by the module's rule: invoices not cancelled, and orders not cancelled that no invoice bills.
_BUILD_CUSTOMERS = f"""
    CREATE OR REPLACE TEMP TABLE {CUSTOMERS_TABLE} AS
    WITH customers AS (
        SELECT company_id AS customer_key, name, category, created_at FROM dim_company
        UNION ALL
        SELECT -contact_id, name, category, created_at FROM dim_contact WHERE company_id IS NULL),
    documents AS (
        SELECT {_CUSTOMER_OF}, f.issued_on AS day, f.net AS net, f.status <> 'cancelled' AS counts
        FROM fact_invoice f LEFT JOIN dim_contact c ON c.contact_id = f.contact_id
        WHERE f.issued_on < $end AND COALESCE(f.company_id, f.contact_id) IS NOT NULL
        UNION ALL
        SELECT {_CUSTOMER_OF}, f.order_date, f.net_total,
               f.state <> 'cancelled'
               AND NOT EXISTS (SELECT 1 FROM fact_invoice b WHERE b.order_id = f.order_id AND b.status <> 'cancelled')
        FROM fact_order f LEFT JOIN dim_contact c ON c.contact_id = f.contact_id
        WHERE f.order_date < $end AND COALESCE(f.company_id, f.contact_id) IS NOT NULL
        UNION ALL
        SELECT COALESCE(company_id, -contact_id), NULL, NULL, FALSE FROM dim_contact WHERE role IN {CUSTOMER_ROLES}),
    per_customer AS (
        SELECT customer_key,
               CAST(sum(net) FILTER (WHERE counts AND day >= $start) AS DECIMAL(18,2)) AS revenue,
               CAST(sum(net) FILTER (WHERE counts AND day >= $year_ago) AS DECIMAL(18,2)) AS revenue_12_months
        FROM documents GROUP BY customer_key)
    SELECT cu.customer_key, cu.name, cu.category, cu.created_at, p.revenue, p.revenue_12_months,
           p.customer_key IS NOT NULL AS is_customer
    FROM customers cu LEFT JOIN per_customer p ON p.customer_key = cu.customer_key"""


def customers_report(con: duckdb.DuckDBPyConnection, filters: Filters, policy: StaffPolicy) -> Report:
    """The customers figures for ``filters`` on the store ``con`` (read-only). ``filters.team`` and
    ``policy`` play no part: nothing here is about staff work (under a team filter every figure says so in
    its notes)."""
    q = _Query(con, filters)
    q.rows(_BUILD_CUSTOMERS, year_ago=_year_before(filters.end))
    try:
        figures: tuple[Figure, ...] = (*abc_analysis(q), new_leads_by_source(q), *no_contact_90_days(q),
                                       campaign_responses(q))
    finally:
        con.execute(f"DROP TABLE IF EXISTS temp.{CUSTOMERS_TABLE}")
    if filters.team is not None:
        figures = tuple(replace(f, notes=(*f.notes, TEAM_FILTER_NOT_APPLIED)) for f in figures)
    return Report(name="customers", filters=filters, figures=figures)


class _Query:
    """The report's cursor and filters. The figures' queries read the run's :data:`CUSTOMERS_TABLE`, which
    customers_report builds first."""

    def __init__(self, con: duckdb.DuckDBPyConnection, filters: Filters) -> None:
        self.con = con
        self.filters = filters
        self.params = parameters(filters)

    def rows(self, sql: str, **extra: object) -> list[tuple[Any, ...]]:
        return query(self.con, sql, {**self.params, **extra})


def abc_analysis(q: _Query) -> tuple[Figure, Figure, Figure]:
    """ABC classes by revenue in the period, the cross table of computed × assigned classes, and the customers
    whose assigned category differs from the computed class (largest revenue first, at most 50).

    Every customer with revenue in the period or an assigned category is classified, over all customers (the
    category filter then picks which of them the figures show: "my A customers and what their revenue makes
    them"); one with an assigned category but no revenue is C. Ties in revenue are broken by the customer's id
    (lone contacts first), so the same data always gives the same classes and list."""
    rows = q.rows(f"""
        WITH classified AS (
            SELECT customer_key, name, category, COALESCE(revenue, 0) AS revenue,
                   sum(COALESCE(revenue, 0)) OVER (ORDER BY COALESCE(revenue, 0) DESC,
                       customer_key ROWS UNBOUNDED PRECEDING) AS cumulative,
                   sum(revenue) FILTER (WHERE revenue > 0) OVER () AS total
            FROM {CUSTOMERS_TABLE}
            WHERE revenue IS NOT NULL OR category IS NOT NULL),
        classes AS (
            SELECT customer_key, name, category, revenue,
                   CASE WHEN revenue > 0 THEN round(CAST(cumulative AS DOUBLE) * 100 / CAST(total AS DOUBLE), 1)
                   END AS cumulative_share,
                   -- the share of the customers before this one, compared in DECIMAL (exact): exactly 80 % is B
                   CASE WHEN revenue <= 0 THEN 'C' WHEN (cumulative - revenue) * 100 < total * {A_SHARE} THEN 'A'
                        WHEN (cumulative - revenue) * 100 < total * {B_SHARE} THEN 'B' ELSE 'C' END AS computed
            FROM classified)
        SELECT computed, COALESCE(category, '{NO_CATEGORY}'), count(*), CAST(sum(revenue) AS DECIMAL(18,2)),
               max_by(struct_pack(name := name, revenue := revenue, cumulative_share := cumulative_share),
                      struct_pack(revenue := revenue, key := -customer_key), {MISMATCHES_SHOWN})
                   FILTER (WHERE computed IS DISTINCT FROM category)
        FROM classes WHERE {category_condition("category", q.filters)}
        GROUP BY ALL""")
    return _abc_classes(rows), _abc_cross_table(rows), _abc_mismatches(rows)


def _abc_classes(rows: list[tuple[Any, ...]]) -> Figure:
    customers = {c: 0 for c in CATEGORIES}
    revenue = {c: Decimal("0.00") for c in CATEGORIES}
    for computed, _, n, amount, _ in rows:
        customers[computed] += int(n)
        revenue[computed] += amount
    all_customers, all_revenue = sum(customers.values()), sum(revenue.values())
    return Figure(
        key="abc_classes", kind="bar",
        columns=(Column("abc_class", "text"), Column("customers"), Column("revenue", "eur"),
                 Column("customer_share", "percent"), Column("revenue_share", "percent")),
        rows=tuple((c, customers[c], revenue[c], percent(customers[c], all_customers),
                    percent(revenue[c], all_revenue)) for c in CATEGORIES) if all_customers else (),
        x="abc_class", series=("revenue",))


def _abc_cross_table(rows: list[tuple[Any, ...]]) -> Figure:
    assigned = (*CATEGORIES, NO_CATEGORY)
    counts = {(computed, category): int(n) for computed, category, n, _, _ in rows}
    return Figure(
        key="abc_vs_assigned", kind="heatmap",
        columns=(Column("abc_class", "text"), *(Column(f"assigned_{a.lower()}") for a in assigned)),
        rows=tuple((c, *(counts.get((c, a), 0) for a in assigned)) for c in CATEGORIES) if counts else (),
        x="abc_class", series=tuple(f"assigned_{a.lower()}" for a in assigned))


def _abc_mismatches(rows: list[tuple[Any, ...]]) -> Figure:
    found = [(m["name"], m["revenue"], m["cumulative_share"], computed, category)
             for computed, category, _, _, mismatches in rows for m in mismatches or ()]
    found.sort(key=lambda r: (-r[1], r[0] or ""))
    return Figure(
        key="abc_mismatches", kind="table",
        columns=(Column("customer", "text"), Column("revenue", "eur"), Column("cumulative_share", "percent"),
                 Column("abc_class", "text"), Column("assigned_category", "text")),
        rows=tuple(found[:MISMATCHES_SHOWN]))


def _customer_category_joins(filters: Filters, alias: str) -> str:
    """The joins to the category of the contact ``alias`` (``alias.contact_id``; ``c``: the contact itself) and
    its company (``c``, ``co``), only under a category filter: without one they change no row and would cost
    more than the rest of the figure."""
    if filters.category is None:
        return ""
    contact = "" if alias == "c" else f"LEFT JOIN dim_contact c ON c.contact_id = {alias}.contact_id "
    return f"{contact}LEFT JOIN dim_company co ON co.company_id = c.company_id"


def new_leads_by_source(q: _Query) -> Figure:
    """Contacts created in the period per month and origin (how they came: mail, call, import, web form, …):
    every contact that came as a lead, prospect or customer, whatever its role is now (suppliers and others
    never were leads). One column per origin, the most frequent first, and the month's total."""
    rows = q.rows(f"""
        SELECT CAST(date_trunc('month', c.created_date) AS DATE), COALESCE(c.origin, 'unknown'), count(*)
        FROM dim_contact c {_customer_category_joins(q.filters, "c")}
        WHERE c.created_date >= $start AND c.created_date < $end AND c.role NOT IN {NOT_LEADS}
          AND {category_condition("CASE WHEN c.company_id IS NULL THEN c.category ELSE co.category END", q.filters)}
        GROUP BY ALL""")
    totals: dict[str, int] = {}
    by_month: dict[date, dict[str, int]] = {}
    for month, origin, n in rows:
        totals[origin] = totals.get(origin, 0) + int(n)
        by_month.setdefault(month, {})[origin] = int(n)
    origins = sorted(totals, key=lambda o: (-totals[o], o))
    months = _months(q.filters.start, q.filters.end)
    table = tuple((m, *(by_month.get(m, {}).get(o, 0) for o in origins), sum(by_month.get(m, {}).values()))
                  for m in months) if origins else ()
    return Figure(
        key="new_leads_by_source", kind="stacked_bar",
        columns=(Column("month", "month"), *(Column(f"origin_{o}") for o in origins), Column("new_leads")),
        rows=table, x="month", series=tuple(f"origin_{o}" for o in origins))


def _months(start: date, end: date) -> list[date]:
    """The first days of the months from ``start``'s to the one before ``end`` (stepped by year and month:
    no date arithmetic that could leave the calendar near year 1 or 9999)."""
    out: list[date] = []
    year, month = start.year, start.month
    while year <= MAXYEAR and (first := date(year, month, 1)) < end:
        out.append(first)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _days_before(day: date, days: int) -> date:
    """``days`` before ``day``, the calendar's first day at the latest (a period starting in year 1)."""
    return day - timedelta(days=days) if day - date.min >= timedelta(days=days) else date.min


def _year_before(day: date) -> date:
    """The same day a year earlier (365 days for 29 February), the calendar's first day at the latest."""
    if day.year == MINYEAR:
        return date.min
    return day - timedelta(days=365) if (day.month, day.day) == (2, 29) else day.replace(year=day.year - 1)


def no_contact_90_days(q: _Query) -> tuple[Figure, Figure]:
    """Customers without customer contact (mail, call, meeting, …: channels that count as contact, not notes or
    letters) in the last 90 days of the period, or never: the cross- and up-selling candidates, largest revenue
    of the last 12 months first (the 100 largest; equal revenue by name), and how many there are in all. With
    the last contact before the period's end (none: never) and, for a company, the person there last in
    contact (none when contact was only ever with the company as a whole).

    Customers here: companies with a contact in role customer or debtor, or with orders or invoices before the
    period's end, and such contacts without a company; not those created after the period."""
    end = q.filters.end
    last_day = _days_before(end, 1)  # the period's last day: "more than 90 days" before it
    cutoff = _days_before(last_day, NO_CONTACT_DAYS)
    rows = q.rows(f"""
        WITH candidates AS (
            SELECT customer_key, name, category, revenue_12_months FROM {CUSTOMERS_TABLE}
            WHERE is_customer AND (created_at IS NULL OR CAST(created_at AS DATE) < $end)
              AND {category_condition("category", q.filters)}),
        customer_channels AS (SELECT channel FROM dim_channel WHERE is_customer_contact),
        -- Who had customer contact in the last 90 days: only recent interactions (the links' UTC time a day
        -- early first, which the store's order by time makes cheap; then the local day exactly). Duplicates
        -- stay: the anti join below does not mind them, and removing them costs more than it saves.
        recent AS (
            SELECT COALESCE(c.company_id, -c.contact_id) AS customer_key
            FROM fact_interaction_contact ic
            JOIN fact_interaction i ON i.interaction_id = ic.interaction_id
            JOIN dim_contact c ON c.contact_id = ic.contact_id
            WHERE ic.occurred_at >= $cutoff_utc AND i.occurred_date >= $cutoff AND i.occurred_date < $end
              AND i.channel IN (SELECT channel FROM customer_channels)
            UNION ALL
            SELECT company_id FROM fact_interaction i
            WHERE i.company_id IS NOT NULL AND i.occurred_date >= $cutoff AND i.occurred_date < $end
              AND i.channel IN (SELECT channel FROM customer_channels)),
        quiet AS (
            SELECT ca.customer_key, ca.name, COALESCE(ca.category, '{NO_CATEGORY}') AS category,
                   COALESCE(ca.revenue_12_months, 0) AS revenue
            FROM candidates ca ANTI JOIN recent r ON r.customer_key = ca.customer_key),
        shown AS (
            SELECT *, count(*) OVER () AS quiet_customers, sum(revenue) OVER () AS quiet_revenue FROM quiet
            ORDER BY revenue DESC, name, customer_key LIMIT {NO_CONTACT_SHOWN}),
        -- The last contact before the period's end, looked up for the shown customers only.
        touched AS (
            SELECT s.customer_key, i.occurred_date AS day,
                   CASE WHEN c.company_id IS NOT NULL THEN c.name END AS person
            FROM shown s
            JOIN dim_contact c ON COALESCE(c.company_id, -c.contact_id) = s.customer_key
            JOIN fact_interaction_contact ic ON ic.contact_id = c.contact_id
            JOIN fact_interaction i ON i.interaction_id = ic.interaction_id
            WHERE i.occurred_date < $end AND i.channel IN (SELECT channel FROM customer_channels)
            UNION ALL
            SELECT s.customer_key, i.occurred_date, NULL FROM shown s
            JOIN fact_interaction i ON i.company_id = s.customer_key
            WHERE i.occurred_date < $end AND i.channel IN (SELECT channel FROM customer_channels)),
        last_contact AS (
            SELECT customer_key, max(day) AS day,
                   arg_max(person, day) FILTER (WHERE person IS NOT NULL) AS person
            FROM touched GROUP BY customer_key)
        SELECT s.name, lc.person, s.category, lc.day, CAST(s.revenue AS DECIMAL(18,2)), s.quiet_customers,
               CAST(s.quiet_revenue AS DECIMAL(18,2))
        FROM shown s LEFT JOIN last_contact lc ON lc.customer_key = s.customer_key
        ORDER BY s.revenue DESC, s.name, s.customer_key""",
                  cutoff=cutoff, cutoff_utc=_days_before(cutoff, 1))
    listed = Figure(
        key="no_contact_90_days", kind="table",
        columns=(Column("customer", "text"), Column("contact_person", "text"), Column("category", "text"),
                 Column("last_contact", "date"),
                 Column("days_without_contact"), Column("revenue_12_months", "eur")),
        rows=tuple((name, person, category, day, (last_day - day).days if day else None, revenue)
                   for name, person, category, day, revenue, _, _ in rows))
    total = Figure(
        key="no_contact_90_days_total", kind="table",
        columns=(Column("customers"), Column("shown"), Column("revenue_12_months", "eur")),
        rows=((int(rows[0][5]) if rows else 0, len(rows), rows[0][6] if rows else Decimal("0.00")),))
    return listed, total


def campaign_responses(q: _Query) -> Figure:
    """Per campaign with mail or letters sent in the period: sent, replied, bounced, opted out, deals that came
    of it, each also as a share of those sent. The category is the recipient's customer category."""
    rows = q.rows(f"""
        SELECT s.campaign_id, any_value(s.campaign_name), any_value(s.channel), count(*),
               count(s.replied_at), count(s.bounced_at), count(s.opted_out_at), count(DISTINCT s.opportunity_id)
        FROM fact_campaign_send s {_customer_category_joins(q.filters, "s")}
        WHERE s.sent_date >= $start AND s.sent_date < $end
          AND {category_condition("CASE WHEN c.company_id IS NULL THEN c.category ELSE co.category END", q.filters)}
        GROUP BY s.campaign_id ORDER BY min(s.sent_date), s.campaign_id""")
    table = []
    for _, name, channel, sent, replied, bounced, opted_out, deals in rows:
        table.append((name, channel, int(sent), int(replied), percent(replied, sent), int(bounced),
                      percent(bounced, sent), int(opted_out), percent(opted_out, sent), int(deals),
                      percent(deals, sent)))
    return Figure(
        key="campaign_responses", kind="bar",
        columns=(Column("campaign_name", "text"), Column("channel", "text"), Column("sent"), Column("replied"),
                 Column("reply_rate", "percent"), Column("bounced"), Column("bounce_rate", "percent"),
                 Column("opted_out"), Column("opt_out_rate", "percent"), Column("deals"),
                 Column("deal_rate", "percent")),
        rows=tuple(table), x="campaign_name", series=("reply_rate", "bounce_rate", "opt_out_rate", "deal_rate"))

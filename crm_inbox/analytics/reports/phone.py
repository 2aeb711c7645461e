"""The phone report: inbound calls per local hour and weekday (a heat map), the answer rate per week, missed
calls and how long call-backs took, and calls per team.

Which filter applies where:

- The period is the call's local start day (``started_date``); a missed call's call-back counts with the
  missed call, whenever it came.
- The category is the customer's: the call's company's, else its contact's company's, else the contact's own.
- The team is the team of the staff who took or made the call and filters only calls per team (and per
  person). The heat map, the answer rate and the call-backs describe how reachable the company is for its
  customers: a missed call has nobody who took it, so they ignore the team filter and then carry the note
  ``team_filter_not_applied``.
- Works council (:mod:`.staff_groups`): a filtered team with fewer active members than ``min_group_size``
  suppresses the staff-work figures (``team_too_small``); calls per team pool small teams (``other_teams``),
  and under a team filter show that team only where the breakdown of all teams shows it on its own row.
  Per-person figures only with ``policy.per_person``.
- Whatever the filters, the staff work in the answer rate (answered calls, hence also missed ones and the
  rate) and in the call-backs (called back or not, how fast) shows only when at least ``min_group_size``
  people stand behind it in the period (``few_people``) and in the week (``small_rows``); the inbound and the
  missed calls (the customers' demand) always show. The people behind answered calls: who took them; behind
  a call-back: who made the outbound call at ``called_back_at``, else the assignee of the missed-call reminder
  done then. Calls per team need that many people who took or made calls (staff_groups.protect_groups). The
  heat map of inbound calls is the customers' demand and always shows. With fewer staff than the minimum in
  all, the staff-work values never show (intended).

Call-back minutes: median and p90 by linear interpolation (DuckDB ``quantile_cont``), rounded to 0.1 min.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import duckdb

from crm_inbox.analytics.model import ChartKind, Column, Figure, Filters, Report, StaffPolicy
from crm_inbox.analytics.reports._sql import (
    PEOPLE,
    TEAM_FILTER_NOT_APPLIED,
    WEEKS,
    category_condition,
    guard_people,
    parameters,
    query,
    split_people,
    suppressed,
    team_condition,
)
from crm_inbox.analytics.reports.staff_groups import TEAM_TOO_SMALL, protect_groups, team_filter_blocked

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # column keys of the heat map, ISO order


# Under a category filter, the period's calls of that category, found once per report (a TEMP table of the
# report's own cursor, dropped at its end): the category is the customer's, two joins per call that cost more
# than the rest of a figure, and every figure reads the same calls.
CALLS_TABLE = "report_calls"


def phone_report(con: duckdb.DuckDBPyConnection, filters: Filters, policy: StaffPolicy) -> Report:
    values = parameters(filters)
    blocked = team_filter_blocked(con, filters, policy)
    customer_notes = (TEAM_FILTER_NOT_APPLIED,) if filters.team is not None else ()
    if filters.category is not None:
        query(con, f"""
            CREATE OR REPLACE TEMP TABLE {CALLS_TABLE} AS SELECT c.* FROM fact_call c
            LEFT JOIN dim_contact ct ON ct.contact_id = c.contact_id
            LEFT JOIN dim_company co ON co.company_id = coalesce(c.company_id, ct.company_id)
            WHERE c.started_date >= $start AND c.started_date < $end
              AND {category_condition("coalesce(co.category, ct.category)", filters)}""", values)
    try:
        figures = [
            _heatmap(con, filters, values, customer_notes),
            _answer_rate(con, filters, values, policy, customer_notes),
            _missed_callbacks(con, filters, values, policy, customer_notes),
            _by_team(con, filters, values, policy, blocked),
        ]
        if policy.per_person:
            figures.append(_by_staff(con, filters, values, blocked))
    finally:
        con.execute(f"DROP TABLE IF EXISTS temp.{CALLS_TABLE}")
    return Report(name="phone", filters=filters, figures=tuple(figures))


def _calls(filters: Filters, *, staff_work: bool) -> str:
    """The calls of the period (category filter: the customer's, :data:`CALLS_TABLE` then holds them) with the
    team of who took or made them when ``staff_work`` (the team filter then applies)."""
    conditions = ["c.started_date >= $start", "c.started_date < $end"]
    joins: list[str] = []
    source = "fact_call" if filters.category is None else CALLS_TABLE
    columns = "c.*"
    if staff_work:
        joins.append("LEFT JOIN dim_staff s ON s.staff_id = c.staff_id")
        conditions.append(team_condition("s.team", filters))
        columns = "c.*, s.team, s.name AS staff_name"
    return f"""SELECT {columns} FROM {source} c {' '.join(joins)} WHERE {' AND '.join(conditions)}"""


def _heatmap(con: duckdb.DuckDBPyConnection, filters: Filters, values: dict[str, Any],
             notes: tuple[str, ...]) -> Figure:
    # All 24 hours: calls at night are shown, not cut off at business hours.
    cells = ", ".join(f"count(c.call_id) FILTER (WHERE c.local_weekday = {i})" for i in range(1, 8))
    rows = query(con, f"""
        WITH calls AS ({_calls(filters, staff_work=False)} AND c.direction = 'in'),
        hours AS (SELECT unnest(range(24)) AS hour)
        SELECT hours.hour, {cells}
        FROM hours LEFT JOIN calls c ON c.local_hour = hours.hour
        GROUP BY hours.hour ORDER BY hours.hour""", values)
    columns = (Column("hour", "text"), *(Column(day) for day in WEEKDAYS))
    return Figure(key="calls_heatmap", kind="heatmap", columns=columns, rows=tuple(rows), x="hour",
                  series=WEEKDAYS, notes=notes)


def _answer_rate(con: duckdb.DuckDBPyConnection, filters: Filters, values: dict[str, Any], policy: StaffPolicy,
                 notes: tuple[str, ...]) -> Figure:
    rows = query(con, f"""
        WITH {WEEKS},
        calls AS ({_calls(filters, staff_work=False)} AND c.direction = 'in'),
        per_week AS (SELECT date_trunc('week', started_date)::DATE AS week, count(*) AS inbound,
                            count(*) FILTER (WHERE answered) AS answered, count(*) FILTER (WHERE missed) AS missed,
                            list(DISTINCT staff_id) FILTER (WHERE answered AND staff_id IS NOT NULL) AS people
                     FROM calls GROUP BY 1)
        SELECT weeks.week, coalesce(inbound, 0), coalesce(answered, 0), coalesce(missed, 0),
               round(100.0 * answered / inbound, 1), people
        FROM weeks LEFT JOIN per_week USING (week) ORDER BY weeks.week""", values)
    rows, people = split_people(rows)
    columns = (Column("week", "week"), Column("inbound_calls"), Column("answered"), Column("missed"),
               Column("answer_rate", "percent"))
    figure = Figure(key="answer_rate", kind="line", columns=columns, rows=tuple(rows), x="week",
                    series=("answer_rate",), notes=notes)
    return guard_people(figure, people, policy, customer_columns=(1,))  # inbound calls: the customers' demand


def _missed_callbacks(con: duckdb.DuckDBPyConnection, filters: Filters, values: dict[str, Any], policy: StaffPolicy,
                      notes: tuple[str, ...]) -> Figure:
    rows = query(con, f"""
        WITH {WEEKS},
        missed_calls AS ({_calls(filters, staff_work=False)} AND c.missed),
        -- who called back: the outbound call at that time, else the missed-call reminder's assignee
        missed AS (
            SELECT m.*, coalesce(
                (SELECT min(o.staff_id) FROM fact_call o
                 WHERE o.direction = 'out' AND o.started_at = m.called_back_at),
                (SELECT min(r.assignee_id) FROM fact_reminder r
                 WHERE r.call_id = m.call_id AND r.completed_at = m.called_back_at)) AS caller
            FROM missed_calls m),
        per_week AS (SELECT date_trunc('week', started_date)::DATE AS week, count(*) AS missed,
                            count(called_back_at) AS called_back,
                            quantile_cont(callback_minutes, 0.5) AS median, quantile_cont(callback_minutes, 0.9) AS p90,
                            {PEOPLE.format("caller")} AS people
                     FROM missed GROUP BY 1)
        SELECT weeks.week, coalesce(missed, 0), coalesce(called_back, 0), coalesce(missed - called_back, 0),
               round(100.0 * called_back / missed, 1), round(median, 1), round(p90, 1), people
        FROM weeks LEFT JOIN per_week USING (week) ORDER BY weeks.week""", values)
    rows, people = split_people(rows)
    columns = (Column("week", "week"), Column("missed"), Column("called_back"), Column("not_called_back"),
               Column("called_back_share", "percent"), Column("median_callback_minutes", "minutes"),
               Column("p90_callback_minutes", "minutes"))
    figure = Figure(key="missed_callbacks", kind="stacked_bar", columns=columns, rows=tuple(rows), x="week",
                    series=("called_back", "not_called_back"), notes=notes)
    return guard_people(figure, people, policy, customer_columns=(1,))  # missed calls: the customers' demand


def _by_team(con: duckdb.DuckDBPyConnection, filters: Filters, values: dict[str, Any], policy: StaffPolicy,
             blocked: bool) -> Figure:
    columns = (Column("team", "text"), Column("answered_calls"), Column("outbound_calls"))
    kind: ChartKind = "hbar"
    x, series = "team", ("answered_calls", "outbound_calls")
    if blocked:
        return suppressed("calls_by_team", kind, columns, TEAM_TOO_SMALL, x, series)
    # Counts add up, so small teams are pooled by summing their rows. Every team's calls, also under a team
    # filter: whether the team shows depends on the others.
    per_team = query(con, f"""
        WITH calls AS ({_calls(replace(filters, team=None), staff_work=True)} AND c.staff_id IS NOT NULL
                       AND ((c.direction = 'in' AND c.answered) OR c.direction = 'out'))
        SELECT team, count(DISTINCT staff_id), count(*) FILTER (WHERE direction = 'in'),
               count(*) FILTER (WHERE direction = 'out')
        FROM calls GROUP BY team ORDER BY team""", values)
    rows, notes = protect_groups([(team, int(n), (a, o)) for team, n, a, o in per_team], policy.min_group_size,
                                 only_team=filters.team)
    return Figure(key="calls_by_team", kind=kind, columns=columns,
                  rows=tuple((label, *vals) for label, vals in rows), x=x, series=series, notes=notes,
                  suppressed=not rows and bool(notes))  # all withheld: the page says so, not "nothing happened"


def _by_staff(con: duckdb.DuckDBPyConnection, filters: Filters, values: dict[str, Any], blocked: bool) -> Figure:
    """Per person (only with per-person reports switched on, which needs a works agreement)."""
    columns = (Column("staff", "text"), Column("answered_calls"), Column("outbound_calls"))
    kind: ChartKind = "hbar"
    x, series = "staff", ("answered_calls", "outbound_calls")
    if blocked:
        return suppressed("calls_by_staff", kind, columns, TEAM_TOO_SMALL, x, series)
    rows = query(con, f"""
        WITH calls AS ({_calls(filters, staff_work=True)} AND c.staff_id IS NOT NULL
                       AND ((c.direction = 'in' AND c.answered) OR c.direction = 'out'))
        SELECT coalesce(staff_name, '#' || staff_id), count(*) FILTER (WHERE direction = 'in'),
               count(*) FILTER (WHERE direction = 'out')
        FROM calls GROUP BY staff_id, staff_name ORDER BY 2 DESC, 1""", values)
    return Figure(key="calls_by_staff", kind=kind, columns=columns, rows=tuple(rows), x=x, series=series)

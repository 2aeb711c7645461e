"""The service report: tickets opened and closed per week, the backlog, first-response and resolution times
(median, p90) by channel and by category, the reopen rate, and tickets per team.

Which filter applies where:

- The period is the event's day: a ticket's opening day for opened tickets and first responses, its (last)
  closing day for closed tickets, resolution times and reopens. The backlog counts tickets open at the end of
  each week of the period (opened before, not solved or closed by then).
- The category is the customer's (``fact_ticket.category``) in every figure.
- The team is the assignee's team and filters only figures about staff work: first response, resolution,
  reopen rate, tickets per team (and per person). Tickets opened and closed per week and the backlog describe
  the customers' demand on the whole service and ignore the team filter; they then carry the note
  ``team_filter_not_applied`` so the page says so.
- Works council (:mod:`.staff_groups`): a filtered team with fewer active members than ``min_group_size``
  suppresses every staff-work figure (``team_too_small``). Otherwise a team-filtered staff-work figure shows
  only when tickets per team on the same tickets (all teams, same period, category and figure) would show that
  team on its own row (``small_groups`` else): the company's figure minus the team's must not reveal small
  teams. Tickets per team pool small teams (``other_teams``). Per-person figures only with
  ``policy.per_person``.
- Whatever the filters, first response, resolution and reopen rate show only when at least ``min_group_size``
  people stand behind the filtered tickets (``few_people``), and each channel or category row only when that
  row has so many (``small_rows``: the row is shown without values; see
  :func:`.staff_groups.rows_shown`). The people behind a ticket: its assignee, else (never assigned) whoever
  gave the first response (the ``staff_reply`` event at ``first_response_at``); tickets nobody worked on are
  behind nobody. With fewer staff than the minimum in all, these figures never show (intended).

Times are hours (medians and p90 by linear interpolation, DuckDB ``quantile_cont``), rounded to 0.01 h.
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
    team_rows,
    team_sizes,
)
from crm_inbox.analytics.reports.staff_groups import SMALL_GROUPS, TEAM_TOO_SMALL, team_filter_blocked, team_shown

CLOSED_STATES = "('solved', 'closed')"  # a ticket reopened after its last close is open again
# Who gave the first response to the period's tickets nobody was assigned (looked up once per report: the
# ticket events are the largest table the report reads).
RESPONDERS = """
    SELECT e.ticket_id, min(e.staff_id) FROM fact_ticket_event e
    SEMI JOIN (SELECT ticket_id, first_response_at FROM fact_ticket
               WHERE assignee_id IS NULL AND first_response_at IS NOT NULL
                 AND ((opened_date >= $start AND opened_date < $end)
                      OR (closed_date >= $start AND closed_date < $end))) u
      ON u.ticket_id = e.ticket_id AND u.first_response_at = e.occurred_at
    WHERE e.kind = 'staff_reply' AND e.staff_id IS NOT NULL
    GROUP BY e.ticket_id"""


def service_report(con: duckdb.DuckDBPyConnection, filters: Filters, policy: StaffPolicy) -> Report:
    values: dict[str, Any] = parameters(filters)
    responders = query(con, RESPONDERS, values)
    values["responder_tickets"] = [ticket for ticket, _ in responders]
    values["responder_staff"] = [staff for _, staff in responders]
    blocked = team_filter_blocked(con, filters, policy)
    customer_notes = (TEAM_FILTER_NOT_APPLIED,) if filters.team is not None else ()
    figures = [
        _tickets_per_week(con, filters, values, customer_notes),
        _backlog(con, filters, values, customer_notes),
    ]
    sizes = _TeamSizes(con, values)
    for measure in ("first_response", "resolution"):
        figures.extend(_times(con, filters, values, policy, blocked, measure, sizes))
    figures.append(_reopen_rate(con, filters, values, policy, blocked, sizes))
    figures.append(_by_team(con, filters, values, policy, blocked))
    if policy.per_person:
        figures.append(_by_staff(con, filters, values, blocked))
    return Report(name="service", filters=filters, figures=tuple(figures))


def _tickets(filters: Filters, day: str, *, staff_work: bool, closed: bool = False) -> str:
    """The tickets of the period by ``day`` (opened_date or closed_date), with the assignee's team."""
    conditions = [f"t.{day} >= $start", f"t.{day} < $end", category_condition("t.category", filters)]
    if closed:
        conditions.append(f"t.state IN {CLOSED_STATES}")
    if staff_work:
        conditions.append(team_condition("s.team", filters))
    # the people behind the tickets (the assignee, else the first responder) only where a figure counts them
    # (the team breakdown counts assignees)
    person, responders = "", ""
    if staff_work:
        person = ", coalesce(t.assignee_id, fr.staff_id) AS person"
        responders = """LEFT JOIN (SELECT unnest($responder_tickets::BIGINT[]) AS ticket_id,
                                          unnest($responder_staff::BIGINT[]) AS staff_id) fr
                            ON fr.ticket_id = t.ticket_id"""
    return f"""SELECT t.*, s.team, s.name AS staff_name{person}
        FROM fact_ticket t LEFT JOIN dim_staff s ON s.staff_id = t.assignee_id {responders}
        WHERE {' AND '.join(conditions)}"""


def _tickets_per_week(con: duckdb.DuckDBPyConnection, filters: Filters, values: dict[str, Any],
                      notes: tuple[str, ...]) -> Figure:
    category = category_condition("category", filters)
    rows = query(con, f"""
        WITH {WEEKS},
        opened AS (SELECT date_trunc('week', opened_date)::DATE AS week, count(*) AS n FROM fact_ticket
                   WHERE opened_date >= $start AND opened_date < $end AND {category} GROUP BY 1),
        closed AS (SELECT date_trunc('week', closed_date)::DATE AS week, count(*) AS n FROM fact_ticket
                   WHERE closed_date >= $start AND closed_date < $end AND state IN {CLOSED_STATES}
                     AND {category} GROUP BY 1)
        SELECT weeks.week, coalesce(opened.n, 0), coalesce(closed.n, 0)
        FROM weeks LEFT JOIN opened USING (week) LEFT JOIN closed USING (week)
        ORDER BY weeks.week""", values)
    return Figure(key="tickets_per_week", kind="bar",
                  columns=(Column("week", "week"), Column("opened"), Column("closed")),
                  rows=tuple(rows), x="week", series=("opened", "closed"), notes=notes)


def _backlog(con: duckdb.DuckDBPyConnection, filters: Filters, values: dict[str, Any],
             notes: tuple[str, ...]) -> Figure:
    # Open at a week's end = opened before it minus solved/closed before it; counted over days, not tickets,
    # so the statement stays small however many tickets there are.
    category = category_condition("category", filters)
    rows = query(con, f"""
        WITH {WEEKS},
        ends AS (SELECT week, least(week + 7, $end::DATE) AS week_end FROM weeks),
        opened AS (SELECT opened_date AS day, count(*) AS n FROM fact_ticket WHERE {category} GROUP BY 1),
        closed AS (SELECT closed_date AS day, count(*) AS n FROM fact_ticket
                   WHERE closed_date IS NOT NULL AND state IN {CLOSED_STATES} AND {category} GROUP BY 1)
        SELECT ends.week,
               coalesce((SELECT sum(n) FROM opened WHERE day < ends.week_end), 0)
             - coalesce((SELECT sum(n) FROM closed WHERE day < ends.week_end), 0)
        FROM ends ORDER BY ends.week""", values)
    return Figure(key="backlog", kind="line", columns=(Column("week", "week"), Column("open_tickets")),
                  rows=tuple((week, int(n)) for week, n in rows), x="week", series=("open_tickets",), notes=notes)


def _times(con: duckdb.DuckDBPyConnection, filters: Filters, values: dict[str, Any], policy: StaffPolicy,
           blocked: bool, measure: str, sizes: _TeamSizes) -> tuple[Figure, Figure]:
    """The ``measure`` (first_response, resolution) by channel and by category: one statement for both (the
    same tickets grouped both ways and in all), each figure its rows and the total "all"."""
    figures: list[Figure] = []
    if measure == "first_response":
        day, closed = "opened_date", False
        minutes = "first_response_minutes"
        extra = f"count(*) FILTER (WHERE {minutes} IS NULL),"
    else:
        day, closed = "closed_date", True
        minutes = "resolution_minutes"
        extra = ""
    kind: ChartKind = "bar"
    rows: list[tuple[Any, ...]] = []
    if not blocked:
        rows = query(con, f"""
            WITH facts AS ({_tickets(filters, day, staff_work=True, closed=closed)})
            SELECT grouping(channel), grouping(category),
                   CASE WHEN grouping(channel) = 0 THEN coalesce(channel, 'none')
                        WHEN grouping(category) = 0 THEN coalesce(category, 'none') ELSE 'all' END AS label,
                   count(*), {extra}
                   round(quantile_cont({minutes}, 0.5) / 60, 2), round(quantile_cont({minutes}, 0.9) / 60, 2),
                   {PEOPLE.format("person")}
            FROM facts GROUP BY GROUPING SETS ((channel), (category), ())
            ORDER BY label""", values)
    total = [r[2:] for r in rows if r[0] == 1 and r[1] == 1]
    for dimension, grouped in (("channel", 0), ("category", 1)):
        key = f"{measure}_by_{dimension}"
        columns: tuple[Column, ...]
        if measure == "first_response":
            columns = (Column(dimension, "text"), Column("tickets"), Column("without_response"),
                       Column("median_hours", "hours"), Column("p90_hours", "hours"))
        else:
            columns = (Column(dimension, "text"), Column("tickets"), Column("median_hours", "hours"),
                       Column("p90_hours", "hours"))
        x, series = dimension, ("median_hours", "p90_hours")
        if blocked:
            figures.append(suppressed(key, kind, columns, TEAM_TOO_SMALL, x, series))
            continue
        own = [r[2:] for r in rows if r[grouped] == 0]
        figures.append(_protected(sizes, _tickets(filters, day, staff_work=False, closed=closed), key, kind, columns,
                                  x, series, own + total, filters, policy))
    return figures[0], figures[1]


class _TeamSizes:
    """The distinct assignees per team behind a set of every team's tickets (``all_teams``), each set counted
    once per report: figures on the same tickets (resolution and reopen rate) share it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, values: dict[str, Any]) -> None:
        self.con = con
        self.values = values
        self._known: dict[str, dict[str | None, int]] = {}

    def of(self, all_teams: str) -> dict[str | None, int]:
        if all_teams not in self._known:
            self._known[all_teams] = team_sizes(self.con, all_teams, "assignee_id", self.values)
        return self._known[all_teams]


def _protected(sizes: _TeamSizes, all_teams: str, key: str, kind: ChartKind,
               columns: tuple[Column, ...], x: str, series: tuple[str, ...], rows: list[tuple[Any, ...]],
               filters: Filters, policy: StaffPolicy) -> Figure:
    """A staff-work figure from ``rows`` (the last is the total "all"; each ends with the people behind it) as
    it may be shown: no rows when nothing happened; under a team filter suppressed unless the team breakdown
    of the same facts (``all_teams``: the facts of every team) shows the team on its own row
    (staff_groups.team_shown); then the people rule for the figure and each row (_sql.guard_people)."""
    table, people = split_people(rows)
    figure = Figure(key=key, kind=kind, columns=columns, rows=tuple(table), x=x, series=series)
    if not table or table[-1][1] == 0:  # nothing in the period: no "all" row of zeros
        return replace(figure, rows=())
    if filters.team is not None and not team_shown(sizes.of(all_teams), filters.team, policy.min_group_size):
        return suppressed(key, kind, columns, SMALL_GROUPS, x, series)
    return guard_people(figure, people, policy, total="all")


def _reopen_rate(con: duckdb.DuckDBPyConnection, filters: Filters, values: dict[str, Any], policy: StaffPolicy,
                 blocked: bool, sizes: _TeamSizes) -> Figure:
    columns = (Column("channel", "text"), Column("closed"), Column("reopened"), Column("reopen_rate", "percent"))
    kind: ChartKind = "bar"
    x, series = "channel", ("reopen_rate",)
    if blocked:
        return suppressed("reopen_rate", kind, columns, TEAM_TOO_SMALL, x, series)
    rows = query(con, f"""
        WITH facts AS ({_tickets(filters, "closed_date", staff_work=True, closed=True)})
        SELECT CASE WHEN grouping(channel) = 1 THEN 'all' ELSE channel END AS label,
               count(*), count(*) FILTER (WHERE reopen_count > 0),
               round(100.0 * count(*) FILTER (WHERE reopen_count > 0) / count(*), 1), {PEOPLE.format("person")}
        FROM facts GROUP BY GROUPING SETS ((channel), ())
        ORDER BY grouping(channel), label""", values)
    return _protected(sizes, _tickets(filters, "closed_date", staff_work=False, closed=True), "reopen_rate",
                      kind, columns, x, series, rows, filters, policy)


def _by_team(con: duckdb.DuckDBPyConnection, filters: Filters, values: dict[str, Any], policy: StaffPolicy,
             blocked: bool) -> Figure:
    columns = (Column("team", "text"), Column("tickets"), Column("median_first_response_hours", "hours"))
    kind: ChartKind = "hbar"
    x, series = "team", ("tickets",)
    if blocked:
        return suppressed("tickets_by_team", kind, columns, TEAM_TOO_SMALL, x, series)
    # Every team's tickets, also under a team filter: whether the team shows depends on the others.
    rows, notes = team_rows(con, _tickets(filters, "opened_date", staff_work=False), "assignee_id",
                            "count(*), round(quantile_cont(first_response_minutes, 0.5) / 60, 2)", values, policy,
                            only_team=filters.team)
    return Figure(key="tickets_by_team", kind=kind, columns=columns, rows=tuple(rows), x=x, series=series, notes=notes,
                  suppressed=not rows and bool(notes))  # all withheld: the page says so, not "nothing happened"


def _by_staff(con: duckdb.DuckDBPyConnection, filters: Filters, values: dict[str, Any], blocked: bool) -> Figure:
    """Per person (only with per-person reports switched on, which needs a works agreement)."""
    columns = (Column("staff", "text"), Column("tickets"), Column("median_first_response_hours", "hours"))
    kind: ChartKind = "hbar"
    x, series = "staff", ("tickets",)
    if blocked:
        return suppressed("tickets_by_staff", kind, columns, TEAM_TOO_SMALL, x, series)
    rows = query(con, f"""
        WITH facts AS ({_tickets(filters, "opened_date", staff_work=True)})
        SELECT coalesce(staff_name, '#' || assignee_id), count(*),
               round(quantile_cont(first_response_minutes, 0.5) / 60, 2)
        FROM facts WHERE assignee_id IS NOT NULL
        GROUP BY assignee_id, staff_name ORDER BY 2 DESC, 1""", values)
    return Figure(key="tickets_by_staff", kind=kind, columns=columns, rows=tuple(rows), x=x, series=series)

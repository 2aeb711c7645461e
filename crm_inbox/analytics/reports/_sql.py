"""SQL pieces the report queries share: named parameters, the period's weeks, the category filter and the
team breakdown through the works-council rule. Set-based only: each figure is one or two statements."""

from __future__ import annotations

import re
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import duckdb

from crm_inbox.analytics.model import ChartKind, Column, Figure, Filters, StaffPolicy
from crm_inbox.analytics.reports.staff_groups import (
    FEW_PEOPLE,
    OTHER_TEAMS,
    SMALL_GROUPS,
    SMALL_ROWS,
    TEAM_TOO_SMALL,
    enough_people,
    group_plan,
    restrict_to_team,
    rows_shown,
)

TEAM_FILTER_NOT_APPLIED = "team_filter_not_applied"  # note: a customer figure, the team filter does not apply

_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")

# The period's weeks (ISO, starting Monday) as rows ``week``; the first may start before the period.
WEEKS = """weeks AS (
    SELECT CAST(unnest(generate_series(date_trunc('week', $start::DATE), $end::DATE - 1, INTERVAL 7 DAY)) AS DATE)
        AS week)"""


def query(con: duckdb.DuckDBPyConnection, sql: str, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` with the named ``$parameters`` it uses taken from ``values`` (DuckDB refuses extra ones)."""
    used = set(_PARAM.findall(sql))
    return con.execute(sql, {k: v for k, v in values.items() if k in used}).fetchall()


def parameters(filters: Filters) -> dict[str, Any]:
    return {"start": filters.start, "end": filters.end, "team": filters.team, "category": filters.category}


def category_condition(expr: str, filters: Filters) -> str:
    """The condition for the customer category filter on ``expr`` ("none": no category)."""
    if filters.category is None:
        return "TRUE"
    if filters.category == "none":
        return f"({expr}) IS NULL"
    return f"({expr}) = $category"


def team_condition(team_expr: str, filters: Filters) -> str:
    """The condition for the team filter on the team of the staff who did the work."""
    return "TRUE" if filters.team is None else f"({team_expr}) = $team"


def suppressed(key: str, kind: ChartKind, columns: Sequence[Column], note: str, x: str = "",
               series: tuple[str, ...] = ()) -> Figure:
    """A figure that may not be shown: no rows, the reason in its notes."""
    return Figure(key=key, kind=kind, columns=tuple(columns), rows=(), x=x, series=series, notes=(note,),
                  suppressed=True)


# The SELECT-list item giving the people (staff ids) behind a row: ``PEOPLE.format("owner_id")``.
PEOPLE = "list(DISTINCT {0}) FILTER (WHERE {0} IS NOT NULL)"


def guard_people(figure: Figure, people: Sequence[Collection[Hashable] | None], policy: StaffPolicy, *,
                 labels: int = 1, total: str | None = None, customer_columns: Collection[int] = ()) -> Figure:
    """A staff-work figure as the works-council rule lets it show (staff_groups.enough_people, rows_shown).

    ``people``: the distinct people behind each of ``figure.rows``. The first ``labels`` columns (the row's
    label) and ``customer_columns`` (customers' demand, about nobody's work) always show. Too few people behind
    the whole figure (but someone): suppressed (``few_people``), or, when it has customer columns, every row
    without its staff values. Else each row (but the ``total`` row, labelled so) per rows_shown
    (``small_rows``)."""
    if not figure.rows:
        return figure
    groups = [set(p or ()) for p in people]
    keep = set(range(labels)) | set(customer_columns)

    def blank(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(v if i in keep else None for i, v in enumerate(row))

    everyone = set().union(*groups)
    if everyone and not enough_people(len(everyone), policy):  # nobody behind it: about nobody's work
        if not customer_columns:
            return suppressed(figure.key, figure.kind, figure.columns, FEW_PEOPLE, figure.x, figure.series)
        return replace(figure, rows=tuple(blank(r) for r in figure.rows), notes=(*figure.notes, FEW_PEOPLE))
    parts = [i for i, r in enumerate(figure.rows) if total is None or r[0] != total]
    shown, notes = rows_shown([groups[i] for i in parts], policy)
    withheld = {i for i, ok in zip(parts, shown, strict=True) if not ok}
    if not withheld:
        return figure
    return replace(figure, rows=tuple(blank(r) if i in withheld else r for i, r in enumerate(figure.rows)),
                   notes=(*figure.notes, *notes))


def split_people(rows: Sequence[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], list[Any]]:
    """Rows whose last column is the :data:`PEOPLE` list: the rows without it, and the lists."""
    return [tuple(r[:-1]) for r in rows], [r[-1] for r in rows]


def team_sizes(con: duckdb.DuckDBPyConnection, facts: str, staff_column: str,
               values: Mapping[str, Any]) -> dict[str | None, int]:
    """The distinct staff behind each team's facts (``facts``: a SELECT with ``team`` and ``staff_column``)."""
    sizes = query(con, f"""
        WITH facts AS ({facts})
        SELECT team, count(DISTINCT {staff_column}) FROM facts WHERE {staff_column} IS NOT NULL GROUP BY team""",
                  values)
    return {team: int(n) for team, n in sizes}


def team_rows(con: duckdb.DuckDBPyConnection, facts: str, staff_column: str, aggregates: str,
              values: Mapping[str, Any], policy: StaffPolicy,
              only_team: str | None = None) -> tuple[list[tuple[Any, ...]], tuple[str, ...]]:
    """Figures per team under the works-council rule, for aggregates that cannot be added up (medians).

    ``facts``: a SELECT of the filtered facts with a ``team`` column and the staff id ``staff_column``;
    ``aggregates``: the SELECT list computed per shown group. First the people per team (distinct staff in
    the filtered facts), then :func:`group_plan`, then the aggregates grouped by the plan's labels: rows are
    (label, *aggregates), shown teams by name, the pooled :data:`OTHER_TEAMS` last.

    ``only_team`` (a team filter): ``facts`` must still hold every team's facts (the plan needs them all);
    only that team's own row is returned (see :func:`.staff_groups.restrict_to_team`)."""
    plan, notes = group_plan(team_sizes(con, facts, staff_column, values), policy.min_group_size)
    if not plan:
        return [], notes
    rows = query(con, f"""
        WITH facts AS ({facts}),
        plan AS (SELECT unnest($plan_teams::VARCHAR[]) AS team, unnest($plan_labels::VARCHAR[]) AS label)
        SELECT plan.label, {aggregates}
        FROM facts JOIN plan ON plan.team IS NOT DISTINCT FROM facts.team
        WHERE facts.{staff_column} IS NOT NULL
        GROUP BY plan.label
        ORDER BY plan.label = '{OTHER_TEAMS}', plan.label""",
                 {**values, "plan_teams": list(plan), "plan_labels": list(plan.values())})
    if only_team is not None:
        return restrict_to_team(rows, notes, only_team)
    return rows, notes


__all__ = [
    "FEW_PEOPLE", "OTHER_TEAMS", "PEOPLE", "SMALL_GROUPS", "SMALL_ROWS", "TEAM_FILTER_NOT_APPLIED", "TEAM_TOO_SMALL",
    "WEEKS", "category_condition", "guard_people", "parameters", "query", "split_people", "suppressed",
    "team_condition", "team_rows", "team_sizes",
]

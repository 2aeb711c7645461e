"""The sales report: pipeline by stage, weighted forecast per month, win rate, sales-cycle length, quote → order
conversion, lost reasons, and deals per team.

Every figure is about deals (opportunities) and so about the work of their owners: the team filter keeps the
deals whose owner is in that team. Works council rule (:mod:`~crm_inbox.analytics.reports.staff_groups`): a
team under ``[analytics] min_group_size`` active members suppresses every figure; otherwise a team-filtered
figure shows only when the breakdown by team of the same deals (all teams) shows that team on its own row, so
that no small team can be read as the company's figure minus the filtered team's. The category filter is the
deal's customer category (``fact_opportunity.category``: the company's, else the contact's).

Whatever the filters (category, period, team or none), a figure shows only when at least ``min_group_size``
distinct owners stand behind its deals (``few_people``), and each row (a stage, a month, a source, a lost
reason, a quote step) only when that row's deals have so many owners (``small_rows``: the row keeps its label,
its values are withheld; see :func:`~crm_inbox.analytics.reports.staff_groups.rows_shown`). The people behind
a deal, and behind a quote, are the deal's owner. With fewer owners than the minimum in all, the sales figures
never show (intended); ``policy.per_person`` lifts the rule.

Periods: the pipeline is the open deals now (the store's snapshot), the forecast the next 12 months from the
period's first month or the snapshot's, whichever is later; win rate, sales cycle and lost reasons count deals
closed in the period, quote conversion quotes first sent in the period (their local day, see
:func:`quote_conversion`).

Money stays ``Decimal`` from the store to the rows; rates are percentages (float, one place).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from typing import Any

import duckdb

from crm_inbox.analytics.model import Column, Figure, Filters, Report, StaffPolicy
from crm_inbox.analytics.reports._sql import PEOPLE, category_condition, guard_people, parameters, query, split_people
from crm_inbox.analytics.reports.rates import percent
from crm_inbox.analytics.reports.staff_groups import (
    SMALL_GROUPS,
    TEAM_TOO_SMALL,
    protect_groups,
    team_filter_blocked,
    team_shown,
)

_OWNERS = PEOPLE.format("owner_id")  # the owners behind a row (the people of the works-council rule)
FORECAST_MONTHS = 12
TOP_LOST_REASONS = 10
OTHER_REASONS = "other_reasons"  # the row pooling every lost reason after the top ten
NO_REASON = "no_reason"  # lost deals nobody gave a reason for
ALL_SOURCES = "all_sources"  # the total row of the figures by source
# A note on the forecast: open deals whose expected close lies before its first month (or was never set).
FORECAST_OVERDUE = "forecast_overdue"
QUOTE_STEPS = ("quotes_sent", "quotes_accepted", "quotes_ordered")

# Weighted amount: amount × probability in percent, kept DECIMAL (× 0.01 instead of a division, which DuckDB
# does in DOUBLE), rounded to cents once per sum.
WEIGHTED = "CAST(COALESCE(SUM(amount * probability * 0.01), 0) AS DECIMAL(18,2))"
AMOUNT = "CAST(COALESCE(SUM(amount), 0) AS DECIMAL(18,2))"


def sales_report(con: duckdb.DuckDBPyConnection, filters: Filters, policy: StaffPolicy) -> Report:
    """The sales figures for ``filters`` on the store ``con`` (read-only)."""
    query = _DealQuery(con, filters, policy)
    figures = [
        pipeline_by_stage(query),
        forecast(query),
        win_rate_by_month(query),
        win_rate_by_source(query),
        sales_cycle(query),
        quote_conversion(query),
        lost_reasons(query),
        by_team(query),
    ]
    if policy.per_person:
        figures.append(by_owner(query))
    if team_filter_blocked(con, filters, policy):
        # The figures' shapes stay (headings, CSV headers); none of the small team's values leave.
        figures = [_suppressed(f, TEAM_TOO_SMALL) for f in figures]
    return Report(name="sales", filters=filters, figures=tuple(figures))


class _DealQuery:
    """Runs SQL over ``deals``: the opportunities the category and team filters leave, with the owner's team
    (``owner_team``); and decides whether a team-filtered figure may show."""

    def __init__(self, con: duckdb.DuckDBPyConnection, filters: Filters, policy: StaffPolicy) -> None:
        self.con = con
        self.filters = filters
        self.policy = policy
        self.params = parameters(filters)
        self._team_sizes: dict[str, dict[str | None, int]] | None = None

    def _deals(self, all_teams: bool) -> str:
        team = "AND s.team = $team" if self.filters.team is not None and not all_teams else ""
        return f"""deals AS (
            SELECT o.*, s.team AS owner_team FROM fact_opportunity o
            LEFT JOIN dim_staff s ON s.staff_id = o.owner_id
            WHERE {category_condition("o.category", self.filters)} {team})"""

    def rows(self, sql: str, *, all_teams: bool = False, **extra: object) -> list[tuple[Any, ...]]:
        """``sql`` (after ``WITH deals AS (…)``, it may add CTEs) with the filter parameters it names;
        ``all_teams``: every team's deals, whatever the team filter."""
        return query(self.con, f"WITH {self._deals(all_teams)}\n{sql}", {**self.params, **extra})

    def protect(self, figure: Figure, facts: str, *, people: Sequence[Collection[Hashable] | None],
                total: str | None = None) -> Figure:
        """``figure`` as it may be shown: under the team filter suppressed (note "small_groups") unless the
        same facts of every team (``facts``: a key of :data:`_TEAM_FACTS`, or "quotes_sent"), split by owner's
        team under the works-council rule, give the filtered team a row of its own; then, whatever the
        filters, the owners behind the figure and each row (``people``, the ``total`` row by its label) per
        _sql.guard_people."""
        if self.filters.team is not None and not team_shown(self.team_sizes()[facts], self.filters.team,
                                                            self.policy.min_group_size):
            return _suppressed(figure, SMALL_GROUPS)
        return guard_people(figure, people, self.policy, total=total)

    def team_sizes(self) -> dict[str, dict[str | None, int]]:
        """The distinct owners per team (every team's deals) behind each of the figures' facts, all in one
        statement, once per report (asked figure by figure they were seven statements under a team filter).
        Teams without an owner in a set of facts are not in its mapping."""
        if self._team_sizes is None:
            keys = (*_TEAM_FACTS, "quotes_sent")
            counts = ", ".join(f"count(DISTINCT owner_id) FILTER (WHERE {c})" for c in _TEAM_FACTS.values())
            rows = self.rows(f"""{_QUOTES_SENT}
                SELECT owner_team, {counts}, NULL FROM deals WHERE owner_id IS NOT NULL GROUP BY owner_team
                UNION ALL
                SELECT owner_team, {", ".join("NULL" for _ in _TEAM_FACTS)}, count(DISTINCT owner_id) FROM sent
                WHERE owner_id IS NOT NULL GROUP BY owner_team""", all_teams=True)
            self._team_sizes = {key: {} for key in keys}
            for team, *sizes in rows:
                for key, n in zip(keys, sizes, strict=True):
                    if n:
                        self._team_sizes[key][team] = int(n)
        return self._team_sizes


def pipeline_by_stage(q: _DealQuery) -> Figure:
    """Open deals now per stage: count, amount and weighted amount. The store knows stages by name only, so
    they are ordered by their typical (average) probability, as ``[sales] stages`` orders them."""
    rows, people = split_people(q.rows(f"""
        SELECT stage, count(*), {AMOUNT}, {WEIGHTED}, {_OWNERS} FROM deals WHERE outcome = 'open'
        GROUP BY stage ORDER BY avg(probability), stage"""))
    figure = Figure(
        key="pipeline_by_stage", kind="bar",
        columns=(Column("stage", "text"), Column("deals"), Column("amount", "eur"), Column("weighted_amount", "eur")),
        rows=tuple((stage, int(n), amount, weighted) for stage, n, amount, weighted in rows),
        x="stage", series=("amount", "weighted_amount"))
    return q.protect(figure, "open", people=people)


def forecast(q: _DealQuery) -> Figure:
    """Weighted amount of open deals per month of their expected close, for the 12 months from the period's
    first month, or from the snapshot's month when the period began earlier (a forecast looks ahead: the open
    deals are today's; months without deals show zeros). Deals expected earlier or without a date are not in
    it: a note says so."""
    snapshot = q.rows("SELECT CAST(max(refreshed_at) AS DATE) FROM meta_refresh")[0][0]
    first = max(q.filters.start, snapshot or q.filters.start).replace(day=1)
    rows, people = split_people(q.rows(f"""
        , months AS (SELECT CAST(m AS DATE) AS month FROM range($first, $first + INTERVAL {FORECAST_MONTHS} MONTH,
                                                              INTERVAL 1 MONTH) t(m)),
        open_deals AS (SELECT date_trunc('month', close_date) AS month, amount, probability, owner_id FROM deals
                       WHERE outcome = 'open' AND close_date >= $first)
        SELECT months.month, count(open_deals.month), {AMOUNT}, {WEIGHTED}, {_OWNERS}
        FROM months LEFT JOIN open_deals ON open_deals.month = months.month
        GROUP BY months.month ORDER BY months.month""", first=first))
    overdue = q.rows("SELECT count(*) FROM deals WHERE outcome = 'open' AND (close_date IS NULL "
                     "OR close_date < $first)", first=first)[0][0]
    figure = Figure(
        key="forecast", kind="bar",
        columns=(Column("month", "month"), Column("deals"), Column("amount", "eur"), Column("weighted_amount", "eur")),
        rows=tuple((month, int(n), amount, weighted) for month, n, amount, weighted in rows),
        x="month", series=("weighted_amount",), notes=(FORECAST_OVERDUE,) if overdue else ())
    return q.protect(figure, "open", people=people)


_CLOSED_IN_PERIOD = "outcome IN ('won', 'lost') AND closed_date >= $start AND closed_date < $end"
# The deals behind the figures, whose owners per team decide whether a team-filtered figure shows
# (_DealQuery.protect; the quotes sent are the other such facts): open now, closed, won and lost in the period.
_TEAM_FACTS = {
    "open": "outcome = 'open'",
    "closed": _CLOSED_IN_PERIOD,
    "won": f"outcome = 'won' AND closed_at IS NOT NULL AND {_CLOSED_IN_PERIOD}",
    "lost": f"outcome = 'lost' AND {_CLOSED_IN_PERIOD}",
}


def win_rate_by_month(q: _DealQuery) -> Figure:
    """Won ÷ (won + lost) of the deals closed in the period, per month (every month of the period)."""
    rows = q.rows(f"""
        , months AS (SELECT CAST(m AS DATE) AS month FROM range(date_trunc('month', $start), $end,
                                                              INTERVAL 1 MONTH) t(m)),
        closed AS (SELECT date_trunc('month', closed_date) AS month, outcome, owner_id FROM deals
                   WHERE {_CLOSED_IN_PERIOD})
        SELECT months.month, count(*) FILTER (WHERE outcome = 'won'), count(*) FILTER (WHERE outcome = 'lost'),
               {_OWNERS}
        FROM months LEFT JOIN closed ON closed.month = months.month
        GROUP BY months.month ORDER BY months.month""")
    rows, people = split_people(rows)
    figure = Figure(
        key="win_rate_by_month", kind="line",
        columns=(Column("month", "month"), Column("won"), Column("lost"), Column("win_rate", "percent")),
        rows=tuple((month, int(won), int(lost), percent(won, won + lost)) for month, won, lost in rows),
        x="month", series=("win_rate",))
    return q.protect(figure, "closed", people=people)


def win_rate_by_source(q: _DealQuery) -> Figure:
    """The win rate of the deals closed in the period by where they came from, and over all sources."""
    rows = q.rows(f"""
        SELECT source, count(*) FILTER (WHERE outcome = 'won'), count(*) FILTER (WHERE outcome = 'lost'),
               {_OWNERS}
        FROM deals WHERE {_CLOSED_IN_PERIOD} GROUP BY source ORDER BY source""")
    rows, people = split_people(rows)
    total_won, total_lost = sum(r[1] for r in rows), sum(r[2] for r in rows)
    table = [(source, int(won), int(lost), percent(won, won + lost)) for source, won, lost in rows]
    if table:
        table.append((ALL_SOURCES, int(total_won), int(total_lost), percent(total_won, total_won + total_lost)))
        people.append([owner for owners in people for owner in owners or ()])
    figure = Figure(
        key="win_rate_by_source", kind="bar",
        columns=(Column("source", "text"), Column("won"), Column("lost"), Column("win_rate", "percent")),
        rows=tuple(table), x="source", series=("win_rate",))
    return q.protect(figure, "closed", people=people, total=ALL_SOURCES)


def sales_cycle(q: _DealQuery) -> Figure:
    """Days from a deal's creation to its win, median and 90th percentile (linear interpolation between the
    nearest deals, as ``quantile_cont``), of the deals won in the period: by source and over all sources."""
    won = f"""
        , won AS (SELECT source, epoch(closed_at - created_at) / 86400.0 AS days, owner_team, owner_id FROM deals
                  WHERE {_TEAM_FACTS["won"]})"""
    rows = q.rows(f"""{won}
        SELECT source, count(*), median(days), quantile_cont(days, 0.9), {_OWNERS} FROM won
        GROUP BY GROUPING SETS ((source), ()) ORDER BY source NULLS LAST""")
    rows = [r for r in rows if r[1]]
    people = [r[-1] for r in rows]
    figure = Figure(
        key="sales_cycle", kind="bar",
        columns=(Column("source", "text"), Column("won"), Column("median_days", "days"), Column("p90_days", "days")),
        rows=tuple((ALL_SOURCES if source is None else source, int(n), _days(median), _days(p90))
                   for source, n, median, p90, _ in rows),
        x="source", series=("median_days", "p90_days"))
    return q.protect(figure, "won", people=people, total=ALL_SOURCES)


def _days(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# The quotes (all versions of one number) that first went out in the period, with their deal's owner.
_QUOTES_SENT = """
        , versions AS (
            SELECT qu.quote_id, COALESCE(qu.number, '#' || qu.quote_id) AS quote_key, qu.version, qu.state,
                   COALESCE(qu.sent_date, qu.quote_date) AS day, qu.net_total,
                   qu.sent_at IS NOT NULL OR qu.state IN ('sent', 'accepted', 'declined') AS went_out,
                   deals.owner_team, deals.owner_id
            FROM fact_quote qu JOIN deals ON deals.opportunity_id = qu.opportunity_id),
        quotes AS (
            SELECT quote_key, min(day) FILTER (WHERE went_out) AS first_day,
                   bool_or(state = 'accepted') AS accepted,
                   arg_max(net_total, version) FILTER (WHERE went_out) AS value,
                   any_value(owner_team) AS owner_team, any_value(owner_id) AS owner_id
            FROM versions GROUP BY quote_key),
        sent AS (SELECT * FROM quotes WHERE first_day >= $start AND first_day < $end)"""


def quote_conversion(q: _DealQuery) -> Figure:
    """Quotes first sent in the period, how many of them the customer accepted and how many became an order
    (``fact_order.quote_id``, cancelled orders not counted). A quote is all its versions (one number): it
    counts once, accepted when any version was, with the value of its last version that went out; orders
    with their net total. Shares are of the quotes sent.

    A version went out when the CRM sent it, or when the customer decided on it (accepted or declined: it was
    printed or sent outside the CRM); its day is the sending's local day (``sent_date``), else its quote date.
    The people behind each step: the owners of the deals of its quotes."""
    rows = q.rows(f"""{_QUOTES_SENT},
        ordered AS (
            SELECT v.quote_key, sum(o.net_total) AS value FROM fact_order o JOIN versions v ON v.quote_id = o.quote_id
            WHERE o.state <> 'cancelled' GROUP BY v.quote_key)
        SELECT count(*), CAST(COALESCE(sum(sent.value), 0) AS DECIMAL(18,2)),
               count(*) FILTER (WHERE accepted),
               CAST(COALESCE(sum(sent.value) FILTER (WHERE accepted), 0) AS DECIMAL(18,2)),
               count(ordered.quote_key), CAST(COALESCE(sum(ordered.value), 0) AS DECIMAL(18,2)),
               {PEOPLE.format("sent.owner_id")},
               list(DISTINCT sent.owner_id) FILTER (WHERE accepted AND sent.owner_id IS NOT NULL),
               list(DISTINCT sent.owner_id) FILTER (WHERE ordered.quote_key IS NOT NULL
                                                     AND sent.owner_id IS NOT NULL)
        FROM sent LEFT JOIN ordered ON ordered.quote_key = sent.quote_key""")
    sent, sent_value, accepted, accepted_value, ordered, ordered_value, *people = rows[0]
    counts = ((sent, sent_value), (accepted, accepted_value), (ordered, ordered_value))
    figure = Figure(
        key="quote_conversion", kind="hbar",
        columns=(Column("step", "text"), Column("quotes"), Column("net_value", "eur"),
                 Column("share_of_sent", "percent")),
        rows=tuple((step, int(n), value, percent(n, sent)) for step, (n, value) in zip(QUOTE_STEPS, counts,
                                                                                        strict=True)),
        x="step", series=("quotes",))
    return q.protect(figure, "quotes_sent", people=people)


def lost_reasons(q: _DealQuery) -> Figure:
    """Deals lost in the period by the reason staff gave (free text: blanks collapsed, case ignored, shown in
    its most common spelling): the ten most frequent, the rest as one row, and the deals without a reason."""
    rows = q.rows(f"""
        , lost AS (SELECT NULLIF(trim(regexp_replace(lost_reason, '\\s+', ' ', 'g')), '') AS reason, amount,
                          owner_id
                   FROM deals WHERE outcome = 'lost' AND {_CLOSED_IN_PERIOD}),
        reasons AS (SELECT lower(reason) AS reason_key, mode(reason) AS shown, count(*) AS n,
                           CAST(COALESCE(sum(amount), 0) AS DECIMAL(18,2)) AS amount, {_OWNERS} AS owners
                    FROM lost WHERE reason IS NOT NULL GROUP BY reason_key),
        ranked AS (SELECT *, row_number() OVER (ORDER BY n DESC, amount DESC, reason_key) AS rank FROM reasons),
        grouped AS (
            SELECT CASE WHEN rank <= $top THEN shown ELSE '{OTHER_REASONS}' END AS reason,
                   CASE WHEN rank <= $top THEN rank ELSE $top + 1 END AS pos, sum(n) AS n, sum(amount) AS amount,
                   list_distinct(flatten(list(owners))) AS owners
            FROM ranked GROUP BY ALL
            UNION ALL
            SELECT '{NO_REASON}', $top + 2, count(*), CAST(COALESCE(sum(amount), 0) AS DECIMAL(18,2)), {_OWNERS}
            FROM lost WHERE reason IS NULL HAVING count(*) > 0)
        SELECT reason, n, CAST(amount AS DECIMAL(18,2)), owners FROM grouped ORDER BY pos""", top=TOP_LOST_REASONS)
    rows, people = split_people(rows)
    total = sum(int(n) for _, n, _ in rows)
    figure = Figure(
        key="lost_reasons", kind="hbar",
        columns=(Column("reason", "text"), Column("deals"), Column("amount", "eur"), Column("share", "percent")),
        rows=tuple((reason, int(n), amount, percent(n, total)) for reason, n, amount in rows),
        x="reason", series=("deals",))
    return q.protect(figure, "lost", people=people)


# Summable values per owner group: the rates are computed after pooling, from the pooled counts.
_GROUP_VALUES = f"""
    count(*) FILTER (WHERE outcome = 'open'),
    CAST(COALESCE(sum(amount * probability * 0.01) FILTER (WHERE outcome = 'open'), 0) AS DECIMAL(18,2)),
    count(*) FILTER (WHERE outcome = 'won' AND {_CLOSED_IN_PERIOD}),
    count(*) FILTER (WHERE outcome = 'lost' AND {_CLOSED_IN_PERIOD}),
    CAST(COALESCE(sum(amount) FILTER (WHERE outcome = 'won' AND {_CLOSED_IN_PERIOD}), 0) AS DECIMAL(18,2))"""
_GROUP_DEALS = f"owner_id IS NOT NULL AND (outcome = 'open' OR ({_CLOSED_IN_PERIOD}))"
_GROUP_COLUMNS = (Column("open_deals"), Column("weighted_amount", "eur"), Column("won"), Column("lost"),
                  Column("win_rate", "percent"), Column("won_amount", "eur"))


def _group_row(values: tuple[Any, ...]) -> tuple[Any, ...]:
    open_deals, weighted, won, lost, won_amount = values
    return (int(open_deals), weighted, int(won), int(lost), percent(won, won + lost), won_amount)


def by_team(q: _DealQuery) -> Figure:
    """Per owner's team: open deals and their weighted amount, deals won and lost in the period, win rate and
    won amount. Only deals with an owner; a team shows when at least ``min_group_size`` owners stand behind
    its deals (open now or closed in the period), smaller ones are pooled (staff_groups.protect_groups). Under
    a team filter: that team's row of the breakdown of every team, or nothing."""
    rows = q.rows(f"""
        SELECT owner_team, count(DISTINCT owner_id), {_GROUP_VALUES} FROM deals WHERE {_GROUP_DEALS}
        GROUP BY owner_team ORDER BY owner_team NULLS LAST""", all_teams=True)
    shown, notes = protect_groups([(team, int(people), tuple(values)) for team, people, *values in rows],
                                  q.policy.min_group_size, only_team=q.filters.team)
    return Figure(
        key="sales_by_team", kind="bar", columns=(Column("team", "text"), *_GROUP_COLUMNS),
        rows=tuple((team, *_group_row(values)) for team, values in shown),
        x="team", series=("won", "lost"), notes=notes,
        suppressed=not shown and bool(notes))  # all withheld: the page says so, not "nothing happened"


def by_owner(q: _DealQuery) -> Figure:
    """The same per owner by name: only when per-person reports are switched on (the store then has names)."""
    rows = q.rows(f"""
        SELECT COALESCE(s.name, '#' || deals.owner_id), {_GROUP_VALUES} FROM deals
        LEFT JOIN dim_staff s ON s.staff_id = deals.owner_id WHERE {_GROUP_DEALS}
        GROUP BY deals.owner_id, s.name ORDER BY 1""")
    return Figure(
        key="sales_by_owner", kind="bar", columns=(Column("owner", "text"), *_GROUP_COLUMNS),
        rows=tuple((owner, *_group_row(tuple(values))) for owner, *values in rows),
        x="owner", series=("won", "lost"))


def _suppressed(figure: Figure, note: str) -> Figure:
    """The figure's shape (heading, CSV header) without any of its values, and why."""
    return Figure(key=figure.key, kind=figure.kind, columns=figure.columns, rows=(), x=figure.x,
                  series=figure.series, notes=(note,), suppressed=True)


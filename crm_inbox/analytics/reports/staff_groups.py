"""The works-council rule (§ 87 (1) no. 6 BetrVG), in one place: figures about staff work are shown only for
groups of at least ``[analytics] min_group_size`` people, never for one person unless per-person reports are
switched on.

- A team with fewer people behind its figures (in the filtered data) is not shown on its own: small teams are
  pooled into one row :data:`OTHER_TEAMS`. While that pool is itself too small, the smallest shown team joins
  it (secondary suppression: no small team can be computed as "all shown rows minus the others"). Staff
  without a team always go to the pool. When everyone together is too few, nothing is shown.
- A team filter on a team with fewer active members than the minimum blocks every staff-work figure
  (:func:`team_filter_blocked`). Otherwise a filtered team's figures show only where the team breakdown of
  the same data shows that team on its own row (:func:`team_shown`): else the company's figure minus the
  team's would give the pooled small teams' figure.

- Whatever the filters (period, category, team or none), a staff-work figure shows only when at least
  ``min_group_size`` distinct people stand behind its facts (:func:`enough_people`; note ``few_people``): a
  category or a short period may narrow a "company figure" down to one person's work. A company with fewer
  staff than the minimum therefore sees no staff-work figures at all; that is intended.
- Each row of such a figure (a channel, a category, a source, a week) shows its values only when at least
  ``min_group_size`` people stand behind that row (:func:`rows_shown`; note ``small_rows``). Rows nobody
  worked on (no person behind them) are about nobody and show. Withheld rows keep their label, their values
  are None. Secondary suppression as for teams: while the withheld rows together have fewer people than the
  minimum (a total or the other rows would reveal them), the smallest shown row is withheld as well.
- ``policy.per_person`` (a works agreement allows per-person figures) lifts both rules.

Teams are disjoint (a staff member has one team), so the number of people behind a pool is the sum of its
teams' numbers; rows of other breakdowns are not (one person answers mail and calls), so their people are
compared as sets. The decisions are pure functions; only :func:`team_filter_blocked` reads the store.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from typing import Any

import duckdb

from crm_inbox.analytics.model import Filters, StaffPolicy

OTHER_TEAMS = "other_teams"  # the pooled row's label (a code the web adapter translates)
SMALL_GROUPS = "small_groups"  # note: some teams were pooled or withheld
TEAM_TOO_SMALL = "team_too_small"  # note: the filtered team is under the minimum, nothing is shown
FEW_PEOPLE = "few_people"  # note: fewer people than the minimum behind the whole figure, nothing is shown
SMALL_ROWS = "small_rows"  # note: rows with fewer people than the minimum are shown without values
# Row codes the reports use themselves: a team so named is never shown on its own row (it could be taken for
# the pooled row or a total); the staff page refuses such names, this guards teams named so before.
RESERVED_TEAM_NAMES = frozenset({OTHER_TEAMS, "all", "none", "all_sources"})

Values = tuple[Any, ...]


def team_filter_blocked(con: duckdb.DuckDBPyConnection, filters: Filters, policy: StaffPolicy) -> bool:
    """True when ``filters.team`` is set and fewer than ``policy.min_group_size`` active staff have that team:
    every staff-work figure is then suppressed (notes ``("team_too_small",)``)."""
    if filters.team is None:
        return False
    row = con.execute("SELECT count(*) FROM dim_staff WHERE active AND team = $1", [filters.team]).fetchone()
    active = int(row[0]) if row else 0
    return active < max(policy.min_group_size, 1)


def group_plan(sizes: Mapping[str | None, int], min_size: int) -> tuple[dict[str | None, str], tuple[str, ...]]:
    """Under which label each team's figures may be shown: the team's own name or :data:`OTHER_TEAMS`.

    ``sizes``: the distinct people behind each team's figures (``None``: staff without a team). Teams missing
    from the returned mapping are withheld (only ever all of them: when everyone together is under
    ``min_size``). The notes are ``("small_groups",)`` when anything was pooled or withheld."""
    minimum = max(min_size, 1)
    if not sizes:
        return {}, ()
    if sum(sizes.values()) < minimum:
        return {}, (SMALL_GROUPS,)
    shown = {team: n for team, n in sizes.items()
             if team is not None and team not in RESERVED_TEAM_NAMES and n >= minimum}
    pool = [team for team in sizes if team not in shown]
    pooled = sum(sizes[team] for team in pool)
    # Secondary suppression: a pool under the minimum would expose its teams as total minus shown rows, so the
    # smallest shown team (by name on a tie: the same data always gives the same table) joins it.
    while pool and pooled < minimum:
        smallest = min(shown, key=lambda team: (shown[team], team))
        pooled += shown.pop(smallest)
        pool.append(smallest)
    plan: dict[str | None, str] = {team: OTHER_TEAMS for team in pool}
    plan.update({team: team for team in shown if team is not None})
    return plan, ((SMALL_GROUPS,) if pool else ())


def enough_people(n: int, policy: StaffPolicy) -> bool:
    """Whether a staff-work figure (or row) with ``n`` distinct people behind it may be shown."""
    return policy.per_person or n >= max(policy.min_group_size, 1)


def rows_shown(people: Sequence[Collection[Hashable]], policy: StaffPolicy) -> tuple[list[bool], tuple[str, ...]]:
    """Which rows of a staff-work breakdown may show their values: ``people`` holds the distinct people (ids)
    behind each row. A row with fewer than the minimum (but someone) is withheld; while the withheld rows
    together have fewer than the minimum, the smallest shown row (the first on a tie) is withheld too, so no
    total or difference gives a small group's values. Notes ``("small_rows",)`` when anything is withheld."""
    shown = [not p or enough_people(len(p), policy) for p in people]
    if all(shown):
        return shown, ()
    minimum = max(policy.min_group_size, 1)
    pool: set[Hashable] = set()
    for p, ok in zip(people, shown, strict=True):
        if not ok:
            pool |= set(p)
    while len(pool) < minimum:
        candidates = [i for i, ok in enumerate(shown) if ok and people[i]]
        if not candidates:
            break
        smallest = min(candidates, key=lambda i: (len(people[i]), i))
        shown[smallest] = False
        pool |= set(people[smallest])
    return shown, (SMALL_ROWS,)


def team_shown(sizes: Mapping[str | None, int], team: str, min_size: int) -> bool:
    """Whether the figures of ``team`` alone (under a team filter) may be shown: only when :func:`group_plan`
    on the same data (``sizes`` of every team, not only the filtered one) gives it a row of its own."""
    plan, _ = group_plan(sizes, min_size)
    return plan.get(team) == team


def sum_values(a: Values, b: Values) -> Values:
    """The default way to pool two rows: column by column sums (counts); ``None`` counts as nothing."""
    return tuple(
        y if x is None else x if y is None else x + y for x, y in zip(a, b, strict=True)
    )


def protect_groups(
    rows: Sequence[tuple[str | None, int, Values]],
    min_size: int,
    combine: Callable[[Values, Values], Values] = sum_values,
    only_team: str | None = None,
) -> tuple[list[tuple[str | None, Values]], tuple[str, ...]]:
    """The rows that may be shown, per :func:`group_plan`: ``rows`` are (team or None, distinct people behind
    the row, the row's values), one per team. Shown teams keep their order; the pooled row comes last,
    labelled :data:`OTHER_TEAMS`, its values folded with ``combine`` (default: sums, right for counts). Values
    that cannot be folded (medians) are computed by the caller on the facts grouped by :func:`group_plan`'s
    labels instead.

    ``only_team`` (a team filter): ``rows`` still hold every team (the decision needs them all); only that
    team's own row is returned, or nothing with ``("small_groups",)`` when it is not shown on its own."""
    sizes: dict[str | None, int] = {}
    for team, people, _ in rows:
        if team in sizes:
            raise ValueError(f"team {team!r} appears twice")
        sizes[team] = people
    plan, notes = group_plan(sizes, min_size)
    shown: list[tuple[str | None, Values]] = []
    pooled: Values | None = None
    for team, _, values in rows:
        label = plan.get(team)
        if label is None:
            continue
        if label == OTHER_TEAMS:
            pooled = values if pooled is None else combine(pooled, values)
        else:
            shown.append((label, values))
    if pooled is not None:
        shown.append((OTHER_TEAMS, pooled))
    if only_team is not None:
        return restrict_to_team(shown, notes, only_team)
    return shown, notes


def restrict_to_team(rows: Sequence[tuple[Any, ...]], notes: tuple[str, ...], team: str,
                     ) -> tuple[list[Any], tuple[str, ...]]:
    """The filtered team's own row of a protected breakdown (rows start with their label), or nothing with
    ``("small_groups",)`` when it is pooled or withheld."""
    own = [row for row in rows if row[0] == team]
    return (own, ()) if own else ([], (SMALL_GROUPS,))

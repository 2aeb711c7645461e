"""The works-council rule: teams under min_group_size are pooled, the pool is never small enough to be worked out
from the total, everything is withheld when everyone together is too few, and a small filtered team blocks."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from crm_inbox.analytics.model import Filters, StaffPolicy
from crm_inbox.analytics.reports.staff_groups import (
    OTHER_TEAMS,
    SMALL_GROUPS,
    SMALL_ROWS,
    enough_people,
    group_plan,
    protect_groups,
    rows_shown,
    team_filter_blocked,
    team_shown,
)
from tests.analytics_stores import staff, store, team_staff


def test_teams_at_the_minimum_show_on_their_own() -> None:
    rows, notes = protect_groups([("Support", 5, (40,)), ("Sales", 7, (12,))], 5)
    assert rows == [("Support", (40,)), ("Sales", (12,))]
    assert notes == ()


def test_small_teams_are_pooled_into_other_teams_with_summed_values() -> None:
    rows, notes = protect_groups(
        [("Support", 6, (40, 3)), ("Back office", 3, (9, 1)), ("Field", 2, (5, None)), ("Sales", 8, (20, 2))], 5)
    assert rows == [("Support", (40, 3)), ("Sales", (20, 2)), (OTHER_TEAMS, (14, 1))]
    assert notes == (SMALL_GROUPS,)


def test_a_pool_under_the_minimum_takes_in_the_smallest_shown_team() -> None:
    # Alone, the pool (3 people) could be read as "total minus Support minus Sales": Sales (the smaller) joins.
    rows, notes = protect_groups([("Support", 9, (40,)), ("Sales", 6, (20,)), ("Field", 3, (5,))], 5)
    assert rows == [("Support", (40,)), (OTHER_TEAMS, (25,))]
    assert notes == (SMALL_GROUPS,)
    # No shown row and no total minus shown rows gives a group under 5 people.
    plan, _ = group_plan({"Support": 9, "Sales": 6, "Field": 3}, 5)
    pooled_people = sum(n for t, n in {"Support": 9, "Sales": 6, "Field": 3}.items() if plan[t] == OTHER_TEAMS)
    assert pooled_people >= 5


def test_secondary_suppression_keeps_taking_teams_until_the_pool_is_big_enough() -> None:
    plan, notes = group_plan({"A": 5, "B": 5, "C": 1, "D": 20}, 8)
    # C (1) needs 7 more: A and B are under 8 anyway, so the pool is A+B+C = 11 and D shows.
    assert plan == {"A": OTHER_TEAMS, "B": OTHER_TEAMS, "C": OTHER_TEAMS, "D": "D"}
    plan, _ = group_plan({"A": 9, "B": 12, "C": 2}, 10)
    assert plan == {"A": OTHER_TEAMS, "C": OTHER_TEAMS, "B": "B"}
    assert notes == (SMALL_GROUPS,)


def test_ties_are_broken_by_name_so_the_same_data_gives_the_same_table() -> None:
    one, _ = group_plan({"Beta": 6, "Alpha": 6, "Small": 1}, 5)
    two, _ = group_plan({"Small": 1, "Alpha": 6, "Beta": 6}, 5)
    assert one == two == {"Small": OTHER_TEAMS, "Alpha": OTHER_TEAMS, "Beta": "Beta"}


def test_staff_without_a_team_are_always_in_the_pool() -> None:
    rows, notes = protect_groups([(None, 7, (30,)), ("Support", 5, (10,))], 5)
    assert rows == [("Support", (10,)), (OTHER_TEAMS, (30,))]
    assert notes == (SMALL_GROUPS,)


def test_everything_is_withheld_when_everyone_together_is_too_few() -> None:
    rows, notes = protect_groups([("Support", 2, (40,)), ("Sales", 2, (20,))], 5)
    assert rows == []
    assert notes == (SMALL_GROUPS,)
    assert protect_groups([], 5) == ([], ())


def test_when_only_pooling_everything_reaches_the_minimum_there_is_one_row() -> None:
    rows, notes = protect_groups([("Support", 3, (4,)), ("Sales", 2, (6,))], 5)
    assert rows == [(OTHER_TEAMS, (10,))]
    assert notes == (SMALL_GROUPS,)


def test_a_custom_combine_folds_pooled_values() -> None:
    rows, _ = protect_groups([("A", 1, (3.0,)), ("B", 4, (7.0,)), ("C", 9, (1.0,))], 5,
                             combine=lambda a, b: (max(a[0], b[0]),))
    assert rows == [("C", (1.0,)), (OTHER_TEAMS, (7.0,))]


def test_a_team_given_twice_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        protect_groups([("A", 5, (1,)), ("A", 5, (1,))], 5)


def test_a_minimum_of_one_shows_every_team() -> None:
    rows, notes = protect_groups([("A", 1, (1,)), ("B", 2, (2,))], 1)
    assert rows == [("A", (1,)), ("B", (2,))]
    assert notes == ()


def test_a_filtered_team_shows_only_where_the_breakdown_shows_it_on_its_own() -> None:
    sizes = {"Support": 9, "Sales": 6, "Field": 3}
    assert team_shown(sizes, "Support", 5)
    # Sales is big enough, but Field's three would be "all minus Support minus Sales" without it
    assert not team_shown(sizes, "Sales", 5)
    assert not team_shown(sizes, "Field", 5)
    assert not team_shown({"Support": 4}, "Support", 5)
    assert team_shown({"Support": 5}, "Support", 5)
    assert not team_shown({"Support": 9}, "Sales", 5)  # no work of the team in the data


def test_protect_groups_for_one_filtered_team_returns_its_row_or_nothing() -> None:
    rows = [("Support", 9, (40,)), ("Sales", 6, (20,)), ("Field", 3, (5,))]
    assert protect_groups(rows, 5, only_team="Support") == ([("Support", (40,))], ())
    assert protect_groups(rows, 5, only_team="Sales") == ([], (SMALL_GROUPS,))
    assert protect_groups(rows, 5, only_team="Field") == ([], (SMALL_GROUPS,))


@pytest.fixture(scope="module")
def teams_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("groups") / "store.duckdb"


def test_team_filter_blocks_a_team_with_fewer_active_members(teams_store: Path) -> None:
    rows = {"dim_staff": [*team_staff(1, "Support", 5), *team_staff(10, "Field", 4),
                          staff(20, "Field", active=False), *team_staff(30, None, 6)]}
    period = (date(2026, 1, 1), date(2026, 2, 1))
    policy = StaffPolicy(min_group_size=5)
    with store(teams_store, rows) as con:
        assert not team_filter_blocked(con, Filters(*period), policy)
        assert not team_filter_blocked(con, Filters(*period, team="Support"), policy)
        # 4 active and 1 inactive: former staff do not make a team big enough
        assert team_filter_blocked(con, Filters(*period, team="Field"), policy)
        assert team_filter_blocked(con, Filters(*period, team="Nobody"), policy)
        assert not team_filter_blocked(con, Filters(*period, team="Field"), StaffPolicy(min_group_size=4))


def test_enough_people_is_the_minimum_unless_per_person_reports_are_allowed() -> None:
    assert enough_people(5, StaffPolicy(min_group_size=5))
    assert not enough_people(4, StaffPolicy(min_group_size=5))
    assert enough_people(1, StaffPolicy(min_group_size=5, per_person=True))
    assert not enough_people(0, StaffPolicy(min_group_size=0))  # a minimum under one is one


def test_rows_with_too_few_people_are_withheld_with_the_smallest_other_row() -> None:
    policy = StaffPolicy(min_group_size=3)
    # row 1 is one person's: withheld; alone it could be read as total minus the others, so the smallest shown
    # row with people (row 2, three people) is withheld too; the row nobody worked on shows
    shown, notes = rows_shown([{1, 2, 3, 4}, {5}, {1, 6, 7}, set()], policy)
    assert shown == [True, False, False, True] and notes == (SMALL_ROWS,)
    # people are compared as sets (rows sharing people do not add up); on a tie the first row is withheld
    shown, _ = rows_shown([{1, 2, 3}, {1}, {1, 2, 4}], policy)
    assert shown == [False, False, True]
    assert rows_shown([{1, 2, 3}, {4, 5, 6}, set()], policy) == ([True, True, True], ())
    assert rows_shown([{1}, {2}], StaffPolicy(min_group_size=3, per_person=True)) == ([True, True], ())


def test_a_team_named_like_the_pooled_row_never_shows_as_its_own_row() -> None:
    rows, notes = protect_groups([("Support", 6, (40,)), (OTHER_TEAMS, 7, (9,)), ("Sales", 6, (20,))], 5)
    assert rows == [("Support", (40,)), ("Sales", (20,)), (OTHER_TEAMS, (9,))]
    assert notes == (SMALL_GROUPS,)
    assert group_plan({"all": 9, "Support": 9}, 5)[0] == {"all": OTHER_TEAMS, "Support": "Support"}

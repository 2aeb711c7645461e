"""The phone report on a small store with hand-computed figures: the heat map of inbound calls, the answer rate,
missed calls and call-backs, calls per team under the works-council rule, filters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import duckdb
import pytest

from crm_inbox.analytics.model import Filters, Report, StaffPolicy
from crm_inbox.analytics.reports.catalog import run
from tests.analytics_stores import at, call, company, contact, staff, store, team_staff

MARCH = (date(2026, 3, 2), date(2026, 3, 30))
WEEKS = [date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16), date(2026, 3, 23)]


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    rows = {
        "dim_staff": [*(staff(i + 1, "Support", name=n) for i, n in enumerate(["Anna", "Ben", "Cem", "Dora",
                                                                              "Emil", "Fritz"])),
                      *team_staff(10, "Field", 3)],
        "dim_company": [company(1, "A")],
        # contact 1 without a company (its own category B), contact 2 works at company 1 (A)
        "dim_contact": [contact(1, None, "B"), contact(2, 1, None)],
        "fact_call": [
            call(1, at(2026, 3, 2, 9, 15), staff_id=1, company_id=1),  # Monday
            call(2, at(2026, 3, 2, 9, 40), staff_id=2, contact_id=1),
            call(3, at(2026, 3, 3, 14, 5), answered=False, contact_id=2,
                 called_back_at=at(2026, 3, 3, 14, 35)),  # 30 min
            call(4, at(2026, 3, 4, 8, 0), answered=False, called_back_at=at(2026, 3, 4, 10, 0)),  # 120 min
            call(5, at(2026, 3, 12, 23, 10), answered=False),  # Thursday night, not called back
            call(6, at(2026, 3, 3, 14, 35), direction="out", staff_id=3),  # the call-back
            call(7, at(2026, 3, 15, 10, 0), staff_id=10),  # Sunday
            call(8, at(2026, 3, 10, 9, 0), answered=False, called_back_at=at(2026, 3, 10, 9, 10)),  # 10 min
            call(9, at(2026, 2, 27, 9, 0), staff_id=1),  # before the period
            call(10, at(2026, 3, 30, 9, 0), staff_id=1),  # on the period's end (exclusive)
        ],
    }
    with store(tmp_path_factory.mktemp("phone") / "store.duckdb", rows) as c:
        yield c


def report(con: duckdb.DuckDBPyConnection, *, team: str | None = None, category: str | None = None,
           min_group_size: int = 5, per_person: bool = False) -> Report:
    return run("phone", con, Filters(*MARCH, team=team, category=category),
               StaffPolicy(min_group_size=min_group_size, per_person=per_person))


def cells(fig_rows: tuple[tuple[object, ...], ...]) -> dict[tuple[object, str], object]:
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return {(row[0], day): n for row in fig_rows for day, n in zip(days, row[1:], strict=True) if n}


def test_heatmap_counts_inbound_calls_per_hour_and_weekday(con: duckdb.DuckDBPyConnection) -> None:
    fig = report(con).figure("calls_heatmap")
    assert fig.kind == "heatmap"
    assert [c.key for c in fig.columns] == ["hour", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert [row[0] for row in fig.rows] == list(range(24))  # night hours too
    assert cells(fig.rows) == {(9, "mon"): 2, (9, "tue"): 1, (14, "tue"): 1, (8, "wed"): 1, (23, "thu"): 1,
                               (10, "sun"): 1}  # the outbound call-back is not in it


def test_answer_rate_per_week(con: duckdb.DuckDBPyConnection) -> None:
    fig = report(con).figure("answer_rate")
    assert [c.key for c in fig.columns] == ["week", "inbound_calls", "answered", "missed", "answer_rate"]
    assert fig.rows == ((WEEKS[0], 4, 2, 2, 50.0), (WEEKS[1], 3, 1, 2, 33.3), (WEEKS[2], 0, 0, 0, None),
                        (WEEKS[3], 0, 0, 0, None))


def test_missed_calls_and_call_back_times(con: duckdb.DuckDBPyConnection) -> None:
    fig = report(con).figure("missed_callbacks")
    assert [c.key for c in fig.columns] == ["week", "missed", "called_back", "not_called_back",
                                            "called_back_share", "median_callback_minutes", "p90_callback_minutes"]
    assert fig.rows == (
        (WEEKS[0], 2, 2, 0, 100.0, 75.0, 111.0),  # 30 and 120 minutes
        (WEEKS[1], 2, 1, 1, 50.0, 10.0, 10.0),  # the night call still waits
        (WEEKS[2], 0, 0, 0, None, None, None),
        (WEEKS[3], 0, 0, 0, None, None, None),
    )


def test_category_is_the_company_s_else_the_contact_s(con: duckdb.DuckDBPyConnection) -> None:
    a = report(con, category="A")  # call 1 (company 1) and call 3 (contact 2 at company 1)
    assert cells(a.figure("calls_heatmap").rows) == {(9, "mon"): 1, (14, "tue"): 1}
    assert a.figure("answer_rate").rows[0] == (WEEKS[0], 2, 1, 1, 50.0)
    b = report(con, category="B")  # call 2 (contact 1's own category)
    assert cells(b.figure("calls_heatmap").rows) == {(9, "mon"): 1}
    none = report(con, category="none")
    assert cells(none.figure("calls_heatmap").rows) == {(9, "tue"): 1, (8, "wed"): 1, (23, "thu"): 1,
                                                        (10, "sun"): 1}


def test_calls_per_team_shown_for_teams_at_the_minimum(con: duckdb.DuckDBPyConnection) -> None:
    fig = report(con, min_group_size=1).figure("calls_by_team")
    assert [c.key for c in fig.columns] == ["team", "answered_calls", "outbound_calls"]
    assert fig.rows == (("Field", 1, 0), ("Support", 2, 1)) and fig.notes == ()


def test_calls_per_team_pool_a_small_team_with_the_next_smallest(con: duckdb.DuckDBPyConnection) -> None:
    # Support: three people took or made calls, Field one; Field alone would be total minus Support
    fig = report(con, min_group_size=3).figure("calls_by_team")
    assert fig.rows == (("other_teams", 3, 1),) and fig.notes == ("small_groups",)
    fig = report(con, min_group_size=5).figure("calls_by_team")
    assert fig.rows == () and fig.notes == ("small_groups",) and fig.suppressed


def test_team_filter_applies_to_staff_work_only(con: duckdb.DuckDBPyConnection) -> None:
    r = report(con, team="Support", min_group_size=1)
    assert r.figure("calls_by_team").rows == (("Support", 2, 1),)
    assert r.figure("calls_by_team").notes == ()
    # Support alone has three people, but Field's one would be the total minus Support: withheld
    fig = report(con, team="Support", min_group_size=3).figure("calls_by_team")
    assert fig.suppressed and fig.rows == () and fig.notes == ("small_groups",)
    for key in ("calls_heatmap", "answer_rate", "missed_callbacks"):
        assert r.figure(key).notes == ("team_filter_not_applied",)
        assert r.figure(key).rows == report(con).figure(key).rows


def test_a_filtered_team_under_the_minimum_suppresses_the_staff_figures(con: duckdb.DuckDBPyConnection) -> None:
    r = report(con, team="Field", per_person=True)
    for key in ("calls_by_team", "calls_by_staff"):
        fig = r.figure(key)
        assert fig.suppressed and fig.rows == () and fig.notes == ("team_too_small",)
    assert not r.figure("calls_heatmap").suppressed and r.figure("calls_heatmap").rows


def test_per_person_figure_only_when_switched_on(con: duckdb.DuckDBPyConnection) -> None:
    assert "calls_by_staff" not in {f.key for f in report(con).figures}
    fig = report(con, per_person=True).figure("calls_by_staff")
    assert sorted(fig.rows) == [("#10", 1, 0), ("Anna", 1, 0), ("Ben", 1, 0), ("Cem", 0, 1)]


def test_every_key_the_page_shows_has_a_label(con: duckdb.DuckDBPyConnection) -> None:
    from web.reports.labels import is_labelled

    keys = set()
    for r in (report(con, team="Support", per_person=True), report(con, team="Field"), report(con)):
        for fig in r.figures:
            keys |= {fig.key, *fig.notes, *(c.key for c in fig.columns)}
    assert [k for k in sorted(keys) if not is_labelled(k)] == []

"""The phone report on a small store with hand-computed figures: the heat map of inbound calls, the answer rate,
missed calls and call-backs, calls per team under the works-council rule, filters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from crm_inbox.analytics.model import Filters, Report, StaffPolicy
from crm_inbox.analytics.reports.catalog import run
from tests.analytics_stores import at, call, company, contact, row, staff, store, team_staff

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
    fig = report(con, min_group_size=1).figure("answer_rate")
    assert [c.key for c in fig.columns] == ["week", "inbound_calls", "answered", "missed", "answer_rate"]
    assert fig.rows == ((WEEKS[0], 4, 2, 2, 50.0), (WEEKS[1], 3, 1, 2, 33.3), (WEEKS[2], 0, 0, 0, None),
                        (WEEKS[3], 0, 0, 0, None))


def test_missed_calls_and_call_back_times(con: duckdb.DuckDBPyConnection) -> None:
    fig = report(con, min_group_size=1).figure("missed_callbacks")
    assert [c.key for c in fig.columns] == ["week", "missed", "called_back", "not_called_back",
                                            "called_back_share", "median_callback_minutes", "p90_callback_minutes"]
    assert fig.rows == (
        (WEEKS[0], 2, 2, 0, 100.0, 75.0, 111.0),  # 30 and 120 minutes
        (WEEKS[1], 2, 1, 1, 50.0, 10.0, 10.0),  # the night call still waits
        (WEEKS[2], 0, 0, 0, None, None, None),
        (WEEKS[3], 0, 0, 0, None, None, None),
    )


def test_category_is_the_company_s_else_the_contact_s(con: duckdb.DuckDBPyConnection) -> None:
    a = report(con, category="A", min_group_size=1)  # call 1 (company 1) and call 3 (contact 2 at company 1)
    assert cells(a.figure("calls_heatmap").rows) == {(9, "mon"): 1, (14, "tue"): 1}
    assert a.figure("answer_rate").rows[0] == (WEEKS[0], 2, 1, 1, 50.0)
    b = report(con, category="B")  # call 2 (contact 1's own category)
    assert cells(b.figure("calls_heatmap").rows) == {(9, "mon"): 1}
    none = report(con, category="none")
    assert cells(none.figure("calls_heatmap").rows) == {(9, "tue"): 1, (8, "wed"): 1, (23, "thu"): 1,
                                                        (10, "sun"): 1}
    # the category's calls are found once per run on the report's cursor and not left behind there
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone() == (0,)


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
        assert r.figure(key).rows == report(con, min_group_size=1).figure(key).rows


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


def _six_on_the_phone() -> dict[str, list[tuple[object, ...]]]:
    """Six staff. Week 1: company 2 (B) calls answered by all six, company 1 (A) only by staff 1; five missed
    calls of company 2 called back by staff 1–4 (outbound calls) and staff 5 (the reminder done). Week 2: two
    missed calls of company 2, both called back by staff 2."""
    calls = [call(i, at(2026, 3, 2, 8 + i), staff_id=i, company_id=2) for i in range(1, 7)]
    calls += [call(10 + i, at(2026, 3, 3, 8 + i), staff_id=1, company_id=1) for i in range(2)]
    for i in range(1, 6):
        missed, back = at(2026, 3, 4, 8 + i), at(2026, 3, 4, 8 + i, 30)
        calls.append(call(20 + i, missed, answered=False, company_id=2, called_back_at=back))
        if i < 5:
            calls.append(call(30 + i, back, direction="out", staff_id=i, company_id=2))
    for i in range(2):
        missed, back = at(2026, 3, 10, 9 + i), at(2026, 3, 10, 9 + i, 20)
        calls += [call(40 + i, missed, answered=False, company_id=2, called_back_at=back),
                  call(50 + i, back, direction="out", staff_id=2, company_id=2)]
    done = at(2026, 3, 4, 13, 30)
    reminder = row("fact_reminder", reminder_id=1, created_at=at(2026, 3, 4, 13), created_date=date(2026, 3, 4),
                   due_at=done, completed_at=done, state="done", reason="missed_call", assignee_id=5, call_id=25)
    return {"dim_staff": team_staff(1, "Support", 6), "dim_company": [company(1, "A"), company(2, "B")],
            "fact_call": calls, "fact_reminder": [reminder]}


def test_staff_work_in_the_phone_figures_needs_enough_people_whatever_the_filter(tmp_path: Path) -> None:
    week1, two_weeks = (date(2026, 3, 2), date(2026, 3, 9)), (date(2026, 3, 2), date(2026, 3, 16))
    with store(tmp_path / "wc.duckdb", _six_on_the_phone()) as c:
        a = run("phone", c, Filters(*week1, category="A"), StaffPolicy())
        b = run("phone", c, Filters(*week1, category="B"), StaffPolicy())
        both = run("phone", c, Filters(*two_weeks, category="B"), StaffPolicy())
        allowed = run("phone", c, Filters(*two_weeks, category="B"), StaffPolicy(per_person=True))
    # category A: staff 1's calls alone; the inbound calls (customers' demand) still show
    fig = a.figure("answer_rate")
    assert fig.rows == ((date(2026, 3, 2), 2, None, None, None),) and fig.notes == ("few_people",)
    assert cells(a.figure("calls_heatmap").rows) == {(8, "tue"): 1, (9, "tue"): 1}
    assert a.figure("calls_by_team").suppressed
    # five people called back in week 1 (one through the missed-call reminder)
    assert b.figure("missed_callbacks").rows == ((date(2026, 3, 2), 5, 5, 0, 100.0, 30.0, 30.0),)
    assert b.figure("answer_rate").rows == ((date(2026, 3, 2), 11, 6, 5, 54.5),)
    # week 2's call-backs are staff 2's alone: withheld, and week 1 with it (else the period's total minus
    # week 1 would give them away); the missed calls show
    fig = both.figure("missed_callbacks")
    assert fig.rows == ((date(2026, 3, 2), 5, None, None, None, None, None),
                        (date(2026, 3, 9), 2, None, None, None, None, None))
    assert fig.notes == ("small_rows",)
    assert allowed.figure("missed_callbacks").rows[1] == (date(2026, 3, 9), 2, 2, 0, 100.0, 20.0, 20.0)

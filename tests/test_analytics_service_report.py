"""The service report on a small store with hand-computed figures: tickets per week, backlog, first-response and
resolution times (median, p90), reopen rate, tickets per team under the works-council rule, filters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from crm_inbox.analytics.model import Filters, Report, StaffPolicy
from crm_inbox.analytics.reports.catalog import run
from tests.analytics_stores import at, row, staff, store, team_staff, ticket

MARCH = (date(2026, 3, 2), date(2026, 3, 30))  # four ISO weeks, Monday 2 March to Sunday 29 March
WEEKS = [date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16), date(2026, 3, 23)]
H = 1  # hours, for reading the tickets below


def _after(opened: tuple[int, int], hours: float) -> tuple[datetime, datetime]:
    """Opened at 08:00 on (month, day) and first answered ``hours`` later."""
    start = at(2026, *opened, 8)
    return start, start + timedelta(hours=hours)


def _tickets() -> list[tuple[object, ...]]:
    t1, r1 = _after((3, 2), 1 * H)
    t2, r2 = _after((3, 3), 2 * H)
    t3, r3 = _after((3, 4), 3 * H)
    t4, r4 = _after((3, 9), 4 * H)
    t5, r5 = _after((3, 10), 5 * H)
    t6, r6 = _after((3, 17), 6 * H)
    t7, r7 = _after((3, 18), 10 * H)
    return [
        # opened in the period; first responses 1, 2, 3, 4, 5, 6, 10 hours, one without
        ticket(1, t1, first_response_at=r1, closed_at=at(2026, 3, 2, 18), channel="email", category="A", assignee_id=1),
        ticket(2, t2, first_response_at=r2, closed_at=at(2026, 3, 4, 8), channel="email", category="A", assignee_id=2,
               reopen_count=1),
        ticket(3, t3, first_response_at=r3, closed_at=at(2026, 3, 10, 8), channel="call", category="B", assignee_id=3),
        ticket(4, t4, first_response_at=r4, channel="call", category="B", assignee_id=4),
        ticket(5, t5, first_response_at=r5, channel="email", category=None, assignee_id=5),
        ticket(6, t6, first_response_at=r6, closed_at=at(2026, 3, 18, 8), channel="email", category="A",
               assignee_id=10),
        ticket(7, t7, first_response_at=r7, channel="web_form", category="C", assignee_id=11),
        ticket(8, at(2026, 3, 20, 8), channel="email", category="A"),
        # opened before the period, closed in it after 32 days, reopened twice
        ticket(20, at(2026, 2, 20, 8), first_response_at=at(2026, 2, 20, 9), closed_at=at(2026, 3, 24, 8),
               channel="email", category="A", assignee_id=6, reopen_count=2),
        # closed once, reopened since: open (its last close does not count)
        ticket(21, at(2026, 2, 25, 8), closed_at=at(2026, 3, 5, 8), state="open", channel="email", category="B",
               assignee_id=6, reopen_count=1),
        # opened on the period's end (exclusive)
        ticket(22, at(2026, 3, 30, 8), channel="email", category="A", assignee_id=1),
    ]


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    names = ["Anna", "Ben", "Cem", "Dora", "Emil", "Fritz"]
    rows = {
        "dim_staff": [*(staff(i + 1, "Support", name=n) for i, n in enumerate(names)),
                      *team_staff(10, "Field", 3), staff(30, "Field", active=False)],
        "fact_ticket": _tickets(),
    }
    with store(tmp_path_factory.mktemp("service") / "store.duckdb", rows) as c:
        yield c


def report(con: duckdb.DuckDBPyConnection, *, team: str | None = None, category: str | None = None,
           min_group_size: int = 5, per_person: bool = False) -> Report:
    return run("service", con, Filters(*MARCH, team=team, category=category),
               StaffPolicy(min_group_size=min_group_size, per_person=per_person))


def test_tickets_opened_and_closed_per_week(con: duckdb.DuckDBPyConnection) -> None:
    fig = report(con).figure("tickets_per_week")
    assert [c.key for c in fig.columns] == ["week", "opened", "closed"]
    assert fig.rows == ((WEEKS[0], 3, 2), (WEEKS[1], 2, 1), (WEEKS[2], 3, 1), (WEEKS[3], 0, 1))
    assert fig.notes == () and not fig.suppressed


def test_backlog_counts_tickets_open_at_each_weeks_end(con: duckdb.DuckDBPyConnection) -> None:
    # end of week 1: 20, 21, 1, 2, 3 opened, 1 and 2 closed; 21 counts as open (reopened) throughout
    assert report(con).figure("backlog").rows == ((WEEKS[0], 3), (WEEKS[1], 4), (WEEKS[2], 6), (WEEKS[3], 5))


def test_first_response_median_and_p90_by_channel(con: duckdb.DuckDBPyConnection) -> None:
    fig = report(con, min_group_size=1).figure("first_response_by_channel")
    assert [c.key for c in fig.columns] == ["channel", "tickets", "without_response", "median_hours", "p90_hours"]
    assert fig.rows == (
        ("call", 2, 0, 3.5, 3.9),
        ("email", 5, 1, 3.5, 5.7),  # 1, 2, 5, 6 hours and ticket 8 still waiting
        ("web_form", 1, 0, 10.0, 10.0),
        ("all", 8, 1, 4.0, 7.6),  # 1, 2, 3, 4, 5, 6, 10: p90 interpolated between 6 and 10
    )


def test_first_response_by_category(con: duckdb.DuckDBPyConnection) -> None:
    assert report(con, min_group_size=1).figure("first_response_by_category").rows == (
        ("A", 4, 1, 2.0, 5.2), ("B", 2, 0, 3.5, 3.9), ("C", 1, 0, 10.0, 10.0), ("none", 1, 0, 5.0, 5.0),
        ("all", 8, 1, 4.0, 7.6),
    )


def test_resolution_counts_tickets_solved_or_closed_in_the_period(con: duckdb.DuckDBPyConnection) -> None:
    # 10, 24, 144, 24 hours and ticket 20 after 768 hours; ticket 21 was reopened and is open
    fig = report(con, min_group_size=1).figure("resolution_by_channel")
    assert fig.rows == (("call", 1, 144.0, 144.0), ("email", 4, 24.0, 544.8), ("all", 5, 24.0, 518.4))
    assert report(con, min_group_size=1).figure("resolution_by_category").rows == (
        ("A", 4, 24.0, 544.8), ("B", 1, 144.0, 144.0), ("all", 5, 24.0, 518.4))


def test_reopen_rate_overall_and_by_channel(con: duckdb.DuckDBPyConnection) -> None:
    fig = report(con, min_group_size=1).figure("reopen_rate")
    assert fig.rows == (("call", 1, 0, 0.0), ("email", 4, 2, 50.0), ("all", 5, 2, 40.0))


def test_category_filter_applies_to_every_figure(con: duckdb.DuckDBPyConnection) -> None:
    r = report(con, category="A", min_group_size=1)
    assert [row[1] for row in r.figure("tickets_per_week").rows] == [2, 0, 2, 0]
    assert r.figure("first_response_by_channel").rows[-1] == ("all", 4, 1, 2.0, 5.2)
    none = report(con, category="none", min_group_size=1)
    assert [row[1] for row in none.figure("tickets_per_week").rows] == [0, 1, 0, 0]
    assert none.figure("first_response_by_category").rows == (("none", 1, 0, 5.0, 5.0), ("all", 1, 0, 5.0, 5.0))
    assert none.figure("backlog").rows == ((WEEKS[0], 0), (WEEKS[1], 1), (WEEKS[2], 1), (WEEKS[3], 1))


def test_tickets_per_team_show_teams_at_the_minimum(con: duckdb.DuckDBPyConnection) -> None:
    fig = report(con, min_group_size=2).figure("tickets_by_team")
    # Support: tickets 1–5 by five people (1–5 h), Field: 6 and 7 by two (6 h, 10 h)
    assert fig.rows == (("Field", 2, 8.0), ("Support", 5, 3.0))
    assert fig.notes == ()


def test_tickets_per_team_pool_small_teams_and_recompute_the_median(con: duckdb.DuckDBPyConnection) -> None:
    # Field (2 people) alone in the pool could be read off as total minus Support: both are pooled, and the
    # pool's median is the median of its tickets (4 h), not a mix of the teams' medians.
    fig = report(con, min_group_size=3).figure("tickets_by_team")
    assert fig.rows == (("other_teams", 7, 4.0),)
    assert fig.notes == ("small_groups",)


def test_tickets_per_team_withheld_when_everyone_together_is_too_few(con: duckdb.DuckDBPyConnection) -> None:
    fig = report(con, min_group_size=8).figure("tickets_by_team")
    assert fig.rows == () and fig.notes == ("small_groups",) and fig.suppressed


def test_team_filter_keeps_the_teams_work_and_says_customer_figures_ignore_it(
        con: duckdb.DuckDBPyConnection) -> None:
    r = report(con, team="Support", min_group_size=2)
    assert r.figure("tickets_per_week").rows == report(con).figure("tickets_per_week").rows
    assert r.figure("tickets_per_week").notes == ("team_filter_not_applied",)
    assert r.figure("backlog").notes == ("team_filter_not_applied",)
    # opened in the period: Support five people (tickets 1–5), Field two: both teams show on their own
    assert r.figure("first_response_by_channel").rows == (
        ("call", 2, 0, 3.5, 3.9), ("email", 3, 0, 2.0, 4.4), ("all", 5, 0, 3.0, 4.6))
    assert r.figure("tickets_by_team").rows == (("Support", 5, 3.0),)
    field = report(con, team="Field", min_group_size=2)
    # Field's two people each worked one channel: the rows are one person's each, only the total shows
    fig = field.figure("first_response_by_channel")
    assert fig.rows == (("email", None, None, None, None), ("web_form", None, None, None, None),
                        ("all", 2, 0, 8.0, 9.6))
    assert fig.notes == ("small_rows",) and not fig.suppressed
    # closed in the period: Support four people, Field one (ticket 6). Field is pooled, and Support with it:
    # the company's figure minus Support's would be Field's one person.
    for key in ("resolution_by_channel", "resolution_by_category", "reopen_rate"):
        fig = r.figure(key)
        assert fig.suppressed and fig.rows == () and fig.notes == ("small_groups",), key
        assert field.figure(key).suppressed


def test_a_team_big_enough_is_withheld_where_it_would_reveal_a_small_one(con: duckdb.DuckDBPyConnection) -> None:
    # Support has six active members and five did tickets opened in the period; Field's two did the rest. The
    # company's counts minus Support's would be Field's, so Support's figures are withheld under the filter.
    r = report(con, team="Support")
    for key in ("first_response_by_channel", "first_response_by_category", "tickets_by_team"):
        fig = r.figure(key)
        assert fig.suppressed and fig.rows == () and fig.notes == ("small_groups",), key
    assert report(con).figure("first_response_by_channel").rows  # the company's figure is shown


def test_a_filtered_team_under_the_minimum_suppresses_every_staff_figure(con: duckdb.DuckDBPyConnection) -> None:
    r = report(con, team="Field", per_person=True)  # three active members (a fourth has left)
    staff_figures = {"first_response_by_channel", "first_response_by_category", "resolution_by_channel",
                     "resolution_by_category", "reopen_rate", "tickets_by_team", "tickets_by_staff"}
    for fig in r.figures:
        if fig.key in staff_figures:
            assert fig.suppressed and fig.rows == () and fig.notes == ("team_too_small",), fig.key
        else:
            assert not fig.suppressed and fig.rows, fig.key
    assert staff_figures <= {f.key for f in r.figures}


def test_per_person_figure_only_when_switched_on(con: duckdb.DuckDBPyConnection) -> None:
    assert "tickets_by_staff" not in {f.key for f in report(con).figures}
    fig = report(con, per_person=True).figure("tickets_by_staff")
    # one ticket each; Field's staff have no name in the store: their id
    assert sorted(fig.rows) == [("#10", 1, 6.0), ("#11", 1, 10.0), ("Anna", 1, 1.0), ("Ben", 1, 2.0),
                                ("Cem", 1, 3.0), ("Dora", 1, 4.0), ("Emil", 1, 5.0)]


def test_an_empty_period_gives_zero_weeks_and_empty_tables(con: duckdb.DuckDBPyConnection) -> None:
    r = run("service", con, Filters(date(2025, 1, 6), date(2025, 1, 13)), StaffPolicy())
    assert r.figure("tickets_per_week").rows == ((date(2025, 1, 6), 0, 0),)
    assert r.figure("backlog").rows == ((date(2025, 1, 6), 0),)
    assert r.figure("first_response_by_channel").rows == ()
    assert r.figure("reopen_rate").rows == ()
    assert r.figure("tickets_by_team").rows == ()


def labelled_keys(r: Report) -> set[str]:
    """Every key the page shows through a label: figures, columns, notes, and the code values of text columns
    (channels, all, none, other_teams); staff and team names are names, not codes."""
    keys = set()
    for fig in r.figures:
        keys |= {fig.key, *fig.notes, *(c.key for c in fig.columns)}
        for i, col in enumerate(fig.columns):
            if col.key in ("channel", "category"):
                keys |= {row[i] for row in fig.rows if not (col.key == "category" and row[i] in "ABC")}
            if col.key == "team":
                keys |= {row[i] for row in fig.rows if row[i] == "other_teams"}
    return keys


def test_every_key_the_page_shows_has_a_label(con: duckdb.DuckDBPyConnection) -> None:
    from web.reports.labels import is_labelled

    keys = labelled_keys(report(con, team="Support", per_person=True)) | labelled_keys(report(con, team="Field"))
    keys |= labelled_keys(report(con, min_group_size=3))
    assert {"other_teams", "team_filter_not_applied", "team_too_small", "small_groups", "web_form"} <= keys
    assert [k for k in sorted(keys) if not is_labelled(k)] == []


def _works_council_tickets() -> dict[str, list[tuple[object, ...]]]:
    """Twelve staff in two teams of six. Category A: staff 1 alone. Category B: everyone, by mail, but the calls
    are staff 2's alone. Ticket 60 was never assigned: staff 3 gave its first response."""
    tickets = []
    for n in range(10):
        opened, answered = _after((3, 2 + n), 1 + n)
        tickets.append(ticket(n + 1, opened, first_response_at=answered, closed_at=answered + timedelta(hours=1),
                              category="A", assignee_id=1))
    for n in range(24):
        opened, answered = _after((3, 2 + n % 20), 2)
        tickets.append(ticket(100 + n, opened, first_response_at=answered, closed_at=answered, category="B",
                              assignee_id=1 + n % 12))
    for n in range(3):
        opened, answered = _after((3, 5 + n), 4)
        tickets.append(ticket(200 + n, opened, first_response_at=answered, channel="call", category="B",
                              assignee_id=2))
    return {"dim_staff": [*team_staff(1, "Support", 6), *team_staff(7, "Sales", 6)], "fact_ticket": tickets}


STAFF_WORK = ("first_response_by_channel", "first_response_by_category", "resolution_by_channel",
              "resolution_by_category", "reopen_rate")


def test_a_category_narrowing_the_tickets_to_one_assignee_suppresses_the_staff_figures(tmp_path: Path) -> None:
    with store(tmp_path / "wc.duckdb", _works_council_tickets()) as c:
        one = run("service", c, Filters(*MARCH, category="A"), StaffPolicy())
        allowed = run("service", c, Filters(*MARCH, category="A"), StaffPolicy(per_person=True))
        day = run("service", c, Filters(date(2026, 3, 3), date(2026, 3, 4)), StaffPolicy())
    for key in STAFF_WORK:
        fig = one.figure(key)
        assert (fig.suppressed, fig.rows, fig.notes) == (True, (), ("few_people",)), key
        assert day.figure(key).suppressed, key  # one day: two people's tickets
        assert allowed.figure(key).rows[-1][:2] == ("all", 10), key  # a works agreement allows it
    # customers' demand shows whoever worked on it
    assert sum(r[1] for r in one.figure("tickets_per_week").rows) == 10


def test_a_channel_row_handled_by_one_person_is_withheld(tmp_path: Path) -> None:
    with store(tmp_path / "wc.duckdb", _works_council_tickets()) as c:
        b = run("service", c, Filters(*MARCH, category="B"), StaffPolicy())
        allowed = run("service", c, Filters(*MARCH, category="B"), StaffPolicy(per_person=True))
    fig = b.figure("first_response_by_channel")
    # the calls are staff 2's alone: withheld; the mail row (twelve people) would then give them away as the
    # total minus mail, so it is withheld as well; the total (twelve people) shows
    assert fig.rows == (("call", None, None, None, None), ("email", None, None, None, None),
                        ("all", 27, 0, 2.0, 2.8))
    assert fig.notes == ("small_rows",) and not fig.suppressed
    assert allowed.figure("first_response_by_channel").rows[0] == ("call", 3, 0, 4.0, 4.0)


def test_the_first_responder_stands_behind_a_ticket_nobody_was_assigned(tmp_path: Path) -> None:
    rows = {"dim_staff": team_staff(1, "Support", 6),
            "fact_ticket": [ticket(i, _after((3, 2 + i), 1)[0], first_response_at=_after((3, 2 + i), 1)[1],
                                   category="A", assignee_id=i) for i in range(1, 5)]}
    opened, answered = _after((3, 10), 3)
    rows["fact_ticket"].append(ticket(9, opened, first_response_at=answered, category="A"))
    rows["fact_ticket_event"] = [row("fact_ticket_event", event_id=1, ticket_id=9, occurred_at=answered,
                                     occurred_date=answered.date(), kind="staff_reply", staff_id=5)]
    with store(tmp_path / "fr.duckdb", rows) as c:
        five = run("service", c, Filters(*MARCH), StaffPolicy()).figure("first_response_by_category")
        rows["fact_ticket_event"] = [(*rows["fact_ticket_event"][0][:-1], 4)]  # staff 4 answered it instead
    assert five.rows[-1] == ("all", 5, 0, 1.0, 2.2)
    with store(tmp_path / "fr4.duckdb", rows) as c:
        four = run("service", c, Filters(*MARCH), StaffPolicy()).figure("first_response_by_category")
    assert four.suppressed and four.notes == ("few_people",)

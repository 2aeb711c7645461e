"""The sales report on a small hand-made store: every figure against values computed by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from crm_inbox.analytics.model import Filters, Report, StaffPolicy
from crm_inbox.analytics.reports import catalog
from crm_inbox.analytics.reports.sales import sales_report
from crm_inbox.analytics.schema import SCHEMA_VERSION
from tests.analytics_stores import row, staff, store, team_staff

PERIOD = Filters(start=date(2026, 1, 1), end=date(2026, 7, 1))
ANYONE = StaffPolicy(min_group_size=1)
D = Decimal


def deal(opportunity_id: int, *, outcome: str = "open", stage: str | None = None, probability: int = 0,
         amount: str | None = None, source: str = "mail", owner_id: int | None = None, category: str | None = None,
         created_at: datetime = datetime(2025, 11, 1), closed_at: datetime | None = None,
         close_date: date | None = None, lost_reason: str | None = None) -> tuple[Any, ...]:
    return row("fact_opportunity", opportunity_id=opportunity_id, created_at=created_at,
               created_date=created_at.date(), closed_at=closed_at,
               closed_date=closed_at.date() if closed_at else None, close_date=close_date,
               stage=stage or outcome, outcome=outcome, probability=probability,
               amount=D(amount) if amount is not None else None, source=source, lost_reason=lost_reason,
               owner_id=owner_id, category=category)


def quote(quote_id: int, number: str | None, version: int, state: str, opportunity_id: int, net: str,
          sent_at: datetime | None = None, quote_date: date | None = None) -> tuple[Any, ...]:
    return row("fact_quote", quote_id=quote_id, opportunity_id=opportunity_id, number=number, version=version,
               state=state, sent_at=sent_at, sent_date=sent_at.date() if sent_at else None, net_total=D(net),
               quote_date=quote_date or (sent_at.date() if sent_at else None))


def order(order_id: int, quote_id: int, net: str, state: str = "open") -> tuple[Any, ...]:
    return row("fact_order", order_id=order_id, number=f"AB-{order_id}", quote_id=quote_id,
               order_date=date(2026, 3, 1), state=state, net_total=D(net), gross_total=D(net))


OPEN = [
    deal(1, stage="qualified", probability=10, amount="1000", close_date=date(2026, 2, 10), owner_id=1, category="A"),
    deal(2, stage="qualified", probability=10, amount="500.50", close_date=date(2026, 3, 5), owner_id=2,
         category="B", source="call"),
    deal(3, stage="negotiation", probability=75, amount="2000", close_date=date(2026, 2, 20), owner_id=6,
         category="A"),
    deal(4, stage="quote_sent", probability=50, owner_id=3, source="manual"),  # no amount, no close date
    deal(5, stage="needs_analysis", probability=25, amount="400", close_date=date(2025, 12, 1), owner_id=1,
         category="A"),  # expected before the forecast's first month
]
CLOSED = [
    deal(10, outcome="won", probability=100, amount="1000", owner_id=1, category="A",
         created_at=datetime(2026, 1, 1), closed_at=datetime(2026, 1, 11)),  # 10 days
    deal(11, outcome="won", probability=100, amount="3000", owner_id=2, category="B",
         created_at=datetime(2026, 1, 1), closed_at=datetime(2026, 1, 21)),  # 20 days
    deal(12, outcome="won", probability=100, amount="500", owner_id=6, source="call",
         created_at=datetime(2026, 2, 1), closed_at=datetime(2026, 3, 12)),  # 39 days
    deal(13, outcome="lost", amount="700", owner_id=3, category="C", closed_at=datetime(2026, 1, 15),
         lost_reason="Price"),
    deal(14, outcome="lost", amount="300", owner_id=7, closed_at=datetime(2026, 2, 2), lost_reason="  price  "),
    deal(15, outcome="lost", amount="100", owner_id=4, source="call", closed_at=datetime(2026, 3, 3)),
    deal(16, outcome="won", probability=100, amount="9999", owner_id=1, category="A",
         closed_at=datetime(2025, 12, 20)),  # before the period
    deal(17, outcome="lost", amount="50", owner_id=8, source="web_form", closed_at=datetime(2026, 3, 10),
         lost_reason="too   late"),
    deal(18, outcome="lost", owner_id=5, source="manual", closed_at=datetime(2026, 4, 1), lost_reason="price"),
]
ROWS: dict[str, list[tuple[Any, ...]]] = {
    # Nord: 5 people, Süd: 2, staff 8 without a team.
    "dim_staff": [*team_staff(1, "Nord", 5), *team_staff(6, "Süd", 2), staff(8, None)],
    "fact_opportunity": OPEN + CLOSED,
    "fact_quote": [
        quote(1, "AN-1", 1, "superseded", 10, "100", datetime(2026, 1, 5, 9)),
        quote(2, "AN-1", 2, "accepted", 10, "120", datetime(2026, 1, 8, 9)),
        quote(3, "AN-2", 1, "sent", 3, "200", datetime(2026, 2, 1, 9)),
        quote(4, "AN-3", 1, "declined", 13, "999", datetime(2025, 12, 30, 9)),  # sent before the period
        quote(5, "AN-4", 1, "accepted", 12, "50", datetime(2026, 3, 1, 9)),
        quote(6, None, 1, "draft", 1, "10"),
        # printed, not sent by the CRM: accepted counts as sent on its quote date; final alone does not
        quote(7, "AN-5", 1, "accepted", 11, "1000", quote_date=date(2026, 4, 2)),
        quote(8, "AN-6", 1, "final", 2, "77", quote_date=date(2026, 4, 2)),
    ],
    "fact_order": [order(1, 2, "120", "handed_off"), order(2, 5, "50", "cancelled"), order(3, 7, "1000")],
    # the snapshot was taken in the period's first month (the forecast looks ahead from the later of the two)
    "meta_refresh": [row("meta_refresh", refreshed_at=datetime(2026, 1, 10, 8), mode="full", source="test",
                         schema_version=SCHEMA_VERSION, seconds=0.0)],
}


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    with store(tmp_path_factory.mktemp("sales") / "a.duckdb", ROWS) as c:
        yield c


@pytest.fixture(scope="module")
def report(con: duckdb.DuckDBPyConnection) -> Report:
    """The figures' arithmetic: a minimum of one person (the works-council rule has tests of its own)."""
    return sales_report(con, PERIOD, ANYONE)


def test_pipeline_by_stage_orders_stages_by_probability_with_weighted_amounts(report: Report) -> None:
    assert report.figure("pipeline_by_stage").rows == (
        ("qualified", 2, D("1500.50"), D("150.05")),
        ("needs_analysis", 1, D("400.00"), D("100.00")),
        ("quote_sent", 1, D("0.00"), D("0.00")),
        ("negotiation", 1, D("2000.00"), D("1500.00")),
    )


def test_forecast_covers_twelve_months_from_the_period_and_notes_overdue_deals(report: Report) -> None:
    fig = report.figure("forecast")
    assert len(fig.rows) == 12
    assert fig.rows[0] == (date(2026, 1, 1), 0, D("0.00"), D("0.00"))
    assert fig.rows[1] == (date(2026, 2, 1), 2, D("3000.00"), D("1600.00"))
    assert fig.rows[2] == (date(2026, 3, 1), 1, D("500.50"), D("50.05"))
    assert fig.rows[11][0] == date(2026, 12, 1)
    assert fig.notes == ("forecast_overdue",)
    assert all(isinstance(r[3], Decimal) for r in fig.rows)


def test_the_forecast_looks_ahead_from_the_snapshot_when_the_period_began_earlier(tmp_path: Path) -> None:
    """The current year chosen in December: the forecast's months are December and the eleven after it, where
    today's open deals are expected, not the months already gone."""
    later = [deal(20, stage="negotiation", probability=50, amount="800", close_date=date(2027, 2, 3), owner_id=1)]
    december = [row("meta_refresh", refreshed_at=datetime(2026, 12, 2, 9), mode="full", source="test",
                    schema_version=SCHEMA_VERSION, seconds=0.0)]
    with store(tmp_path / "december.duckdb", {**ROWS, "fact_opportunity": OPEN + later, "meta_refresh": december}) \
            as con:
        fig = sales_report(con, Filters(date(2026, 1, 1), date(2027, 1, 1)), ANYONE).figure("forecast")
    assert [r[0] for r in fig.rows] == [date(2026, 12, 1), *(date(2027, m, 1) for m in range(1, 12))]
    assert fig.rows[2] == (date(2027, 2, 1), 1, D("800.00"), D("400.00"))
    assert fig.notes == ("forecast_overdue",)  # the deals expected in early 2026 are overdue now


def test_win_rate_per_month_of_deals_closed_in_the_period(report: Report) -> None:
    assert report.figure("win_rate_by_month").rows == (
        (date(2026, 1, 1), 2, 1, 66.7),
        (date(2026, 2, 1), 0, 1, 0.0),
        (date(2026, 3, 1), 1, 2, 33.3),
        (date(2026, 4, 1), 0, 1, 0.0),
        (date(2026, 5, 1), 0, 0, None),
        (date(2026, 6, 1), 0, 0, None),
    )


def test_win_rate_by_source_with_a_total(report: Report) -> None:
    assert report.figure("win_rate_by_source").rows == (
        ("call", 1, 1, 50.0),
        ("mail", 2, 2, 50.0),
        ("manual", 0, 1, 0.0),
        ("web_form", 0, 1, 0.0),
        ("all_sources", 3, 5, 37.5),
    )


def test_sales_cycle_median_and_p90_days_of_won_deals(report: Report) -> None:
    assert report.figure("sales_cycle").rows == (
        ("call", 1, 39.0, 39.0),
        ("mail", 2, 15.0, 19.0),
        ("all_sources", 3, 20.0, 35.2),  # p90 of 10, 20, 39: 20 + 0.8 × 19
    )


def test_quote_conversion_counts_a_quote_once_over_its_versions(report: Report) -> None:
    assert report.figure("quote_conversion").rows == (
        ("quotes_sent", 4, D("1370.00"), 100.0),
        ("quotes_accepted", 3, D("1170.00"), 75.0),
        ("quotes_ordered", 2, D("1120.00"), 50.0),  # the cancelled order does not count
    )


def test_lost_reasons_are_trimmed_and_grouped_regardless_of_case(report: Report) -> None:
    assert report.figure("lost_reasons").rows == (
        ("price", 3, D("1000.00"), 60.0),
        ("too late", 1, D("50.00"), 20.0),
        ("no_reason", 1, D("100.00"), 20.0),
    )


def test_lost_reasons_beyond_the_top_ten_are_one_row(tmp_path: Path) -> None:
    lost = [deal(i, outcome="lost", amount=str(i), closed_at=datetime(2026, 2, 1), lost_reason=f"reason {i:02d}")
            for i in range(1, 13)] + [deal(13, outcome="lost", amount="5", closed_at=datetime(2026, 2, 1),
                                           lost_reason="reason 01")]
    with store(tmp_path / "r.duckdb", {"fact_opportunity": lost}) as c:
        rows = sales_report(c, PERIOD, ANYONE).figure("lost_reasons").rows
    assert [r[0] for r in rows] == ["reason 01", "reason 12", "reason 11", "reason 10", "reason 09", "reason 08",
                                    "reason 07", "reason 06", "reason 05", "reason 04", "other_reasons"]
    assert rows[0][1:3] == (2, D("6.00"))
    assert rows[-1][1:] == (2, D("5.00"), 15.4)  # reasons 02 and 03: 2 of 13 deals


def test_by_team_pools_teams_under_the_minimum(con: duckdb.DuckDBPyConnection, report: Report) -> None:
    # Nord has 5 owners behind its deals, Süd 2 and one owner has no team: with a minimum of 5 the pool of 3
    # would expose Nord as total minus pool, so everything is one pooled row.
    fig = sales_report(con, PERIOD, StaffPolicy()).figure("sales_by_team")
    assert fig.rows == (("other_teams", 5, D("1750.05"), 3, 5, 37.5, D("4500.00")),)
    assert fig.notes == ("small_groups",)
    fig = sales_report(con, PERIOD, StaffPolicy(min_group_size=2)).figure("sales_by_team")
    assert fig.rows == (
        ("Nord", 4, D("250.05"), 2, 3, 40.0, D("4000.00")),
        ("other_teams", 1, D("1500.00"), 1, 2, 33.3, D("500.00")),
    )


def test_a_team_under_the_minimum_suppresses_every_figure(con: duckdb.DuckDBPyConnection) -> None:
    sud = sales_report(con, Filters(PERIOD.start, PERIOD.end, team="Süd"), StaffPolicy())  # 2 active people
    assert sud.figures and all(f.suppressed and f.rows == () and f.notes == ("team_too_small",)
                               for f in sud.figures)
    assert sud.figure("pipeline_by_stage").columns  # the shape stays for headings and CSV headers


def test_team_filter_shows_a_team_only_where_the_team_breakdown_shows_it(tmp_path: Path) -> None:
    # Open deals: one per person of Nord and of West (5 each). Closed in the period: Nord's five won, two of
    # West and one of Süd lost: among the closed deals West and Süd (3 people) would be the company minus
    # Nord, so the win rates are withheld under either filter.
    deals = [deal(i, stage="qualified", probability=10, amount="100", owner_id=i) for i in range(1, 6)]
    deals += [deal(10 + i, stage="negotiation", probability=75, amount="200", owner_id=10 + i) for i in range(1, 6)]
    deals += [deal(20 + i, outcome="won", amount="10", owner_id=i, closed_at=datetime(2026, 2, 1))
              for i in range(1, 6)]
    deals += [deal(31, outcome="lost", owner_id=11, closed_at=datetime(2026, 2, 1)),
              deal(32, outcome="lost", owner_id=12, closed_at=datetime(2026, 2, 1)),
              deal(33, outcome="lost", owner_id=6, closed_at=datetime(2026, 2, 1))]
    rows = {"dim_staff": [*team_staff(1, "Nord", 5), *team_staff(6, "Süd", 2), *team_staff(11, "West", 5)],
            "fact_opportunity": deals}
    with store(tmp_path / "t.duckdb", rows) as c:
        nord = sales_report(c, Filters(PERIOD.start, PERIOD.end, team="Nord"), StaffPolicy())
        west = sales_report(c, Filters(PERIOD.start, PERIOD.end, team="West"), StaffPolicy())
        everyone = sales_report(c, PERIOD, StaffPolicy())
    assert nord.figure("pipeline_by_stage").rows == (("qualified", 5, D("500.00"), D("50.00")),)
    assert west.figure("pipeline_by_stage").rows == (("negotiation", 5, D("1000.00"), D("750.00")),)
    withheld = (True, (), ("small_groups",))
    for report in (nord, west):
        for key in ("win_rate_by_month", "win_rate_by_source", "lost_reasons"):
            fig = report.figure(key)
            assert (fig.suppressed, fig.rows, fig.notes) == withheld, key
    # Only Nord won deals: its sales cycle is the company's, nobody else's can be derived.
    assert nord.figure("sales_cycle").rows == (("mail", 5, 92.0, 92.0), ("all_sources", 5, 92.0, 92.0))
    fig = west.figure("sales_cycle")
    assert (fig.suppressed, fig.rows, fig.notes) == withheld
    # Without a filter the company's figures show (they are no staff group).
    assert everyone.figure("win_rate_by_source").rows[-1] == ("all_sources", 5, 3, 62.5)
    # By team (open or closed deals): Nord 5, West 5, Süd 1; Süd alone in the pool would be the rest, so the
    # smallest shown team by name (Nord) joins it.
    assert everyone.figure("sales_by_team").rows == (
        ("West", 5, D("750.00"), 0, 2, 0.0, D("0.00")),
        ("other_teams", 5, D("50.00"), 5, 1, 83.3, D("50.00")),
    )
    assert west.figure("sales_by_team").rows == (("West", 5, D("750.00"), 0, 2, 0.0, D("0.00")),)
    assert nord.figure("sales_by_team").suppressed and nord.figure("sales_by_team").rows == ()


def test_category_filter_uses_the_deals_customer_category(con: duckdb.DuckDBPyConnection) -> None:
    a = sales_report(con, Filters(PERIOD.start, PERIOD.end, category="A"), ANYONE)
    assert [r[0] for r in a.figure("pipeline_by_stage").rows] == ["qualified", "needs_analysis", "negotiation"]
    assert a.figure("win_rate_by_source").rows == (("mail", 1, 0, 100.0), ("all_sources", 1, 0, 100.0))
    none = sales_report(con, Filters(PERIOD.start, PERIOD.end, category="none"), ANYONE)
    assert none.figure("pipeline_by_stage").rows == (("quote_sent", 1, D("0.00"), D("0.00")),)


def test_per_person_figure_only_when_switched_on(tmp_path: Path) -> None:
    rows = {**ROWS, "dim_staff": [staff(1, "Nord", name="Anna"), staff(2, "Nord", name="Ben")]}
    with store(tmp_path / "p.duckdb", rows) as c:
        off = sales_report(c, PERIOD, StaffPolicy())
        on = sales_report(c, PERIOD, StaffPolicy(per_person=True))
    assert "sales_by_owner" not in [f.key for f in off.figures]
    owners = {r[0]: r[1:] for r in on.figure("sales_by_owner").rows}
    assert owners["Anna"] == (2, D("200.00"), 1, 0, 100.0, D("1000.00"))
    assert owners["Ben"] == (1, D("50.05"), 1, 0, 100.0, D("3000.00"))


def test_empty_store_and_the_catalog(tmp_path: Path) -> None:
    with store(tmp_path / "e.duckdb", {}) as c:
        report = catalog.run("sales", c, PERIOD, StaffPolicy())
    assert report.name == "sales"
    assert report.figure("pipeline_by_stage").rows == ()
    assert report.figure("quote_conversion").rows[0] == ("quotes_sent", 0, D("0.00"), None)
    assert report.figure("sales_by_team").rows == ()


def test_every_key_and_code_the_reports_show_is_labelled(con: duckdb.DuckDBPyConnection, report: Report,
                                                         tmp_path: Path) -> None:
    from crm_inbox.analytics.reports.customers import customers_report
    from tests.test_analytics_customers_report import world
    from web.reports.labels import is_labelled

    with store(tmp_path / "c.duckdb", world()) as c:
        customers = customers_report(c, PERIOD, StaffPolicy())
    per_person = {**ROWS, "dim_staff": [staff(1, "Nord", name="Anna")]}
    with store(tmp_path / "p.duckdb", per_person) as c:
        owners = sales_report(c, PERIOD, StaffPolicy(per_person=True)).figure("sales_by_owner")
    works_council = sales_report(con, PERIOD, StaffPolicy()).figures  # notes few_people, small_rows
    keys = set()
    for fig in (*report.figures, *customers.figures, owners, *works_council):
        keys |= {fig.key, *fig.notes, *(c.key for c in fig.columns)}
    code_columns = {"stage", "source", "step", "abc_class", "assigned_category", "category", "channel", "team"}
    for fig in (*report.figures, *customers.figures):
        for i, column in enumerate(fig.columns):
            if column.key in code_columns:
                keys |= {r[i] for r in fig.rows if r[i] not in ("A", "B", "C")
                         and (column.key != "team" or r[i] == "other_teams")}  # team names are names
    keys.add("other_reasons")
    assert {"few_people", "small_rows", "other_teams"} <= keys
    assert sorted(k for k in keys if not is_labelled(k)) == []


def _twelve_owners() -> dict[str, list[tuple[Any, ...]]]:
    """Twelve owners in two teams of six. Category A: owner 7's deals alone. Category B: every owner won one
    deal by mail; the two call deals are owner 2's."""
    deals = [deal(100 + n, outcome="won" if n % 2 else "lost", amount="1000", owner_id=7, category="A",
                  created_at=datetime(2026, 1, 5), closed_at=datetime(2026, 2, 4 + n), lost_reason="price")
             for n in range(6)]
    deals += [deal(200 + n, outcome="won", amount="500", owner_id=n + 1, category="B",
                   created_at=datetime(2026, 1, 1), closed_at=datetime(2026, 3, 1 + n)) for n in range(12)]
    deals += [deal(300 + n, outcome="lost", amount="10", owner_id=2, category="B", source="call",
                   closed_at=datetime(2026, 3, 20)) for n in range(2)]
    return {"dim_staff": [*team_staff(1, "Nord", 6), *team_staff(7, "Süd", 6)], "fact_opportunity": deals}


@pytest.fixture(scope="module")
def owners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    with store(tmp_path_factory.mktemp("owners") / "wc.duckdb", _twelve_owners()) as c:
        yield c


def test_a_category_narrowing_the_deals_to_one_owner_suppresses_every_figure(
        owners: duckdb.DuckDBPyConnection) -> None:
    a = Filters(PERIOD.start, PERIOD.end, category="A")
    one = sales_report(owners, a, StaffPolicy())
    allowed = sales_report(owners, a, StaffPolicy(per_person=True))
    for key in ("win_rate_by_month", "win_rate_by_source", "sales_cycle", "lost_reasons"):
        fig = one.figure(key)
        assert (fig.suppressed, fig.rows, fig.notes) == (True, (), ("few_people",)), key
        assert allowed.figure(key).rows and not allowed.figure(key).suppressed, key
    assert allowed.figure("win_rate_by_source").rows[-1] == ("all_sources", 3, 3, 50.0)


def test_a_source_row_of_one_owner_is_withheld(owners: duckdb.DuckDBPyConnection) -> None:
    b = Filters(PERIOD.start, PERIOD.end, category="B")
    fig = sales_report(owners, b, StaffPolicy()).figure("win_rate_by_source")
    allowed = sales_report(owners, b, StaffPolicy(per_person=True)).figure("win_rate_by_source")
    # the call deals are owner 2's alone; mail (twelve owners) minus the total would give them away: withheld too
    assert fig.rows == (("call", None, None, None), ("mail", None, None, None), ("all_sources", 12, 2, 85.7))
    assert fig.notes == ("small_rows",) and not fig.suppressed
    assert allowed.rows[0] == ("call", 0, 2, 0.0)


def test_quotes_count_by_the_local_day_they_were_sent(tmp_path: Path) -> None:
    # Sent at 00:30 on 1 March in Berlin, still 28 February in UTC: a March quote.
    late = row("fact_quote", quote_id=1, opportunity_id=1, number="AN-1", version=1, state="sent",
               sent_at=datetime(2026, 2, 28, 23, 30), sent_date=date(2026, 3, 1), net_total=D("100"),
               quote_date=date(2026, 2, 28))
    rows = {"dim_staff": team_staff(1, "Nord", 1), "fact_opportunity": [deal(1, owner_id=1)], "fact_quote": [late]}
    with store(tmp_path / "q.duckdb", rows) as c:
        march = sales_report(c, Filters(date(2026, 3, 1), date(2026, 4, 1)), ANYONE).figure("quote_conversion")
        february = sales_report(c, Filters(date(2026, 2, 1), date(2026, 3, 1)), ANYONE).figure("quote_conversion")
    assert march.rows[0] == ("quotes_sent", 1, D("100.00"), 100.0)
    assert february.rows[0] == ("quotes_sent", 0, D("0.00"), None)

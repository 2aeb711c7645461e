"""The customers report on a small hand-made store: ABC classes, new leads, customers without contact and
campaign responses against values computed by hand."""

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
from crm_inbox.analytics.reports.customers import customers_report
from crm_inbox.analytics.store import STORE_ALIAS
from tests.analytics_stores import company, contact, row, store

PERIOD = Filters(start=date(2026, 1, 1), end=date(2026, 7, 1))
D = Decimal


def invoice(invoice_id: int, net: str, issued_on: date, *, company_id: int | None = None,
            contact_id: int | None = None, status: str = "open", order_id: int | None = None) -> tuple[Any, ...]:
    return row("fact_invoice", invoice_id=invoice_id, number=f"R{invoice_id}", issued_on=issued_on, status=status,
               net=D(net), gross=D(net), paid=D(0), company_id=company_id, contact_id=contact_id, order_id=order_id)


def order(order_id: int, net: str, order_date: date, *, company_id: int | None = None,
          contact_id: int | None = None, state: str = "open") -> tuple[Any, ...]:
    return row("fact_order", order_id=order_id, number=f"AB{order_id}", order_date=order_date, state=state,
               net_total=D(net), gross_total=D(net), company_id=company_id, contact_id=contact_id)


def person(contact_id: int, company_id: int | None = None, category: str | None = None, *, role: str = "customer",
           origin: str = "manual", created: date = date(2025, 1, 1)) -> tuple[Any, ...]:
    return contact(contact_id, company_id, category, role=role, origin=origin, created_date=created,
                   created_at=datetime(created.year, created.month, created.day))


_ids = iter(range(1, 1000))


def touch(day: date, channel: str, *, contact_id: int | None = None, company_id: int | None = None,
          at: datetime | None = None) -> list[tuple[str, tuple[Any, ...]]]:
    """An interaction on the local ``day`` (at 10:00 UTC unless ``at``) and its contact link."""
    i = next(_ids)
    at = at or datetime(day.year, day.month, day.day, 10)
    out = [("fact_interaction", row("fact_interaction", interaction_id=i, occurred_at=at, occurred_date=day,
                                    kind=channel, direction="in", channel=channel, company_id=company_id))]
    if contact_id is not None:
        out.append(("fact_interaction_contact", row("fact_interaction_contact", interaction_id=i,
                                                    contact_id=contact_id, occurred_at=at, occurred_date=day)))
    return out


def send(recipient_id: int, campaign_id: int, name: str, channel: str, sent: date | None, contact_id: int, *,
         replied: bool = False, bounced: bool = False, opted_out: bool = False,
         opportunity_id: int | None = None) -> tuple[Any, ...]:
    at = datetime(sent.year, sent.month, sent.day) if sent else None
    return row("fact_campaign_send", recipient_id=recipient_id, campaign_id=campaign_id, campaign_name=name,
               channel=channel, state="released" if sent else "left_out", sent_at=at, sent_date=sent,
               replied_at=at if replied else None, bounced_at=at if bounced else None,
               opted_out_at=at if opted_out else None, opportunity_id=opportunity_id, contact_id=contact_id)


def world() -> dict[str, list[tuple[Any, ...]]]:
    rows: dict[str, list[tuple[Any, ...]]] = {
        "dim_company": [company(1, "A"), company(2, "A"), company(3, "B"), company(4), company(5, "C"),
                        company(6, "B"), company(7, "A"), company(8)],
        "dim_contact": [
            person(101, category="C"), person(102, category="A", role="lead"), person(103, 6, role="lead"),
            person(111, 1), person(301, 7, role="debtor"), person(302, 8, role="lead"), person(501, 5),
            # new in the period
            person(201, role="lead", origin="mail", created=date(2026, 1, 10)),
            person(202, role="customer", origin="mail", created=date(2026, 1, 20)),
            person(203, role="lead", origin="import", created=date(2026, 3, 5)),
            person(204, role="supplier", origin="mail", created=date(2026, 3, 6)),
            person(205, role="lead", origin="web_form", created=date(2026, 7, 1)),
            person(206, 1, role="prospect", origin="call", created=date(2026, 2, 1)),
        ],
        "fact_invoice": [
            # invoice 1 bills order 1; invoice 2 has no order (counts on its own)
            invoice(1, "3000", date(2026, 2, 1), company_id=1, order_id=1),
            invoice(2, "2000", date(2026, 5, 1), company_id=1),
            invoice(3, "1000", date(2026, 3, 1), company_id=3),
            invoice(4, "500", date(2026, 3, 2), company_id=3, status="cancelled"),
            invoice(5, "600", date(2025, 12, 31), company_id=5),  # before the period
            invoice(6, "100", date(2026, 4, 1), contact_id=102),
        ],
        "fact_order": [
            order(1, "9999", date(2026, 1, 15), company_id=1),  # billed by invoice 1: the invoice counts
            order(2, "2000", date(2026, 2, 1), company_id=2),
            order(3, "800", date(2026, 3, 1), company_id=4),
            order(4, "100", date(2026, 3, 1), company_id=4, state="cancelled"),
            order(5, "600", date(2026, 6, 30), company_id=5),
            order(6, "300", date(2026, 2, 1), contact_id=103),  # Company 6's contact
            order(7, "200", date(2026, 1, 5), contact_id=101),
            order(8, "50", date(2025, 8, 1), company_id=6),  # before the period, in the last 12 months
        ],
        "dim_channel": [row("dim_channel", channel="email", is_customer_contact=True),
                        row("dim_channel", channel="call", is_customer_contact=True),
                        row("dim_channel", channel="note", is_customer_contact=False)],
        "fact_interaction": [], "fact_interaction_contact": [],
        "fact_campaign_send": [
            send(1, 1, "Frühjahr", "email", date(2026, 3, 1), 111, replied=True),
            send(2, 1, "Frühjahr", "email", date(2026, 3, 1), 201, bounced=True),
            send(3, 1, "Frühjahr", "email", date(2026, 3, 1), 201, replied=True, opted_out=True),
            send(4, 1, "Frühjahr", "email", date(2026, 3, 1), 201, opportunity_id=10),
            send(5, 1, "Frühjahr", "email", date(2026, 3, 1), 201, opportunity_id=10),
            send(6, 1, "Frühjahr", "email", None, 201),  # left out
            send(7, 2, "Alt", "letter", date(2025, 11, 1), 201),
            send(8, 3, "Sommer", "letter", date(2026, 6, 1), 101),
            send(9, 3, "Sommer", "letter", date(2026, 6, 1), 102),
        ],
    }
    for table, values in [
        *touch(date(2026, 6, 15), "email", contact_id=111),  # Company 1: recent
        *touch(date(2026, 5, 1), "call", company_id=2),  # Company 2: recent, by company only
        *touch(date(2026, 6, 1), "note", company_id=3),  # a note is no contact with the customer
        *touch(date(2026, 1, 10), "email", company_id=3),
        *touch(date(2026, 3, 31), "email", company_id=4),  # 91 days before 30 June
        # 90 days: not more than 90 (local day 1 April, still 31 March in UTC: the local day counts)
        *touch(date(2026, 4, 1), "email", contact_id=501, at=datetime(2026, 3, 31, 22, 30)),
        *touch(date(2026, 7, 5), "email", contact_id=103),  # after the period
        *touch(date(2025, 10, 1), "email", contact_id=103),
        *touch(date(2026, 2, 1), "call", contact_id=102),
    ]:
        rows[table].append(values)
    return rows


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    with store(tmp_path_factory.mktemp("customers") / "a.duckdb", world()) as c:
        yield c


@pytest.fixture(scope="module")
def report(con: duckdb.DuckDBPyConnection) -> Report:
    return customers_report(con, PERIOD, StaffPolicy())


# Revenue in the period (10,000 in all): Company 1 5,000 (invoices; its order is not added), Company 2 2,000
# (orders), Company 3 1,000 (the cancelled invoice not counted), Company 4 800, Company 5 600 (orders: its
# invoice is older), Company 6 300 (its contact's order), Contact 101 200, Contact 102 100 (its invoice),
# Company 7 nothing but category A; Company 8 nothing and no category (not a customer to classify).
def test_abc_classes_by_cumulative_revenue_share(report: Report) -> None:
    # by the share of the customers before each: 0 %, 50 %, 70 % are A; 80 %, 88 %, 94 % B; 97 %, 99 % C
    assert report.figure("abc_classes").rows == (
        ("A", 3, D("8000.00"), 33.3, 80.0),
        ("B", 3, D("1700.00"), 33.3, 17.0),
        ("C", 3, D("300.00"), 33.3, 3.0),  # and Company 7 without revenue
    )


def test_abc_against_the_assigned_categories(report: Report) -> None:
    assert [c.key for c in report.figure("abc_vs_assigned").columns] == [
        "abc_class", "assigned_a", "assigned_b", "assigned_c", "assigned_none"]
    assert report.figure("abc_vs_assigned").rows == (
        ("A", 2, 1, 0, 0),
        ("B", 0, 1, 1, 1),
        ("C", 2, 0, 1, 0),
    )
    assert report.figure("abc_mismatches").rows == (
        ("Company 3", D("1000.00"), 80.0, "A", "B"),
        ("Company 4", D("800.00"), 88.0, "B", "none"),
        ("Company 5", D("600.00"), 94.0, "B", "C"),
        ("Contact 102", D("100.00"), 100.0, "C", "A"),
        ("Company 7", D("0.00"), None, "C", "A"),
    )


def test_abc_category_filter_shows_the_assigned_customers_classified_among_all(con: duckdb.DuckDBPyConnection
                                                                              ) -> None:
    report = customers_report(con, Filters(PERIOD.start, PERIOD.end, category="A"), StaffPolicy())
    assert report.figure("abc_classes").rows == (
        ("A", 2, D("7000.00"), 50.0, 98.6),
        ("B", 0, D("0.00"), 0.0, 0.0),
        ("C", 2, D("100.00"), 50.0, 1.4),
    )
    assert report.figure("abc_vs_assigned").rows == (("A", 2, 0, 0, 0), ("B", 0, 0, 0, 0), ("C", 2, 0, 0, 0))


def test_new_leads_per_month_and_origin(report: Report) -> None:
    fig = report.figure("new_leads_by_source")
    assert [c.key for c in fig.columns] == ["month", "origin_mail", "origin_call", "origin_import", "new_leads"]
    assert fig.rows == (
        (date(2026, 1, 1), 2, 0, 0, 2),
        (date(2026, 2, 1), 0, 1, 0, 1),  # a prospect at Company 1 (category A)
        (date(2026, 3, 1), 0, 0, 1, 1),  # the supplier is no lead
        (date(2026, 4, 1), 0, 0, 0, 0),
        (date(2026, 5, 1), 0, 0, 0, 0),
        (date(2026, 6, 1), 0, 0, 0, 0),
    )


def test_new_leads_by_the_customers_category(con: duckdb.DuckDBPyConnection) -> None:
    fig = customers_report(con, Filters(PERIOD.start, PERIOD.end, category="A"), StaffPolicy()).figure(
        "new_leads_by_source")
    assert [c.key for c in fig.columns] == ["month", "origin_call", "new_leads"]
    assert fig.rows[1] == (date(2026, 2, 1), 1, 1)


def test_customers_without_contact_for_90_days(report: Report) -> None:
    assert report.figure("no_contact_90_days").rows == (
        ("Company 3", None, "B", date(2026, 1, 10), 171, D("1000.00")),
        ("Company 4", None, "none", date(2026, 3, 31), 91, D("800.00")),
        ("Company 6", "Contact 103", "B", date(2025, 10, 1), 272, D("350.00")),  # the later mail is after the period
        ("Contact 101", None, "C", None, None, D("200.00")),
        ("Contact 102", None, "A", date(2026, 2, 1), 149, D("100.00")),
        ("Company 7", None, "A", None, None, D("0.00")),  # a debtor's company
        ("Contact 202", None, "none", None, None, D("0.00")),  # a new customer never contacted
    )
    assert report.figure("no_contact_90_days_total").rows == ((7, 7, D("2450.00")),)


def test_without_contact_by_category(con: duckdb.DuckDBPyConnection) -> None:
    report = customers_report(con, Filters(PERIOD.start, PERIOD.end, category="none"), StaffPolicy())
    assert [r[0] for r in report.figure("no_contact_90_days").rows] == ["Company 4", "Contact 202"]
    assert report.figure("no_contact_90_days_total").rows == ((2, 2, D("800.00")),)


def test_campaign_responses(report: Report) -> None:
    assert report.figure("campaign_responses").rows == (
        ("Frühjahr", "email", 5, 2, 40.0, 1, 20.0, 1, 20.0, 1, 20.0),
        ("Sommer", "letter", 2, 0, 0.0, 0, 0.0, 0, 0.0, 0, 0.0),
    )


def test_campaign_responses_by_category(con: duckdb.DuckDBPyConnection) -> None:
    report = customers_report(con, Filters(PERIOD.start, PERIOD.end, category="A"), StaffPolicy())
    assert report.figure("campaign_responses").rows == (
        ("Frühjahr", "email", 1, 1, 100.0, 0, 0.0, 0, 0.0, 0, 0.0),
        ("Sommer", "letter", 1, 0, 0.0, 0, 0.0, 0, 0.0, 0, 0.0),
    )


def test_team_filter_does_not_change_customer_figures(con: duckdb.DuckDBPyConnection, report: Report) -> None:
    teamed = customers_report(con, Filters(PERIOD.start, PERIOD.end, team="Nord"), StaffPolicy())
    assert [f.rows for f in teamed.figures] == [f.rows for f in report.figures]
    assert not any(f.suppressed for f in teamed.figures)
    assert all(f.notes == ("team_filter_not_applied",) for f in teamed.figures)  # the page says so
    assert all(f.notes == () for f in report.figures)


def test_empty_store_and_the_catalog(tmp_path: Path) -> None:
    with store(tmp_path / "e.duckdb", {}) as c:
        report = catalog.run("customers", c, PERIOD, StaffPolicy())
    assert report.name == "customers"
    assert all(f.rows == () for f in report.figures if f.key != "no_contact_90_days_total")
    assert report.figure("no_contact_90_days_total").rows == ((0, 0, D("0.00")),)


def test_money_stays_decimal_and_rates_are_percent_floats(report: Report, tmp_path: Path) -> None:
    from crm_inbox.analytics.reports.sales import sales_report
    from tests.test_analytics_sales_report import ROWS as SALES_ROWS

    figures = list(report.figures)
    with store(tmp_path / "s.duckdb", SALES_ROWS) as sales:
        figures += sales_report(sales, PERIOD, StaffPolicy(min_group_size=1)).figures
    checked = 0
    for fig in figures:
        for i, column in enumerate(fig.columns):
            for r in fig.rows:
                if column.unit == "eur":
                    assert isinstance(r[i], Decimal) and r[i] == r[i].quantize(D("0.01")), (fig.key, column.key)
                    checked += 1
                elif column.unit == "percent":
                    assert r[i] is None or (isinstance(r[i], float) and r[i] == round(r[i], 1)), (fig.key, column.key)
                    checked += 1
    assert checked > 50


def test_a_partly_billed_customer_keeps_its_unbilled_orders(tmp_path: Path) -> None:
    # Company 1 (assigned A): ten orders of 10,000 in March, the ERP billed one of them. Company 2 (assigned C):
    # one order of 20,000. Company 3: an invoice without an order, and a billed order whose invoice was
    # cancelled (the order counts again).
    rows = {
        "dim_company": [company(1, "A"), company(2, "C"), company(3, "C")],
        "fact_order": [*(order(i, "10000", date(2026, 3, 2), company_id=1) for i in range(1, 11)),
                       order(20, "20000", date(2026, 3, 3), company_id=2),
                       order(30, "700", date(2026, 3, 3), company_id=3)],
        "fact_invoice": [invoice(1, "10000", date(2026, 3, 20), company_id=1, order_id=1),
                         invoice(2, "300", date(2026, 3, 21), company_id=3),
                         invoice(3, "700", date(2026, 3, 22), company_id=3, order_id=30, status="cancelled")],
    }
    with store(tmp_path / "abc.duckdb", rows) as c:
        report = customers_report(c, Filters(date(2026, 3, 1), date(2026, 4, 1)), StaffPolicy())
    assert report.figure("abc_classes").rows == (
        ("A", 1, D("100000.00"), 33.3, 82.6),  # nine unbilled orders and the invoice of the tenth
        ("B", 1, D("20000.00"), 33.3, 16.5),
        ("C", 1, D("1000.00"), 33.3, 0.8),
    )
    assert report.figure("abc_mismatches").rows == (("Company 2", D("20000.00"), 99.2, "B", "C"),)


def test_the_largest_customer_is_always_a(tmp_path: Path) -> None:
    rows = {"dim_company": [company(1, "A"), company(2, "B")],
            "fact_invoice": [invoice(1, "9000", date(2026, 3, 2), company_id=1),
                             invoice(2, "1000", date(2026, 3, 2), company_id=2)]}
    with store(tmp_path / "big.duckdb", rows) as c:
        report = customers_report(c, Filters(date(2026, 3, 1), date(2026, 4, 1)), StaffPolicy())
    # 90 % of the revenue: over 80 % cumulated, but nobody comes before it
    assert [r[:2] for r in report.figure("abc_classes").rows] == [("A", 1), ("B", 1), ("C", 0)]
    assert report.figure("abc_mismatches").rows == ()


@pytest.mark.parametrize(("start", "end", "quiet"), [
    # in year 1 only the companies of customer contacts (the contacts themselves are dated 2025) are customers
    (date(1, 1, 1), date(1, 1, 2), 3), (date(1, 1, 1), date(1, 3, 1), 3),
    # in 9999 all ten, none in contact for 90 days
    (date(9999, 1, 1), date(9999, 12, 31), 10), (date(9999, 12, 1), date.max, 10)])
def test_periods_at_the_calendars_ends_give_a_report(con: duckdb.DuckDBPyConnection, start: date, end: date,
                                                     quiet: int) -> None:
    report = customers_report(con, Filters(start, end), StaffPolicy())
    assert report.figure("no_contact_90_days_total").rows[0][0] == quiet
    assert report.figure("new_leads_by_source").rows == ()  # no leads then: no table


def test_reports_side_by_side_on_cursors_of_one_store_keep_their_own_customers(con: duckdb.DuckDBPyConnection,
                                                                                report: Report) -> None:
    # Each run builds its customers on its own cursor (a TEMP table): pages asked at the same time with other
    # periods or categories must not read each other's, and nothing stays behind on the connection.
    from concurrent.futures import ThreadPoolExecutor

    other = Filters(date(2025, 1, 1), date(2026, 12, 1), category="A")
    alone = customers_report(con, other, StaffPolicy())

    def run(filters: Filters) -> Report:
        cursor = con.cursor()
        try:
            cursor.execute(f"USE {STORE_ALIAS}")
            return customers_report(cursor, filters, StaffPolicy())
        finally:
            cursor.close()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, [PERIOD, other] * 4))
    assert [r.figures for r in results] == [report.figures, alone.figures] * 4
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone() == (0,)

"""The report pages (/reports): the store's state, every report's figures with chart, table and CSV, the
filters and their 400s, the works-council suppression in page and CSV, a store that cannot be read, German and
English. The store is a small hand-made one (tests/analytics_stores.py) around today, so the default periods
find it; the pages run the real report queries on it."""

from __future__ import annotations

import csv
import io
import logging
import re
import subprocess
import sys
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crm_inbox.analytics.model import Filters, StaffPolicy
from crm_inbox.analytics.reports import catalog
from crm_inbox.analytics.store import open_store
from crm_inbox.db import unit_of_work
from crm_inbox.erp.overdue import today as local_today
from crm_inbox.staff.service import add_staff
from tests.analytics_stores import build, call, contact, row, staff, team_staff, ticket
from tests.conftest import make_settings
from tests.test_pages import PASSWORD, STAFF, log_in
from web.reports.charts import has_chart
from web.reports.formatting import csv_value

REPORTS = ("service", "phone", "sales", "customers")
INJECTION = "=HYPERLINK(\"http://evil.example\")"  # a lost reason someone typed: a formula in a spreadsheet
SMALL_TEAM = "Lager"  # two people: never shown on its own


def report_world(today: date) -> dict[str, list[tuple[Any, ...]]]:
    """A little of everything the four reports read, within the last 90 days and this year."""
    def day(n: int, hour: int = 10) -> datetime:
        d = today - timedelta(days=n)
        return datetime(d.year, d.month, d.day, hour)

    year_start = date(today.year, 1, 1)
    staff_rows = [*team_staff(1, "Support", 6), *team_staff(7, "Vertrieb", 5), *team_staff(12, SMALL_TEAM, 2),
                  staff(14, None)]
    companies = [row("dim_company", company_id=n + 1, category=category, name=name)
                 for n, (category, name) in enumerate((("A", "Müller Maschinenbau GmbH"), ("B", "Schmidt & Söhne KG"),
                                                       ("C", "Weber Logistik"), (None, INJECTION)))]
    contacts = [contact(n, company_id=n, role="customer", origin="mail", created_at=day(n * 7),
                        created_date=day(n * 7).date()) for n in range(1, 5)]
    contacts += [contact(10 + n, role="lead", origin=("web_form", "call", "import")[n % 3], created_at=day(n * 5),
                         created_date=day(n * 5).date()) for n in range(12)]
    tickets = []
    for n in range(40):
        opened = day(2 + n * 2, 8 + n % 9)
        closed = opened + timedelta(hours=4 + n % 30) if n % 4 else None
        tickets.append(ticket(n + 1, opened, closed_at=closed, first_response_at=opened + timedelta(minutes=20 + n * 7),
                              channel=("email", "call", "web_form")[n % 3], category=("A", "B", "C", None)[n % 4],
                              assignee_id=1 + n % 13, reopen_count=1 if n % 7 == 0 else 0, company_id=1 + n % 4))
    calls = []
    for n in range(80):
        started = day(1 + n % 21, (9, 9, 9, 10, 10, 14, 7 + n % 12)[n % 7])  # busy mornings: shades in the heat map
        answered = n % 5 != 0
        calls.append(call(n + 1, started, answered=answered, staff_id=1 + n % 13 if answered else None,
                          called_back_at=started + timedelta(minutes=15 + n) if not answered and n % 2 else None,
                          company_id=1 + n % 4))
    deals = []
    stages = (("qualified", 10), ("needs_analysis", 25), ("quote_sent", 50), ("negotiation", 75))
    # Every stage, source and lost reason has deals of at least min_group_size owners (the works council's rule
    # holds for company figures too): 7 owners go round.
    for n in range(40):
        stage, probability = stages[n % 4]
        created = datetime(year_start.year, year_start.month, 1) + timedelta(days=n * 8)
        deals.append(row("fact_opportunity", opportunity_id=n + 1, created_at=created, created_date=created.date(),
                         close_date=date(today.year, 12, 20), stage=stage, outcome="open", probability=probability,
                         amount=Decimal("1250.50") * (n + 1), source=("mail", "call", "campaign")[n % 3],
                         owner_id=7 + n % 7, company_id=1 + n % 4, category=("A", "B", "C", None)[n % 4]))
    for n in range(30):
        created = day(300 - n * 9)
        closed = created + timedelta(days=14 + n % 5 * 3)
        won = n % 3 != 0
        deals.append(row("fact_opportunity", opportunity_id=100 + n, created_at=created, created_date=created.date(),
                         closed_at=closed, closed_date=closed.date(), stage="won" if won else "lost",
                         outcome="won" if won else "lost", probability=100 if won else 0,
                         amount=Decimal("4000.00") + n * 100, source="mail",
                         lost_reason=None if won else (INJECTION if n % 2 else "Preis zu hoch"),
                         owner_id=7 + n % 7, company_id=1 + n % 4, category=("A", "B", "C", None)[n % 4]))
    quotes = [row("fact_quote", quote_id=n + 1, opportunity_id=100 + n, number=f"AN-{n + 1}", version=1,
                  state="accepted" if n % 3 else "sent", quote_date=day(150 - n * 10).date(),
                  sent_at=day(150 - n * 10), sent_date=day(150 - n * 10).date(),
                  net_total=Decimal("4000.00") + n * 100, company_id=1 + n % 4)
              for n in range(10)]
    orders = [row("fact_order", order_id=n + 1, number=f"AB-{n + 1}", quote_id=n + 1, opportunity_id=100 + n,
                  order_date=day(140 - n * 10).date(), state="open", net_total=Decimal("4000.00") + n * 100,
                  gross_total=Decimal("4760.00") + n * 119, company_id=1 + n % 4)
              for n in range(10) if n % 3]
    invoices = [row("fact_invoice", invoice_id=n + 1, number=f"RE-{n + 1}", issued_on=day(100 - n * 10).date(),
                    status="paid", net=Decimal(v), gross=Decimal(v) * Decimal("1.19"), paid=Decimal(v),
                    company_id=c)
                for n, (c, v) in enumerate(((1, "90000.00"), (2, "7000.00"), (3, "2500.00"), (4, "500.00")))]
    interactions = [row("fact_interaction", interaction_id=n + 1, occurred_at=day(n * 30),
                        occurred_date=day(n * 30).date(), kind="email", direction="in", channel="email",
                        company_id=1 + n % 4) for n in range(8)]
    interaction_contacts = [row("fact_interaction_contact", interaction_id=n + 1, contact_id=1 + n % 4,
                                occurred_at=day(n * 30), occurred_date=day(n * 30).date(), role="from")
                            for n in range(8)]
    sends = [row("fact_campaign_send", recipient_id=n + 1, campaign_id=1 + n % 2,
                 campaign_name=("Frühjahr", "Herbst")[n % 2], channel="email", state="released",
                 sent_at=day(60 - n), sent_date=day(60 - n).date(), replied_at=day(58 - n) if n % 3 == 0 else None,
                 contact_id=1 + n % 4) for n in range(20)]
    channels = [row("dim_channel", channel=c, is_customer_contact=c not in ("note", "letter"))
                for c in ("email", "call", "note", "document", "meeting", "letter", "web_form", "other")]
    return {"dim_staff": staff_rows, "dim_company": companies, "dim_contact": contacts, "dim_channel": channels,
            "fact_ticket": tickets, "fact_call": calls, "fact_opportunity": deals, "fact_quote": quotes,
            "fact_order": orders, "fact_invoice": invoices, "fact_interaction": interactions,
            "fact_interaction_contact": interaction_contacts, "fact_campaign_send": sends}


_BUILT: dict[Path, Path] = {}


def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world's store, built once per test process (the pages' and the API's tests only read it)."""
    base = tmp_path_factory.getbasetemp()
    if base not in _BUILT:
        today = local_today(make_settings("sqlite://", Path("unused")))
        _BUILT[base] = build(tmp_path_factory.mktemp("analytics") / "analytics.duckdb", report_world(today))
    return _BUILT[base]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_store(tmp_path_factory)


def reports_settings(database_url: str, tmp_path: Path, store: Path, **analytics: Any) -> Any:
    return make_settings(database_url, tmp_path / "instance", analytics={"path": str(store), **analytics})


@pytest.fixture
def settings(database_url, tmp_path, store_path):  # type: ignore[no-untyped-def]
    return reports_settings(database_url, tmp_path, store_path)


@pytest.fixture
def staff_client(client, factory):  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "readonly", password=PASSWORD)
    log_in(client)
    return client


def expected(store: Path, name: str, filters: Filters) -> Any:
    con = open_store(store)
    try:
        return catalog.run(name, con, filters, StaffPolicy())
    finally:
        con.close()


def default_filters(name: str) -> Filters:
    from web.reports.filters import default_period

    first, last = default_period(name, local_today(make_settings("sqlite://", Path("unused"))))
    return Filters(first, last + timedelta(days=1))


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith("\ufeff".encode()), "Excel needs the byte-order mark to read UTF-8"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


# --- the overview --------------------------------------------------------------------------------------

def test_the_overview_says_when_the_figures_were_taken_and_links_every_report(staff_client):
    page = staff_client.get("/reports?lang=en")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Figures as of" in html and "full refresh" in html
    for name in REPORTS:
        assert f'href="/reports/{name}"' in html
    assert '<a href="/reports">Reports</a>' in html  # the navigation's link


def test_a_store_that_cannot_be_read_pauses_the_reports_with_one_log_line(database_url, tmp_path, factory, caplog,
                                                                         store_path):
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
    corrupt = tmp_path / "corrupt.duckdb"
    corrupt.write_bytes(b"not a duckdb file at all" * 100)
    # A store whose header and refresh row read, but whose data blocks are damaged (checksums fail in a query).
    damaged = tmp_path / "damaged.duckdb"
    data = bytearray(store_path.read_bytes())
    data[len(data) // 5: len(data) * 9 // 10] = b"Z" * (len(data) * 9 // 10 - len(data) // 5)
    damaged.write_bytes(bytes(data))
    _check_paused(database_url, tmp_path, factory, caplog, "corrupt", damaged)
    locked = build(tmp_path / "locked.duckdb", {})
    # Another program has the store open for writing (DuckDB: one writer or many readers, never both).
    holder = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(locked)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        for damage, store in (("missing", tmp_path / "missing.duckdb"), ("corrupt", corrupt), ("locked", locked)):
            _check_paused(database_url, tmp_path, factory, caplog, damage, store)
    finally:
        holder.kill()
        holder.wait()


HOLD_OPEN = ("import sys, time, duckdb; con = duckdb.connect(sys.argv[1]); print('holding', flush=True); "
             "time.sleep(60)")


def _check_paused(database_url: str, tmp_path: Path, factory: Any, caplog: Any, damage: str, store: Path) -> None:
    from web import create_app

    caplog.clear()
    client = create_app(reports_settings(database_url, tmp_path, store), factory).test_client()
    log_in(client)
    with caplog.at_level(logging.INFO):
        overview = client.get("/reports?lang=en")
        page = client.get("/reports/service?lang=en")
        svg = client.get("/reports/service/tickets_per_week.svg")
        csv_file = client.get("/reports/service/tickets_per_week.csv")
        dashboard = client.get("/dashboard")
    assert overview.status_code == 200 and dashboard.status_code == 200
    assert page.status_code == svg.status_code == csv_file.status_code == 503
    text = overview.get_data(as_text=True) + page.get_data(as_text=True)
    if damage == "missing":
        assert "No analytics yet." in text and "crm-inbox analytics refresh" in text
    elif damage == "locked":
        assert "locked by another program" in text and "nothing else is affected" in text
    else:
        assert "cannot be read" in text and "nothing else is affected" in text
    store_lines = [r for r in caplog.records if "analytics store" in r.getMessage()]
    assert len(store_lines) == 1 and damage in store_lines[0].getMessage()


def test_reports_switched_off_are_not_there(database_url, tmp_path, factory, store_path):
    from web import create_app

    app = create_app(reports_settings(database_url, tmp_path, store_path, enabled=False), factory)
    client = app.test_client()
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
    log_in(client)
    assert client.get("/reports").status_code == 404
    assert client.get("/reports/service").status_code == 404
    assert 'href="/reports"' not in client.get("/dashboard").get_data(as_text=True)


# --- every report ---------------------------------------------------------------------------------------

CHARTS = ("bar", "stacked_bar", "line", "hbar")


def test_every_figure_has_its_heading_chart_table_and_csv_with_the_same_rows(staff_client, store_path):
    for name in REPORTS:
        report = expected(store_path, name, default_filters(name))
        response = staff_client.get(f"/reports/{name}?lang=en")
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert report.figures, "the world should give every report figures"
        assert "<script>" not in html and " style=" not in html  # the strict CSP allows neither
        query = re.escape(f"from={default_filters(name).start.isoformat()}")
        for figure in report.figures:
            assert f'<section class="figure" id="{figure.key}">' in html
            csv_link = re.search(rf'href="/reports/{name}/{figure.key}\.csv\?{query}&amp;to=', html)
            assert bool(csv_link) != figure.suppressed, figure.key
            drawn = has_chart(figure)  # a chart kind with a value other than zero, not withheld
            img = re.search(rf'<img class="chart" src="/reports/{name}/{figure.key}\.svg\?{query}', html)
            assert bool(img) == drawn, figure.key
            svg = staff_client.get(f"/reports/{name}/{figure.key}.svg")
            assert svg.status_code == (200 if drawn else 404), figure.key
            if drawn:
                assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data[:400]
                policy = svg.headers["Content-Security-Policy"]
                assert "script-src 'none'" in policy and "default-src 'none'" in policy
            download = staff_client.get(f"/reports/{name}/{figure.key}.csv")
            assert download.status_code == 200
            assert download.headers["Content-Disposition"].startswith("attachment;")
            assert download.headers["Content-Type"] == "text/csv; charset=utf-8"
            lines = read_csv(download.data)
            assert lines[0] == [c.key for c in figure.columns]
            want = [["'" + v if v.startswith("=") else v for v in (csv_value(x) for x in r)] for r in figure.rows]
            assert lines[1:] == want, figure.key
    # A lost reason someone typed as a formula reaches the spreadsheet as text.
    cells = [c for line in read_csv(staff_client.get("/reports/sales/lost_reasons.csv").data) for c in line]
    assert "'" + INJECTION in cells and INJECTION not in cells


def test_german_pages_write_numbers_and_money_the_german_way_and_the_heat_map_is_shaded(staff_client):
    english = staff_client.get("/reports/sales?lang=en").get_data(as_text=True)
    german = staff_client.get("/reports/sales?lang=de").get_data(as_text=True)
    assert re.search(r"€[0-9]{1,3}(,[0-9]{3})*\.[0-9]{2}<", english)
    assert re.search(r">[0-9]{1,3}(\.[0-9]{3})*,[0-9]{2} €<", german)
    assert re.search(r">[0-9]+,[0-9] %<", german) and re.search(r">[0-9]+\.[0-9]%<", english)
    assert '<html lang="de">' in german
    html = staff_client.get("/reports/phone?lang=en").get_data(as_text=True)
    heatmap = html.split('id="calls_heatmap"')[1].split("</section>")[0]
    assert "<table" in heatmap and "<img" not in heatmap
    shades = set(re.findall(r'class="number heat heat-([0-5])"', heatmap))
    assert {"0", "5"} <= shades and len(shades) >= 3


# --- filters ------------------------------------------------------------------------------------------

BAD_FILTERS = [("from=2026-03-01&to=2026-02-01", "To"), ("from=1.3.2026", "From"), ("to=tomorrow", "To"),
               ("from=2019-01-01&to=2026-01-01", "To"), ("to=9999-12-31", "To"), ("category=D", "Category"),
               ("team=" + "x" * 101, "Team"), ("from=0001-01-01&to=0001-01-01", "From"),
               ("from=9999-01-01&to=9999-12-30", "From"), ("from=1899-12-31", "From")]
# Dates at the calendar's ends: the customers report steps months and looks 90 days back from them.
EDGE_DATES = ("from=0001-01-01&to=0001-01-01", "from=9999-01-01&to=9999-12-30", "from=2999-12-01&to=3000-01-31")


def test_bad_filters_are_a_clear_400_and_unknown_reports_a_404(staff_client):
    for query, field in BAD_FILTERS:
        page = staff_client.get(f"/reports/service?lang=en&{query}")
        assert page.status_code == 400, query
        assert f'<p class="error" role="alert">{field}: ' in page.get_data(as_text=True)
        assert staff_client.get(f"/reports/service/tickets_per_week.svg?{query}").status_code == 400
        assert staff_client.get(f"/reports/service/tickets_per_week.csv?{query}").status_code == 400
    for query in EDGE_DATES:
        for name in REPORTS:
            for path in (f"/reports/{name}", f"/reports/{name}/x.svg", f"/reports/{name}/x.csv"):
                assert staff_client.get(f"{path}?{query}").status_code == 400, (path, query)
    assert staff_client.get("/reports/customers?from=1900-01-01&to=1900-01-31").status_code == 200
    assert staff_client.get("/reports/customers?from=2999-12-01&to=2999-12-31").status_code == 200
    assert staff_client.get("/reports/payroll").status_code == 404
    assert staff_client.get("/reports/service/nothing.svg").status_code == 404
    assert staff_client.get("/reports/service/nothing.csv").status_code == 404
    assert staff_client.get("/reports/payroll/tickets_per_week.csv").status_code == 404


def test_filters_reach_the_figures_and_the_links(staff_client, store_path):
    today = local_today(make_settings("sqlite://", Path("unused")))
    first, last = today - timedelta(days=30), today
    query = f"from={first}&to={last}&category=A"
    report = expected(store_path, "service", Filters(first, last + timedelta(days=1), category="A"))
    html = staff_client.get(f"/reports/service?{query}").get_data(as_text=True)
    assert f"/reports/service/tickets_per_week.csv?{query.replace('&', '&amp;')}" in html
    figure = report.figure("tickets_per_week")
    lines = read_csv(staff_client.get(f"/reports/service/tickets_per_week.csv?{query}").data)
    assert lines[1:] == [[csv_value(v) for v in r] for r in figure.rows]
    everything = expected(store_path, "service", default_filters("service")).figure("tickets_per_week")
    assert figure.rows != everything.rows  # the category and the period really filtered
    assert '<option value="A" selected>' in html
    assert f'<option value="{SMALL_TEAM}">' in html and '<option value="Support">' in html


# --- the works-council rule, in the page and in every CSV -------------------------------------------------

def test_a_small_team_is_never_shown_on_its_own_in_page_or_csv(staff_client, store_path):
    query = f"team={SMALL_TEAM}"
    filters = default_filters("service")
    report = expected(store_path, "service", Filters(filters.start, filters.end, team=SMALL_TEAM))
    suppressed = [f for f in report.figures if f.suppressed]
    assert suppressed, "a two-person team's staff figures must be withheld"
    html = staff_client.get(f"/reports/service?lang=en&{query}").get_data(as_text=True)
    for figure in suppressed:
        section = html.split(f'id="{figure.key}"')[1].split("</section>")[0]
        assert "Not shown (works agreement)." in section and "<table" not in section and "<img" not in section
        assert ".csv" not in section  # nothing to download; the CSV itself has the header only
        assert "fewer than 5 people" in section
        lines = read_csv(staff_client.get(f"/reports/service/{figure.key}.csv?{query}").data)
        assert lines == [[c.key for c in figure.columns]]
    # Without the filter the small team is pooled or left out: in no figure, no CSV of the staff reports.
    for name in ("service", "phone", "sales"):
        report_html = staff_client.get(f"/reports/{name}?lang=en").get_data(as_text=True)
        assert SMALL_TEAM not in report_html.rsplit("</form>", 1)[1]  # in the team choice only
        for key in re.findall(rf'href="/reports/{name}/(\w+)\.csv', report_html):
            cells = [c for line in read_csv(staff_client.get(f"/reports/{name}/{key}.csv").data) for c in line]
            assert SMALL_TEAM not in cells, (name, key)


# --- formatting and scales (no database) -------------------------------------------------------------------

def test_cells_read_as_people_write_them_in_either_language():
    from web.reports.formatting import cell_text

    assert cell_text(1234.5, "hours", "de") == "1.234,5" and cell_text(1234.5, "hours", "en") == "1,234.5"
    assert cell_text(Decimal("1234.5"), "eur", "de") == "1.234,50 €"
    assert cell_text(Decimal("-5"), "eur", "en") == "-€5.00"
    assert cell_text(12.25, "percent", "de") == "12,3 %" and cell_text(12.25, "percent", "en") == "12.3%"
    assert cell_text(1234, "count", "de") == "1.234" and cell_text(None, "count", "de") == "—"
    assert cell_text(float("nan"), "minutes", "en") == "—"
    assert cell_text(date(2026, 3, 2), "week", "de") == "KW 10/2026"
    assert cell_text("2026-03", "month", "en") == "Mar 2026"
    assert cell_text(date(2026, 3, 2), "date", "en") == "02.03.2026"


def test_chart_scales_have_few_round_ticks_and_all_zero_figures_no_chart():
    from crm_inbox.analytics.model import Column, Figure
    from web.reports.charts import nice_ticks, scale_text

    assert nice_ticks(7, whole=True) == [0, 1, 2, 3, 4, 5, 6, 7]
    assert nice_ticks(14.3, whole=False) == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    assert nice_ticks(0.3, whole=True) == [0, 1]  # never half a ticket
    assert nice_ticks(30012, whole=False)[-1] == 35000
    assert scale_text(35000, "eur", "de") == "35.000 €" and scale_text(14, "percent", "en") == "14%"
    assert scale_text(0.05, "percent", "de") == "0,05 %"
    columns = (Column("month", "month"), Column("weighted_amount", "eur"))
    zeros = Figure("forecast", "bar", columns, ((date(2026, 1, 1), Decimal(0)),), x="month")
    some = Figure("forecast", "bar", columns, ((date(2026, 1, 1), Decimal("0.01")),), x="month")
    assert not has_chart(zeros) and has_chart(some)


def test_the_pages_know_the_catalogs_reports_by_name():
    from web.reports.names import REPORT_NAMES

    assert REPORT_NAMES == tuple(catalog.REPORTS) == REPORTS

"""The sales pages as staff use them: the pipeline with its forecast, an opportunity opened from a contact, the
quote editor's lines, live totals and versions, sending a quote, the order and its ERP files, the price list;
read-only users see but cannot change. Data is built through the services; HTTP only where the page is the point."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.models import (
    Attachment,
    Contact,
    ContactEmail,
    Opportunity,
    OutgoingMail,
    Product,
    Quote,
    QuoteState,
    Salutation,
)
from crm_inbox.sales.inputs import LineFields, OpportunityFields, ProductFields, QuoteFields
from crm_inbox.sales.opportunities import create_opportunity
from crm_inbox.sales.products import create_product
from crm_inbox.sales.quotes import create_quote
from crm_inbox.staff.service import add_staff
from tests.test_pages import csrf_token, log_in

STAFF = "jonas.becker@beispiel-firma.de"
READER = "lena.leser@beispiel-firma.de"
PASSWORD = "richtig-geheim-42"


@pytest.fixture
def world(factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """A staff user, a reader, Klara Müller with an open deal (needs analysis, 10,000 €) and two products."""
    with unit_of_work(factory) as session:
        jonas = add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        add_staff(session, READER, "Lena Leser", "readonly", password=PASSWORD)
        klara = Contact(name="Klara Müller", salutation=Salutation.FRAU, title="Dr.", language="de")
        klara.emails = [ContactEmail(email="klara@mueller-technik.example")]
        session.add(klara)
        session.flush()
        opp = create_opportunity(session, settings, OpportunityFields(
            title="Fräsmaschine für Halle 3", contact_id=klara.id, owner_id=jonas.id, amount=Decimal("10000"),
            stage="needs_analysis", close_date=date.today() + timedelta(days=20)), by=jonas.id)
        machine = create_product(session, settings, ProductFields(
            number="FZ-400", name="Fräsmaschine FZ 400", net_price=Decimal("1000.00")), by=None)
        book = create_product(session, settings, ProductFields(
            number="HB-1", name="Handbuch", net_price=Decimal("10.00"), vat_rate=Decimal("7")), by=None)
        return {"staff": jonas.id, "contact": klara.id, "opp": opp.id, "machine": machine.id, "book": book.id}


def form_token(client: Any, url: str) -> str:
    return csrf_token(client.get(url).get_data(as_text=True))


def new_quote(factory: sessionmaker[Session], settings: Settings, world: dict[str, int],
              *lines: LineFields) -> int:
    with unit_of_work(factory) as session:
        return create_quote(session, settings, QuoteFields(opportunity_id=world["opp"], lines=lines),
                            by=world["staff"]).id


def test_pipeline_shows_the_deal_in_its_column_and_the_forecast(client: Any, world: dict[str, int]) -> None:
    log_in(client)
    html = client.get("/pipeline").get_data(as_text=True)
    column = html[html.index('data-stage="needs_analysis"'):html.index('data-stage="quote_sent"')]
    assert "Fräsmaschine für Halle 3" in column and "Klara Müller" in column
    assert "1 deal" in column and "25 %" in column
    # The forecast: 10,000 € × 25 % in the close date's month, drawn as one bar with its amount.
    chart = html[html.index("<svg"):html.index("</svg>")]
    assert chart.count("<rect") == 6 and "€2,500.00" in chart
    assert "Fräsmaschine" not in client.get("/pipeline?owner=999999").get_data(as_text=True)


def test_opportunity_opened_from_a_contact_then_changed(client: Any, world: dict[str, int],
                                                        factory: sessionmaker[Session]) -> None:
    log_in(client)
    token = form_token(client, f"/opportunities/new?contact_id={world['contact']}")
    created = client.post("/opportunities/new", data={
        "csrf_token": token, "contact_id": world["contact"], "title": "Wartungsvertrag", "amount": "1.200,50",
        "close_date": "2026-12-31", "stage": "qualified", "source": "call"})
    assert created.status_code == 302
    page = client.get(created.headers["Location"]).get_data(as_text=True)
    assert "Wartungsvertrag" in page and "€1,200.50" in page and "New quote" in page
    opp_url = created.headers["Location"]
    changed = client.post(opp_url, data={"csrf_token": token, "title": "Wartungsvertrag", "stage": "negotiation",
                                         "amount": "1200.50", "probability": "", "close_date": "2026-12-31",
                                         "source": "call", "lost_reason": ""}, follow_redirects=True)
    assert "Saved." in changed.get_data(as_text=True)
    with unit_of_work(factory) as session:
        opp = session.execute(select(Opportunity).where(Opportunity.title == "Wartungsvertrag")).scalar_one()
        assert (opp.stage, opp.probability, opp.amount, opp.source.value) == (
            "negotiation", 75, Decimal("1200.50"), "call")
    lost = client.post(opp_url, data={"csrf_token": token, "stage": "lost"}, follow_redirects=True)
    assert "lost reason" in lost.get_data(as_text=True).lower()  # the service's rule, shown as a flash


def test_quote_editor_saves_lines_in_order_and_totals_come_from_the_server(
        client: Any, world: dict[str, int], factory: sessionmaker[Session], settings: Settings) -> None:
    log_in(client)
    made = client.post(f"/opportunities/{world['opp']}/quotes",
                       data={"csrf_token": form_token(client, f"/opportunities/{world['opp']}")})
    quote_url = made.headers["Location"]
    html = client.get(quote_url).get_data(as_text=True)
    assert 'id="quote-form"' in html and "quote_editor.js" in html
    token = csrf_token(html)
    lines = {"csrf_token": token, "lines_sent": "1",
             "line_text": ["Handbuch", "Montage"], "line_product_id": [str(world["book"]), ""],
             "line_quantity": ["3", "2,5"], "line_unit": ["", "Stunde"], "line_unit_price": ["", "80"],
             "line_discount": ["0", "10"], "line_vat": ["7", "19"], "line_description": ["", ""]}
    totals = client.post(quote_url + "/totals", data=lines).get_json()
    # 3 × 10 at 7 % and 2.5 × 80 − 10 % = 180 at 19 %: VAT 2.10 + 34.20
    assert totals["values"] == {"net": "210.00", "vat": "36.30", "gross": "246.30"}
    assert totals["line_nets"] == ["€30.00", "€180.00"] and "Gross total" in totals["html"]
    bad = client.post(quote_url + "/totals", data={**lines, "line_quantity": ["drei", "1"]})
    assert bad.status_code == 400 and "line 1 quantity" in bad.get_json()["error"]["message"]
    saved = client.post(quote_url, data={**lines, "intro": "Wie besprochen:", "language": "de"},
                        follow_redirects=True)
    assert "Saved." in saved.get_data(as_text=True)
    quote_id = int(quote_url.rsplit("/", 1)[1])
    with unit_of_work(factory) as session:
        quote = session.get_one(Quote, quote_id)
        assert [(line.text, line.product_id) for line in quote.lines] == [
            ("Handbuch", world["book"]), ("Montage", None)]
        assert (quote.gross_total, quote.intro) == (Decimal("246.30"), "Wie besprochen:")
    # Reordered: the rows are saved in the order the page sends them.
    client.post(quote_url, data={**lines, "line_text": ["Montage", "Handbuch"],
                                 "line_product_id": ["", str(world["book"])], "line_quantity": ["2,5", "3"],
                                 "line_unit": ["Stunde", ""], "line_unit_price": ["80", ""],
                                 "line_discount": ["10", "0"], "line_vat": ["19", "7"]})
    with unit_of_work(factory) as session:
        assert [line.text for line in session.get_one(Quote, quote_id).lines] == ["Montage", "Handbuch"]

    finalised = client.post(quote_url + "/finalise", data={"csrf_token": token}, follow_redirects=True)
    page = finalised.get_data(as_text=True)
    assert re.search(r"Quote AN-\d{4}-0001", page) and 'id="quote-form"' not in page and "New version" in page
    assert client.get(quote_url + "/pdf").data.startswith(b"%PDF")
    version = client.post(quote_url + "/new-version", data={"csrf_token": token})
    page = client.get(version.headers["Location"]).get_data(as_text=True)
    assert re.search(r"AN-\d{4}-0001-2", page) and 'id="quote-form"' in page and "Versions" in page


def test_sending_a_quote_queues_the_mail_with_its_pdf_and_accepting_makes_the_order(
        client: Any, world: dict[str, int], factory: sessionmaker[Session], settings: Settings) -> None:
    quote_id = new_quote(factory, settings, world, LineFields(product_id=world["machine"], quantity=Decimal(2)))
    log_in(client)
    html = client.get(f"/quotes/{quote_id}").get_data(as_text=True)
    assert "Sehr geehrte Frau Dr. Müller," in html and 'value="klara@mueller-technik.example"' in html
    sent = client.post(f"/quotes/{quote_id}/send", data={
        "csrf_token": csrf_token(html), "to": "klara@mueller-technik.example", "subject": "Angebot",
        "text": "Sehr geehrte Frau Dr. Müller,\n\nanbei unser Angebot."}, follow_redirects=True)
    assert re.search(r"Quote AN-\d{4}-\d{4} sent", sent.get_data(as_text=True))
    with unit_of_work(factory) as session:
        quote = session.get_one(Quote, quote_id)
        mail = session.execute(select(OutgoingMail)).scalar_one()
        assert quote.state is QuoteState.SENT and mail.subject == f"Angebot – {quote.number}"
        names = session.execute(select(Attachment.filename).where(
            Attachment.interaction_id == mail.interaction_id)).scalars().all()
        assert any(name.endswith(".pdf") and quote.number in name for name in names)
    accepted = client.post(f"/quotes/{quote_id}/accept", data={"csrf_token": csrf_token(html)})
    order_url = accepted.headers["Location"]
    page = client.get(order_url).get_data(as_text=True)
    assert re.search(r"Order AB-\d{4}-0001", page) and "€2,380.00" in page
    erp = json.loads(client.get(order_url + "/erp.json").data)
    assert erp["totals"]["gross"] == "2380.00" and erp["lines"][0]["product_number"] == "FZ-400"
    assert "FZ-400" in client.get(order_url + "/erp.csv").get_data(as_text=True)
    listed = client.get(f"/orders?contact_id={world['contact']}").get_data(as_text=True)
    assert erp["number"] in listed and "Klara Müller" in listed
    assert erp["number"] not in client.get("/orders?contact_id=999999").get_data(as_text=True)


def test_price_list_add_edit_deactivate_and_the_editor_search(client: Any, world: dict[str, int],
                                                              factory: sessionmaker[Session]) -> None:
    log_in(client)
    token = form_token(client, "/products")
    client.post("/products", data={"csrf_token": token, "number": "S-1", "name": "Servicestunde",
                                   "unit": "Stunde", "net_price": "95,00", "vat_rate": "19"})
    with unit_of_work(factory) as session:
        product = session.execute(select(Product).where(Product.number == "S-1")).scalar_one()
        product_id = product.id
        assert (product.net_price, product.unit) == (Decimal("95.00"), "Stunde")
    found = client.get("/products/search?q=servic").get_json()["items"]
    assert [(p["number"], p["net_price"], p["vat_rate"]) for p in found] == [("S-1", "95", "19")]
    client.post(f"/products/{product_id}", data={"csrf_token": token, "number": "S-1", "name": "Servicestunde",
                                                 "unit": "Stunde", "net_price": "99.5", "vat_rate": "19",
                                                 "description": ""})
    client.post(f"/products/{product_id}", data={"csrf_token": token, "active": "0"})
    with unit_of_work(factory) as session:
        product = session.get_one(Product, product_id)
        assert (product.net_price, product.active) == (Decimal("99.5"), False)
    assert client.get("/products/search?q=servic").get_json()["items"] == []
    listed = client.get("/products").get_data(as_text=True)  # (its flashes named it before the list)
    assert "Servicestunde" not in listed.split("<table", 1)[1] and "Handbuch" in listed
    assert "Servicestunde" in client.get("/products?inactive=1").get_data(as_text=True).split("<table", 1)[1]


def test_read_only_users_see_the_pages_but_change_nothing(client: Any, world: dict[str, int],
                                                          factory: sessionmaker[Session], settings: Settings) -> None:
    quote_id = new_quote(factory, settings, world, LineFields(text="Beratung", unit_price=Decimal("100")))
    log_in(client, READER)
    for url in ("/pipeline", f"/opportunities/{world['opp']}", f"/quotes/{quote_id}", "/orders", "/products"):
        page = client.get(url)
        assert page.status_code == 200, url
        html = page.get_data(as_text=True)
        assert 'method="post"' not in html.replace('action="/logout"', "").split("</header>", 1)[1], url
    token = form_token(client, "/pipeline")
    assert client.post(f"/quotes/{quote_id}", data={"csrf_token": token}).status_code == 403
    assert client.post(f"/quotes/{quote_id}/finalise", data={"csrf_token": token}).status_code == 403


def test_german_pages_write_money_the_german_way(client: Any, world: dict[str, int]) -> None:
    log_in(client)
    html = client.get(f"/opportunities/{world['opp']}?lang=de").get_data(as_text=True)
    assert "10.000,00 €" in html


def test_deals_panel_for_the_customer_and_company_pages(app: Any, client: Any, world: dict[str, int],
                                                        factory: sessionmaker[Session], settings: Settings) -> None:
    """_deals.html as contact.html and company.html include it: the open deal, its quotes, a link to open one."""
    new_quote(factory, settings, world, LineFields(text="Beratung", unit_price=Decimal("100")))
    from flask import render_template_string

    log_in(client)
    with client:
        client.get("/dashboard")  # the request context, logged in, stays for the rendering below
        html = render_template_string('{% set deals = open_deals(contact_id=cid) %}{% include "_deals.html" %}',
                                      cid=world["contact"])
        empty = render_template_string('{% set deals = open_deals(company_id=999999) %}{% include "_deals.html" %}')
    assert "Fräsmaschine für Halle 3" in html and "needs analysis" in html and "Draft #" in html
    assert "€119.00" in html and f"/opportunities/new?contact_id={world['contact']}" in html
    assert "None." in empty and "company_id=999999" in empty

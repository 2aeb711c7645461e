"""The sales pages in a real browser: the pipeline's card and forecast chart, the quote editor (a product found
by typing, a free line, reordering, totals from the server, saving) and sending a quote from its page."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from crm_inbox.db import unit_of_work
from crm_inbox.models import Attachment, Contact, ContactEmail, OutgoingMail, Quote, Salutation, StaffUser
from crm_inbox.sales.inputs import LineFields, OpportunityFields, ProductFields, QuoteFields
from crm_inbox.sales.opportunities import create_opportunity
from crm_inbox.sales.products import create_product
from crm_inbox.sales.quotes import create_quote
from tests.browser.conftest import log_in, screenshot


def _deal(live: Any, *lines: LineFields) -> dict[str, int]:
    """Klara Müller's deal (needs analysis, 10,000 € closing in 20 days) with a draft quote; two products."""
    settings = live.settings
    with unit_of_work(live.factory) as session:
        jonas = session.execute(select(StaffUser)).scalars().first()
        assert jonas is not None
        klara = Contact(name="Klara Müller", salutation=Salutation.FRAU, title="Dr.", language="de")
        klara.emails = [ContactEmail(email="klara@mueller-technik.example")]
        session.add(klara)
        session.flush()
        create_product(session, settings, ProductFields(number="FZ-400", name="Fräsmaschine FZ 400",
                                                        net_price=Decimal("1000.00")), by=None)
        create_product(session, settings, ProductFields(number="HB-1", name="Handbuch", net_price=Decimal(10),
                                                        vat_rate=Decimal(7)), by=None)
        opp = create_opportunity(session, settings, OpportunityFields(
            title="Fräsmaschine für Halle 3", contact_id=klara.id, owner_id=jonas.id, amount=Decimal("10000"),
            stage="needs_analysis", close_date=date.today() + timedelta(days=20)), by=jonas.id)
        quote = create_quote(session, settings, QuoteFields(opportunity_id=opp.id, lines=lines), by=jonas.id)
        return {"opp": opp.id, "quote": quote.id, "contact": klara.id}


def test_pipeline_card_in_its_column_and_the_forecast_chart(page, live, staff_login):
    ids = _deal(live)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, *staff_login)
    page.get_by_role("link", name="Pipeline", exact=True).click()
    card = page.locator('[data-stage="needs_analysis"] article.card')
    assert card.locator("a.title").inner_text() == "Fräsmaschine für Halle 3"
    assert "25 %" in card.inner_text() and "Klara Müller" in card.inner_text()
    assert page.locator('[data-stage="qualified"] article.card').count() == 0
    bars = [page.locator("svg.chart rect").nth(i).bounding_box() for i in range(6)]
    assert sum(1 for box in bars if box and box["height"] > 50) == 1  # the close date's month, drawn
    assert "€2,500.00" in page.locator("svg.chart").text_content()
    screenshot(page, "sales-pipeline")
    card.locator("a.title").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Fräsmaschine für Halle 3"
    screenshot(page, "sales-opportunity")
    page.goto("/products")
    screenshot(page, "sales-products")
    assert ids["opp"]


def test_quote_editor_product_search_reorder_live_totals_and_save(page, live, staff_login):
    ids = _deal(live)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, *staff_login)
    page.goto(f"/quotes/{ids['quote']}")
    page.get_by_placeholder("Add a product: type its name or number").fill("fz-4")
    page.get_by_role("option", name="FZ-400 · Fräsmaschine FZ 400 · €1,000.00").click()
    rows = page.locator("#lines tr.line")
    assert rows.count() == 1 and rows.nth(0).locator("[name=line_text]").input_value() == "Fräsmaschine FZ 400"
    rows.nth(0).locator("[name=line_quantity]").fill("2")
    page.get_by_role("button", name="Add a free line").click()
    rows.nth(1).locator("[name=line_text]").fill("Montage")
    rows.nth(1).locator("[name=line_unit]").fill("Stunde")
    rows.nth(1).locator("[name=line_unit_price]").fill("100")
    rows.nth(1).get_by_role("button", name="Move up").click()
    assert rows.nth(0).locator("[name=line_text]").input_value() == "Montage"
    assert rows.nth(0).locator("td.pos").inner_text() == "1"
    # 2 × 1,000 + 100 net, 19 % VAT: the server's sum arrives in the totals table.
    gross = page.locator('#totals [data-total="gross"]')
    gross.filter(has_text="€2,499.00").wait_for()
    assert rows.nth(1).locator("td.net").inner_text() == "€2,000.00"
    screenshot(page, "sales-quote-editor")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Saved.").wait_for()
    with unit_of_work(live.factory) as session:
        quote = session.get_one(Quote, ids["quote"])
        assert [(line.text, line.quantity) for line in quote.lines] == [
            ("Montage", Decimal(1)), ("Fräsmaschine FZ 400", Decimal(2))]
        assert quote.gross_total == Decimal("2499.00")
    assert page.dialogs == []


def test_sending_a_quote_from_its_page(page, live, staff_login):
    ids = _deal(live, LineFields(text="Beratung", unit="Stunde", quantity=Decimal(3), unit_price=Decimal(120)))
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, *staff_login)
    page.goto(f"/quotes/{ids['quote']}")
    assert page.get_by_label("To", exact=True).input_value() == "klara@mueller-technik.example"
    assert page.locator("textarea[name=text]").input_value().startswith("Sehr geehrte Frau Dr. Müller,")
    page.get_by_role("button", name="Send quote").click()
    page.get_by_text("sent.").wait_for()
    screenshot(page, "sales-quote-sent")
    with unit_of_work(live.factory) as session:
        quote = session.get_one(Quote, ids["quote"])
        mail = session.execute(select(OutgoingMail)).scalar_one()
        assert mail.to_address == "klara@mueller-technik.example" and mail.subject == f"Angebot – {quote.number}"
        files = session.execute(select(Attachment.filename).where(
            Attachment.interaction_id == mail.interaction_id)).scalars().all()
        assert [name for name in files if name.endswith(".pdf")]
    page.get_by_role("button", name="Accepted: make the order").click()
    page.get_by_role("link", name="CSV for the ERP").wait_for()
    screenshot(page, "sales-order")
    page.get_by_role("navigation").get_by_role("link", name="Orders").click()
    screenshot(page, "sales-orders")

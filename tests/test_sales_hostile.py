"""Hostile input on the sales edges (API and pages, SQLite and PostgreSQL): numbers the columns cannot hold,
exponents, other scripts' digits, ids beyond the 32-bit id columns. Each is answered 4xx (a page: its form again
with the reason, or the filter ignored), never 500, and nothing is written. The editor's live totals refuse
what saving refuses, with the same message. A quote sent from its page wakes the outbox at once, and its
subject names the quote's number, as one sent over the API does."""

from __future__ import annotations

import html
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.errors import ValidationError
from crm_inbox.ids import MAX_ID
from crm_inbox.models import (
    AuditEntry,
    Contact,
    Direction,
    InteractionKind,
    Opportunity,
    OutgoingMail,
    Product,
    Quote,
    QuoteLine,
)
from crm_inbox.models.base import utcnow
from crm_inbox.sales import quote_lines
from crm_inbox.sales.inputs import LineFields, ProductChanges, QuoteFields
from crm_inbox.sales.products import update_product
from crm_inbox.sales.quotes import accept_quote, create_quote
from crm_inbox.staff.service import add_staff
from crm_inbox.timeline.service import record_interaction
from tests.conftest import make_token
from tests.sales_data import sales_settings, world
from tests.test_pages import csrf_token, log_in

API = "/api/v1"
BOSS = "boss@beispiel-firma.de"
PASSWORD = "richtig-geheim-42"
TOO_BIG_ID = str(MAX_ID + 1)  # 2147483648: PostgreSQL's int4 refuses it with an error, not an empty result


@pytest.fixture
def woken() -> list[int]:
    return []


@pytest.fixture
def app(settings: Settings, factory: sessionmaker[Session], woken: list[int]) -> Any:
    """The app as ``serve`` wires it: queued mail wakes the outbox sender (here: a call counted)."""
    from web import create_app

    app = create_app(sales_settings(settings), factory, on_mail_queued=lambda: woken.append(1))
    app.config["TESTING"] = True
    return app


@pytest.fixture
def ids(factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """The sales world, a draft quote of one product line, and an inactive product."""
    with unit_of_work(factory) as session:
        w = world(session, sales_settings(settings))
        add_staff(session, BOSS, "Boss", "admin", password=PASSWORD)
        quote = create_quote(session, settings, QuoteFields(
            opportunity_id=w.opp.id, lines=(LineFields(product_id=w.service.id),)), by=w.staff.id)
        update_product(session, settings, w.book, ProductChanges(active=False), by=w.staff.id)
        return {"quote": quote.id, "opp": w.opp.id, "contact": w.contact.id, "product": w.service.id,
                "retired": w.book.id}


def snapshot(factory: sessionmaker[Session]) -> tuple[int, ...]:
    """What a refused request must leave as it was: rows of the sales tables and of the audit log."""
    with unit_of_work(factory) as session:
        return tuple(session.execute(select(func.count()).select_from(model)).scalar_one()
                     for model in (AuditEntry, Opportunity, Product, Quote, QuoteLine, OutgoingMail))


def page_client(client: Any) -> Callable[[str, str, dict[str, str] | None], Any]:
    """A logged-in staff browser: post(method, url, form) with the CSRF token filled in."""
    assert log_in(client, BOSS, PASSWORD).status_code in (302, 303)
    token = csrf_token(client.get("/pipeline").get_data(as_text=True))

    def call(method: str, url: str, form: dict[str, str] | None = None) -> Any:
        if method == "GET":
            return client.get(url)
        return client.post(url, data={**(form or {}), "csrf_token": token})
    return call


def line_form(**values: str) -> dict[str, str]:
    return {"lines_sent": "1", "line_text": "Beratung", "line_quantity": "1", "line_unit_price": "1", **values}


HOSTILE_NUMBERS = ["9" * 39, "1e999999", "-1e999999", "1E+30", "NaN", "Infinity", "١٢٣", "1,2,3"]


def test_hostile_page_input_is_refused_and_writes_nothing(client: Any, factory: sessionmaker[Session],
                                                         ids: dict[str, int]) -> None:
    call = page_client(client)
    quote = f"/quotes/{ids['quote']}"
    cases: list[tuple[str, str, dict[str, str] | None, int]] = []
    for value in HOSTILE_NUMBERS:
        for field in ("line_quantity", "line_unit_price", "line_discount", "line_vat"):
            cases.append(("POST", quote + "/totals", line_form(**{field: value}), 400))
            cases.append(("POST", quote, line_form(**{field: value}), 302))
        cases.append(("POST", "/opportunities/new", {"title": "T", "contact_id": str(ids["contact"]),
                                                     "amount": value}, 302))
    for value in (TOO_BIG_ID, "99999999999", "0", "-1", "٣"):
        cases += [("POST", quote + "/totals", line_form(line_text="", line_product_id=value), 400),
                  ("POST", quote, line_form(line_text="", line_product_id=value), 302),
                  ("POST", "/opportunities/new", {"title": "T", "contact_id": value, "owner_id": value}, 302),
                  ("POST", "/opportunities/new", {"title": "T", "contact_id": str(ids["contact"]),
                                                  "owner_id": value}, 302),
                  ("POST", f"{quote}/send", {"subject": "Angebot", "text": "Hallo", "in_reply_to": value}, 302),
                  ("GET", f"/opportunities/new?contact_id={value}&company_id={value}", None, 200),
                  ("GET", f"/pipeline?owner={value}", None, 200),
                  ("GET", f"/orders?contact_id={value}&company_id={value}", None, 200)]
    before = snapshot(factory)
    answers = [(method, url, form, call(method, url, form).status_code, want) for method, url, form, want in cases]
    assert [a for a in answers if a[3] != a[4]] == []
    assert snapshot(factory) == before
    with unit_of_work(factory) as session:
        assert [line.quantity for line in session.get_one(Quote, ids["quote"]).lines] == [Decimal(1)]


def api_lines(client: Any, auth: dict[str, str], quote_id: int, lines: list[dict[str, Any]]) -> tuple[Any, Any]:
    """The live totals and the save of the same lines."""
    live = client.post(f"{API}/quotes/totals", json={"lines": lines}, headers=auth)
    saved = client.patch(f"{API}/quotes/{quote_id}", json={"lines": lines}, headers=auth)
    return live, saved


def refused_alike(ids: dict[str, int]) -> list[tuple[list[dict[str, Any]], str]]:
    """Lines saving refuses, each with the field the answer names."""
    free = {"text": "Beratung", "unit_price": "10"}
    return [
        ([{**free, "quantity": "0"}], "lines[0].quantity"),
        ([{**free, "unit_price": "-1"}], "lines[0].unit_price"),
        ([{"product_id": ids["retired"]}], "lines[0].product_id"),
        ([{"product_id": MAX_ID}], "lines[0].product_id"),
        ([{**free, "quantity": "1.0001"}], "lines[0].quantity"),
        ([{**free, "discount_percent": "101"}], "lines[0].discount_percent"),
        ([{**free, "quantity": "-2"}], "lines"),  # a credit line alone: the quote would be negative
        ([{**free, "quantity": "99999999999.999", "unit_price": "999999999999.9999"}] * 1000, "lines"),
        ([free] * 1001, "lines"),
    ]


def test_api_live_totals_refuse_what_saving_refuses(client: Any, factory: sessionmaker[Session],
                                                    ids: dict[str, int]) -> None:
    auth = {"Authorization": f"Bearer {make_token(factory, 'anna@beispiel-firma.de')}"}
    before = snapshot(factory)
    for lines, field in refused_alike(ids):
        live, saved = api_lines(client, auth, ids["quote"], lines)
        assert (live.status_code, saved.status_code) == (400, 400), (field, live.json, saved.json)
        assert live.json["error"] == saved.json["error"] and live.json["error"]["field"] == field
    assert snapshot(factory)[1:] == before[1:]  # the audit log may note the token's use; no sales row changed
    for bad in ("١٢٣", "1e3", "12,50"):
        live, saved = api_lines(client, auth, ids["quote"], [{"text": "A", "unit_price": bad}])
        assert (live.status_code, saved.status_code) == (400, 400)
    ok = client.post(f"{API}/quotes/totals", json={"lines": [{"unit_price": "1.00"}]}, headers=auth)
    assert ok.status_code == 200 and ok.json["gross"] == "1.19"  # a line still being typed needs no text


def test_page_live_totals_refuse_what_saving_refuses_with_the_same_words(
        client: Any, factory: sessionmaker[Session], ids: dict[str, int]) -> None:
    call = page_client(client)
    quote = f"/quotes/{ids['quote']}"
    for form in (line_form(line_quantity="0"), line_form(line_unit_price="-1"),
                 line_form(line_text="", line_product_id=str(ids["retired"])),
                 line_form(line_quantity="99999999999,999", line_unit_price="999999999999,9999")):
        live = call("POST", quote + "/totals", form)
        assert live.status_code == 400
        message = live.get_json()["error"]["message"]
        saved = client.get(call("POST", quote, form).headers["Location"]).get_data(as_text=True)
        assert message in html.unescape(saved)


def test_the_service_refuses_ids_outside_the_id_columns(factory: sessionmaker[Session], settings: Settings,
                                                        ids: dict[str, int]) -> None:
    with unit_of_work(factory) as session:
        for bad in (MAX_ID + 1, 0, -1):
            with pytest.raises(ValidationError) as refused:
                quote_lines.preview(session, settings, [LineFields(product_id=bad)])
            assert refused.value.field == "lines[0].product_id"
        totals = quote_lines.preview(session, settings, [LineFields(product_id=ids["product"], quantity=Decimal(2))])
        assert totals.gross == Decimal("285.60")
        assert quote_lines.preview(session, settings, [LineFields(product_id=ids["retired"])],
                                   known_products={ids["retired"]}).net == Decimal("24.90")


def test_a_quote_sent_from_its_page_wakes_the_outbox_with_its_number_in_the_subject(
        client: Any, factory: sessionmaker[Session], settings: Settings, ids: dict[str, int],
        woken: list[int]) -> None:
    with unit_of_work(factory) as session:  # the customer asked by mail: the quote mail answers that mail
        asked = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.IN,
                                   occurred_at=utcnow(), subject="Anfrage Wartung", text="Was kostet das?",
                                   source_ref="<anfrage-1@kunde-ag.de>",
                                   contacts=[(session.get_one(Contact, ids["contact"]), "from")]).id
    call = page_client(client)
    quote = f"/quotes/{ids['quote']}"
    page = call("GET", quote, None).get_data(as_text=True)
    assert f'name="in_reply_to" value="{asked}"' in page
    assert call("POST", quote + "/send", {"subject": "Ihr Angebot", "text": "Guten Tag",
                                          "in_reply_to": str(asked)}).status_code == 302
    assert woken == [1]
    with unit_of_work(factory) as session:
        label = session.get_one(Quote, ids["quote"]).label
        mail = session.execute(select(OutgoingMail)).scalar_one()
        assert label.startswith("AN-") and mail.subject == f"Ihr Angebot – {label}"
        assert "<anfrage-1@kunde-ag.de>" in str(mail.headers)
        order = accept_quote(session, settings, session.get_one(Quote, ids["quote"]), by=None)
        order_id = order.id
    pdf = call("GET", quote + "/pdf", None)
    assert pdf.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert f"Angebot_{label}.pdf" in pdf.headers["Content-Disposition"]
    audits = snapshot(factory)[0]
    assert call("GET", f"/orders/{order_id}/erp.csv", None).status_code == 200
    assert snapshot(factory)[0] == audits + 1  # the page's CSV export is audited as the API's is


def test_a_quote_sent_over_the_api_carries_its_number_in_the_subject(
        client: Any, factory: sessionmaker[Session], ids: dict[str, int], woken: list[int]) -> None:
    auth = {"Authorization": f"Bearer {make_token(factory, 'vertrieb@beispiel-firma.de', role='staff')}"}
    sent = client.post(f"{API}/quotes/{ids['quote']}/send", headers=auth, json={
        "subject": "Ihr Angebot", "text": "Guten Tag"})
    assert sent.status_code == 200, sent.json
    assert sent.json["label"].startswith("AN-") and woken == [1]
    with unit_of_work(factory) as session:
        assert session.execute(select(OutgoingMail.subject)).scalar_one() == f"Ihr Angebot – {sent.json['label']}"

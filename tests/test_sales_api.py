"""The sales path's JSON API: products, opportunities, quotes (lines, live totals, finalise, PDF, versions,
send, accept, decline) and orders for the ERP (JSON and CSV); who may change what; bad input answered 4xx
naming the field, never 500. Money is a decimal string in every answer."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from crm_inbox.models import OutgoingMail
from tests.conftest import make_token

API = "/api/v1"


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    return response.json


def refused(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    error = response.json["error"]
    if field is not None:
        assert error.get("field") == field, error
    return error


@pytest.fixture
def customer(client: Any, auth: dict[str, str]) -> dict[str, Any]:
    return ok(client.post(f"{API}/contacts", json={"name": "Klaus Müller", "emails": ["klaus@mueller.de"]},
                          headers=auth), 201)


@pytest.fixture
def deal(client: Any, auth: dict[str, str], customer: dict[str, Any]) -> dict[str, Any]:
    return ok(client.post(f"{API}/opportunities", json={"title": "Fräsmaschine", "contact_id": customer["id"]},
                          headers=auth), 201)


def draft(client: Any, auth: dict[str, str], deal: dict[str, Any], *lines: dict[str, Any]) -> dict[str, Any]:
    lines = lines or ({"text": "Beratung", "quantity": 2, "unit": "Stunde", "unit_price": "95.00"},)
    return ok(client.post(f"{API}/quotes", json={"opportunity_id": deal["id"], "lines": list(lines)},
                          headers=auth), 201)


def test_the_sales_path_over_http(client, auth, factory, customer, deal):
    # The price list: a price as a string or as a JSON number, both exact.
    product = ok(client.post(f"{API}/products", json={"number": "FM-200", "name": "Fräsmaschine FM-200",
                                                      "net_price": 12500, "vat_rate": "19"}, headers=auth), 201)
    assert (product["net_price"], product["vat_rate"], product["unit"]) == ("12500.00", "19", "Stück")
    assert ok(client.get(f"{API}/products", query_string={"q": "fräs"}, headers=auth))["items"][0]["id"] == \
        product["id"]
    assert ok(client.patch(f"{API}/products/{product['id']}", json={"net_price": 0.1}, headers=auth))[
        "net_price"] == "0.10"
    ok(client.patch(f"{API}/products/{product['id']}", json={"net_price": "12500.00"}, headers=auth))

    assert ok(client.get(f"{API}/contacts/{customer['id']}", headers=auth))["role"] == "prospect"
    assert deal["stage"] == "qualified" and deal["probability"] == 10 and deal["amount"] is None

    # A quote of a product line and a discounted free line; the editor's live totals say the same.
    lines = [{"product_id": product["id"], "quantity": "1"},
             {"text": "Einweisung vor Ort", "quantity": 3, "unit": "Stunde", "unit_price": "95.00",
              "discount_percent": "10", "vat_rate": 19}]
    quote = draft(client, auth, deal, *lines)
    assert quote["state"] == "draft" and quote["number"] is None
    assert [line["net"] for line in quote["lines"]] == ["12500.00", "256.50"]
    assert quote["totals"] == {"net": "12756.50", "vat": "2423.74", "gross": "15180.24", "line_nets":
                               ["12500.00", "256.50"], "rates": [{"rate": "19", "net": "12756.50", "vat": "2423.74"}]}
    live = ok(client.post(f"{API}/quotes/totals", json={"lines": lines, "language": "de"}, headers=auth))
    assert (live["net"], live["gross"], live["formatted"]["gross"]) == ("12756.50", "15180.24", "15.180,24 €")
    assert ok(client.get(f"{API}/opportunities/{deal['id']}", headers=auth))["amount"] == "12756.50"

    # Finalised: numbered, the PDF a download that no browser shows inline or sniffs.
    final = ok(client.post(f"{API}/quotes/{quote['id']}/finalise", headers=auth))
    assert final["state"] == "final" and final["label"].startswith("AN-")
    pdf = client.get(f"{API}/quotes/{quote['id']}/pdf", headers=auth)
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith("attachment;") and final["label"] in \
        pdf.headers["Content-Disposition"]
    assert pdf.headers["X-Content-Type-Options"] == "nosniff"

    # Changing a final quote makes version 2, said in the body and the Location header.
    changed = client.patch(f"{API}/quotes/{quote['id']}", json={"lines": lines[:1]}, headers=auth)
    second = ok(changed)
    assert second["new_version"] is True and second["id"] != quote["id"]
    assert changed.headers["Location"].endswith(f"/quotes/{second['id']}")
    assert (second["number"], second["version"], second["previous_id"]) == (final["number"], 2, quote["id"])
    assert second["totals"]["gross"] == "14875.00"

    # Sent by mail (the PDF attached, the mail queued), then accepted: the order for the ERP.
    sent = ok(client.post(f"{API}/quotes/{second['id']}/send",
                          json={"subject": "Ihr Angebot", "text": "Anbei unser Angebot."}, headers=auth))
    assert sent["state"] == "sent" and sent["label"] == f"{final['number']}-2"
    assert sent["mail"]["direction"] == "out"
    assert [v["state"] for v in ok(client.get(f"{API}/quotes/{second['id']}/versions", headers=auth))["items"]] \
        == ["superseded", "sent"]
    with factory() as session:
        queued = session.execute(select(OutgoingMail)).scalars().all()
        assert [(m.to_address, m.interaction_id) for m in queued] == [("klaus@mueller.de", sent["mail"]["id"])]

    accepted = client.post(f"{API}/quotes/{second['id']}/accept", headers=auth)
    order = ok(accepted, 201)
    assert accepted.headers["Location"].endswith(f"/orders/{order['id']}")
    assert order["number"].startswith("AB-") and order["quote_number"] == sent["label"]
    erp = ok(client.get(f"{API}/orders/{order['id']}", headers=auth))
    assert erp["totals"]["gross"] == "14875.00" and erp["currency"] == "EUR"
    assert [(line["product_number"], line["net"], Decimal(line["unit_price"])) for line in erp["lines"]] == [
        ("FM-200", "12500.00", Decimal("12500"))]
    assert all(isinstance(value, str) for value in (erp["totals"]["net"], erp["totals"]["vat"]))
    assert Decimal(erp["totals"]["net"]) + Decimal(erp["totals"]["vat"]) == Decimal(erp["totals"]["gross"])

    for url in (f"{API}/orders/{order['id']}.csv", f"{API}/orders/{order['id']}?format=csv",
                f"{API}/orders?format=csv"):
        sheet = client.get(url, headers=auth)
        assert sheet.status_code == 200 and sheet.headers["Content-Type"].startswith("text/csv"), url
        assert "FM-200" in sheet.get_data(as_text=True)
    assert [o["number"] for o in ok(client.get(f"{API}/orders", headers=auth))["items"]] == [order["number"]]
    confirmation = client.get(f"{API}/orders/{order['id']}/pdf", headers=auth)
    assert confirmation.data.startswith(b"%PDF") and confirmation.headers["X-Content-Type-Options"] == "nosniff"

    won = ok(client.get(f"{API}/opportunities/{deal['id']}", headers=auth))
    assert won["stage"] == "won" and sorted(q["state"] for q in won["quotes"]) == ["accepted", "superseded"]
    assert ok(client.get(f"{API}/contacts/{customer['id']}", headers=auth))["role"] == "customer"
    assert ok(client.get(f"{API}/opportunities/{deal['id']}/timeline", headers=auth))["items"]
    # Editing the accepted quote: a conflict.
    refused(client.patch(f"{API}/quotes/{second['id']}", json={"intro": "Neu"}, headers=auth), 409)


def test_pipeline_stages_and_lists(client, auth, deal):
    stages = ok(client.get(f"{API}/sales/stages", headers=auth))["items"]
    assert [s["key"] for s in stages][-2:] == ["won", "lost"] and stages[0] == {
        "key": "qualified", "probability": 10, "is_open": True}
    ok(client.patch(f"{API}/opportunities/{deal['id']}", json={"amount": "1000.00", "close_date": "2030-01-15"},
                    headers=auth))
    board = ok(client.get(f"{API}/opportunities/pipeline", query_string={"owner_id": "me"}, headers=auth))
    column = board["stages"][0]
    assert (column["key"], column["count"], column["amount"]) == ("qualified", 1, "1000.00")
    assert column["cards"][0]["customer"].startswith("Klaus Müller")
    assert all(isinstance(month["amount"], str) for month in board["forecast"])
    assert [o["id"] for o in ok(client.get(f"{API}/opportunities", query_string={
        "open": "1", "stage": "qualified"}, headers=auth))["items"]] == [deal["id"]]
    assert ok(client.get(f"{API}/opportunities", query_string={"stage": "negotiation"}, headers=auth))[
        "items"] == []


def test_read_only_tokens_read_but_cannot_change(client, auth, factory, deal):
    quote = draft(client, auth, deal)
    reader = {"Authorization": f"Bearer {make_token(factory, 'leser@beispiel-firma.de', role='readonly')}"}
    assert ok(client.get(f"{API}/quotes/{quote['id']}", headers=reader))["totals"]["net"] == "190.00"
    assert ok(client.post(f"{API}/quotes/totals", json={"lines": [{"unit_price": "1.00"}]}, headers=reader))[
        "gross"] == "1.19"
    for method, url, body in [
            ("post", f"{API}/products", {"number": "X", "name": "X", "net_price": "1"}),
            ("post", f"{API}/opportunities", {"title": "X", "contact_id": deal["contact_id"]}),
            ("patch", f"{API}/opportunities/{deal['id']}", {"stage": "lost", "lost_reason": "zu teuer"}),
            ("post", f"{API}/quotes", {"opportunity_id": deal["id"]}),
            ("post", f"{API}/quotes/{quote['id']}/finalise", None),
            ("post", f"{API}/quotes/{quote['id']}/accept", None),
            ("delete", f"{API}/quotes/{quote['id']}", None)]:
        refused(getattr(client, method)(url, json=body, headers=reader), 403)
    assert client.get(f"{API}/quotes/{quote['id']}").status_code == 401


@pytest.mark.parametrize(("value", "message"), [
    ("12,50", "decimal"), ("1e3", "decimal"), ("NaN", "decimal"), (True, "decimal"), ([1], "decimal"),
    (1.23456, "4 decimal places"), ("0.00001", "4 decimal places"), ("1000000000000", "less than")])
def test_bad_decimals_are_a_400_naming_the_field(client, auth, value, message):
    error = refused(client.post(f"{API}/products", json={"number": "A-1", "name": "A", "net_price": value},
                                headers=auth), 400, "net_price")
    assert message in error["message"]


def test_bad_input_is_answered_4xx_naming_what_is_wrong(client, auth, deal):
    # Non-finite JSON numbers (Python's parser reads NaN and Infinity) never reach the database.
    refused(client.post(f"{API}/quotes/totals", data='{"lines": [{"unit_price": Infinity}]}', headers={
        **auth, "Content-Type": "application/json"}), 400, "lines[0].unit_price")
    refused(client.post(f"{API}/products", json={"name": "A", "net_price": "1"}, headers=auth), 400, "number")
    refused(client.post(f"{API}/products", json={"number": "A", "name": "A", "net_price": "1", "colour": "red"},
                        headers=auth), 400, "colour")
    refused(client.post(f"{API}/opportunities", json={"title": "X", "contact_id": deal["contact_id"],
                                                      "stage": "dreaming"}, headers=auth), 400, "stage")
    refused(client.patch(f"{API}/opportunities/{deal['id']}", json={"stage": "dreaming"}, headers=auth), 400,
            "stage")
    refused(client.get(f"{API}/opportunities", query_string={"stage": "dreaming"}, headers=auth), 400, "stage")
    refused(client.patch(f"{API}/opportunities/{deal['id']}", json={"close_date": "31.12.2026"}, headers=auth),
            400, "close_date")
    refused(client.post(f"{API}/quotes", json={"opportunity_id": deal["id"], "lines": [
        {"text": "A", "unit_price": "1", "quantity": "1.0001"}]}, headers=auth), 400, "lines[0].quantity")
    refused(client.post(f"{API}/quotes/totals", json={"lines": [{"quantity": 1}]}, headers=auth), 400,
            "lines[0].unit_price")
    refused(client.post(f"{API}/quotes/totals", json={"lines": [{"unit_price": 1, "vat_rate": 16}]},
                        headers=auth), 400, "lines[0].vat_rate")
    refused(client.get(f"{API}/quotes/999999", headers=auth), 404)

    quote = draft(client, auth, deal)
    refused(client.post(f"{API}/quotes/{quote['id']}/decline", json={"reason": "x"}, headers=auth), 409)  # a draft
    ok(client.post(f"{API}/quotes/{quote['id']}/finalise", headers=auth))
    refused(client.post(f"{API}/quotes/{quote['id']}/decline", json={}, headers=auth), 400, "reason")
    refused(client.post(f"{API}/quotes/{quote['id']}/decline", json={"reason": "  "}, headers=auth), 400, "reason")
    refused(client.delete(f"{API}/quotes/{quote['id']}", headers=auth), 409)  # a business letter stays
    refused(client.post(f"{API}/quotes/{quote['id']}/send", json={"subject": "A"}, headers=auth), 400, "text")
    declined = ok(client.post(f"{API}/quotes/{quote['id']}/decline", json={"reason": "zu teuer"}, headers=auth))
    assert (declined["state"], declined["decline_reason"]) == ("declined", "zu teuer")
    lost = ok(client.get(f"{API}/opportunities/{deal['id']}", headers=auth))
    assert (lost["stage"], lost["lost_reason"]) == ("lost", "zu teuer")
    refused(client.post(f"{API}/quotes/{quote['id']}/accept", headers=auth), 409)
    refused(client.patch(f"{API}/quotes/{quote['id']}", json={"intro": "Neu"}, headers=auth), 409)


def test_a_draft_can_be_deleted(client, auth, deal):
    quote = draft(client, auth, deal)
    assert client.delete(f"{API}/quotes/{quote['id']}", headers=auth).status_code == 204
    refused(client.get(f"{API}/quotes/{quote['id']}", headers=auth), 404)

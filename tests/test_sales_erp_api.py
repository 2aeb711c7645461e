"""What the ERP and triage clients do over the API: list the open orders, say an order was taken (PATCH state),
and put a mail that names another customer's deal on a deal (the suggestions triage shows)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.models import Event, InteractionOpportunity, ReminderState
from crm_inbox.sales import quotes
from crm_inbox.sales.inputs import QuoteFields
from tests import test_deal_replies as replies
from tests.conftest import CRM, make_token
from tests.mailfactory import make_mail
from tests.sales_data import lines, sales_settings, world

API = "/api/v1"
deals = replies.deals  # the fixture: Petra's deal and Hans Huber's, each with a sent quote


def test_the_erp_lists_open_orders_and_marks_them_taken(client: Any, settings: Settings,
                                                        factory: sessionmaker[Session]) -> None:
    sales = sales_settings(settings)
    with unit_of_work(factory) as session:
        w = world(session, sales)
        quote = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)),
                                    by=w.staff.id)
        quotes.finalise_quote(session, sales, quote, by=w.staff.id)
        order_id = quotes.accept_quote(session, sales, quote, by=w.staff.id).id
    erp = {"Authorization": f"Bearer {make_token(factory, 'erp@beispiel-firma.de', 'staff', 'ERP')}"}

    def listed(state: str) -> list[int]:
        response = client.get(f"{API}/orders", query_string={"state": state}, headers=erp)
        assert response.status_code == 200, response.json
        return [item["id"] for item in response.json["items"]]

    assert listed("open") == [order_id] and listed("handed_off") == []
    assert client.get(f"{API}/orders", query_string={"state": "shipped"}, headers=erp).status_code == 400

    url = f"{API}/orders/{order_id}"
    taken = client.patch(url, json={"state": "handed_off"}, headers=erp)
    assert taken.status_code == 200, taken.json
    assert (taken.json["state"], taken.json["totals"]["gross"]) == ("handed_off", "535.24")
    assert listed("open") == [] and listed("handed_off") == [order_id]
    assert client.patch(url, json={"state": "handed_off"}, headers=erp).status_code == 200  # a retry: no change
    assert client.patch(url, json={"state": "open"}, headers=erp).status_code == 409
    bad = client.patch(url, json={"state": "shipped"}, headers=erp)
    assert (bad.status_code, bad.json["error"]["field"]) == (400, "state")
    assert client.patch(url, json={"state": "cancelled", "why": "x"}, headers=erp).status_code == 400
    assert client.patch(f"{API}/orders/999999", json={"state": "cancelled"}, headers=erp).status_code == 404
    with factory() as session:
        assert session.scalars(select(Event.type).where(Event.subject_type == "order")
                               .order_by(Event.id)).all() == ["order.created", "order.handed_off"]


def test_triage_over_the_api_puts_a_suggested_mail_on_the_deal(client: Any, settings: Settings,
                                                              factory: sessionmaker[Session], deals: Any) -> None:
    interaction_id = replies.feed(factory, settings, make_mail(
        f"Petra Weber <{replies.PETRA}>", CRM, "Frage zu AN-2026-0043", "Ist das auch für uns?"))
    staff = {"Authorization": f"Bearer {make_token(factory, 'jonas@beispiel-firma.de', 'staff', 'Jonas')}"}
    reader = {"Authorization": f"Bearer {make_token(factory, 'lea@beispiel-firma.de', 'readonly', 'Lea')}"}

    listed = client.get(f"{API}/deal-suggestions", headers=reader)
    assert listed.status_code == 200
    [mail] = listed.json["items"]
    assert (mail["id"], mail["subject"], mail["contact_ids"]) == (interaction_id, "Frage zu AN-2026-0043",
                                                                  [deals.petra])
    [suggestion] = mail["suggestions"]
    assert (suggestion["opportunity_id"], suggestion["title"]) == (deals.theirs, "Lager")
    assert "belongs to another customer" in suggestion["text"]

    url = f"{API}/interactions/{interaction_id}/deal"
    assert client.post(url, json={"opportunity_id": deals.theirs}, headers=reader).status_code == 403
    assert client.post(url, json={"opportunity_id": 999999}, headers=staff).status_code == 400
    assert client.post(url, json={"opportunity_id": "1"}, headers=staff).status_code == 400
    done = client.post(url, json={"opportunity_id": deals.theirs}, headers=staff)
    assert done.status_code == 200, done.json
    assert (done.json["linked"], done.json["opportunity_id"], done.json["suggestions"]) == (True, deals.theirs, [])
    assert client.post(url, json={"opportunity_id": deals.theirs}, headers=staff).json["linked"] is False
    assert client.get(f"{API}/deal-suggestions", headers=reader).json["items"] == []
    assert replies.follow_ups(factory, deals.theirs) == [ReminderState.DONE]  # the customer wrote about it
    with factory() as session:
        assert session.scalars(select(InteractionOpportunity.opportunity_id).where(
            InteractionOpportunity.interaction_id == interaction_id)).all() == [deals.theirs]

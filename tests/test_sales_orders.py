"""Orders and the ERP handoff: an accepted quote's order carries the same lines and totals (also where per-line
rounding would drift by a cent), its JSON has every amount as a decimal string, and its CSV is ;-separated with
spreadsheet formulas neutralised."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.errors import Conflict, ValidationError
from crm_inbox.models import AuditEntry, Event, Interaction, InteractionOpportunity, Order, OrderState
from crm_inbox.sales import orders, quotes
from crm_inbox.sales.inputs import LineFields, QuoteFields
from crm_inbox.sales.totals import compute
from tests.sales_data import D, World, lines, sales_settings, world

YEAR = date.today().year


def _order(session: Session, settings: Settings, w: World, quote_lines: tuple[LineFields, ...]) -> Order:
    quote = quotes.create_quote(session, settings, QuoteFields(opportunity_id=w.opp.id, lines=quote_lines),
                                by=w.staff.id)
    quotes.finalise_quote(session, settings, quote, by=w.staff.id)
    return quotes.accept_quote(session, settings, quote, by=w.staff.id)


def test_order_json_for_the_erp(settings: Settings, factory: sessionmaker[Session]) -> None:
    sales = sales_settings(settings)
    with unit_of_work(factory) as session:
        w = world(session, sales)
        order = _order(session, sales, w, lines(w))
        data = orders.order_for_erp(session, order)
        assert json.loads(json.dumps(data)) == data  # JSON-ready as it is
        assert (data["number"], data["quote_number"], data["currency"], data["state"]) == (
            f"AB-{YEAR}-0001", f"AN-{YEAR}-0001", "EUR", "open")
        customer = data["customer"]
        assert (customer["customer_number"], customer["company_name"], customer["contact_name"]) == (
            "K-10042", "Kunde AG", "Eva Müller")
        assert customer["email"] == "eva.mueller@kunde-ag.de"
        assert customer["address"] == {"street": "Industriestr. 5", "postcode": "70173", "city": "Stuttgart",
                                       "country": "DE"}
        assert customer["delivery_address"]["street"] == "Lagerweg 2"
        assert customer["address_lines"][:2] == ["Kunde AG", "z. Hd. Frau Dr. Eva Müller"]
        assert data["lines"][0] == {
            "position": 1, "product_number": "W-100", "text": "Wartung", "description": "Wartung vor Ort",
            "quantity": "3", "unit": "Stunde", "unit_price": "120.00", "discount_percent": "0",
            "vat_rate": "19", "net": "360.00"}
        assert data["lines"][2]["net"] == "45.00"  # 1.5 × 33.3333 less 10 %
        assert data["totals"] == {"net": "454.80", "vat": "80.44", "gross": "535.24", "rates": [
            {"rate": "19", "net": "405.00", "vat": "76.95"}, {"rate": "7", "net": "49.80", "vat": "3.49"}]}
        event = session.scalars(select(Event).where(Event.type == "order.created")).one()
        assert event.payload == data
        assert orders.order_pdf(session, sales, order).startswith(b"%PDF")
        quote = quotes.quote_versions(session, session.get_one(quotes.Quote, order.quote_id))[0]
        with pytest.raises(Conflict):  # a quote makes one order
            orders.order_from_quote(session, sales, quote, by=w.staff.id)
        order_id = order.id
    with factory() as session:  # read back from the database: the same strings
        assert orders.order_for_erp(session, session.get_one(Order, order_id)) == data


def test_totals_agree_where_per_line_rounding_drifts(settings: Settings, factory: sessionmaker[Session]) -> None:
    sales = sales_settings(settings)
    # 0.125 a piece: each line's net rounds half-up; VAT is taken on each rate's sum, not per line.
    tricky = tuple(LineFields(text=f"Schraube {i}", quantity=D("1.001"), unit_price=D("0.1249"),
                              vat_rate=D("19") if i % 3 else D("7"), discount_percent=D("0.5") if i % 2 else D(0))
                   for i in range(60))
    with unit_of_work(factory) as session:
        w = world(session, sales)
        order = _order(session, sales, w, tricky)
        quote = session.get_one(quotes.Quote, order.quote_id)
        expected = compute(quote.lines)
        assert (order.net_total, order.vat_total, order.gross_total) == (expected.net, expected.vat, expected.gross)
        assert (quote.net_total, quote.vat_total, quote.gross_total) == (expected.net, expected.vat, expected.gross)
        assert compute(order.lines) == expected
        assert [line.net for line in order.lines] == list(expected.line_nets)
        assert orders.order_for_erp(session, order)["totals"]["gross"] == f"{expected.gross:.2f}"


def test_orders_csv(settings: Settings, factory: sessionmaker[Session]) -> None:
    sales = sales_settings(settings)
    with unit_of_work(factory) as session:
        w = world(session, sales)
        order = _order(session, sales, w, (
            LineFields(text='=HYPERLINK("http://evil.example","klick")', unit_price=D("100")),
            LineFields(text="Gutschrift; alt", quantity=D("-1"), unit_price=D("10"), vat_rate=D("19"))))
        text = orders.export_orders_csv(session, [order], w.staff.id, {"contact_id": w.contact.id})
        assert text == orders.orders_csv(session, [order])
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "export",
                                                          AuditEntry.object_type == "order"))
        assert (entry.staff_id, entry.details["count"], entry.details["orders"]) == (w.staff.id, 1, [order.number])
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text[1:]), delimiter=";"))
    assert [row["position"] for row in rows] == ["1", "2"]
    assert rows[0]["text"] == "'=HYPERLINK(\"http://evil.example\",\"klick\")"
    assert (rows[1]["text"], rows[1]["quantity"], rows[1]["line_net"]) == ("Gutschrift; alt", "-1", "-10.00")
    assert rows[0]["order_number"] == f"AB-{YEAR}-0001" and rows[0]["customer_number"] == "K-10042"
    # The billing and the delivery address, as the JSON has them.
    assert [rows[1][k] for k in ("street", "postcode", "city", "country")] == [
        "Industriestr. 5", "70173", "Stuttgart", "DE"]
    assert [rows[1][k] for k in ("delivery_street", "delivery_postcode", "delivery_city", "delivery_country")] == [
        "Lagerweg 2", "70174", "Stuttgart", "DE"]
    assert (rows[0]["order_net"], rows[0]["order_vat"], rows[0]["order_gross"]) == ("90.00", "17.10", "107.10")
    assert "\r\n" in text


def test_one_decision_when_two_come_at_once(settings: Settings, factory: sessionmaker[Session]) -> None:
    """A double click on accept, or a colleague declining at the same moment: the later request waits for the
    first and finds the quote decided (Conflict), never a second order or a declined quote with an order."""
    sales = sales_settings(settings)
    with unit_of_work(factory) as session:
        w = world(session, sales)
        ids = []
        for _ in range(2):
            quote = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)),
                                        by=w.staff.id)
            quotes.finalise_quote(session, sales, quote, by=w.staff.id)
            ids.append(quote.id)
        staff_id = w.staff.id

    def decide(quote_id: int, how: str, start: threading.Barrier, outcomes: list[str]) -> None:
        start.wait()
        try:
            with unit_of_work(factory) as session:
                quote = session.get_one(quotes.Quote, quote_id)
                if how == "accept":
                    quotes.accept_quote(session, sales, quote, by=staff_id)
                else:
                    quotes.decline_quote(session, sales, quote, "zu teuer", by=staff_id)
            outcomes.append(how)
        except Conflict:
            outcomes.append("conflict")

    for quote_id, (first, second) in zip(ids, [("accept", "accept"), ("accept", "decline")], strict=True):
        start, outcomes = threading.Barrier(2), []
        workers = [threading.Thread(target=decide, args=(quote_id, how, start, outcomes)) for how in (first, second)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert len(outcomes) == 2 and outcomes.count("conflict") == 1, outcomes
    with factory() as session:
        states = {row.id: row.state for row in session.execute(select(quotes.Quote.id, quotes.Quote.state))}
        made = session.scalars(select(Order.quote_id)).all()
    assert sorted(made) == sorted(i for i in ids if states[i] is quotes.QuoteState.ACCEPTED)


def test_the_erp_hands_off_and_cancels_orders(settings: Settings, factory: sessionmaker[Session]) -> None:
    """open → handed_off → cancelled, each on the deal's timeline, audited and an event for the webhooks; a
    repeated call changes nothing; an unknown state is invalid, a cancelled order stays cancelled."""
    sales = sales_settings(settings)
    with unit_of_work(factory) as session:
        w = world(session, sales)
        order = _order(session, sales, w, lines(w))
        with pytest.raises(ValidationError):
            orders.set_state(session, order, "shipped", by=w.staff.id)
        assert orders.set_state(session, order, "handed_off", by=w.staff.id) is True
        assert orders.set_state(session, order, "handed_off", by=w.staff.id) is False  # the ERP retried
        with pytest.raises(Conflict):
            orders.set_state(session, order, "open", by=w.staff.id)
        assert orders.set_state(session, order, "cancelled", by=w.staff.id) is True
        with pytest.raises(Conflict):
            orders.set_state(session, order, "handed_off", by=w.staff.id)
        order_id, opp_id, staff_id = order.id, w.opp.id, w.staff.id
    with factory() as session:
        assert session.get_one(Order, order_id).state is OrderState.CANCELLED
        sent = session.scalars(select(Event).where(Event.subject_type == "order", Event.subject_id == order_id)
                               .order_by(Event.id)).all()
        assert [(e.type, e.payload["state"]) for e in sent] == [
            ("order.created", "open"), ("order.handed_off", "handed_off"), ("order.cancelled", "cancelled")]
        audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "order.state")
                                  .order_by(AuditEntry.id)).all()
        assert [(a.staff_id, a.details["from"], a.details["to"]) for a in audited] == [
            (staff_id, "open", "handed_off"), (staff_id, "handed_off", "cancelled")]
        on_deal = session.scalars(select(Interaction.subject).join(
            InteractionOpportunity, InteractionOpportunity.interaction_id == Interaction.id)
            .where(InteractionOpportunity.opportunity_id == opp_id, Interaction.details["event"].as_string()
                   .in_(["order.handed_off", "order.cancelled"])).order_by(Interaction.id)).all()
        assert on_deal == [f"Order AB-{YEAR}-0001 handed off to the ERP", f"Order AB-{YEAR}-0001 cancelled"]


def test_two_hand_offs_at_once_make_one_event(settings: Settings, factory: sessionmaker[Session]) -> None:
    """The ERP's call and its retry (or a colleague's cancel) at the same moment: one change, one event."""
    sales = sales_settings(settings)
    with unit_of_work(factory) as session:
        w = world(session, sales)
        order_id, staff_id = _order(session, sales, w, lines(w)).id, w.staff.id
    start, outcomes = threading.Barrier(2), []

    def hand_off() -> None:
        start.wait()
        with unit_of_work(factory) as session:
            outcomes.append(orders.set_state(session, session.get_one(Order, order_id), "handed_off", by=staff_id))

    workers = [threading.Thread(target=hand_off) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(outcomes) == [False, True]
    with factory() as session:
        assert session.scalars(select(Event.type).where(Event.subject_type == "order").order_by(Event.id)).all() == [
            "order.created", "order.handed_off"]

"""Postal addresses, salutation, title, language and customer numbers of people and companies: checked once by
the service, carried by the API (the address as one object), shown and edited on the pages, exported as CSV,
and kept when duplicates are merged, with the duplicate's deals."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.contacts.csv_export import contacts_csv
from crm_inbox.contacts.inputs import CompanyChanges, ContactChanges
from crm_inbox.contacts.merge import merge_contacts
from crm_inbox.contacts.service import create_company, create_contact, update_company, update_contact
from crm_inbox.db import unit_of_work
from crm_inbox.errors import ValidationError
from crm_inbox.models import (
    AuditEntry,
    Company,
    Contact,
    Opportunity,
    Order,
    Quote,
    Reminder,
    Salutation,
    utcnow,
)
from crm_inbox.staff.service import add_staff
from tests.test_pages import PASSWORD, STAFF, csrf_token, log_in

API = "/api/v1"


def make_contact(factory: sessionmaker[Session], **values: Any) -> int:
    with unit_of_work(factory) as session:
        return create_contact(session, ContactChanges(**values), "DE", None).id


# --- the service's rules ---

def test_a_person_gets_salutation_title_language_number_and_address_audited(factory):
    person = make_contact(factory, name="Petra Schmidt")
    with unit_of_work(factory) as session:
        changed = update_contact(session, session.get_one(Contact, person), ContactChanges(
            salutation="frau", title=" Dr. ", language="EN", customer_number="K-10042",
            street="Hauptstraße 1", postcode="1010", city="Wien", country=" at "), "DE", None)
    assert changed == {"salutation": "frau", "title": "Dr.", "language": "en", "customer_number": "K-10042",
                       "street": "Hauptstraße 1", "postcode": "1010", "city": "Wien", "country": "AT"}
    with factory() as session:
        row = session.get_one(Contact, person)
        assert (row.salutation, row.title, row.language, row.country) == (Salutation.FRAU, "Dr.", "en", "AT")
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "update")).scalar_one()
        assert entry.details["country"] == "AT" and entry.details["salutation"] == "frau"


@pytest.mark.parametrize(("field", "value", "why"), [
    ("salutation", "madame", "must be one of frau, herr, none"),
    ("title", "Dr. " * 20, "at most 50"),
    ("language", "fr", "must be one of de, en"),
    ("country", "Deutschland", "two-letter ISO 3166"),
    ("country", "XX", "two-letter ISO 3166"),
    ("postcode", "1" * 21, "at most 20"),
    ("street", "s" * 201, "at most 200"),
    ("city", "c" * 101, "at most 100"),
    ("customer_number", "9" * 51, "at most 50"),
])
def test_a_bad_value_is_refused_naming_the_field_and_nothing_changes(factory, field, value, why):
    person = make_contact(factory, name="Petra Schmidt")
    with pytest.raises(ValidationError) as refused, unit_of_work(factory) as session:
        update_contact(session, session.get_one(Contact, person),
                       ContactChanges(name="Petra Neu", **{field: value}), "DE", None)
    assert refused.value.field == field and why in refused.value.message
    with factory() as session:
        assert session.get_one(Contact, person).name == "Petra Schmidt"


def test_a_company_has_a_billing_and_a_delivery_address(factory):
    with unit_of_work(factory) as session:
        company = create_company(session, CompanyChanges(
            name="Müller GmbH", customer_number="10001", street="Industriestr. 5", postcode="80331",
            city="München", country="de", delivery_street="Lagerweg 2", delivery_postcode="85221",
            delivery_city="Dachau", delivery_country="DE"), "DE", None)
        company_id = company.id
    with pytest.raises(ValidationError) as refused, unit_of_work(factory) as session:
        update_company(session, session.get_one(Company, company_id), CompanyChanges(delivery_country="Bayern"),
                       "DE", None)
    assert refused.value.field == "delivery_country"
    with unit_of_work(factory) as session:
        firm = session.get_one(Company, company_id)
        assert (firm.country, firm.delivery_city, firm.customer_number) == ("DE", "Dachau", "10001")
        update_company(session, firm, CompanyChanges(delivery_street=None, delivery_postcode="",
                                                      delivery_city=None, delivery_country=None), "DE", None)
    with factory() as session:
        firm = session.get_one(Company, company_id)
        assert (firm.delivery_street, firm.delivery_postcode, firm.street) == (None, None, "Industriestr. 5")


# --- API ---

def test_the_api_carries_the_address_as_one_object(client, auth):
    made = client.post(f"{API}/contacts", json={
        "name": "Klaus Müller", "salutation": "herr", "title": "Prof.", "language": "de",
        "customer_number": "K-7", "address": {"street": "Ring 3", "postcode": "8001", "city": "Zürich",
                                              "country": "ch"}}, headers=auth)
    assert made.status_code == 201, made.json
    body = made.json
    assert body["address"] == {"street": "Ring 3", "postcode": "8001", "city": "Zürich", "country": "CH"}
    assert (body["salutation"], body["title"], body["language"], body["customer_number"]) == \
        ("herr", "Prof.", "de", "K-7")
    url = f"{API}/contacts/{body['id']}"
    changed = client.patch(url, json={"address": {"city": "Basel"}}, headers=auth).json
    assert changed["address"] == {"street": "Ring 3", "postcode": "8001", "city": "Basel", "country": "CH"}
    assert client.patch(url, json={"address": None}, headers=auth).json["address"] == dict.fromkeys(
        ("street", "postcode", "city", "country"))

    for payload, field in (({"address": {"country": "Schweiz"}}, "address.country"),
                           ({"address": {"city": 5}}, "address.city"),
                           ({"address": {"town": "Bern"}}, "address.town"),
                           ({"address": "Ring 3, Bern"}, "address"),
                           ({"city": "Bern"}, "city"),
                           ({"salutation": "dr"}, "salutation")):
        refused = client.patch(url, json=payload, headers=auth)
        assert refused.status_code == 400 and refused.json["error"]["field"] == field, (payload, refused.json)


def test_the_api_carries_a_companys_delivery_address(client, auth):
    made = client.post(f"{API}/companies", json={
        "name": "Müller GmbH", "customer_number": "10001",
        "address": {"street": "Industriestr. 5", "postcode": "80331", "city": "München", "country": "DE"},
        "delivery_address": {"city": "Dachau"}}, headers=auth)
    assert made.status_code == 201, made.json
    assert made.json["delivery_address"] == {"street": None, "postcode": None, "city": "Dachau", "country": None}
    refused = client.patch(f"{API}/companies/{made.json['id']}", json={"delivery_address": {"country": "XY"}},
                           headers=auth)
    assert refused.status_code == 400 and refused.json["error"]["field"] == "delivery_address.country"
    doc = client.get(f"{API}/openapi.json").json["components"]["schemas"]
    assert "delivery_address" in doc["Company"]["properties"] and "address" in doc["ContactInput"]["properties"]


# --- CSV ---

def test_the_csv_has_the_new_columns_with_formulas_neutralised(factory):
    with unit_of_work(factory) as session:
        person = create_contact(session, ContactChanges(
            name="Petra Schmidt", salutation="frau", title="Dr.", street="=HYPERLINK(\"http://x\")",
            postcode="10115", city="Berlin", country="DE", customer_number="-42"), "DE", None)
        session.flush()
        text = contacts_csv([person])
    header, row = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    cells = dict(zip(header, row, strict=True))
    assert (cells["salutation"], cells["title"], cells["postcode"], cells["city"], cells["country"]) == \
        ("frau", "Dr.", "10115", "Berlin", "DE")
    assert cells["street"] == "'=HYPERLINK(\"http://x\")" and cells["customer_number"] == "'-42"
    assert header[:3] == ["id", "name", "company"]


# --- pages ---

@pytest.fixture
def staff(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)


def test_the_customer_page_shows_and_edits_the_address(client, factory, staff):
    person = make_contact(factory, name="Petra Schmidt", street="Hauptstraße 1", postcode="1010", city="Wien",
                          country="AT", salutation="frau", title="Dr.")
    log_in(client)
    page = client.get(f"/contacts/{person}").get_data(as_text=True)
    assert "Hauptstraße 1<br>1010 Wien<br>Austria" in page and "Ms Dr." in page
    form = {"csrf_token": csrf_token(page), "name": "Petra Schmidt", "role": "customer", "tags": "", "emails": "",
            "phones": "", "salutation": "frau", "title": "Dr.", "language": "de", "customer_number": "",
            "street": "Marienplatz 1", "postcode": "80331", "city": "München", "country": "de"}
    client.post(f"/contacts/{person}/edit", data=form)
    page = client.get(f"/contacts/{person}").get_data(as_text=True)
    assert "Marienplatz 1<br>80331 München</dd>" in page  # our own country is not written
    client.post(f"/contacts/{person}/edit", data={**form, "country": "Germany"})
    with factory() as session:
        row = session.get_one(Contact, person)
        assert (row.city, row.country, row.language) == ("München", "DE", "de")


def test_the_company_page_shows_and_edits_both_addresses(client, factory, staff):
    with unit_of_work(factory) as session:
        company_id = create_company(session, CompanyChanges(name="Müller GmbH"), "DE", None).id
    log_in(client)
    page = client.get(f"/companies/{company_id}").get_data(as_text=True)
    client.post(f"/companies/{company_id}/edit", data={
        "csrf_token": csrf_token(page), "name": "Müller GmbH", "customer_number": "10001",
        "street": "Industriestr. 5", "postcode": "80331", "city": "München", "country": "DE",
        "delivery_street": "Lagerweg 2", "delivery_postcode": "6020", "delivery_city": "Innsbruck",
        "delivery_country": "AT"})
    page = client.get(f"/companies/{company_id}").get_data(as_text=True)
    assert "Industriestr. 5<br>80331 München</dd>" in page
    assert "Lagerweg 2<br>6020 Innsbruck<br>Austria" in page and "10001" in page


# --- merge ---

def test_merging_moves_the_duplicates_deals_and_fills_the_address_as_a_whole(factory):
    survivor = make_contact(factory, name="Petra Schmidt", city="Berlin")  # a partial address: it stays
    duplicate = make_contact(factory, name="P. Schmidt", salutation="frau", title="Dr.", customer_number="K-1",
                             street="Hauptstraße 1", postcode="1010", city="Wien", country="AT")
    with unit_of_work(factory) as session:
        opp = Opportunity(title="Anlage", contact_id=duplicate, stage="qualified", probability=10)
        session.add(opp)
        session.flush()
        quote = Quote(opportunity_id=opp.id, contact_id=duplicate, number="AN-2026-0001")
        order = Order(number="AB-2026-0001", contact_id=duplicate, opportunity_id=opp.id, order_date=date.today(),
                      net_total=Decimal("100.00"), vat_total=Decimal("19.00"), gross_total=Decimal("119.00"))
        reminder = Reminder(title="Angebot nachfassen", due_at=utcnow(), reason="quote_follow_up",
                            opportunity_id=opp.id)
        session.add_all([quote, order, reminder])
        session.flush()
        ids = opp.id, quote.id, order.id, reminder.id
    with unit_of_work(factory) as session:
        moved = merge_contacts(session, session.get_one(Contact, survivor), session.get_one(Contact, duplicate),
                               None)
    assert (moved["opportunities"], moved["quotes"], moved["orders"]) == (1, 1, 1)
    with factory() as session:
        assert session.get_one(Opportunity, ids[0]).contact_id == survivor
        assert session.get_one(Quote, ids[1]).contact_id == survivor
        assert session.get_one(Order, ids[2]).contact_id == survivor
        assert session.get_one(Reminder, ids[3]).opportunity_id == ids[0]
        row = session.get_one(Contact, survivor)
        assert (row.salutation, row.title, row.customer_number) == (Salutation.FRAU, "Dr.", "K-1")
        assert (row.street, row.postcode, row.city, row.country) == (None, None, "Berlin", None)

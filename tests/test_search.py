"""One contact search for the pages and the API (crm_inbox.contacts.search): LIKE's wildcards are taken literally,
an over-long query is a 400 with a reason, and both give the same people for the same words."""

from __future__ import annotations

import re
from typing import Any

import pytest

from crm_inbox.contacts.search import MAX_QUERY
from crm_inbox.db import unit_of_work
from crm_inbox.models import Company, CompanyDomain, Contact, ContactEmail, ContactPhone
from crm_inbox.phone import to_e164
from crm_inbox.staff.service import add_staff
from tests.test_pages import PASSWORD, STAFF, log_in

LONG = "x" * 60_000


@pytest.fixture
def people(factory) -> dict[str, int]:  # type: ignore[no-untyped-def]
    def person(session: Any, name: str, email: str, phone: str | None = None,
               company: Company | None = None) -> int:
        contact = Contact(name=name, tags=[], fields={}, company=company)
        contact.emails = [ContactEmail(email=email)]
        if phone:
            contact.phones = [ContactPhone(raw=phone, e164=to_e164(phone))]
        session.add(contact)
        session.flush()
        return contact.id

    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        firm = Company(name="Müller Maschinenbau", tags=[], fields={})
        firm.domains = [CompanyDomain(domain="mueller-maschinenbau.de")]
        session.add(firm)
        return {
            "victor": person(session, "Victor Hansen", "v.hansen@hansen-logistik.de"),
            "petra": person(session, "Petra Köhler", "petra@web.de", "0171/2345678"),
            "claus": person(session, "Claus Jürgens", "claus@mueller-maschinenbau.de", company=firm),
            "percent": person(session, "Rabatt 100% Team", "rabatt@shop.de"),
        }


def api_ids(client: Any, auth: dict[str, str], q: str) -> set[int]:
    answer = client.get("/api/v1/contacts", query_string={"q": q}, headers=auth)
    assert answer.status_code == 200, answer.get_json()
    return {c["id"] for c in answer.get_json()["items"]}


def page_ids(browser: Any, q: str) -> set[int]:
    answer = browser.get("/contacts", query_string={"q": q})
    assert answer.status_code == 200
    return {int(i) for i in re.findall(r'href="/contacts/(\d+)"', answer.get_data(as_text=True))}


@pytest.fixture
def browser(app, people):  # type: ignore[no-untyped-def]
    browser = app.test_client()
    assert log_in(browser).status_code == 302
    return browser


def test_like_wildcards_in_an_api_search_are_taken_literally(client, auth, people):
    assert api_ids(client, auth, "%") == {people["percent"]}  # the one name with a percent sign, not everybody
    assert api_ids(client, auth, "_") == set()
    assert api_ids(client, auth, "v_ctor") == set()
    assert api_ids(client, auth, "%hansen%") == set()
    assert api_ids(client, auth, "\\") == set()
    assert api_ids(client, auth, "vict") == {people["victor"]}


def test_an_over_long_api_search_is_a_400_naming_the_field(client, auth, people):
    for path in ("/api/v1/contacts", "/api/v1/companies"):
        answer = client.get(path, query_string={"q": LONG}, headers=auth)
        assert answer.status_code == 400
        assert answer.get_json()["error"]["field"] == "q"
        assert str(MAX_QUERY) in answer.get_json()["error"]["message"]
    assert client.get("/api/v1/contacts", query_string={"q": "x" * MAX_QUERY}, headers=auth).status_code == 200


def test_an_over_long_page_search_says_why(browser):
    answer = browser.get("/contacts", query_string={"q": LONG})
    assert answer.status_code == 400
    assert f"at most {MAX_QUERY} characters" in answer.get_data(as_text=True)
    assert LONG not in answer.get_data(as_text=True)
    assert browser.get("/contacts/suggest", query_string={"q": LONG}).status_code == 400
    assert browser.get("/contacts.csv", query_string={"q": LONG}).status_code == 400
    answer = browser.get("/search/mail", query_string={"q": LONG})
    assert answer.status_code == 400
    assert f"at most {MAX_QUERY} characters" in answer.get_data(as_text=True)


@pytest.mark.parametrize("q", [
    "%", "_", "v_ctor", "Vict", "KÖHLER", "koehler", "web.de", "müller", "MUELLER-MASCHINENBAU", "hansen-logistik",
    "0171 2345678", "+49 171 2345678", "0049-171-234 56 78", "(0171) 234 5678", "2345678", "nobody"])
def test_the_page_and_the_api_find_the_same_people(browser, client, auth, people, q):
    assert page_ids(browser, q) == api_ids(client, auth, q)


def test_the_shared_search_finds_by_company_and_by_a_phone_number_typed_any_way(client, auth, people):
    assert api_ids(client, auth, "müller") == {people["claus"]}
    for typed in ("0171 2345678", "+49 171 2345678", "(0171) 234 5678"):
        assert api_ids(client, auth, typed) == {people["petra"]}


def test_company_search_over_the_api_takes_wildcards_literally_and_finds_by_domain(client, auth, people):
    def names(q: str) -> list[str]:
        answer = client.get("/api/v1/companies", query_string={"q": q}, headers=auth)
        assert answer.status_code == 200
        return [c["name"] for c in answer.get_json()["items"]]

    assert names("%") == []
    assert names("m_ller") == []
    assert names("mueller-maschinenbau") == ["Müller Maschinenbau"]

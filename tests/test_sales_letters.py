"""Greetings and DIN 5008 address blocks, as the quote and the order confirmation print them."""

from __future__ import annotations

import pytest

from crm_inbox.models import Company, Contact
from crm_inbox.models.contacts import Salutation
from crm_inbox.sales.letters import address_lines, greeting, person_line, recipient_address


@pytest.mark.parametrize(("salutation", "title", "name", "language", "expected"), [
    ("frau", "Dr.", "Anna Müller", "de", "Sehr geehrte Frau Dr. Müller,"),
    (Salutation.HERR, "Prof.", "Peter Schmidt", "de", "Sehr geehrter Herr Prof. Schmidt,"),
    ("herr", "Prof. Dr.", "Peter Schmidt", "de", "Sehr geehrter Herr Prof. Dr. Schmidt,"),
    ("herr", "Dipl.-Ing.", "Peter Schmidt", "de", "Sehr geehrter Herr Schmidt,"),  # no degrees in greetings
    ("Frau", None, "Ursula von der Leyen", "de", "Sehr geehrte Frau von der Leyen,"),
    ("frau", None, "Müller, Anna", "de", "Sehr geehrte Frau Müller,"),
    ("frau", "Dr.", None, "de", "Sehr geehrte Damen und Herren,"),
    (None, None, None, "de", "Sehr geehrte Damen und Herren,"),
    (None, None, "   ", "de", "Sehr geehrte Damen und Herren,"),
    (Salutation.NONE, None, "Alex Müller", "de", "Guten Tag Alex Müller,"),
    (None, "Dr.", "Alex Müller", "de", "Guten Tag Dr. Alex Müller,"),
    ("frau", "Dr.", "Anna Müller", "en", "Dear Dr Müller,"),
    ("herr", None, "Peter Schmidt", "en", "Dear Mr Schmidt,"),
    ("frau", None, "Anna  Müller", "en", "Dear Ms Müller,"),
    ("herr", "Prof. Dr.", "Peter Schmidt", "en", "Dear Professor Schmidt,"),
    (None, None, None, "en", "Dear Sir or Madam,"),
    ("none", None, "Alex Müller", "en", "Dear Alex Müller,"),
    (None, "Dr.", "Alex Müller", "en", "Dear Dr Müller,"),
])
def test_greeting(salutation: str | None, title: str | None, name: str | None, language: str, expected: str) -> None:
    assert greeting(salutation, title, name, language) == expected


@pytest.mark.parametrize(("salutation", "title", "name", "language", "expected"), [
    ("frau", "Dr.", "Anna Müller", "de", "Frau Dr. Anna Müller"),
    ("herr", None, "Müller, Peter", "de", "Herr Peter Müller"),
    (None, None, "Alex Müller", "de", "Alex Müller"),
    ("frau", "Dr.", "Anna Müller", "en", "Dr Anna Müller"),
    ("frau", None, "Anna Müller", "en", "Ms Anna Müller"),
    ("herr", "Dr.", None, "de", ""),
])
def test_person_line(salutation: str | None, title: str | None, name: str | None, language: str,
                     expected: str) -> None:
    assert person_line(salutation, title, name, language) == expected


HOME = "DE"


@pytest.mark.parametrize(("fields", "language", "expected"), [
    ({"company": "Muster GmbH", "person": "z. Hd. Frau Anna Müller", "street": "Hauptstr. 1", "postcode": "80331",
      "city": "München", "country": "DE"}, None,
     ["Muster GmbH", "z. Hd. Frau Anna Müller", "Hauptstr. 1", "80331 München"]),
    # no country: at home
    ({"person": "Herr Peter Schmidt", "street": "Weg 2", "postcode": "10115", "city": "Berlin"}, None,
     ["Herr Peter Schmidt", "Weg 2", "10115 Berlin"]),
    ({"company": "Alpen AG", "street": "Ring 3", "postcode": "1010", "city": "Wien", "country": "AT"}, "de",
     ["Alpen AG", "Ring 3", "1010 Wien", "ÖSTERREICH"]),
    ({"company": "Alpen AG", "street": "Ring 3", "postcode": "1010", "city": "Wien", "country": "at"}, "en",
     ["Alpen AG", "Ring 3", "1010 Wien", "AUSTRIA"]),
    ({"company": "Dansk A/S", "postcode": "1050", "city": "København", "country": "DK"}, "de",
     ["Dansk A/S", "1050 København", "DÄNEMARK"]),
    ({"company": "Acme Ltd", "street": "1 High St", "postcode": "SW1A 1AA", "city": "London", "country": "GB"}, "en",
     ["Acme Ltd", "1 High St", "London", "SW1A 1AA", "UNITED KINGDOM"]),
    ({"company": "Acme Inc.", "street": "5th Ave", "postcode": "10001", "city": "New York", "country": "US"}, "de",
     ["Acme Inc.", "5th Ave", "10001 New York", "VEREINIGTE STAATEN"]),
    ({"company": "Svensk AB", "postcode": "111 22", "city": "Stockholm", "country": "SE"}, "de",
     ["Svensk AB", "111 22 Stockholm", "SE"]),  # a country we have no name for prints its code
    ({"company": "  Muster  GmbH ", "person": "", "street": None, "postcode": None, "city": "München"}, None,
     ["Muster GmbH", "München"]),
    ({}, None, []),
])
def test_address_lines(fields: dict[str, str | None], language: str | None, expected: list[str]) -> None:
    args: dict[str, str | None] = {"company": None, "person": None, "street": None, "postcode": None, "city": None,
                                   "country": None} | fields
    assert address_lines(**args, home_country=HOME, language=language) == expected  # type: ignore[arg-type]


def test_the_country_line_follows_the_home_country() -> None:
    # A Swiss company writes to Germany: the German address is abroad now, and Switzerland is home.
    assert address_lines(company="X", person=None, street=None, postcode="80331", city="München", country="DE",
                         home_country="CH") == ["X", "80331 München", "DEUTSCHLAND"]
    assert address_lines(company="X", person=None, street=None, postcode="8001", city="Zürich", country="CH",
                         home_country="CH") == ["X", "8001 Zürich"]
    # without a language the home country's is used
    assert address_lines(company="X", person=None, street=None, postcode="1010", city="Wien", country="AT",
                         home_country="GB")[-1] == "AUSTRIA"


def company() -> Company:
    return Company(name="Muster Maschinenbau GmbH", street="Industriestr. 7", postcode="80331", city="München",
                   country="DE", delivery_street="Lager 1", delivery_postcode="85748", delivery_city="Garching")


def person(**fields: object) -> Contact:
    values: dict[str, object] = {"name": "Anna Müller", "salutation": Salutation.FRAU, "title": "Dr.",
                                 "street": "Privatweg 3", "postcode": "10115", "city": "Berlin"} | fields
    return Contact(**values)


def test_recipient_company_with_person() -> None:
    assert recipient_address(person(), company(), "DE") == [
        "Muster Maschinenbau GmbH", "z. Hd. Frau Dr. Anna Müller", "Industriestr. 7", "80331 München"]


def test_recipient_in_english_abroad() -> None:
    foreign = company()
    foreign.country = "AT"
    assert recipient_address(person(language="en"), foreign, "DE") == [
        "Muster Maschinenbau GmbH", "Attn. Dr Anna Müller", "Industriestr. 7", "80331 München", "AUSTRIA"]
    assert recipient_address(person(), foreign, "DE", language="de")[-1] == "ÖSTERREICH"


def test_recipient_person_only_and_company_only() -> None:
    assert recipient_address(person(), None, "DE") == ["Frau Dr. Anna Müller", "Privatweg 3", "10115 Berlin"]
    assert recipient_address(None, company(), "DE") == ["Muster Maschinenbau GmbH", "Industriestr. 7",
                                                       "80331 München"]
    assert recipient_address(None, None, "DE") == []
    # a dirty contact: no name, no address
    assert recipient_address(Contact(), None, "DE") == []


def test_recipient_company_without_address_uses_the_persons() -> None:
    bare = Company(name="Neu GmbH")
    assert recipient_address(person(), bare, "DE") == ["Neu GmbH", "z. Hd. Frau Dr. Anna Müller", "Privatweg 3",
                                                       "10115 Berlin"]
    assert recipient_address(person(street=None, postcode=None, city=None), bare, "DE") == [
        "Neu GmbH", "z. Hd. Frau Dr. Anna Müller"]

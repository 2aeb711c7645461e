"""The lists staff read: contacts and companies in dictionary order with phone and last contact, a company's
timeline and the dashboard's recent activity saying whom each entry is about."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest

from crm_inbox.contacts.listing import collation_key, name_order
from crm_inbox.db import unit_of_work
from crm_inbox.models import Company, CompanyDomain, Contact, ContactPhone, Direction, InteractionKind
from crm_inbox.phone import to_e164
from crm_inbox.staff.service import add_staff
from crm_inbox.timeline.service import record_interaction
from tests.test_pages import PASSWORD, STAFF, log_in

# In the order a German reader expects: umlauts with their base letter, ß as ss, case ignored, nameless last.
NAMES = ["anna Albers", "Bärbel Bauer", "Björn Berg", "Özlem Oğuz", "Olaf Otto", "Peter Straßer", "Peter Strasser",
         "peter Stranz", "Zoë Zander"]


@pytest.fixture
def staff(factory) -> int:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        return add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD).id


def _note(session, contacts, subject: str, when: datetime, company_id: int | None = None) -> int:  # type: ignore[no-untyped-def]
    item = record_interaction(session, kind=InteractionKind.NOTE, direction=Direction.INTERNAL, occurred_at=when,
                              subject=subject, contacts=[(c, "about") for c in contacts])
    item.company_id = company_id
    return item.id


def _column(page: str, css_class: str) -> list[str]:
    cells = re.findall(rf'<td class="{css_class}">(.*?)</td>', page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells]


def test_the_collation_key_sorts_umlauts_with_their_letter_and_ignores_case():
    assert collation_key("Bärbel") < collation_key("Björn") < collation_key("bodo")
    assert collation_key("Straße") == collation_key("strasse")
    assert sorted(reversed(NAMES), key=lambda n: name_order(n, 0)) == [
        "anna Albers", "Bärbel Bauer", "Björn Berg", "Olaf Otto", "Özlem Oğuz", "peter Stranz", "Peter Strasser",
        "Peter Straßer", "Zoë Zander"]


def test_the_contact_list_is_in_dictionary_order_with_phone_and_last_contact(client, staff, factory):
    with unit_of_work(factory) as session:
        people = {}
        for name in reversed(NAMES):  # stored in the wrong order on purpose
            person = Contact(name=name)
            session.add(person)
            people[name] = person
        session.add(Contact(name=None))  # nameless: shown as "Contact N", last
        people["Björn Berg"].phones = [ContactPhone(raw="0171 2345678", e164=to_e164("0171 2345678"))]
        session.flush()
        _note(session, [people["Björn Berg"]], "Angebot", datetime(2026, 11, 20, 9, 30, tzinfo=UTC))
    log_in(client)
    page = client.get("/contacts").get_data(as_text=True)
    names = _column(page, "name")
    assert names[:2] == ["anna Albers", "Bärbel Bauer"]  # Bärbel before Björn (a byte order puts ä after z)
    assert names[2] == "Björn Berg" and names[3] == "Olaf Otto" and names[4] == "Özlem Oğuz"
    assert names[-1].startswith("Contact ")
    phones, last = _column(page, "phone"), _column(page, "when")
    assert phones[2] == "0171 2345678" and phones[0] == ""
    assert "20.11.2026" in last[2] and last[0] == ""
    assert ">Phone<" in page and ">Last contact<" in page


def test_names_in_lists_are_never_wrapped(client, staff):
    log_in(client)
    css = client.get("/static/style.css").get_data(as_text=True)
    rule = re.search(r"table\.list \.name[^{]*\{([^}]*)\}", css)
    assert rule and "white-space: nowrap" in rule.group(1)


@pytest.fixture
def firms(factory) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        ids = {}
        for name, domain in [("Zeller GmbH", "zeller.de"), ("Öko Bau AG", "oeko-bau.de"), ("Otto & Co", None),
                             ("Müller Maschinenbau", "mueller-maschinenbau.de")]:
            firm = Company(name=name)
            if domain:
                firm.domains = [CompanyDomain(domain=domain)]
            session.add(firm)
            session.flush()
            ids[name] = firm.id
        claus = Contact(name="Claus Jürgens", company_id=ids["Müller Maschinenbau"])
        petra = Contact(name="Petra Köhler", company_id=ids["Müller Maschinenbau"])
        session.add_all([claus, petra, Contact(name="Uwe Zeller", company_id=ids["Zeller GmbH"])])
        session.flush()
        _note(session, [claus], "Angebot Fräse", datetime(2026, 11, 2, 10, 0, tzinfo=UTC), ids["Müller Maschinenbau"])
        _note(session, [petra], "Rechnung 4711", datetime(2026, 11, 3, 10, 0, tzinfo=UTC), ids["Müller Maschinenbau"])
        # A call to the switchboard: recorded on the company, nobody's in particular, and the newest.
        _note(session, [], "Zentrale angerufen", datetime(2026, 11, 24, 8, 0, tzinfo=UTC), ids["Müller Maschinenbau"])
        return ids


def test_the_company_list_shows_domains_people_and_last_contact_in_dictionary_order(client, staff, firms):
    log_in(client)
    page = client.get("/companies").get_data(as_text=True)
    assert _column(page, "name") == ["Müller Maschinenbau", "Öko Bau AG", "Otto & Co", "Zeller GmbH"]
    rows = re.findall(r"<tr>(.*?)</tr>", page.split("<tbody>")[1], re.S)
    mueller = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", rows[0]))
    assert "mueller-maschinenbau.de" in mueller and " 2 " in mueller
    assert "24.11.2026" in mueller  # the switchboard call is the last contact, not Claus's or Petra's notes
    assert _column(page, "number") == ["2", "0", "0", "1"]
    assert _column(page, "when")[1:] == ["", "", ""]


def test_the_company_list_is_in_the_menu_in_english_and_german(client, staff):
    log_in(client)
    english = client.get("/dashboard").get_data(as_text=True)
    assert '<a href="/companies">Companies</a>' in english
    german = client.get("/dashboard", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<a href="/companies">Firmen</a>' in german
    assert "Noch keine Firmen." in client.get("/companies", headers={"Accept-Language": "de"}).get_data(as_text=True)


def test_a_company_timeline_names_whom_each_entry_is_about(client, staff, firms):
    log_in(client)
    page = client.get(f"/companies/{firms['Müller Maschinenbau']}").get_data(as_text=True)
    items = {re.search(r"(Angebot Fräse|Rechnung 4711|Zentrale angerufen)", chunk).group(1):  # type: ignore[union-attr]
             " ".join(re.sub(r"<[^>]+>", " ", chunk).split())
             for chunk in page.split('<li class="item')[1:]}
    assert "with Claus Jürgens" in items["Angebot Fräse"] and "Petra" not in items["Angebot Fräse"]
    assert "with Petra Köhler" in items["Rechnung 4711"]
    assert "with" not in items["Zentrale angerufen"]


def test_the_dashboards_recent_activity_says_who(client, staff, firms):
    log_in(client)
    page = client.get("/dashboard").get_data(as_text=True)
    recent = page.split('class="plain recent"')[1].split("</ul>")[0]
    lines = [" ".join(re.sub(r"<[^>]+>", " ", li).split()) for li in recent.split("<li>")[1:]]
    assert any("Claus Jürgens" in line and "Angebot Fräse" in line for line in lines)
    assert any("Petra Köhler" in line and "Rechnung 4711" in line for line in lines)

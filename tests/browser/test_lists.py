"""The contact and company lists in a real browser: dictionary order, and a name stays on one line even in a
narrow window."""

from __future__ import annotations

from datetime import UTC, datetime

from playwright.sync_api import expect

from crm_inbox.db import unit_of_work
from crm_inbox.models import (
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    ContactPhone,
    Direction,
    InteractionKind,
)
from crm_inbox.phone import to_e164
from crm_inbox.timeline.service import record_interaction
from tests.browser.conftest import log_in, screenshot


def _world(factory) -> None:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        mueller = Company(name="Müller Maschinenbau GmbH & Co. KG")
        mueller.domains = [CompanyDomain(domain="mueller-maschinenbau.de")]
        oeko = Company(name="Öko Bau AG")
        oeko.domains = [CompanyDomain(domain="oeko-bau.de")]
        session.add_all([mueller, oeko, Company(name="Zeller GmbH")])
        session.flush()
        for name, email, phone, firm in [
                ("Björn Berg-Schmidt von Hohenstein", "bjoern@oeko-bau.de", "0171 2345678", oeko),
                ("Bärbel Bauer", "baerbel@mueller-maschinenbau.de", "030 1234567", mueller),
                ("Claus Jürgens", "claus.juergens@mueller-maschinenbau.de", "0171 7654321", mueller),
                ("Özlem Oğuz", "oezlem@web.de", None, None)]:
            person = Contact(name=name, company_id=firm.id if firm else None)
            person.emails = [ContactEmail(email=email)]
            if phone:
                person.phones = [ContactPhone(raw=phone, e164=to_e164(phone))]
            session.add(person)
            session.flush()
            record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.IN,
                               occurred_at=datetime(2026, 11, 20, 9, person.id, tzinfo=UTC),
                               subject=f"Anfrage von {name}", contacts=[(person, "from")])


def test_contacts_and_companies_in_dictionary_order_names_on_one_line(page, live, staff_login):
    _world(live.factory)
    page.set_viewport_size({"width": 900, "height": 700})
    log_in(page, *staff_login)
    assert page.url.endswith("/dashboard")  # a login lands on the dashboard

    # expect() waits for the page the click opens; a bare read could still see the page before it.
    page.get_by_role("link", name="Contacts", exact=True).click()
    expect(page.locator("td.name")).to_have_text(["Bärbel Bauer", "Björn Berg-Schmidt von Hohenstein",
                                                  "Claus Jürgens", "Özlem Oğuz"])
    # The link's box is as high as its lines: the long name is as high as a short one, though the window is
    # narrow enough that the company and address beside it take two lines.
    long_name = page.locator("td.name a", has_text="Björn Berg-Schmidt von Hohenstein").bounding_box()
    short_name = page.locator("td.name a", has_text="Claus Jürgens").bounding_box()
    assert long_name["height"] == short_name["height"]
    screenshot(page, "contacts")

    page.get_by_role("link", name="Companies", exact=True).click()
    expect(page.locator("td.name")).to_have_text(["Müller Maschinenbau GmbH & Co. KG", "Öko Bau AG", "Zeller GmbH"])
    expect(page.locator("td.number")).to_have_text(["2", "1", "0"])
    screenshot(page, "companies")

    page.get_by_role("link", name="Müller Maschinenbau GmbH & Co. KG").click()
    entry = page.locator("li.item", has_text="Anfrage von Bärbel Bauer")
    assert "with Bärbel Bauer" in " ".join(entry.locator(".meta").inner_text().split())

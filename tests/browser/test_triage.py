"""Triage in a real browser: a mail nobody could be linked to is assigned to the right contact (picked from
several that match), and hostile HTML in the mail never runs."""

from __future__ import annotations

from email.message import EmailMessage

from playwright.sync_api import expect
from sqlalchemy import select

from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, accept
from crm_inbox.models import Contact, ContactEmail, Interaction
from crm_inbox.pipeline.runner import process
from tests.browser.conftest import log_in, screenshot

NAMESAKES = (("Klaus Müller", "k.mueller@mueller-maschinenbau.de"), ("Klaus Müller", "klaus.mueller@gmx.de"))


def add_people(live, people) -> None:  # type: ignore[no-untyped-def]
    with unit_of_work(live.factory) as session:
        for name, email in people:
            contact = Contact(name=name)
            contact.emails = [ContactEmail(email=email)]
            session.add(contact)


def forward_from_klaus(live, subject: str, message_id: str, note: str = "", html: str | None = None) -> int:  # type: ignore[no-untyped-def]
    """A colleague forwards a mail whose original sender is known only by the name two contacts have: the
    machine must not guess, so it waits in triage. Returns the interaction's id."""
    msg = EmailMessage()
    msg["From"] = "Jonas Becker <jonas.becker@beispiel-firma.de>"
    msg["To"] = "crm@beispiel-firma.de"
    msg["Subject"] = f"Fwd: {subject}"
    msg["Message-ID"] = message_id
    msg.set_content(f"{note}---------- Forwarded message ---------\nFrom: Klaus Müller\n"
                    f"Date: Mon, 2 Nov 2026 at 10:58\nSubject: {subject}\nTo: Jonas Becker\n\n"
                    "Hallo Herr Becker, wir brauchen ein Angebot.\n")
    if html is not None:
        msg.add_alternative(html, subtype="html")
    with unit_of_work(live.factory) as session:
        inbound_id = accept(session, bytes(msg), Envelope("jonas.becker@beispiel-firma.de",
                                                          ("crm@beispiel-firma.de",), "127.0.0.1")).inbound_id
    interaction_id = process(live.factory, live.settings, inbound_id).interaction_id
    assert interaction_id is not None
    return interaction_id


def test_assign_an_unassigned_mail_to_the_right_one_of_two_namesakes(page, live, staff_login):
    add_people(live, NAMESAKES)
    interaction_id = forward_from_klaus(
        live, "Angebot Prägestempel", "<fwd-triage-1@beispiel-firma.de>", note="Bitte zuordnen.\n\n",
        html="<p>Bitte zuordnen.</p><img src=x onerror=\"alert('xss')\"><script>alert(1)</script>")
    with live.factory() as session:
        item = session.get_one(Interaction, interaction_id)
        assert item.contact_ids == []  # unassigned: the name alone is ambiguous

    log_in(page, *staff_login)
    page.goto("/dashboard")
    page.get_by_role("link", name="Unassigned: 1 · failed: 0").click()
    card = page.get_by_role("article", name="Angebot Prägestempel")
    assert "Why here:" in card.inner_text()
    screenshot(page, "triage")
    card.get_by_role("link", name="Angebot Prägestempel").click()  # read it first: its HTML must not run
    assert page.dialogs == []  # type: ignore[attr-defined]
    page.go_back()

    card.get_by_label("Contact").fill("Klaus Müller")
    card.get_by_role("button", name="Assign").click()
    expect(page.locator("main")).to_contain_text("Several contacts match")
    page.get_by_role("listitem").filter(has_text="klaus.mueller@gmx.de").get_by_role("button").click()
    expect(page.locator(".flash")).to_contain_text("is now on Klaus Müller's timeline")
    expect(page.get_by_role("article", name="Angebot Prägestempel")).to_have_count(0)
    with live.factory() as session:
        gmx = session.execute(select(ContactEmail.contact_id).where(ContactEmail.email == "klaus.mueller@gmx.de")
                              ).scalar_one()
        assert session.get_one(Interaction, interaction_id).contact_ids == [gmx]
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_search_as_you_type_assigns_the_picked_contact_at_once(page, live, staff_login):
    add_people(live, (*NAMESAKES, ("Petra Köhler", "petra@web.de")))
    interaction_id = forward_from_klaus(live, "Rückfrage Lieferung", "<fwd-triage-2@beispiel-firma.de>")

    log_in(page, *staff_login)
    page.goto("/triage")
    card = page.get_by_role("article", name="Rückfrage Lieferung")
    card.get_by_label("Contact").press_sequentially("mülle")
    options = card.get_by_role("option")
    expect(options).to_have_count(2)  # both namesakes, not Petra
    options.filter(has_text="klaus.mueller@gmx.de").click()
    expect(card.get_by_label("Contact")).to_have_value("Klaus Müller · klaus.mueller@gmx.de")
    card.get_by_role("button", name="Assign").click()
    expect(page.locator(".flash")).to_contain_text("is now on Klaus Müller's timeline")  # no pick page between
    with live.factory() as session:
        gmx = session.execute(select(ContactEmail.contact_id).where(ContactEmail.email == "klaus.mueller@gmx.de")
                              ).scalar_one()
        assert session.get_one(Interaction, interaction_id).contact_ids == [gmx]

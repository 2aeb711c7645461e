"""The customer page in a real browser: found by a phone number typed another way, a note and a reminder
added and the reminder completed in place; a read-only user sees it all and can change nothing."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from crm_inbox.db import unit_of_work
from crm_inbox.models import (
    Company,
    Contact,
    ContactEmail,
    ContactPhone,
    Interaction,
    InteractionKind,
    Reminder,
    ReminderState,
)
from crm_inbox.phone import to_e164
from crm_inbox.staff.service import add_staff
from tests.browser.conftest import PASSWORD, log_in, screenshot


def make_claus(live) -> int:  # type: ignore[no-untyped-def]
    with unit_of_work(live.factory) as session:
        firm = Company(name="Müller Maschinenbau GmbH")
        session.add(firm)
        session.flush()
        claus = Contact(name="Claus Jürgens", company_id=firm.id)
        claus.emails = [ContactEmail(email="claus.juergens@mueller-maschinenbau.de")]
        claus.phones = [ContactPhone(raw="+49 171 2345678", e164=to_e164("+49 171 2345678"))]
        colleague = Contact(name="Petra Köhler", company_id=firm.id)
        session.add_all([claus, colleague])
        session.flush()
        return claus.id


def test_find_by_phone_add_a_note_and_a_reminder_and_complete_it(page, live, staff_login):
    claus = make_claus(live)
    log_in(page, *staff_login)
    page.goto("/contacts")
    page.get_by_label("Search").fill("0171/2345678")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Claus Jürgens").click()
    expect(page.get_by_role("heading", name="Claus Jürgens")).to_be_visible()
    assert page.get_by_role("link", name="+49 171 2345678").get_attribute("href") == "tel:+491712345678"
    expect(page.get_by_role("link", name="Petra Köhler")).to_be_visible()  # the company's other people

    page.get_by_label("Add a note").fill("Will das Angebot bis Freitag, <b>nicht</b> früher.")
    page.get_by_role("button", name="Save note").click()
    note = "Will das Angebot bis Freitag, <b>nicht</b> früher."
    expect(page.locator("ol.timeline").get_by_text(note)).to_be_visible()

    page.get_by_label("Reminder", exact=True).fill("Angebot nachfassen")
    page.get_by_label("When", exact=True).fill("Freitag 10 Uhr")
    page.get_by_role("button", name="Remind me").click()
    panel = page.locator("section.panel", has=page.get_by_role("heading", name="Open reminders"))
    expect(panel.get_by_text("Angebot nachfassen")).to_be_visible()
    assert "Fri" in panel.locator(".due").first.inner_text()
    screenshot(page, "contact")

    panel.get_by_role("button", name="Done").click()
    expect(panel.get_by_text("Angebot nachfassen")).to_have_count(0)
    with live.factory() as session:
        reminder = session.execute(select(Reminder)).scalar_one()
        note = session.execute(select(Interaction).where(Interaction.kind == InteractionKind.NOTE)).scalar_one()
        assert note.contact_ids == [claus]
    assert reminder.contact_id == claus and reminder.state == ReminderState.DONE
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_a_read_only_user_sees_the_page_but_cannot_change_it(page, live):
    claus = make_claus(live)
    with unit_of_work(live.factory) as session:
        add_staff(session, "praktikant@beispiel-firma.de", "Paul Praktikant", "readonly", password=PASSWORD)
    log_in(page, "praktikant@beispiel-firma.de", PASSWORD)
    page.goto(f"/contacts/{claus}")
    expect(page.get_by_role("heading", name="Claus Jürgens")).to_be_visible()
    expect(page.get_by_label("Add a note")).to_have_count(0)
    expect(page.get_by_role("button", name="Remind me")).to_have_count(0)
    # posting anyway (a forged form with a valid session token) is refused
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    response = page.request.post(f"/contacts/{claus}/notes", form={"csrf_token": token or "", "text": "x"})
    assert response.status == 403
    response = page.request.post("/reminders", form={"csrf_token": token or "", "title": "x", "due": "in 1 day"})
    assert response.status == 403
    with live.factory() as session:
        assert session.execute(select(Reminder)).first() is None


def test_merge_a_duplicate_into_the_customer(page, live, staff_login):
    claus = make_claus(live)
    with unit_of_work(live.factory) as session:
        dup = Contact(name=None)
        dup.emails = [ContactEmail(email="claus.j@gmx.de")]
        session.add(dup)
        session.flush()
        dup_id = dup.id
    log_in(page, *staff_login)
    page.goto(f"/contacts/{claus}")
    page.get_by_text("Merge a duplicate into this contact").click()
    page.get_by_label("Duplicate").fill("claus.j@gmx.de")
    page.get_by_role("button", name="Merge …").click()
    expect(page.get_by_role("heading", name="Merge claus.j@gmx.de into Claus Jürgens?")).to_be_visible()
    page.get_by_role("button", name="Merge", exact=True).click()
    expect(page.locator(".flash")).to_contain_text("claus.j@gmx.de was merged into Claus Jürgens.")
    expect(page.get_by_role("link", name="claus.j@gmx.de")).to_have_attribute("href", "mailto:claus.j@gmx.de")
    with live.factory() as session:
        assert session.get(Contact, dup_id) is None

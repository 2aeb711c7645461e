"""The dashboard in a real browser: due reminders, completing and snoozing them in place, a new one in words."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from crm_inbox.db import unit_of_work
from crm_inbox.models import Contact, ContactEmail, Reminder, ReminderState, StaffUser, utcnow
from tests.browser.conftest import log_in, screenshot


def test_log_in_see_due_reminders_complete_snooze_and_add_one(page, live, staff_login):
    with unit_of_work(live.factory) as session:
        jonas = session.execute(select(StaffUser)).scalar_one().id
        claus = Contact(name="Claus Jürgens")
        claus.emails = [ContactEmail(email="claus.juergens@mueller-maschinenbau.de")]
        session.add(claus)
        session.flush()
        overdue = utcnow() - timedelta(hours=2)
        session.add(Reminder(title="Call back Claus Jürgens", reason="missed_call", due_at=overdue, fire_at=None,
                             fired_at=overdue, contact_id=claus.id, assignee_id=jonas))
        session.add(Reminder(title="Messe vorbereiten", reason="manual", due_at=overdue, fire_at=None,
                             fired_at=overdue))

    page.goto("/contacts")
    assert page.url.endswith("/login?next=/contacts")  # nothing without a login
    log_in(page, *staff_login)
    page.goto("/")
    assert page.url.endswith("/dashboard")
    due = page.locator("section", has=page.get_by_role("heading", name="Due now"))
    expect(due.get_by_role("row").filter(has_text="Call back Claus Jürgens")).to_have_count(1)
    expect(due.get_by_role("row").filter(has_text="Messe vorbereiten")).to_have_count(1)
    screenshot(page, "dashboard")

    # the customer is one click away
    due.get_by_role("link", name="Claus Jürgens").click()
    expect(page.get_by_role("heading", name="Claus Jürgens")).to_be_visible()
    page.go_back()

    due.get_by_role("row").filter(has_text="Call back Claus Jürgens").get_by_role("button", name="Done").click()
    expect(due.get_by_role("row").filter(has_text="Call back Claus Jürgens")).to_have_count(0)
    row = due.get_by_role("row").filter(has_text="Messe vorbereiten")
    row.get_by_label("Snooze until").select_option("in 3 days")
    row.get_by_role("button", name="Snooze").click()
    upcoming = page.locator("section", has=page.get_by_role("heading", name="Next 7 days"))
    expect(upcoming.get_by_role("row").filter(has_text="Messe vorbereiten").filter(has_text="snoozed")).to_have_count(1)

    page.get_by_label("What").fill("Angebot nachfassen")
    page.get_by_label("When").fill("morgen 9 Uhr")
    page.get_by_role("button", name="Remind me").click()
    expect(upcoming.get_by_role("row").filter(has_text="Angebot nachfassen")).to_have_count(1)
    assert page.dialogs == []  # type: ignore[attr-defined]

    with live.factory() as session:
        rows = {r.title: r for r in session.execute(select(Reminder)).scalars()}
    assert rows["Call back Claus Jürgens"].state == ReminderState.DONE
    assert rows["Call back Claus Jürgens"].completed_by_id == jonas
    assert rows["Messe vorbereiten"].state == ReminderState.SNOOZED
    assert rows["Angebot nachfassen"].assignee_id == jonas and rows["Angebot nachfassen"].due_at > utcnow()

    page.get_by_role("button", name="Log out").click()
    page.goto("/dashboard")
    assert "/login" in page.url


def test_a_form_posted_without_its_csrf_token_changes_nothing(page, live, staff_login):
    with unit_of_work(live.factory) as session:
        session.add(Reminder(title="Bleibt offen", reason="manual", due_at=utcnow(), fire_at=None))
    log_in(page, *staff_login)
    page.goto("/dashboard")
    page.eval_on_selector_all("input[name=csrf_token]", "inputs => inputs.forEach(i => i.value = 'forged')")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("row").filter(has_text="Bleibt offen").get_by_role("button", name="Done").click()
    assert posted.value.status == 400
    page.wait_for_load_state()  # the POST navigates to its 400 page: no navigation in flight when the context closes
    with live.factory() as session:
        assert session.execute(select(Reminder.state)).scalar_one() == ReminderState.OPEN


def test_a_german_browser_sees_the_dashboard_in_german(browser, base_url, live, staff_login):
    with unit_of_work(live.factory) as session:
        session.add(Reminder(title="Angebot nachfassen", reason="manual", due_at=utcnow() - timedelta(minutes=5),
                             fire_at=None))
    context = browser.new_context(base_url=base_url, locale="de-DE", timezone_id="Europe/Berlin")
    page = context.new_page()
    try:
        page.goto("/login")
        page.get_by_label("E-Mail-Adresse").fill(staff_login[0])
        page.get_by_label("Passwort").fill(staff_login[1])
        page.get_by_role("button", name="Anmelden").click()
        page.goto("/")
        expect(page.get_by_role("heading", name="Jetzt fällig")).to_be_visible()
        row = page.get_by_role("row").filter(has_text="Angebot nachfassen")
        expect(row.get_by_role("button", name="Erledigt")).to_be_visible()
        screenshot(page, "dashboard-de")
    finally:
        context.close()

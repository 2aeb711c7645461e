"""In a real browser: a mail read in place on the customer's timeline (its HTML in a sandboxed frame where
no script runs), and an admin adding a colleague who then logs in."""

from __future__ import annotations

from email.message import EmailMessage

from playwright.sync_api import expect

from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, accept
from crm_inbox.pipeline.runner import process
from crm_inbox.staff.service import add_staff
from tests.browser.conftest import PASSWORD, log_in, screenshot
from tests.browser.test_contact_page import make_claus


def test_read_a_mail_in_place_on_the_timeline(page, live, staff_login):
    claus = make_claus(live)
    msg = EmailMessage()
    msg["From"] = "Claus Jürgens <claus.juergens@mueller-maschinenbau.de>"
    msg["To"] = "jonas.becker@beispiel-firma.de"
    msg["Subject"] = "Lieferung 4711"
    msg["Message-ID"] = "<lieferung-4711@mueller-maschinenbau.de>"
    msg.set_content("Guten Tag,\n\ndie Lieferung 4711 kam mit 4 defekten Sensoren an.\n\nMit freundlichen Grüßen\n"
                    "Claus Jürgens\nEinkauf")
    msg.add_alternative("<p>Die Lieferung <b>4711</b> kam defekt an.</p>"
                        "<img src=x onerror=\"alert('img')\"><script>alert('html')</script>", subtype="html")
    with unit_of_work(live.factory) as session:
        inbound_id = accept(session, bytes(msg), Envelope(rcpt_to=(live.settings.mail.crm_addresses[0],))).inbound_id
    process(live.factory, live.settings, inbound_id)

    log_in(page, *staff_login)
    page.goto(f"/contacts/{claus}")
    item = page.locator("ol.timeline li.kind-email")
    full_text = item.locator("pre.mailtext")
    expect(full_text).to_be_hidden()  # closed until asked for
    item.get_by_text("Full mail").click()
    expect(full_text).to_contain_text("Mit freundlichen Grüßen")
    item.get_by_text("Formatted", exact=True).click()
    frame = page.frame_locator("ol.timeline iframe.mailhtml")
    expect(frame.locator("b")).to_have_text("4711")
    screenshot(page, "timeline-mail-in-place")
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_an_admin_adds_a_colleague_who_then_logs_in(page, browser, base_url, live):
    with unit_of_work(live.factory) as session:
        add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt", "admin", password=PASSWORD)
    log_in(page, "anna.schmidt@beispiel-firma.de", PASSWORD)
    page.get_by_role("link", name="Users").click()
    page.get_by_label("Name").fill("Lena Vogel")
    page.get_by_label("E-mail addresses").fill("lena.vogel@beispiel-firma.de")
    page.get_by_label("Role").select_option("readonly")
    page.get_by_label("Password").fill("lang-genug-1")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator(".flash")).to_contain_text("Lena Vogel can now log in.")
    expect(page.get_by_role("row", name="Lena Vogel")).to_contain_text("read-only")
    screenshot(page, "admin-users")

    context = browser.new_context(base_url=base_url, locale="en-US")
    lena = context.new_page()
    log_in(lena, "lena.vogel@beispiel-firma.de", "lang-genug-1")
    expect(lena.get_by_role("link", name="Lena Vogel")).to_be_visible()
    expect(lena.get_by_role("link", name="Users")).to_have_count(0)
    context.close()

"""The campaign page in a real browser: who is left out why, the preview changing to the recipient picked from the
list or found by name (without a reload), the sandboxed HTML part; screenshots of the list, the form, the page and
a contact's timeline with the campaign mail collapsed into one line."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from crm_inbox.campaigns import sending
from crm_inbox.campaigns import service as campaigns
from crm_inbox.config import replace
from crm_inbox.consent import ledger
from crm_inbox.db import unit_of_work
from crm_inbox.models import (
    Category,
    Channel,
    ConsentState,
    Contact,
    ContactEmail,
    LegalBasis,
    Role,
    Salutation,
    StaffUser,
    utcnow,
)
from crm_inbox.segments import service as segments
from tests.browser.conftest import SCREENSHOTS, log_in, screenshot

SHOTS = Path("/tmp/shots")
BODY = ("{{ greeting }}\n\nim April sind unsere Servicetechniker wieder in {{ city }}: ein Frühjahrs-Check zum "
        "Vorzugspreis.\n\nAntworten Sie einfach auf diese Mail.\n\nMit freundlichen Grüßen\n{{ owner }}")
PEOPLE = (("Klara Müller", Salutation.FRAU, "Dr.", "klara@mueller-technik.example", "in", False),
          ("Paul Berger", Salutation.HERR, None, "paul@berger.example", "in", False),
          ("Zoe Zimmermann", Salutation.FRAU, None, "zoe@zimmermann.example", "in", False),
          ("Bernd Aus", Salutation.HERR, None, "bernd@aus.example", "out", False),
          ("Carla Prall", Salutation.FRAU, None, "carla@prall.example", "in", True),
          ("Dieter Nie", Salutation.HERR, None, "dieter@nie.example", None, False))


def _world(live: Any) -> dict[str, int]:
    with unit_of_work(live.factory) as session:
        jonas = session.execute(select(StaffUser)).scalars().first()
        assert jonas is not None
        ids: dict[str, int] = {}
        for name, salutation, title, address, consent, bouncing in PEOPLE:
            contact = Contact(name=name, salutation=salutation, title=title, role=Role.CUSTOMER,
                              category=Category.A, street="Leopoldstraße 1", postcode="80802", city="München",
                              country="DE", language="de", owner_id=jonas.id, tags=[], fields={})
            contact.emails = [ContactEmail(email=address, bouncing=bouncing)]
            session.add(contact)
            session.flush()
            ids[name] = contact.id
            if consent:
                ledger.record(session, contact.id, Channel.EMAIL, ConsentState.OPTED_IN, LegalBasis.CONSENT,
                              "web_form")
            if consent == "out":
                ledger.record(session, contact.id, Channel.EMAIL, ConsentState.OPTED_OUT, None, "unsubscribe")
        segment = segments.create(session, "Bayern, Kategorie A", {"all": [
            {"field": "postcode", "op": "between", "value": ["80000", "87999"]},
            {"field": "category", "op": "is", "value": "A"}]}, actor=jonas.id)
        ids["segment"] = segment.id
        ids["campaign"] = campaigns.create(
            session, live.settings, name="Frühjahrs-Check Bayern", segment_id=segment.id, channel=Channel.EMAIL,
            subject="{{ name }}: Ihr Frühjahrs-Check", body=BODY, sender_name="Jonas Becker", actor=jonas.id).id
        return ids


def _shot(page: Any, name: str) -> None:
    screenshot(page, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(SCREENSHOTS / f"{name}.png", SHOTS / f"{name}.png")


def test_picking_a_recipient_updates_the_preview(page: Any, live: Any, staff_login: tuple[str, str]) -> None:
    ids = _world(live)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, *staff_login)
    page.get_by_role("link", name="Campaigns", exact=True).click()
    _shot(page, "campaign_list")
    page.get_by_role("link", name="Frühjahrs-Check Bayern").click()

    audience = page.locator(".audience-line")
    assert "3 recipients" in audience.inner_text()
    assert "1 opted out" in audience.inner_text() and "1 bouncing" in audience.inner_text()
    first = page.locator("#preview-box .preview-text").inner_text()
    assert first.startswith("Sehr geehrte")

    # Picked from the list: the preview changes in place (no reload: the page's own state stays)
    page.evaluate("window.__same_page = true")
    page.get_by_label("Recipient", exact=True).select_option(label="Paul Berger")
    page.locator("#preview-box .preview-subject", has_text="Paul Berger: Ihr Frühjahrs-Check").wait_for()
    assert page.locator("#preview-box .preview-text").inner_text().startswith("Sehr geehrter Herr Berger,")
    assert page.evaluate("window.__same_page") is True
    assert f"contact_id={ids['Paul Berger']}" in page.url

    # Found by name: typed, offered, picked
    page.get_by_label("Find by name").fill("müll")
    page.locator("#preview-found").get_by_role("button", name="Klara Müller").click()
    page.locator("#preview-box .preview-subject", has_text="Klara Müller").wait_for()
    assert page.locator("#preview-box .preview-text").inner_text().startswith("Sehr geehrte Frau Dr. Müller,")
    assert page.get_by_label("Recipient", exact=True).input_value() == str(ids["Klara Müller"])
    # The HTML part in a sandboxed frame that shows the same greeting
    frame = page.frame_locator("iframe.preview-html")
    assert "Sehr geehrte Frau Dr. Müller," in frame.locator("body").inner_text()
    assert page.locator("iframe.preview-html").get_attribute("sandbox") == ""
    page.locator("#progress, #preview").first.scroll_into_view_if_needed()
    _shot(page, "campaign_page")
    assert page.dialogs == []

    # Starting asks first: the summary opens a box with the real button
    page.locator("summary", has_text="Start…").click()
    confirm = page.get_by_role("button", name="Yes, start the campaign")
    assert confirm.is_visible()
    page.evaluate("window.scrollTo(0, 0)")
    _shot(page, "campaign_start_confirm")

    page.goto(f"/campaigns/{ids['campaign']}/edit")
    assert page.get_by_label("Name", exact=True).input_value() == "Frühjahrs-Check Bayern"
    _shot(page, "campaign_form")


def test_a_started_campaign_shows_its_figures_and_collapses_on_the_timeline(page: Any, live: Any,
                                                                           staff_login: tuple[str, str]) -> None:
    ids = _world(live)
    # Every campaign mail links to the CRM's opt-out page: the start needs the address the CRM is reached at.
    settings = replace(live.settings, web={"base_url": f"http://127.0.0.1:{live.web_port}"})
    with unit_of_work(live.factory) as session:
        jonas = session.execute(select(StaffUser)).scalars().first()
        assert jonas is not None
        campaigns.start(session, settings, ids["campaign"], actor=jonas.id)
    # Released now and at later gates (the rate holds one mail per interval), as the sender thread would.
    for seconds in (0, 600, 1200):
        sending.release_due(live.factory, settings, now=utcnow() + _seconds(seconds))
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, *staff_login)
    page.goto(f"/campaigns/{ids['campaign']}")
    assert page.locator("dl.figures").is_visible()
    assert "Sent" in page.locator("dl.figures").inner_text()
    _shot(page, "campaign_stats")

    page.goto(f"/contacts/{ids['Klara Müller']}")
    item = page.locator("li.campaign-mail")
    item.wait_for()
    summary = item.locator("summary")
    assert "Campaign “Frühjahrs-Check Bayern” sent" in summary.inner_text()
    assert not item.locator("pre.mailtext").is_visible()  # collapsed: one line until opened
    _shot(page, "campaign_timeline")
    summary.click()
    assert item.locator("pre.mailtext").inner_text().startswith("Sehr geehrte Frau Dr. Müller,")
    _shot(page, "campaign_timeline_open")


def _seconds(n: int) -> Any:
    from datetime import timedelta

    return timedelta(seconds=n)

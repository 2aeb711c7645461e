"""The segment editor in a real browser: two conditions built with the condition builder, the live count
following each change (and a wrong postcode shown beside its row), saving, and the segment's people; the
contact page's consent panel and the printable proof."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from crm_inbox.consent import double_opt_in as doi
from crm_inbox.consent import ledger
from crm_inbox.db import unit_of_work
from crm_inbox.models import Category, Channel, ConsentState, Contact, ContactEmail, LegalBasis, Role, StaffUser
from tests.browser.conftest import SCREENSHOTS, log_in, screenshot

SHOTS = Path("/tmp/shots")


def _shot(page: Any, name: str) -> None:
    """The suite's screenshot, and a copy where the issue's reviewers look."""
    screenshot(page, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(SCREENSHOTS / f"{name}.png", SHOTS / f"{name}.png")


def _people(live: Any) -> dict[str, int]:
    with unit_of_work(live.factory) as session:
        rows = {
            "anna": Contact(name="Anna Ärmel", role=Role.CUSTOMER, category=Category.A, postcode="80331",
                            city="München"),
            "bernd": Contact(name="Bernd Bauer", role=Role.CUSTOMER, category=Category.A, postcode="86150",
                             city="Augsburg"),
            "carl": Contact(name="Carl Clever", role=Role.CUSTOMER, category=Category.B, postcode="80331",
                            city="München"),
            "emma": Contact(name="Emma Elbe", role=Role.CUSTOMER, category=Category.A, postcode="20095",
                            city="Hamburg"),
            "dora": Contact(name="Dora Dupont", role=Role.LEAD, category=Category.A, postcode="81000"),
        }
        rows["anna"].emails = [ContactEmail(email="anna@aermel.example")]
        session.add_all(rows.values())
        session.flush()
        return {key: c.id for key, c in rows.items()}


def test_build_a_two_condition_segment_with_the_live_count_and_save_it(page, live, staff_login):
    _people(live)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, *staff_login)
    page.goto("/segments/new")
    count = page.locator("#live-count")
    expect(count).to_have_text("4 people")  # the starting condition: every customer
    page.get_by_label("Name", exact=True).fill("Bayern, Kategorie A")

    first = page.locator(".condition").nth(0)
    first.get_by_label("Field", exact=True).select_option("category")
    first.get_by_label("Operator", exact=True).select_option("is")
    first.locator(".value select").select_option("A")
    expect(count).to_have_text("4 people")  # Anna, Bernd, Emma and Dora (a lead)

    page.get_by_role("button", name="+ Condition").click()
    second = page.locator(".condition").nth(1)
    second.get_by_label("Field", exact=True).select_option("postcode")
    expect(second.get_by_label("Operator", exact=True)).to_have_value("between")
    second.get_by_label("from", exact=True).fill("80000")
    second.get_by_label("to", exact=True).fill("8799")
    # a wrong postcode: the server's error beside its row, no count
    expect(second.locator(".row-error")).to_contain_text("five digits")
    expect(second).to_have_class("condition invalid")
    expect(count).to_have_text("—")
    _shot(page, "segment-editor-error")
    second.get_by_label("to", exact=True).fill("87999")
    expect(count).to_have_text("3 people")  # Anna, Bernd, Dora
    expect(second.locator(".row-error")).to_have_text("")
    _shot(page, "segment-editor")

    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bayern, Kategorie A")
    expect(page.locator("td.name")).to_have_text(["Anna Ärmel", "Bernd Bauer", "Dora Dupont"])
    assert "3 people" in page.locator(".segment-facts").inner_text()
    _shot(page, "segment-members")

    # Back in the editor, the saved definition is the builder's rows again; a NOT group narrows it.
    page.get_by_role("link", name="Edit conditions").click()
    expect(count).to_have_text("3 people")
    expect(page.locator(".condition")).to_have_count(2)
    page.get_by_role("button", name="+ Group").click()
    group = page.locator("fieldset.group fieldset.group")
    group.get_by_label("How the conditions combine").select_option("none")
    group.locator(".condition").get_by_label("Field", exact=True).select_option("role")
    group.locator(".condition").get_by_label("Operator", exact=True).select_option("is")
    group.locator(".condition .value select").select_option("lead")
    expect(count).to_have_text("2 people")
    _shot(page, "segment-editor-nested")
    page.get_by_role("button", name="Save segment").click()
    expect(page.locator("td.name")).to_have_text(["Anna Ärmel", "Bernd Bauer"])
    page.locator(".crumbs").get_by_role("link", name="Segments").click()
    expect(page.locator("table.segments td.number")).to_have_text(["2"])  # waits for the list to load
    _shot(page, "segment-list")
    assert page.dialogs == []


def test_the_consent_panel_and_the_printable_proof(page, live, staff_login):
    ids = _people(live)
    with unit_of_work(live.factory) as session:
        jonas = session.query(StaffUser).first()
        assert jonas is not None
        ledger.record(session, ids["anna"], Channel.EMAIL, ConsentState.OPTED_IN, LegalBasis.CONSENT, "web_form",
                      {"form": "Newsletter", "ip": "198.51.100.4"})
        ledger.record(session, ids["anna"], Channel.PHONE, ConsentState.OPTED_OUT, None, "phone_call",
                      {"text": "Bitte keine Anrufe mehr"}, actor=jonas.id)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, *staff_login)
    page.goto(f"/contacts/{ids['anna']}")
    panel = page.locator("section#consent")
    expect(panel.locator("tr.channel-email")).to_contain_text("opted in")
    expect(panel.locator("tr.channel-phone")).to_contain_text("opted out")
    panel.get_by_text("Record consent or an objection").click()
    panel.get_by_label("Channel").select_option("letter")
    panel.get_by_label("What").select_option("opted_in")
    panel.get_by_label("Legal basis (opt-in)").select_option("consent")
    panel.get_by_label("Source").fill("fair")
    panel.get_by_label("Proof").fill("Am Messestand schriftlich, Formular Nr. 17")
    panel.get_by_role("button", name="Record", exact=True).click()
    expect(page.locator("section#consent tr.channel-letter")).to_contain_text("opted in")
    page.locator("section#consent").scroll_into_view_if_needed()
    page.locator("section#consent").screenshot(path=str(SCREENSHOTS / "consent-panel.png"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(SCREENSHOTS / "consent-panel.png", SHOTS / "consent-panel.png")

    page.get_by_role("link", name="Proof of consent (printable)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Proof of consent")
    assert "Formular Nr. 17" in page.content() and "198.51.100.4" in page.content()
    _shot(page, "consent-proof")
    page.emulate_media(media="print")
    assert not page.locator("header.topbar").is_visible()  # printed without the navigation
    _shot(page, "consent-proof-print")

    # The page a person reaches from a campaign mail's opt-out link: a question, no staff navigation.
    page.emulate_media(media="screen")
    token = doi.opt_out_token(doi.instance_secret(live.settings), ids["anna"], "anna@aermel.example")
    page.goto(f"/unsubscribe/{token}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm unsubscribe")
    _shot(page, "unsubscribe-question")
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You have been unsubscribed")
    _shot(page, "unsubscribe-done")

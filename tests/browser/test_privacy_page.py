"""Data protection on the customer page in a real browser: an admin downloads the person's data and erases
them after a confirmation; a staff user is not offered either."""

from __future__ import annotations

import json
import zipfile

from playwright.sync_api import expect

from crm_inbox.db import unit_of_work
from crm_inbox.models import Contact, ContactEmail
from crm_inbox.staff.service import add_staff
from tests.browser.conftest import PASSWORD, log_in, screenshot


def test_an_admin_exports_and_erases_a_person(page, live, staff_login, tmp_path):
    with unit_of_work(live.factory) as session:
        add_staff(session, "chefin@beispiel-firma.de", "Clara Chefin", "admin", password=PASSWORD)
        person = Contact(name="Petra Privat", tags=[], fields={})
        person.emails = [ContactEmail(email="petra.privat@privat-mail.example")]
        session.add(person)
        session.flush()
        person_id = person.id

    log_in(page, *staff_login)
    page.goto(f"/contacts/{person_id}")
    expect(page.get_by_role("heading", name="Petra Privat")).to_be_visible()
    expect(page.get_by_text("Data protection")).to_have_count(0)
    page.get_by_role("button", name="Log out").click()

    log_in(page, "chefin@beispiel-firma.de", PASSWORD)
    page.goto(f"/contacts/{person_id}")
    page.get_by_text("Data protection").click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export data").click()
    archive = tmp_path / "export.zip"
    download_info.value.save_as(archive)
    data = json.loads(zipfile.ZipFile(archive).read("contact.json"))
    assert data["contact"]["name"] == "Petra Privat"
    screenshot(page, "contact-data-protection")

    page.get_by_role("button", name="Erase person …").click()
    expect(page.get_by_role("heading", name="Erase Petra Privat?")).to_be_visible()
    screenshot(page, "contact-erase-confirm")
    page.get_by_role("button", name="Erase for good").click()
    expect(page.get_by_text(f"Contact {person_id} was erased")).to_be_visible()
    assert page.goto(f"/contacts/{person_id}").status == 404

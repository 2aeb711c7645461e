"""Where pages send the browser after a login or a form: a path on this site, never another host."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crm_inbox.db import unit_of_work
from crm_inbox.models import Reminder
from crm_inbox.staff.service import add_staff
from tests.test_pages import PASSWORD, STAFF, csrf_token, log_in
from web.redirects import safe_next

HOSTILE = ["/\\evil.example", "//evil.example", "/\\t/evil.example", "/\t/evil.example", "https://evil.example",
           "javascript:alert(1)", "evil.example", "/\\/evil.example", "/x\\y", "/\n/evil.example", "/\x7f", ""]


@pytest.fixture
def staff(factory):  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)


@pytest.mark.parametrize("target", HOSTILE)
def test_a_target_off_this_site_is_replaced_by_the_default(target):
    assert safe_next(target, "/dashboard") == "/dashboard"


@pytest.mark.parametrize("target", ["/contacts/7", "/contacts?q=J%C3%BCrgens&page=2", "/", "/dashboard#due"])
def test_a_path_on_this_site_is_kept(target):
    assert safe_next(target, "/dashboard") == target


@pytest.mark.parametrize("back", ["/\\evil.example", "/\t/evil.example", "https://evil.example"])
def test_a_reminder_form_never_sends_the_browser_to_another_site(client, staff, factory, back):
    log_in(client)
    page = client.get("/dashboard").get_data(as_text=True)
    client.post("/reminders", data={"csrf_token": csrf_token(page), "title": "Angebot nachfassen", "due": "in 3 days"})
    with unit_of_work(factory) as session:
        reminder_id = session.execute(select(Reminder.id)).scalar_one()
    response = client.post(f"/reminders/{reminder_id}/done", data={"csrf_token": csrf_token(page), "back": back})
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"

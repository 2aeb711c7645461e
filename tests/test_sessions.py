"""A login ends on the server: a copy of the session cookie taken before logout, a new password or
deactivation is worthless afterwards. Logout ends this browser's login only; a new password or deactivation
ends all of the user's logins."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from crm_inbox.db import unit_of_work
from crm_inbox.models import StaffSession, utcnow
from crm_inbox.staff.service import SESSION_LIFETIME, add_staff
from tests.test_pages import PASSWORD, STAFF, csrf_token, log_in

ADMIN = "anna.schmidt@beispiel-firma.de"


@pytest.fixture
def people(factory) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        admin = add_staff(session, ADMIN, "Anna Schmidt", "admin", password=PASSWORD)
        staff = add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        return admin.id, staff.id


def copied_cookie(app: Any, client: Any) -> Any:
    """Another browser holding a copy of ``client``'s session cookie (as a thief would)."""
    cookie = client.get_cookie("session")
    assert cookie is not None, "no session cookie after login"
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def logged_in(browser: Any) -> bool:
    answer = browser.get("/dashboard")
    assert answer.status_code in (200, 302), answer.status_code
    if answer.status_code == 302:
        assert "/login" in answer.headers["Location"]
    return answer.status_code == 200


def post(browser: Any, url: str, data: dict[str, str], form_page: str = "/dashboard") -> Any:
    page = browser.get(form_page)
    return browser.post(url, data={"csrf_token": csrf_token(page.get_data(as_text=True)), **data})


def change_user(admin: Any, user_id: int, **form: str) -> None:
    data = {"name": "Jonas Becker", "emails": STAFF, "role": "staff", "extension": "", "active": "on", **form}
    if form.get("active") == "":
        del data["active"]  # the box left unticked
    url = f"/admin/users/{user_id}"
    assert post(admin, url, data, form_page=url).status_code == 302


def test_a_cookie_copied_before_logout_no_longer_works_after_it(app, people):
    browser = app.test_client()
    assert log_in(browser).status_code == 302
    thief = copied_cookie(app, browser)
    assert logged_in(thief)  # the copy works while the login lasts

    assert post(browser, "/logout", {}).status_code == 302
    assert not logged_in(browser)
    assert not logged_in(thief)
    assert thief.get("/contacts").status_code == 302
    assert thief.get("/contacts/suggest?q=ab").status_code == 302


def test_logout_ends_this_browsers_login_only(app, people):
    office, laptop = app.test_client(), app.test_client()
    log_in(office)
    log_in(laptop)
    post(office, "/logout", {})
    assert not logged_in(office)
    assert logged_in(laptop)


def test_a_new_password_ends_every_login_of_the_user(app, people):
    _, staff_id = people
    office, laptop = app.test_client(), app.test_client()
    log_in(office)
    log_in(laptop)
    thief = copied_cookie(app, office)
    admin = app.test_client()
    log_in(admin, ADMIN)

    change_user(admin, staff_id, password="ganz-neues-pw-7")
    assert not logged_in(office)
    assert not logged_in(laptop)
    assert not logged_in(thief)
    assert logged_in(admin)  # the admin's own login is not touched
    assert log_in(office, STAFF, "ganz-neues-pw-7").status_code == 302
    assert logged_in(office)


def test_deactivation_ends_every_login_and_reactivation_does_not_bring_them_back(app, people):
    _, staff_id = people
    browser = app.test_client()
    log_in(browser)
    thief = copied_cookie(app, browser)
    admin = app.test_client()
    log_in(admin, ADMIN)

    change_user(admin, staff_id, active="")
    assert not logged_in(browser)
    assert not logged_in(thief)
    change_user(admin, staff_id, active="on")
    assert not logged_in(browser)
    assert not logged_in(thief)
    assert log_in(browser).status_code == 302
    assert logged_in(browser)


def test_a_role_change_keeps_the_login_and_applies_at_once(app, people):
    """Chosen: the role is read on every request, so a change needs no new login."""
    _, staff_id = people
    browser = app.test_client()
    log_in(browser)
    admin = app.test_client()
    log_in(admin, ADMIN)
    change_user(admin, staff_id, role="readonly")
    assert logged_in(browser)
    assert post(browser, "/contacts/1/notes", {"text": "x"}).status_code == 403


def test_a_login_past_its_lifetime_ends_and_is_cleared_at_the_next_login(app, factory, people):
    browser = app.test_client()
    log_in(browser)
    with unit_of_work(factory) as session:
        session.execute(update(StaffSession).values(created_at=utcnow() - SESSION_LIFETIME - timedelta(minutes=1)))
    assert not logged_in(browser)
    log_in(browser)
    assert logged_in(browser)
    with unit_of_work(factory) as session:
        assert session.execute(select(func.count()).select_from(StaffSession)).scalar_one() == 1


def test_the_cookie_holds_no_user_id_a_forged_key_gets_nowhere(app, people):
    browser = app.test_client()
    with browser.session_transaction() as cookie:
        cookie["login"] = "guessed"
        cookie["staff_id"] = 1
    assert not logged_in(browser)

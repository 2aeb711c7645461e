"""Admin pages: an admin manages the staff users (and sees the settings in force); nobody else may."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crm_inbox.db import unit_of_work
from crm_inbox.models import AuditEntry, StaffUser
from crm_inbox.staff.service import add_staff, create_token, find_staff
from tests.test_pages import PASSWORD, STAFF, csrf_token, log_in

ADMIN = "anna.schmidt@beispiel-firma.de"


@pytest.fixture
def people(factory):  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        admin = add_staff(session, ADMIN, "Anna Schmidt", "admin", password=PASSWORD)
        staff = add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        return admin.id, staff.id


def _post(client, url: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    token = csrf_token(client.get(url).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **data})


def test_an_admin_adds_a_user_who_can_then_log_in(client, app, factory, people):
    log_in(client, ADMIN)
    assert "/admin/users" in client.get("/dashboard").get_data(as_text=True)  # the menu shows the link
    answer = _post(client, "/admin/users", {
        "name": "Lena Vogel", "emails": "lena.vogel@beispiel-firma.de, lv@beispiel-firma.de", "role": "readonly",
        "extension": "23", "password": "lang-genug-1"})
    assert answer.status_code == 302
    with unit_of_work(factory) as session:
        lena = find_staff(session, "lv@beispiel-firma.de")
        assert lena is not None and lena.name == "Lena Vogel" and lena.role.value == "readonly"
        assert lena.extension == "23"
        entry = session.execute(select(AuditEntry).where(AuditEntry.object_type == "staff_user",
                                                         AuditEntry.object_id == lena.id)).scalar_one()
        assert entry.action == "create" and "lang-genug-1" not in str(entry.details)
    other = app.test_client()
    assert log_in(other, "lena.vogel@beispiel-firma.de", "lang-genug-1").status_code == 302
    assert "Lena Vogel" in other.get("/me").get_data(as_text=True)


def test_a_bad_new_user_is_refused_with_the_reason(client, people):
    log_in(client, ADMIN)
    answer = _post(client, "/admin/users", {"name": "X", "emails": STAFF, "role": "staff", "password": ""})
    assert answer.status_code == 400 and "exists already" in answer.get_data(as_text=True)
    answer = _post(client, "/admin/users", {"name": "X", "emails": "not-an-address", "role": "staff"})
    assert answer.status_code == 400 and "not an e-mail address" in answer.get_data(as_text=True)


def test_deactivating_a_user_ends_their_session_and_their_api_tokens(client, app, factory, people):
    _, staff_id = people
    with unit_of_work(factory) as session:
        token = create_token(session, session.get_one(StaffUser, staff_id))
    jonas = app.test_client()
    log_in(jonas)
    assert jonas.get("/dashboard").status_code == 200
    assert jonas.get("/api/v1/contacts", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    log_in(client, ADMIN)
    answer = _post(client, f"/admin/users/{staff_id}", {"name": "Jonas Becker", "emails": STAFF, "role": "staff",
                                                         "extension": ""})  # the "active" box left unticked
    assert answer.status_code == 302
    assert jonas.get("/dashboard").status_code == 302  # back to the login page
    assert jonas.get("/api/v1/contacts", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert log_in(jonas).status_code == 200  # the login form again, not a redirect into the app


def test_a_new_password_logs_the_user_out_and_the_new_one_works(client, app, people):
    _, staff_id = people
    jonas = app.test_client()
    log_in(jonas)
    log_in(client, ADMIN)
    _post(client, f"/admin/users/{staff_id}", {"name": "Jonas Becker", "emails": STAFF, "role": "staff",
                                                "active": "on", "password": "ganz-neues-pw-7"})
    assert jonas.get("/dashboard").status_code == 302
    assert log_in(jonas, STAFF, PASSWORD).status_code == 200
    assert log_in(jonas, STAFF, "ganz-neues-pw-7").status_code == 302


def test_the_last_admin_cannot_demote_or_deactivate_themselves(client, factory, people):
    admin_id, staff_id = people
    log_in(client, ADMIN)
    answer = _post(client, f"/admin/users/{admin_id}", {"name": "Anna Schmidt", "emails": ADMIN, "role": "staff",
                                                         "active": "on"})
    assert answer.status_code == 400 and "last active admin" in answer.get_data(as_text=True)
    answer = _post(client, f"/admin/users/{admin_id}", {"name": "Anna Schmidt", "emails": ADMIN, "role": "admin"})
    assert answer.status_code == 400
    with unit_of_work(factory) as session:
        anna = session.get_one(StaffUser, admin_id)
        assert anna.role.value == "admin" and anna.active
    # With a second admin, the first may step down.
    _post(client, f"/admin/users/{staff_id}", {"name": "Jonas Becker", "emails": STAFF, "role": "admin",
                                                "active": "on"})
    answer = _post(client, f"/admin/users/{admin_id}", {"name": "Anna Schmidt", "emails": ADMIN, "role": "staff",
                                                         "active": "on"})
    assert answer.status_code == 302
    assert client.get("/admin/users").status_code == 403  # no admin any more


def test_staff_and_read_only_users_get_403_on_admin_pages(app, factory, people):
    with unit_of_work(factory) as session:
        add_staff(session, "leser@beispiel-firma.de", "Leser", "readonly", password=PASSWORD)
    for email in (STAFF, "leser@beispiel-firma.de"):
        client = app.test_client()
        log_in(client, email)
        assert "/admin/users" not in client.get("/dashboard").get_data(as_text=True)
        for url in ("/admin/users", "/admin/users/1", "/admin/settings"):
            assert client.get(url).status_code == 403, (email, url)
        token = csrf_token(client.get("/dashboard").get_data(as_text=True))
        assert client.post("/admin/users", data={"csrf_token": token, "name": "X", "emails": "x@y.de"}
                           ).status_code == 403
    with unit_of_work(factory) as session:
        assert find_staff(session, "x@y.de") is None


def test_the_settings_page_shows_the_settings_without_secrets(client, app, people):
    settings = app.extensions["crm_inbox"].settings
    log_in(client, ADMIN)
    page = client.get("/admin/settings").get_data(as_text=True)
    assert "[mail]" in page and settings.mail.crm_addresses[0] in page and "[reminders]" in page
    assert app.secret_key and str(app.secret_key) not in page


def test_secrets_show_only_whether_they_are_set():
    from crm_inbox.config import public_view, settings_from_mapping

    view = public_view(settings_from_mapping({
        "database": {"url": "postgresql+psycopg://crm:pw-123@db.local/crm"},
        "cti": {"twilio_auth_token": "tw-456"}, "notifications": {"smtp_password": "smtp-789"}}))
    assert view["database"]["url"] == "postgresql+psycopg://crm:***@db.local/crm"
    assert view["cti"]["twilio_auth_token"] == "(set)" and view["cti"]["placetel_secret"] == "(not set)"
    assert view["notifications"]["smtp_password"] == "(set)"
    assert "456" not in str(view) and "789" not in str(view) and "pw-123" not in str(view)

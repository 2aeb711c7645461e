"""Bad input gets a clear 4xx, never a 500: times outside the range the CRM keeps, JSON nested too deep; and
secrets in webhook URLs never reach the log.

A time such as year 9999 used to be stored and then broke every page that showed it (converting it to local
time overflows), for every user, until someone edited the database.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from crm_inbox.calls.service import CallEvent, apply_event
from crm_inbox.db import unit_of_work
from crm_inbox.models import Call, Direction, Reminder, ReminderState
from tests.conftest import make_settings
from tests.test_api import create_contact
from tests.test_pages import STAFF, csrf_token, log_in

API = "/api/v1"
CTI = {"token": "cti-secret", "threecx_token": "3cx-secret", "twilio_token": "tw-secret"}
CTI_BEARER = {"Authorization": "Bearer cti-secret"}
NUMBER = "+49 171 2345678"
YEAR_9999 = "9999-12-31T23:30:00Z"
YEAR_1_EAST = "0001-01-01T00:00:00+05:00"  # overflows when converted to UTC


@pytest.fixture
def settings(database_url, tmp_path):  # type: ignore[no-untyped-def]
    return make_settings(database_url, tmp_path / "instance", cti=CTI)


def calls_stored(factory) -> int:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        return session.execute(select(func.count()).select_from(Call)).scalar_one()


def generic_event(at: str) -> dict[str, str]:
    return {"event": "new", "call_id": "c-1", "at": at, "direction": "in", "from": NUMBER, "to": "22"}


# --- times out of range are refused where they enter ---

@pytest.mark.parametrize("at", [YEAR_9999, YEAR_1_EAST, "1899-12-31T23:59:59Z", "2200-01-01T00:00:00Z"])
def test_a_call_event_at_a_time_out_of_range_is_refused_naming_the_field(client, factory, at):
    response = client.post(f"{API}/calls/events", json=generic_event(at), headers=CTI_BEARER)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"]["field"] == "at"
    assert calls_stored(factory) == 0


def test_a_call_event_in_range_is_still_stored(client, factory):
    response = client.post(f"{API}/calls/events", json=generic_event("2026-11-23T10:15:00+01:00"),
                           headers=CTI_BEARER)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert calls_stored(factory) == 1


@pytest.mark.parametrize(("field", "value"), [("CallStartTimeUTC", "9999-12-31 23:30:00"),
                                              ("CallStartTimeUTC", YEAR_1_EAST),
                                              ("CallEndTimeUTC", "9999-12-31 23:30:00"),
                                              ("Duration", "99999999:00:00")])
def test_a_3cx_journal_out_of_range_is_refused_naming_the_field(client, factory, field, value):
    report = {"Number": NUMBER, "CallType": "Inbound", "Agent": "22", "Duration": "00:01:00",
              "CallStartTimeUTC": "2026-11-23 09:00:00", "CallEndTimeUTC": "2026-11-23 09:01:10", field: value}
    response = client.post(f"{API}/3cx/3cx-secret/journal", data=report)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"]["field"] == field
    assert calls_stored(factory) == 0


@pytest.mark.parametrize("stamp", ["Fri, 31 Dec 9999 23:30:00 +0000", "Sat, 31 Dec 1898 23:00:00 +0000"])
def test_a_twilio_callback_with_a_timestamp_out_of_range_is_refused(client, factory, stamp):
    response = client.post(f"{API}/twilio/tw-secret", data={"CallSid": "CA1", "CallStatus": "ringing",
                                                             "From": NUMBER, "To": "22", "Timestamp": stamp})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"]["field"] == "Timestamp"
    assert calls_stored(factory) == 0


@pytest.mark.parametrize(("field", "value"), [("due_at", YEAR_9999), ("due_at", YEAR_1_EAST),
                                              ("due", "in 10000 years"), ("due", "in 300 Jahren")])
def test_an_api_reminder_due_out_of_range_is_refused_naming_the_field(client, auth, factory, field, value):
    response = client.post(f"{API}/reminders", json={"title": "Call back", field: value}, headers=auth)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"]["field"] == field
    assert "between the years 1900 and 2199" in response.json["error"]["message"]
    with unit_of_work(factory) as session:
        assert session.execute(select(func.count()).select_from(Reminder)).scalar_one() == 0


def test_snoozing_to_a_time_out_of_range_is_refused(client, auth):
    created = client.post(f"{API}/reminders", json={"title": "Call back", "due": "tomorrow 9:00"}, headers=auth)
    assert created.status_code == 201
    response = client.patch(f"{API}/reminders/{created.json['id']}", json={"snooze_until": YEAR_9999}, headers=auth)
    assert response.status_code == 400
    assert response.json["error"]["field"] == "snooze_until"


@pytest.mark.parametrize("value", [YEAR_9999, YEAR_1_EAST, "1899-12-31T00:00:00Z"])
def test_a_due_before_filter_out_of_range_is_refused(client, auth, value):
    response = client.get(f"{API}/reminders", query_string={"due_before": value}, headers=auth)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"]["field"] == "due_before"


def test_a_reminder_in_10000_years_from_the_dashboard_form_is_refused_with_a_reason(client, factory, staff):
    log_in(client)
    page = client.get("/dashboard")
    response = client.post("/reminders", data={"title": "Later", "due": "in 10000 years",
                                               "csrf_token": csrf_token(page.get_data(as_text=True))},
                           follow_redirects=True)
    assert response.status_code == 200
    assert "between the years 1900 and 2199" in response.get_data(as_text=True)
    with unit_of_work(factory) as session:
        assert session.execute(select(func.count()).select_from(Reminder)).scalar_one() == 0


# --- stored values out of range (written before the checks existed) never break a page ---

@pytest.fixture
def staff(factory):  # type: ignore[no-untyped-def]
    from crm_inbox.staff.service import add_staff

    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password="richtig-geheim-42")


@pytest.fixture
def contact_with_a_call_in_9999(client, auth, factory, settings) -> int:  # type: ignore[no-untyped-def]
    contact = create_contact(client, auth, name="Klaus Müller", phones=[NUMBER])
    at = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
    with unit_of_work(factory) as session:  # straight into the database, as an old version stored it
        apply_event(session, settings, CallEvent(source="generic", call_id="old-9999", kind="new", at=at,
                                                 direction=Direction.IN, from_number=NUMBER, to_number="22"))
    return int(contact["id"])


@pytest.mark.parametrize("state", [ReminderState.OPEN, ReminderState.CANCELLED])
def test_pages_show_stored_times_out_of_range_instead_of_failing(client, factory, staff, contact_with_a_call_in_9999,
                                                                  state):
    contact_id = contact_with_a_call_in_9999
    due = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
    with unit_of_work(factory) as session:
        session.add(Reminder(reason="manual", title="Far away", due_at=due, state=state, contact_id=contact_id,
                             fire_at=due if state == ReminderState.OPEN else None,
                             completed_at=datetime.now(UTC) - timedelta(hours=1)
                             if state == ReminderState.CANCELLED else None))
    log_in(client)
    for path in ("/", "/dashboard", "/triage", f"/contacts/{contact_id}"):
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 200, (path, response.status_code)
    assert "9999-12-31 23:30 UTC" in client.get(f"/contacts/{contact_id}").get_data(as_text=True)


@pytest.mark.parametrize("since", ["0001-01-01", "9999-12-31", "1899-12-31"])
def test_an_imap_since_out_of_range_stops_start_up_with_one_line_naming_the_key(since):
    from crm_inbox.config import ConfigError, settings_from_mapping

    account = {"name": "crm-box", "host": "imap.example", "username": "crm", "password_env": "IMAP_PASSWORD",
               "since": since}
    with pytest.raises(ConfigError, match="since: expected a date like 2026-01-31 \\(years 1900 to 2199\\)"):
        settings_from_mapping({"imap": {"accounts": [account]},
                               "mail": {"crm_addresses": ["crm@example.org"]}}, {})


# --- JSON nested too deep: 400 on every path, before authentication ---

DEEP = "[" * 100_000


@pytest.mark.parametrize("path", ["/api/v1/contacts", "/api/v1/reminders", "/api/v1/calls/events",
                                  "/api/v1/cti/wrong-token", "/api/v1/3cx/cti-secret/journal", "/login",
                                  "/api/v1/no-such-route"])
def test_json_nested_too_deep_is_a_400_before_authentication_with_one_log_line(client, caplog, path):
    caplog.set_level(logging.INFO)
    response = client.post(path, data=DEEP, content_type="application/json")
    assert response.status_code == 400, (path, response.status_code)
    if path.startswith("/api/"):
        assert response.json["error"] == {"code": "invalid", "message": "the JSON body is nested too deeply",
                                          "field": "body"}
    lines = [r for r in caplog.records if "nested too deeply" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_json_nested_within_the_limit_still_reaches_the_view(client, auth):
    response = client.post("/api/v1/contacts", data="[" * 500 + "]" * 500, content_type="application/json",
                           headers=auth)
    assert response.status_code == 400
    assert response.json["error"]["message"] == "the request body must be a JSON object"


# --- secrets in URLs never reach the log ---

@pytest.mark.parametrize(("line", "masked"), [
    ('127.0.0.1 - - "POST /api/v1/cti/s3cr3t HTTP/1.1" 200', '127.0.0.1 - - "POST /api/v1/cti/*** HTTP/1.1" 200'),
    ("Exception on /api/v1/sipgate/s3cr3t/in [POST]", "Exception on /api/v1/sipgate/***/in [POST]"),
    ("/api/v1/placetel/s3cr3t and /api/v1/twilio/s3cr3t?x=1", "/api/v1/placetel/*** and /api/v1/twilio/***?x=1"),
    ("/api/v1/3cx/s3cr3t/journal /api/v1/3cx/s3cr3t/lookup?number=1",
     "/api/v1/3cx/***/journal /api/v1/3cx/***/lookup?number=1"),
    ("GET /api/v1/3cx/template.xml", "GET /api/v1/3cx/template.xml"),
    ("https://crm.example/calendar/s3cr3t/reminders.ics", "https://crm.example/calendar/***/reminders.ics"),
    ("GET /api/v1/lookup?number=0171&token=s3cr3t HTTP/1.1", "GET /api/v1/lookup?number=0171&token=*** HTTP/1.1"),
    ("GET /dashboard/calendar", "GET /dashboard/calendar"),
    ("Exception on /unsubscribe/eyJjIjo.x9 [POST]", "Exception on /unsubscribe/*** [POST]"),
    ('"POST /consent/confirm/eyJjIjo.x9 HTTP/1.1" 200', '"POST /consent/confirm/*** HTTP/1.1" 200'),
    ("GET /consent/proof", "GET /consent/proof"),
])
def test_secrets_in_webhook_and_feed_urls_are_masked(line, masked):
    from crm_inbox.log_masking import mask_secrets

    assert mask_secrets(line) == masked


def test_a_failing_webhook_logs_its_path_without_the_token(app, client, caplog, monkeypatch):
    from flask import request

    def broken(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"cannot record the call posted to {request.path}")

    monkeypatch.setattr("web.webhooks.apply_event_matched", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # log and answer 500, as in production
    caplog.set_level(logging.INFO)
    response = client.post("/api/v1/cti/cti-secret", data={"event": "newCall", "callId": "c-1", "direction": "in",
                                                           "from": NUMBER, "to": "22"})
    assert response.status_code == 500
    logged = [r for r in caplog.records if "Exception on" in r.getMessage()]
    assert logged and logged[0].getMessage() == "Exception on /api/v1/cti/*** [POST]"
    assert "cannot record the call posted to /api/v1/cti/***" in caplog.text  # the traceback, masked too
    for record in caplog.records:
        assert "cti-secret" not in record.getMessage()
        assert "cti-secret" not in repr(record.args)
        assert "cti-secret" not in (record.exc_text or "")
    assert "cti-secret" not in caplog.text


# --- secrets on the settings page ---

@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://crm:pw-123@db.local/crm", "postgresql+psycopg://crm:***@db.local/crm"),
    ("postgresql+psycopg://crm@db.local/crm?password=pw-123&sslmode=require",
     "postgresql+psycopg://crm@db.local/crm?password=***&sslmode=require"),
    ("postgresql://crm@db.local/crm?sslmode=require&PASSWORD=pw-123;token=pw-123&key=pw-123&pass=pw-123",
     "postgresql://crm@db.local/crm?sslmode=require&PASSWORD=***;token=***&key=***&pass=***"),
    ("postgresql://crm@db.local/crm?sslpassword=pw-123&passwd=pw-123&secret=pw-123",
     "postgresql://crm@db.local/crm?sslpassword=***&passwd=***&secret=***"),
    ("postgresql://crm:pw@123/x@db.local/crm", "postgresql://crm:***@db.local/crm"),  # unencoded "@" and "/"
    ("sqlite:////var/lib/crm-inbox/crm.db", "sqlite:////var/lib/crm-inbox/crm.db"),
])
def test_database_urls_are_shown_without_passwords(url, shown):
    from crm_inbox.config import mask_url

    assert mask_url(url) == shown


def test_the_settings_page_masks_a_password_given_as_url_parameter(settings, factory):
    from crm_inbox.config import replace
    from crm_inbox.staff.service import add_staff
    from web import create_app

    shown = replace(settings, database={"url": "postgresql+psycopg://crm@db.local/crm?password=pw-123"})
    app = create_app(shown, factory)  # the page shows this URL; the requests use the test database
    with unit_of_work(factory) as session:
        add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt", "admin", password="richtig-geheim-42")
    client = app.test_client()
    log_in(client, "anna.schmidt@beispiel-firma.de")
    page = client.get("/admin/settings").get_data(as_text=True)
    assert "db.local/crm?password=***" in page
    assert "pw-123" not in page

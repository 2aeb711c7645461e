"""Reminders (Wiedervorlage): the rules that create them and complete them by themselves, staff creating,
snoozing and completing them over the API, firing exactly once, and the private iCalendar feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from crm_inbox.config import replace
from crm_inbox.db import unit_of_work
from crm_inbox.models import OutgoingMail, Reminder, ReminderState, utcnow
from crm_inbox.reminders.due_time import parse_due
from crm_inbox.reminders.service import fire_due, note_phrase
from crm_inbox.staff.service import add_staff
from tests.conftest import make_settings, make_token
from tests.test_api import create_contact

API = "/api/v1"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PHONE = {"own_numbers": ("+49 89 1234567-0",)}


@pytest.fixture
def settings(database_url, tmp_path):  # type: ignore[no-untyped-def]
    return make_settings(database_url, tmp_path / "instance", phone=PHONE,
                         reminders={"missed_call_callback_minutes": 15, "ticket_no_reply_minutes": 240},
                         web={"base_url": "https://crm.beispiel-firma.de"})


@pytest.fixture
def people(client, auth, factory) -> dict[str, int]:  # type: ignore[no-untyped-def]
    klaus = create_contact(client, auth, name="Klaus Müller", phones=["0171 2345678"],
                           emails=["klaus.mueller@muster-maschinenbau.example"])
    with unit_of_work(factory) as session:
        jonas = add_staff(session, "jonas.becker@beispiel-firma.de", "Jonas Becker", extension="22").id
    return {"klaus": klaus["id"], "jonas": jonas}


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def call(client: Any, auth: dict[str, str], call_id: str, *events: tuple[str, float, dict[str, Any]],
         **common: Any) -> None:
    for kind, seconds, extra in events:
        response = client.post(f"{API}/calls/events", headers=auth,
                               json={"event": kind, "call_id": call_id, "at": at(seconds), **common, **extra})
        assert response.status_code == 200, response.get_data(as_text=True)


def missed(client: Any, auth: dict[str, str], call_id: str, number: str = "0171/2345678", to: str = "22") -> None:
    call(client, auth, call_id, ("new", 0, {"direction": "in"}), ("hangup", 30, {"cause": "noAnswer"}),
         **{"from": number, "to": to})


def reminders(client: Any, auth: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    response = client.get(f"{API}/reminders", headers=auth, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(response.json["items"])


def rows(factory: Any) -> list[Reminder]:
    with factory() as session:
        return list(session.execute(select(Reminder).order_by(Reminder.id)).scalars())


def outbox(factory: Any) -> list[OutgoingMail]:
    with factory() as session:
        return list(session.execute(select(OutgoingMail).order_by(OutgoingMail.id)).scalars())


# --- the missed-call rule ---

def test_a_missed_call_creates_a_call_back_reminder_for_the_staff_member_it_rang_for(client, auth, people):
    missed(client, auth, "m-1")
    [reminder] = reminders(client, auth)
    assert reminder["reason"] == "missed_call" and reminder["state"] == "open"
    assert reminder["assignee_id"] == people["jonas"] and reminder["contact_id"] == people["klaus"]
    assert reminder["title"] == "Call back Klaus Müller"
    # due missed_call_callback_minutes after the call ended
    assert datetime.fromisoformat(reminder["due_at"]) == T0 + timedelta(seconds=30, minutes=15)
    assert reminder["interaction_id"] is not None and reminder["call_id"] is not None


def test_a_missed_call_to_no_known_extension_is_for_the_team_and_an_unknown_number_has_no_contact(client, auth,
                                                                                                 people):
    missed(client, auth, "m-2", number="+49 30 9999999", to="+49 89 1234567-0")
    [reminder] = reminders(client, auth)
    assert reminder["assignee_id"] is None and reminder["contact_id"] is None
    assert reminder["title"] == "Call back +49309999999"
    assert reminders(client, auth, assignee="team") == [reminder]
    assert reminders(client, auth, assignee=str(people["jonas"])) == []


def test_the_same_events_again_make_no_second_reminder(client, auth, people):
    missed(client, auth, "m-3")
    missed(client, auth, "m-3")
    assert len(reminders(client, auth)) == 1


def test_the_missed_call_rule_can_be_switched_off(database_url, tmp_path, people, factory):
    from web import create_app

    settings = make_settings(database_url, tmp_path / "off", phone=PHONE, reminders={"missed_call_callback": False})
    client = create_app(settings, factory).test_client()
    auth = {"Authorization": f"Bearer {make_token(factory, 'off@beispiel-firma.de')}"}
    missed(client, auth, "m-off")
    assert reminders(client, auth) == []


def test_the_call_back_completes_the_reminder_by_itself(client, auth, people):
    missed(client, auth, "m-4")
    # Jonas calls back from his extension and reaches Klaus
    call(client, auth, "cb-4", ("new", 600, {"direction": "out"}), ("answer", 610, {}),
         ("hangup", 700, {"cause": "normalClearing"}), **{"from": "22", "to": "0171 2345678"})
    [reminder] = reminders(client, auth)
    assert reminder["state"] == "done" and reminder["completed_by_id"] == people["jonas"]
    assert reminder["completion"].startswith("call-back happened")
    assert not reminder["pending_fire"]


def test_an_unanswered_call_back_leaves_the_reminder_open(client, auth, people):
    missed(client, auth, "m-5")
    call(client, auth, "cb-5", ("new", 600, {"direction": "out"}), ("hangup", 630, {"cause": "noAnswer"}),
         **{"from": "22", "to": "0171 2345678"})
    assert [r["state"] for r in reminders(client, auth)] == ["open"]


def test_an_answer_that_arrives_late_cancels_the_call_back(client, auth, people):
    missed(client, auth, "m-6")
    call(client, auth, "m-6", ("answer", 10, {}), **{"from": "0171/2345678", "to": "22"})
    [reminder] = reminders(client, auth)
    assert reminder["state"] == "cancelled" and reminder["completion"] == "the call was not missed after all"


# --- staff reminders over the API ---

def test_staff_create_a_reminder_in_words_and_it_is_theirs(client, auth, people, factory):
    response = client.post(f"{API}/reminders", headers=auth, json={
        "title": "Angebot nachfassen", "due": "morgen 9 Uhr", "contact_id": people["klaus"], "note": "Rabatt?"})
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.json
    assert response.headers["Location"] == f"/api/v1/reminders/{created['id']}"
    due = datetime.fromisoformat(created["due_at"]).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    assert (due.hour, due.minute) == (9, 0) and due.date() > datetime.now(UTC).date() - timedelta(days=1)
    me = client.get(f"{API}/reminders/{created['id']}", headers=auth).json
    assert me["assignee_id"] == me["created_by_id"] and me["assignee_id"] is not None
    assert me["reason"] == "manual" and me["state"] == "open" and me["pending_fire"]
    assert reminders(client, auth, assignee="me") == [me]
    assert reminders(client, auth, contact_id=people["klaus"]) == [me]


def test_reminder_input_errors_are_clear(client, auth, people):
    cases = [({"due": "in 3 days"}, "title"), ({"title": "x"}, "due_at"), ({"title": "x", "due": "irgendwann"}, "due"),
             ({"title": "x", "due_at": "not a time"}, "due_at"), ({"title": "x", "due": "in 1 day", "contact_id": 999},
                                                                 "contact_id"),
             ({"title": "x", "due": "in 1 day", "assignee_id": "jonas"}, "assignee_id"),
             ({"title": "x", "due": "in 1 day", "colour": "red"}, "colour")]
    for body, field in cases:
        response = client.post(f"{API}/reminders", headers=auth, json=body)
        assert response.status_code == 400, body
        assert response.json["error"]["field"] == field, (body, response.json)
    assert client.post(f"{API}/reminders", json={"title": "x", "due": "in 1 day"}).status_code == 401
    assert client.get(f"{API}/reminders/12345", headers=auth).status_code == 404
    assert client.get(f"{API}/reminders", headers=auth, query_string={"state": "later"}).status_code == 400
    assert client.get(f"{API}/reminders", headers=auth, query_string={"due_before": "2026-01-01T00:00"}).status_code \
        == 400
    assert reminders(client, auth) == []


def test_a_read_only_user_cannot_create_or_change_reminders(client, factory, people):
    token = make_token(factory, "praktikant@beispiel-firma.de", role="readonly")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post(f"{API}/reminders", headers=headers, json={"title": "x", "due": "in 1 day"}).status_code == 403
    assert client.get(f"{API}/reminders", headers=headers).status_code == 200


def test_snooze_fires_again_at_the_new_time_and_done_never_fires(client, auth, people, settings, factory):
    past = (utcnow() - timedelta(minutes=5)).isoformat()
    first = client.post(f"{API}/reminders", headers=auth, json={"title": "Rückruf", "due_at": past,
                                                                  "assignee_id": people["jonas"]}).json
    second = client.post(f"{API}/reminders", headers=auth, json={"title": "Erledigt", "due_at": past}).json
    done = client.patch(f"{API}/reminders/{second['id']}", headers=auth, json={"state": "done"})
    assert done.status_code == 200 and done.json["state"] == "done" and done.json["completed_at"]
    assert fire_due(factory, settings) == 1
    assert fire_due(factory, settings) == 0  # fired once
    [mail] = outbox(factory)
    assert mail.to_address == "jonas.becker@beispiel-firma.de" and mail.subject == "Wiedervorlage: Rückruf"
    assert "https://crm.beispiel-firma.de/dashboard" in mail.body

    snoozed = client.patch(f"{API}/reminders/{first['id']}", headers=auth, json={"snooze": "in 2 hours"})
    assert snoozed.status_code == 200 and snoozed.json["state"] == "snoozed" and snoozed.json["pending_fire"]
    moved = datetime.fromisoformat(snoozed.json["due_at"])
    assert timedelta(minutes=119) < moved - utcnow() <= timedelta(hours=2)
    assert fire_due(factory, settings) == 0  # not yet
    assert fire_due(factory, settings, now=moved + timedelta(seconds=1)) == 1
    assert len(outbox(factory)) == 2
    # snoozing what is done is refused; reopening works
    assert client.patch(f"{API}/reminders/{second['id']}", headers=auth, json={"snooze": "in 1 hour"}).status_code \
        == 400
    reopened = client.patch(f"{API}/reminders/{second['id']}", headers=auth, json={"state": "open"}).json
    assert reopened["state"] == "open" and reopened["completed_at"] is None and reopened["pending_fire"]
    cancelled = client.patch(f"{API}/reminders/{second['id']}", headers=auth,
                             json={"state": "cancelled", "completion": "Kunde hat sich gemeldet"}).json
    assert cancelled["completion"] == "Kunde hat sich gemeldet" and not cancelled["pending_fire"]
    assert [r["id"] for r in reminders(client, auth, state="active")] == [first["id"]]
    assert [r["id"] for r in reminders(client, auth, due_before=past.replace("+00:00", "Z"))] == []


def test_a_team_reminder_is_mailed_to_every_active_staff_user_or_the_team_address(client, auth, people, settings,
                                                                                     factory):
    client.post(f"{API}/reminders", headers=auth, json={"title": "Team", "due_at": (utcnow()).isoformat(),
                                                         "assignee_id": None})
    assert fire_due(factory, settings) == 1
    assert sorted(m.to_address for m in outbox(factory)) == ["anna.schmidt@beispiel-firma.de",
                                                             "jonas.becker@beispiel-firma.de"]
    client.post(f"{API}/reminders", headers=auth, json={"title": "Team 2", "due_at": utcnow().isoformat(),
                                                         "assignee_id": None})
    team = replace(settings, reminders={"team_address": "vertrieb@beispiel-firma.de"})
    assert fire_due(factory, team) == 1
    assert outbox(factory)[-1].to_address == "vertrieb@beispiel-firma.de"


def test_firing_claims_each_row_once_even_when_two_firers_run_at_once(client, auth, people, settings, factory):
    import threading

    due = (utcnow() - timedelta(seconds=1)).isoformat()
    for n in range(40):
        client.post(f"{API}/reminders", headers=auth, json={"title": f"R{n}", "due_at": due,
                                                             "assignee_id": people["jonas"]})
    counts: list[int] = []
    start = threading.Barrier(2)

    def firer() -> None:
        start.wait()
        counts.append(fire_due(factory, settings, batch=7))

    threads = [threading.Thread(target=firer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 40
    assert len(outbox(factory)) == 40
    assert all(r.fired_at is not None and r.fire_at is None for r in rows(factory))


# --- the notification ---

def test_the_notification_names_customer_and_due_time_and_links_the_customer_page(client, auth, people, settings,
                                                                                    factory):
    missed(client, auth, "m-n")
    fire_due(factory, settings, now=T0 + timedelta(hours=1))
    [mail] = outbox(factory)
    assert mail.purpose == "reminder" and mail.to_address == "jonas.becker@beispiel-firma.de"
    assert mail.subject == "Wiedervorlage: Call back Klaus Müller"
    assert f"https://crm.beispiel-firma.de/contacts/{people['klaus']}" in mail.body
    assert "Mon 23.11.2026 10:15 (Europe/Berlin)" in mail.body  # 09:15:30 UTC in Berlin
    assert mail.headers["Auto-Submitted"] == "auto-generated"


# --- the iCalendar feed ---

def test_the_calendar_feed_lists_open_reminders_and_needs_its_secret(client, auth, people, factory):
    tomorrow = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    mine = client.post(f"{API}/reminders", headers=auth, json={"title": "Angebot nachfassen",
                                                                "due_at": tomorrow.isoformat(),
                                                                "contact_id": people["klaus"]}).json
    done = client.post(f"{API}/reminders", headers=auth, json={"title": "Schon erledigt",
                                                                "due_at": tomorrow.isoformat()}).json
    client.patch(f"{API}/reminders/{done['id']}", headers=auth, json={"state": "done"})
    client.post(f"{API}/reminders", headers=auth, json={"title": "Für Jonas", "due_at": tomorrow.isoformat(),
                                                         "assignee_id": people["jonas"]})
    assert client.post(f"{API}/me/calendar").status_code == 401
    url = client.post(f"{API}/me/calendar", headers=auth).json["url"]
    assert url.startswith("https://crm.beispiel-firma.de/calendar/")
    path = url.removeprefix("https://crm.beispiel-firma.de")

    response = client.get(path)
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    calendar = Calendar.from_ical(response.data)
    events = list(calendar.walk("VEVENT"))
    assert [str(e["summary"]) for e in events] == ["Angebot nachfassen"]
    assert events[0].decoded("dtstart") == tomorrow
    assert str(events[0]["uid"]).startswith(f"reminder-{mine['id']}@")
    assert f"/contacts/{people['klaus']}" in str(events[0]["url"])

    # no secret, a wrong one, or the old one after a new URL was made: nothing
    assert client.get("/calendar/wrong/reminders.ics").status_code == 404
    assert client.get(path.replace("/calendar/", "/calendar/x")).status_code == 404
    new_url = client.post(f"{API}/me/calendar", headers=auth).json["url"]
    assert new_url != url
    assert client.get(path).status_code == 404
    assert client.get(new_url.removeprefix("https://crm.beispiel-firma.de")).status_code == 200


# --- when ---

@pytest.mark.parametrize(("words", "expected"), [
    ("morgen 9 Uhr", datetime(2026, 11, 24, 8, 0, tzinfo=UTC)),
    ("tomorrow 9:00", datetime(2026, 11, 24, 8, 0, tzinfo=UTC)),
    ("in 3 days", datetime(2026, 11, 26, 8, 0, tzinfo=UTC)),
    ("in 3 Tagen", datetime(2026, 11, 26, 8, 0, tzinfo=UTC)),
    ("Freitag", datetime(2026, 11, 27, 8, 0, tzinfo=UTC)),
    ("Freitag 14:30", datetime(2026, 11, 27, 13, 30, tzinfo=UTC)),
    ("in 2 Stunden", datetime(2026, 11, 23, 16, 30, tzinfo=UTC)),
    ("1.12.", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
    ("1.3.", datetime(2027, 3, 1, 8, 0, tzinfo=UTC)),
    ("2026-12-01T10:00:00+01:00", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
    ("irgendwann", None),
    ("", None),
])
def test_due_times_in_german_and_english_words(words, expected):
    # Monday 23 November 2026, 15:30 in Berlin
    assert parse_due(words, "Europe/Berlin", datetime(2026, 11, 23, 14, 30, tzinfo=UTC)) == expected


@pytest.mark.parametrize(("note", "phrase"), [
    ("Wiedervorlage Freitag", "Freitag"),
    ("Bitte anrufen.\nWV: 1.12.", "1.12."),
    ("remind me in 3 days", "in 3 days"),
    ("Follow-up next Monday 10:00!", "next Monday 10:00"),
    ("FYI, der Kunde beschwert sich", None),
])
def test_the_phrase_in_a_forwarding_note(note, phrase):
    assert note_phrase(note) == phrase


def test_rows_are_the_truth_a_reminder_due_while_down_fires_once_on_the_first_tick(settings, factory):
    from crm_inbox.scheduler import Scheduler

    with unit_of_work(factory) as session:
        jonas = add_staff(session, "jonas.becker@beispiel-firma.de", "Jonas Becker")
        session.add(Reminder(title="Über das Wochenende fällig", reason="manual", due_at=T0, fire_at=T0,
                             assignee_id=jonas.id, state=ReminderState.OPEN))
    fired: list[int] = []
    for _ in range(3):  # three starts, as after three restarts
        scheduler = Scheduler(factory, settings, on_fired=lambda: fired.append(1))
        scheduler.start()
        try:
            assert scheduler.wait_runs("reminders-tick")
            assert scheduler.job_ids() == ["close-stale-calls", "reminders-tick", "retention-purge"]  # event_days
        finally:
            scheduler.stop()
    assert fired == [1]
    with factory() as session:
        assert session.execute(select(func.count()).select_from(OutgoingMail)).scalar_one() == 1
        assert session.execute(select(Reminder.fired_at)).scalar_one() is not None


def test_a_reminder_due_soon_is_fired_by_the_one_shot_job_not_a_tick_later(settings, factory):
    from crm_inbox.scheduler import Scheduler

    slow = replace(settings, reminders={"tick_seconds": 3600})
    with unit_of_work(factory) as session:
        jonas = add_staff(session, "jonas.becker@beispiel-firma.de", "Jonas Becker")
    scheduler = Scheduler(factory, slow)
    scheduler.start()
    try:
        assert scheduler.wait_runs("reminders-tick")
        soon = utcnow() + timedelta(milliseconds=300)
        with unit_of_work(factory) as session:
            session.add(Reminder(title="Gleich", reason="manual", due_at=soon, fire_at=soon, assignee_id=jonas.id))
        scheduler.wake()  # what the API does after a commit
        assert scheduler.wait_runs("reminders-next", 2, timeout=10)  # the wake, then the due time
    finally:
        scheduler.stop()
    with factory() as session:
        fired_at = session.execute(select(Reminder.fired_at)).scalar_one()
    assert fired_at is not None and fired_at >= soon


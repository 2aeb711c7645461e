"""The demo's history for the reports: its teams are sized for the works-council rule, what a step writes
through the services ("now") is moved back to the step's own time (many steps in one pass too), missed calls are
called back minutes to hours later, and the everyday calls fill every working week. (The history as a whole is
built with every demo in tests/test_demo.py.)"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.demo import CALL_BACK_MINUTES, GERMAN, DemoCall, Person, call_backs, record_calls
from crm_inbox.demo_history import (
    FIRST_TEAMS,
    HISTORY_DAYS,
    MORE_STAFF_DE,
    MORE_STAFF_EN,
    TICKET_ROWS,
    Backdating,
    RoutineCall,
    Teams,
    backdated,
    office_closed,
    plan_routine_calls,
)
from crm_inbox.models import Contact, ContactPhone, InteractionContact, Reminder, Ticket, TicketEvent, TicketState
from crm_inbox.staff.service import add_staff
from crm_inbox.tickets import service as tickets
from crm_inbox.tickets.inputs import TicketChanges


def test_the_demo_teams_show_two_teams_and_pool_the_small_ones():
    min_group_size = Settings().analytics.min_group_size
    for language, more in (("de", MORE_STAFF_DE), ("en", MORE_STAFF_EN)):
        sizes = Counter([*FIRST_TEAMS[language], *(team for *_, team in more)])
        large = [team for team, n in sizes.items() if n >= min_group_size]
        small = [n for team, n in sizes.items() if n < min_group_size]
        assert len(large) == 2, sizes  # shown on their own
        assert small and sum(small) >= min_group_size, sizes  # pooled, and the pool itself large enough to show
        assert len({ext for _, _, ext, _ in more}) == len(more)  # the phone system tells them apart


def test_what_a_step_writes_is_moved_back_to_its_time(settings, factory):
    with unit_of_work(factory) as session:
        contact = Contact(name="Klaus Müller", tags=[], fields={})
        session.add(contact)
        session.flush()
        before = tickets.open_for_contact(session, settings, contact, "Vorher", None)
        before_opened = before.opened_at
        when = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
        with backdated(session, when, TICKET_ROWS):
            ticket = tickets.open_for_contact(session, settings, contact, "Damals", None)
        assert abs(ticket.opened_at - when) < timedelta(seconds=5)
        assert abs(ticket.updated_at - when) < timedelta(seconds=5)
        events = session.execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)).scalars().all()
        assert events and all(abs(e.at - when) < timedelta(seconds=5) for e in events)
        # its reminder (no staff reply yet) is due as long after the moved opening as after the real one
        reminder = session.execute(select(Reminder).where(Reminder.ticket_id == ticket.id)).scalar_one()
        assert when < reminder.due_at < when + timedelta(days=7)
        # the timeline (ordered by the links' copy of the time) shows it then
        links = session.execute(select(InteractionContact.occurred_at).where(
            InteractionContact.contact_id == contact.id)).scalars().all()
        assert sum(abs(at - when) < timedelta(seconds=5) for at in links) >= 1
        # what was written before the step stays as it was
        assert session.get_one(Ticket, before.id).opened_at == before_opened


def test_the_demos_missed_calls_are_called_back_minutes_to_hours_later_and_their_reminders_done_then(
        settings, factory):
    with unit_of_work(factory) as session:
        staff = add_staff(session, "jonas.becker@beispiel-firma.de", "Jonas Becker", extension="21")
        contact = Contact(name="Klaus Müller", tags=[], fields={})
        contact.phones = [ContactPhone(raw="+49 30 98765012", e164="+493098765012")]
        session.add(contact)
        session.flush()
        person = Person(contact, "Klaus", "Müller", False, False, [], ["+49 30 98765012"])
        now = datetime.now(UTC)
        missed = DemoCall(now - timedelta(days=60), person, "+49 30 98765012", (staff.id, "", "", "21"), True,
                          False, None)
        owed = DemoCall(now - timedelta(minutes=3), person, "+49 30 98765012", missed.staff, True, False, None)
        backs = call_backs(random.Random(1), now, [missed, owed], GERMAN)
        (back,) = backs  # the one from three minutes ago is still owed
        assert not back.inbound and back.answered and back.number == missed.number
        delay = back.at - missed.at
        assert timedelta(minutes=min(CALL_BACK_MINUTES)) <= delay < timedelta(minutes=max(CALL_BACK_MINUTES) + 1)
        record_calls(session, settings, random.Random(2), [missed, back], GERMAN)
        (reminder,) = session.execute(select(Reminder).where(Reminder.reason == "missed_call")).scalars()
        # done at the call-back's time (not when the demo was made), set when the call was missed
        assert reminder.state.value == "done" and reminder.completed_at is not None
        assert abs(reminder.completed_at - back.at) < timedelta(minutes=1)
        assert abs(reminder.created_at - missed.at) < timedelta(minutes=1)


def test_many_steps_are_moved_back_each_to_its_own_time_in_one_pass(settings, factory):
    with unit_of_work(factory) as session:
        contact = Contact(name="Klaus Müller", tags=[], fields={})
        session.add(contact)
        session.flush()
        opened, closed = datetime(2026, 3, 2, 9, 30, tzinfo=UTC), datetime(2026, 3, 23, 14, 0, tzinfo=UTC)
        steps = Backdating(session, TICKET_ROWS)
        steps.step(opened)
        ticket = tickets.open_for_contact(session, settings, contact, "Damals", None)
        steps.step(closed)
        tickets.change(session, ticket, None, TicketChanges(state=TicketState.CLOSED.value))
        steps.done()
        assert abs(ticket.opened_at - opened) < timedelta(seconds=5)
        assert ticket.closed_at is not None and abs(ticket.closed_at - closed) < timedelta(seconds=5)
        events = session.execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)).scalars().all()
        assert {e.kind for e in events if abs(e.at - closed) < timedelta(seconds=5)} == {"state"}
        assert all(abs(e.at - opened) < timedelta(seconds=5) for e in events if e.kind != "state")
        # a time still ahead after the last step (the reminder's due time) goes with the step that wrote it
        reminder = session.execute(select(Reminder).where(Reminder.ticket_id == ticket.id)).scalar_one()
        assert opened < reminder.due_at < opened + timedelta(days=7)
        assert abs(reminder.created_at - opened) < timedelta(seconds=5)


def test_the_office_is_closed_on_weekends_german_holidays_and_between_christmas_and_new_year():
    assert office_closed(date(2026, 4, 3)) and office_closed(date(2026, 4, 6))  # Good Friday, Easter Monday
    assert office_closed(date(2026, 5, 14)) and office_closed(date(2026, 5, 25))  # Ascension, Whit Monday
    assert office_closed(date(2026, 12, 28)) and office_closed(date(2027, 1, 1)) and office_closed(date(2026, 5, 1))
    assert office_closed(date(2026, 3, 7))  # a Saturday
    assert not office_closed(date(2026, 4, 2)) and not office_closed(date(2026, 4, 7))


def test_the_everyday_calls_fill_every_working_week_and_each_missed_one_is_called_back_in_turn():
    service, sales = [1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]
    members = {"Kundenservice": service, "Vertrieb": sales, "Buchhaltung": [13, 14], "Geschäftsführung": [15]}
    teams = Teams(("Kundenservice", "Vertrieb", "Buchhaltung", "Geschäftsführung"), members, {}, {}, {})
    people = [Contact(id=n, name=f"Kunde {n}") for n in range(1, 30)]
    now = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    calls = plan_routine_calls(random.Random(4), now, teams, people)
    assert all(not office_closed(c.at.date()) and 7 <= c.at.hour < 17 for c in calls)
    weeks: dict[date, list[RoutineCall]] = {}
    for call in calls:
        weeks.setdefault(call.at.date() - timedelta(days=call.at.weekday()), []).append(call)
    full = [week for monday, week in weeks.items() if now - timedelta(days=HISTORY_DAYS - 1) < datetime.combine(
        monday, time(), tzinfo=UTC) < now - timedelta(days=7)
            and all(not office_closed(monday + timedelta(days=d)) for d in range(5))]
    assert len(full) > 30
    assert all(25 <= len(week) <= 50 for week in full), sorted(len(w) for w in full)
    missed = [c for c in calls if c.inbound and not c.answered]
    for call in missed[:-2]:  # called back (the last ones perhaps not yet)
        assert any(not b.inbound and b.answered and b.contact is call.contact and b.staff_id in service
                   and timedelta(0) < b.at - call.at < timedelta(days=4) for b in calls)
    # most weeks' call-backs are made by at least five people (the works-council rule shows them)
    callers = [{c.staff_id for c in week if not c.inbound and c.answered and c.staff_id in service
                and any(m.contact is c.contact for m in week if m in missed)} for week in full]
    assert sum(len(people) >= 5 for people in callers) > 0.7 * len(full)
    assert sum(c.inbound and c.answered and c.staff_id in service for c in calls) > 0.6 * sum(
        c.inbound and c.answered for c in calls)

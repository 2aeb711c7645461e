"""The reminders' service takes typed inputs (``reminders.inputs``), not HTTP-shaped dicts: a caller without
the web app builds the dataclass, and the service checks the values and says which field is wrong."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_inbox.db import unit_of_work
from crm_inbox.errors import ValidationError
from crm_inbox.models import Reminder, ReminderState
from crm_inbox.reminders import service
from crm_inbox.reminders.inputs import ReminderChanges, ReminderFields
from crm_inbox.staff.service import add_staff


def test_the_service_creates_snoozes_and_completes_a_reminder_from_the_dataclasses(settings, factory):
    with unit_of_work(factory) as session:
        anna = add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt").id
        for fields, field in [(ReminderFields(due="in 3 days"), "title"), (ReminderFields(title="x"), "due_at"),
                              (ReminderFields(title="x", due="irgendwann"), "due"),
                              (ReminderFields(title="x", due="in 1 day", contact_id=999), "contact_id")]:
            with pytest.raises(ValidationError) as refused:
                service.read_input(session, settings, fields)
            assert refused.value.field == field
        team = service.create(session, service.read_input(session, settings, ReminderFields(
            title="  Angebot   nachfassen ", due="morgen 9 Uhr", note="Rabatt?", assignee_id=None)), anna)
        mine = service.create(session, service.read_input(session, settings, ReminderFields(
            title="Rückruf", due_at="2030-01-02T10:00:00+01:00")), anna)
        ids = team.id, mine.id
    with unit_of_work(factory) as session:
        team, mine = (session.get_one(Reminder, i) for i in ids)
        assert (team.title, team.note, team.assignee_id, team.state) == ("Angebot nachfassen", "Rabatt?", None,
                                                                         ReminderState.OPEN)
        assert mine.assignee_id == anna and mine.due_at == datetime(2030, 1, 2, 9, tzinfo=UTC)
        service.change(session, settings, mine, ReminderChanges(snooze="in 2 hours", note=None), anna)
        assert mine.state == ReminderState.SNOOZED and mine.note is None and mine.title == "Rückruf"
        with pytest.raises(ValidationError) as refused:
            service.change(session, settings, team, ReminderChanges(state="later"), anna)
        assert refused.value.field == "state"
        service.change(session, settings, team, ReminderChanges(state="done", completion="called"), anna)
        assert (team.state, team.completion, team.completed_by_id) == (ReminderState.DONE, "called", anna)
        with pytest.raises(ValidationError) as refused:
            service.change(session, settings, team, ReminderChanges(snooze_until="2030-02-01T09:00:00Z"), anna)
        assert refused.value.field == "snooze"

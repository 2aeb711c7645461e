"""Reminders (Wiedervorlage): list, create, read, change (snooze, complete, cancel, reopen); the calendar URL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import Response, jsonify, request, url_for
from sqlalchemy import select

from crm_inbox.errors import ValidationError
from crm_inbox.ids import MAX_ID
from crm_inbox.models import Reminder, ReminderState
from crm_inbox.reminders import service
from crm_inbox.reminders.inputs import NOTE_RULE, TITLE_RULE, WHEN_RULE, ReminderChanges, ReminderFields
from crm_inbox.staff.service import new_calendar_token
from crm_inbox.time_range import EARLIEST, LATEST, in_range
from web.api import serialize as ser
from web.api.blueprint import api
from web.api.errors import fail, get_or_404, int_arg, json_body
from web.auth import actor_id, api_user, require_token
from web.requestdb import after_commit, db, state


def reminder_json(r: Reminder) -> dict[str, Any]:
    return {
        "id": r.id, "title": r.title, "note": r.note, "reason": r.reason, "state": r.state.value,
        "due_at": ser.when(r.due_at), "fired_at": ser.when(r.fired_at), "pending_fire": r.fire_at is not None,
        "contact_id": r.contact_id, "company_id": r.company_id, "ticket_id": r.ticket_id,
        "interaction_id": r.interaction_id, "call_id": r.call_id, "assignee_id": r.assignee_id,
        "created_at": ser.when(r.created_at), "created_by_id": r.created_by_id,
        "completed_at": ser.when(r.completed_at), "completed_by_id": r.completed_by_id, "completion": r.completion,
    }


def _changed() -> None:
    after_commit(state().reminders_changed)


# --- JSON into the service's typed inputs: shapes only (the values' rules are the service's) ---

def _string(rule: str, *, nullable: bool) -> Callable[[str, Any], str | None]:
    def parse(field: str, value: Any) -> str | None:
        if not isinstance(value, str) and not (nullable and value is None):
            raise ValidationError(field, rule)
        return value
    return parse


def _reference(field: str, value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValidationError(field, f"no such {field.removesuffix('_id')}")
    return value


_STATES = "must be one of " + ", ".join(s.value for s in ReminderState)
_FIELDS_JSON: dict[str, Callable[[str, Any], Any]] = {
    "title": _string(TITLE_RULE, nullable=False), "note": _string(NOTE_RULE, nullable=True),
    "due_at": _string(WHEN_RULE, nullable=False), "due": _string(WHEN_RULE, nullable=False),
    "assignee_id": _reference, "contact_id": _reference, "ticket_id": _reference, "interaction_id": _reference}
_CHANGES_JSON: dict[str, Callable[[str, Any], Any]] = {
    **_FIELDS_JSON, "state": _string(_STATES, nullable=False), "snooze": _string(WHEN_RULE, nullable=True),
    "snooze_until": _string(WHEN_RULE, nullable=True), "completion": _string("must be a string", nullable=True)}
R = TypeVar("R", ReminderFields, ReminderChanges)


def _input(kind: type[R], parsers: dict[str, Callable[[str, Any], Any]], data: dict[str, Any]) -> R:
    """Only the keys sent are given (a PATCH changes just those); an unknown key is a 400 naming it."""
    unknown = sorted(set(data) - set(parsers))
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    return kind(**{key: parsers[key](key, value) for key, value in data.items()})


@api.get("/reminders")
@require_token()
def list_reminders() -> Response:
    """Filters: ``assignee`` (an id, ``me``, ``team`` for unassigned), ``state`` (``active`` = open or
    snoozed), ``due_before`` (ISO time), ``contact_id``; soonest due first."""
    query = select(Reminder)
    if assignee := request.args.get("assignee"):
        if assignee == "me":
            query = query.where(Reminder.assignee_id == actor_id())
        elif assignee in {"team", "none"}:
            query = query.where(Reminder.assignee_id.is_(None))
        else:
            query = query.where(Reminder.assignee_id == int_arg("assignee", 0, 1, MAX_ID))
    if wanted := request.args.get("state"):
        states = {s.value for s in ReminderState}
        if wanted == "active":
            query = query.where(service.is_active())
        elif wanted in states:
            query = query.where(Reminder.state == ReminderState(wanted))
        else:
            fail(400, "invalid", "state must be active or one of " + ", ".join(sorted(states)), field="state")
    if due_before := request.args.get("due_before"):
        try:
            moment = datetime.fromisoformat(due_before.replace(" ", "+"))  # "+" arrives as a space if unescaped
        except ValueError:
            fail(400, "invalid", "due_before must be an ISO 8601 time", field="due_before")
        if moment.tzinfo is None:
            fail(400, "invalid", "due_before needs a time zone (Z or +01:00)", field="due_before")
        if not in_range(moment):
            fail(400, "invalid", f"due_before must lie between {EARLIEST.year} and {LATEST.year}",
                 field="due_before")
        query = query.where(Reminder.due_at < moment)
    if request.args.get("contact_id"):
        query = query.where(Reminder.contact_id == int_arg("contact_id", 0, 1, MAX_ID))
    limit = int_arg("limit", 50, 1, 500)
    offset = int_arg("offset", 0, 0, 10_000_000)
    rows = db().execute(query.order_by(Reminder.due_at, Reminder.id).limit(limit).offset(offset)).scalars()
    return jsonify(items=[reminder_json(r) for r in rows])


@api.post("/reminders")
@require_token(write=True)
def create_reminder() -> Response:
    """``due_at`` (ISO) or ``due`` ("tomorrow 9:00", "in 3 days", "Freitag 10 Uhr"); the assignee defaults
    to the caller (``assignee_id: null`` for the team)."""
    settings = state().settings
    data = service.read_input(db(), settings, _input(ReminderFields, _FIELDS_JSON, json_body()))
    reminder = service.create(db(), data, actor_id())
    _changed()
    response = jsonify(reminder_json(reminder))
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/reminders/{reminder.id}"
    return response


@api.get("/reminders/<int:reminder_id>")
@require_token()
def get_reminder(reminder_id: int) -> Response:
    return jsonify(reminder_json(get_or_404(Reminder, reminder_id, "reminder")))


@api.patch("/reminders/<int:reminder_id>")
@require_token(write=True)
def patch_reminder(reminder_id: int) -> Response:
    """Change fields; ``snooze``/``snooze_until`` moves it on; ``state``: done, cancelled, open."""
    reminder = get_or_404(Reminder, reminder_id, "reminder")
    service.change(db(), state().settings, reminder, _input(ReminderChanges, _CHANGES_JSON, json_body()),
                   actor_id())
    _changed()
    return jsonify(reminder_json(reminder))


@api.post("/me/calendar")
@require_token()
def new_calendar_url() -> Response:
    """A new private iCalendar URL of the caller's open reminders (any earlier one stops working)."""
    user = api_user()
    assert user is not None
    token = new_calendar_token(user)
    url = url_for("feeds.reminders_ics", token=token, _external=True)
    base = state().settings.web.base_url.rstrip("/")
    if base:
        url = base + url_for("feeds.reminders_ics", token=token)
    return jsonify(url=url)

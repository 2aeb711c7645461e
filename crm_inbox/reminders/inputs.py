"""What staff may set on a reminder, as the service takes it.

The design of ``contacts.inputs``: each field is given (a value; None clears it) or ``NOT_GIVEN`` (left as it
is). The edges (the API's JSON, the dashboard's forms) only translate their shapes into these; what a value
may be (a due time in words or ISO, a title's length, a reference that exists, a state) is checked once, in
``reminders.service``.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_inbox.inputs import NOT_GIVEN, NotGiven

__all__ = ["NOTE_RULE", "NOT_GIVEN", "TITLE_RULE", "WHEN_RULE", "NotGiven", "ReminderChanges", "ReminderFields"]

# What a value must be, said the same by the service and by the edges that refuse a wrong JSON type.
TITLE_RULE = "must be a non-empty string of at most 300 characters"
NOTE_RULE = "must be a string of at most 20000 characters"
WHEN_RULE = "must be a time: ISO 8601, or words such as \"tomorrow 9:00\", \"in 3 days\", \"Freitag 10 Uhr\""


@dataclass(frozen=True)
class _Editable:
    title: str | NotGiven = NOT_GIVEN
    due_at: str | NotGiven = NOT_GIVEN  # an ISO time (words are read too)
    due: str | NotGiven = NOT_GIVEN  # words: "tomorrow 9:00", "in 3 days", "Freitag 10 Uhr"; wins over due_at
    note: str | NotGiven | None = NOT_GIVEN
    assignee_id: int | NotGiven | None = NOT_GIVEN  # None: the team; not given on create: the creator
    contact_id: int | NotGiven | None = NOT_GIVEN
    ticket_id: int | NotGiven | None = NOT_GIVEN
    interaction_id: int | NotGiven | None = NOT_GIVEN


@dataclass(frozen=True)
class ReminderFields(_Editable):
    """A new reminder: ``title`` and a due time (``due`` or ``due_at``) are required."""


@dataclass(frozen=True)
class ReminderChanges(_Editable):
    """A change: the fields given, and snoozing (``snooze`` in words or ``snooze_until``; None: no snooze),
    completing or cancelling (``state`` done/cancelled, with an optional ``completion``) or reopening."""

    state: str | NotGiven = NOT_GIVEN  # a ReminderState's value; the service refuses others, naming the choices
    snooze: str | NotGiven | None = NOT_GIVEN
    snooze_until: str | NotGiven | None = NOT_GIVEN  # wins over snooze when given
    completion: str | NotGiven | None = NOT_GIVEN

"""What staff may change on a ticket, as the service takes it (see ``contacts.inputs`` for the design: a field
is a value or ``NOT_GIVEN``; the edges translate shapes, ``tickets.service`` checks what a value may be)."""

from __future__ import annotations

from dataclasses import dataclass

from crm_inbox.contacts.inputs import NOT_GIVEN, NotGiven


@dataclass(frozen=True)
class TicketChanges:
    state: str | NotGiven = NOT_GIVEN  # a TicketState's value; the service refuses others, naming the choices
    priority: str | NotGiven = NOT_GIVEN
    assignee_id: int | NotGiven | None = NOT_GIVEN  # None: nobody
    subject: str | NotGiven = NOT_GIVEN

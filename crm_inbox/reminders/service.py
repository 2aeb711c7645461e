"""Follow-up reminders (Wiedervorlage): created by rules and by staff, completed by staff or by the rule
itself when its condition clears, fired exactly once when due.

The rules run inside the unit of work that records their reason (a missed call, a ticket waiting for an
answer), so a reminder exists exactly when its reason was committed; ``rule_key`` makes a replayed event
or a second node harmless. Firing (``fire_due``) takes each due row with a conditional update that only
one process can win, and queues the notification mail in the same transaction: the outbox then sends it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker

from crm_inbox import audit, events, outbox
from crm_inbox.config import Settings
from crm_inbox.db import affected, insert_ignoring_conflicts, unit_of_work, write_lock
from crm_inbox.errors import DueOutOfRange, ValidationError
from crm_inbox.ids import is_id
from crm_inbox.models import (
    Call,
    Company,
    Contact,
    Direction,
    Interaction,
    InteractionKind,
    Reminder,
    ReminderState,
    StaffRole,
    StaffUser,
    Ticket,
    utcnow,
)
from crm_inbox.models.reminders import ACTIVE_STATES
from crm_inbox.reminders.due_time import parse_due, read_due
from crm_inbox.reminders.inputs import NOT_GIVEN, NOTE_RULE, TITLE_RULE, WHEN_RULE, ReminderChanges, ReminderFields
from crm_inbox.text import single_line
from crm_inbox.timeline.service import record_interaction

log = logging.getLogger(__name__)

MANUAL = "manual"
MISSED_CALL = "missed_call"
TICKET_NO_REPLY = "ticket_no_reply"
MAIL_NOTE = "mail_note"
_ACTIVE = [s.value for s in ACTIVE_STATES]
_PERSONAL = frozenset({MANUAL, MAIL_NOTE})
_NOTE_PHRASE = re.compile(r"(?im)^\W*(?:wiedervorlage|wv|erinnern|erinnere mich|remind me|reminder|follow[- ]up)"
                          r"\s*(?:am|an|on|:)?\s*(.{1,60})$")


def _create(session: Session, *, rule_key: str | None = None, **values: Any) -> Reminder | None:
    """Insert a reminder; for a rule's reminder, None when that rule already made it."""
    now = utcnow()
    row = {"state": ReminderState.OPEN, "fire_at": values["due_at"], "created_at": now, "updated_at": now,
           "rule_key": rule_key, **values,
           # Rules build titles from mail subjects and names: one line, whatever the mail carried.
           "title": single_line(values["title"])[:300]}
    if rule_key is None:
        reminder: Reminder | None = Reminder(**row)
        session.add(reminder)
        session.flush()
    else:
        new_id = insert_ignoring_conflicts(session, Reminder.__table__, row, ["rule_key"])
        reminder = None
        if new_id is not None:
            # The row as written, without reading it back (columns not in ``row`` load if ever used).
            # (Times in UTC, as a read of the row would give them back.)
            reminder = Reminder(id=new_id, **{k: v.astimezone(UTC) if isinstance(v, datetime) else v
                                              for k, v in row.items()})
            make_transient_to_detached(reminder)
            session.add(reminder)
    if reminder is not None:
        _on_timeline(session, reminder, "set", values.get("created_by_id"), reminder.note)
    return reminder


def _finish(session: Session, where: Any, state: ReminderState, completion: str, by: int | None) -> list[int]:
    """End the active reminders ``where`` selects; returns their ids."""
    ended = session.execute(select(Reminder).where(where, Reminder.state.in_(_ACTIVE))).scalars().all()
    ids = [r.id for r in ended]
    if ids:
        now = utcnow()
        session.execute(update(Reminder).where(Reminder.id.in_(ids)).values(
            state=state, fire_at=None, completed_at=now, completed_by_id=by, completion=completion[:300],
            updated_at=now), execution_options={"synchronize_session": "fetch"})
        for reminder in ended:
            _on_timeline(session, reminder, state.value, by, completion)
        log.info("reminders %s %s: %s", ids, state.value, completion)
    return ids


def _on_timeline(session: Session, reminder: Reminder, event: str, by: int | None, text: str | None) -> None:
    """A reminder a person asked for (by hand or in a note above a forward) shows on its customer's timeline,
    or its company's, when it is set, done, cancelled or reopened. The rules' reminders stay off it: the
    missed call and the ticket's own entries already tell that story."""
    if reminder.reason not in _PERSONAL or (reminder.contact_id is None and reminder.company_id is None):
        return
    contacts = [(session.get_one(Contact, reminder.contact_id), "about")] if reminder.contact_id else []
    record_interaction(
        session, kind=InteractionKind.REMINDER, direction=Direction.INTERNAL, occurred_at=utcnow(),
        subject=reminder.title, text=text, contacts=contacts, staff_ids=[by] if by else [], created_by_id=by,
        details={"reminder_id": reminder.id, "reminder_event": event, "due_at": reminder.due_at.isoformat(),
                 "assignee_id": reminder.assignee_id}, company_id=reminder.company_id)


# --- rules ---

def after_call(session: Session, settings: Settings, call: Call, who: str | None = None) -> None:
    """A missed call owes a call-back: a reminder for whom it rang (the team if unknown). If a late event
    shows it was answered after all, the reminder goes again. ``who``: the caller as the calls service found
    them ("Klaus Müller (Müller GmbH)"), which saves reading contact and company again."""
    if call.callback_needed:
        if not settings.reminders.missed_call_callback:
            return
        when = call.ended_at or call.started_at or utcnow()
        who = (who or _contact_label(session, call.contact_id, call.company_id) or call.remote_e164
               or "unknown number")
        _create(session, rule_key=f"{MISSED_CALL}:{call.id}", reason=MISSED_CALL, title=f"Call back {who}",
                due_at=when + timedelta(minutes=settings.reminders.missed_call_callback_minutes),
                note=f"Missed call from {call.remote_e164 or call.from_raw} at {_local(settings, when)}",
                contact_id=call.contact_id, company_id=call.company_id, interaction_id=call.interaction_id,
                call_id=call.id, assignee_id=call.staff_id)
    else:
        _finish(session, (Reminder.call_id == call.id) & (Reminder.reason == MISSED_CALL), ReminderState.CANCELLED,
                "the call was not missed after all", None)


def callbacks_done(session: Session, call_ids: list[int], by_call: Call) -> None:
    """The call-back happened (an answered call with that person): their call-back reminders are done."""
    if call_ids:
        _finish(session, Reminder.call_id.in_(call_ids) & (Reminder.reason == MISSED_CALL), ReminderState.DONE,
                f"call-back happened (call {by_call.id})", by_call.staff_id)


def ticket_waiting(session: Session, settings: Settings, ticket: Ticket, since: datetime) -> None:
    """The customer waits for an answer since ``since``: remind the assignee if none comes in time. An open
    reminder for the ticket stays as it is (the customer has been waiting since then)."""
    if not settings.reminders.ticket_no_reply:
        return
    earlier = session.execute(select(Reminder.state).where(
        Reminder.ticket_id == ticket.id, Reminder.reason == TICKET_NO_REPLY)).scalars().all()
    if any(state in ACTIVE_STATES for state in earlier):
        return
    # Numbered per ticket: two nodes handling the same reply race for the same key, and one wins.
    _create(session, rule_key=f"{TICKET_NO_REPLY}:{ticket.id}:{len(earlier) + 1}", reason=TICKET_NO_REPLY,
            title=f"Answer ticket {ticket.label}: {ticket.subject}"[:300],
            due_at=since + timedelta(minutes=settings.reminders.ticket_no_reply_minutes),
            note="No staff reply yet.", contact_id=ticket.contact_id, company_id=ticket.company_id,
            ticket_id=ticket.id, assignee_id=ticket.assignee_id)


def ticket_answered(session: Session, ticket: Ticket, why: str, by: int | None) -> None:
    _finish(session, (Reminder.ticket_id == ticket.id) & (Reminder.reason == TICKET_NO_REPLY), ReminderState.DONE,
            why, by)


def ticket_reassigned(session: Session, ticket: Ticket) -> None:
    """The ticket's open reminder follows the ticket to its new assignee."""
    session.execute(update(Reminder).where(
        Reminder.ticket_id == ticket.id, Reminder.reason == TICKET_NO_REPLY, Reminder.state.in_(_ACTIVE))
        .values(assignee_id=ticket.assignee_id, updated_at=utcnow()), execution_options={"synchronize_session": False})


def from_mail_note(session: Session, settings: Settings, *, note: str, staff_id: int, contact_id: int | None,
                   interaction: Interaction) -> Reminder | None:
    """"Wiedervorlage Freitag" or "remind me in 3 days" in the note above a forwarded mail: a reminder for
    the forwarding staff member about this mail."""
    if not settings.reminders.mail_note:
        return None
    phrase = note_phrase(note)
    if phrase is None:
        return None
    due = parse_due(phrase, settings.reminders.timezone, default_hour=settings.reminders.default_hour)
    if due is None:
        return None
    return _create(session, rule_key=f"{MAIL_NOTE}:{interaction.id}", reason=MAIL_NOTE,
                   title=f"Follow up: {interaction.subject or '(no subject)'}"[:300], due_at=due, note=note[:2000],
                   contact_id=contact_id, company_id=interaction.company_id, interaction_id=interaction.id,
                   assignee_id=staff_id, created_by_id=staff_id)


def note_phrase(note: str) -> str | None:
    """The time after "Wiedervorlage"/"WV"/"remind me"/"follow up" on one line of a note, if any."""
    match = _NOTE_PHRASE.search(note or "")
    if match is None:
        return None
    phrase = match.group(1).strip(" !:-")
    if phrase.endswith(".") and not re.search(r"\d\.$", phrase):
        phrase = phrase.rstrip(".")  # a full stop, not the one of "1.12."
    return phrase or None


def create_for_rule(session: Session, *, rule_key: str, reason: str, title: str, due_at: datetime,
                    **values: Any) -> Reminder | None:
    """A rule of a capability above this one (sales: "follow up quote") makes its reminder, at most once per
    ``rule_key``; None when it exists already."""
    return _create(session, rule_key=rule_key, reason=reason, title=title, due_at=due_at, **values)


def finish_by_rule_keys(session: Session, rule_keys: Sequence[str], completion: str, by: int | None) -> list[int]:
    """Those rules' reasons cleared: their active reminders are done. Returns their ids."""
    if not rule_keys:
        return []
    return _finish(session, Reminder.rule_key.in_(list(rule_keys)), ReminderState.DONE, completion, by)


# --- staff actions ---

@dataclass(frozen=True)
class ReminderInput:
    """Fields a staff member may set, checked (API and pages)."""

    title: str | None = None
    due_at: datetime | None = None
    note: str | None = None
    assignee_id: int | None = None
    contact_id: int | None = None
    ticket_id: int | None = None
    interaction_id: int | None = None
    set_fields: frozenset[str] = frozenset()


_REFERENCES: dict[str, type[Any]] = {"assignee_id": StaffUser, "contact_id": Contact, "ticket_id": Ticket,
                                     "interaction_id": Interaction}


def read_input(session: Session, settings: Settings, fields: ReminderFields) -> ReminderInput:
    """A new reminder's fields, checked: a title and a due time are required."""
    return _check(session, settings, fields, creating=True)


def _check(session: Session, settings: Settings, data: ReminderFields | ReminderChanges, *,
           creating: bool) -> ReminderInput:
    values: dict[str, Any] = {}
    if data.title is not NOT_GIVEN or creating:
        title = data.title
        if not isinstance(title, str) or not single_line(title) or len(title) > 300:
            raise ValidationError("title", TITLE_RULE)
        values["title"] = " ".join(single_line(title).split())
    if data.note is not NOT_GIVEN:
        if data.note is not None and (not isinstance(data.note, str) or len(data.note) > 20000):
            raise ValidationError("note", NOTE_RULE)
        values["note"] = data.note
    for key in ("due_at", "due"):
        when = getattr(data, key)
        if when is not NOT_GIVEN:
            values["due_at"] = due_from(settings, when, key)
    if creating and "due_at" not in values:
        raise ValidationError("due_at", "is required (an ISO time, or \"due\": \"tomorrow 9:00\", \"in 3 days\")")
    for key, model in _REFERENCES.items():
        ref = getattr(data, key)
        if ref is not NOT_GIVEN:
            if ref is not None and (not is_id(ref) or session.get(model, ref) is None):
                raise ValidationError(key, f"no such {key.removesuffix('_id')}")
            values[key] = ref
    return ReminderInput(**values, set_fields=frozenset(values))


def due_from(settings: Settings, value: Any, field: str) -> datetime:
    try:
        due = read_due(value, settings.reminders.timezone, default_hour=settings.reminders.default_hour) \
            if isinstance(value, str) else None
    except DueOutOfRange as exc:
        raise ValidationError(field, str(exc)) from None
    if due is None:
        raise ValidationError(field, WHEN_RULE)
    return due


def create(session: Session, data: ReminderInput, by: int | None) -> Reminder:
    contact = session.get(Contact, data.contact_id) if data.contact_id else None
    reminder = _create(session, reason=MANUAL, title=data.title, due_at=data.due_at, note=data.note,
                       contact_id=data.contact_id, company_id=contact.company_id if contact else None,
                       ticket_id=data.ticket_id, interaction_id=data.interaction_id,
                       assignee_id=data.assignee_id if "assignee_id" in data.set_fields else by, created_by_id=by)
    assert reminder is not None
    audit.record(session, by, "create", "reminder", reminder.id, {"due_at": reminder.due_at.isoformat()})
    return reminder


def change(session: Session, settings: Settings, reminder: Reminder, data: ReminderChanges, by: int | None) -> None:
    """Edit, snooze (``snooze``: "in 2 hours" or ``snooze_until``), complete (``state: done``), cancel or
    reopen a reminder."""
    fields = _check(session, settings, data, creating=False)
    now = utcnow()
    changed: dict[str, Any] = {}
    for key in fields.set_fields:
        value = getattr(fields, key)
        if getattr(reminder, key) != value:
            setattr(reminder, key, value)
            changed[key] = value.isoformat() if isinstance(value, datetime) else value
    if "due_at" in fields.set_fields and reminder.active:
        reminder.fire_at = reminder.due_at  # a new due time fires anew
    snooze_field = "snooze_until" if data.snooze_until is not NOT_GIVEN else "snooze"
    snooze = getattr(data, snooze_field)
    snoozing = snooze is not NOT_GIVEN and snooze is not None  # null: no snooze
    if snoozing:
        if not reminder.active:
            raise ValidationError("snooze", f"a reminder that is {reminder.state.value} cannot be snoozed")
        reminder.due_at = reminder.fire_at = due_from(settings, snooze, snooze_field)
        reminder.state = ReminderState.SNOOZED
        changed["snoozed_until"] = reminder.due_at.isoformat()
    if data.state is not NOT_GIVEN:
        try:
            state = ReminderState(data.state)
        except (ValueError, TypeError):
            raise ValidationError("state", "must be one of " + ", ".join(s.value for s in ReminderState)) from None
        if state != reminder.state and not (state == ReminderState.SNOOZED and snoozing):
            if state == ReminderState.SNOOZED:
                raise ValidationError("state", "snooze with \"snooze\": \"in 2 hours\" or \"snooze_until\"")
            if state in ACTIVE_STATES:  # reopened
                reminder.state, reminder.fire_at = state, reminder.due_at
                reminder.completed_at = reminder.completed_by_id = reminder.completion = None
                _on_timeline(session, reminder, "reopened", by, None)
            else:
                reminder.state, reminder.fire_at = state, None
                reminder.completed_at, reminder.completed_by_id = now, by
                completion = data.completion
                reminder.completion = (completion if isinstance(completion, str) and completion.strip()
                                       else f"{state.value} by staff")[:300]
                _on_timeline(session, reminder, state.value, by, reminder.completion)
            changed["state"] = state.value
    if changed:
        reminder.updated_at = now
        audit.record(session, by, "update", "reminder", reminder.id, changed)


# --- firing ---

# --- what the dashboard and the API read ---

def is_active() -> ColumnElement[bool]:
    """Open or snoozed: still to be done."""
    return Reminder.state.in_(ACTIVE_STATES)


def assigned_to(staff_id: int, *, with_team: bool) -> ColumnElement[bool]:
    """A staff member's reminders; ``with_team``: and the team's (assigned to nobody), which anyone may do."""
    mine = Reminder.assignee_id == staff_id
    return or_(mine, Reminder.assignee_id.is_(None)) if with_team else mine


def due_for(session: Session, staff_id: int, now: datetime, limit: int = 200) -> Sequence[Reminder]:
    """Active reminders of a staff member and the team that are due, soonest first (the dashboard)."""
    return session.execute(select(Reminder).where(assigned_to(staff_id, with_team=True), is_active(),
                                                  Reminder.due_at <= now)
                           .order_by(Reminder.due_at, Reminder.id).limit(limit)).scalars().all()


def upcoming_for(session: Session, staff_id: int, now: datetime, days: int = 7, limit: int = 200
                 ) -> Sequence[Reminder]:
    """Active reminders of a staff member and the team due within the next ``days``, soonest first."""
    return session.execute(select(Reminder).where(assigned_to(staff_id, with_team=True), is_active(),
                                                  Reminder.due_at > now, Reminder.due_at <= now + timedelta(days=days))
                           .order_by(Reminder.due_at, Reminder.id).limit(limit)).scalars().all()


def next_fire_at(session: Session) -> datetime | None:
    return session.execute(select(func.min(Reminder.fire_at))).scalar_one_or_none()


def _claim_due(session: Session, now: datetime, limit: int) -> list[Reminder]:
    query = select(Reminder).where(Reminder.fire_at <= now).order_by(Reminder.fire_at, Reminder.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        # Another node busy with some rows: take the others instead of waiting for its commit.
        query = query.with_for_update(skip_locked=True)
    due = list(session.execute(query).scalars())
    claimed = []
    for reminder in due:
        # The conditional update is the claim: of two processes that read the row, one changes it.
        won = affected(session.execute(update(Reminder).where(Reminder.id == reminder.id, Reminder.fire_at <= now)
                              .values(fire_at=None, fired_at=now, updated_at=now)
                              .execution_options(synchronize_session=False)))
        if won:
            claimed.append(reminder)
            _fired(session, reminder, now)
    return claimed


def _fired(session: Session, reminder: Reminder, fired_at: datetime) -> None:
    """``reminder.fired``, in the transaction that claims the firing: once per firing (a snoozed reminder that
    fires again is a new firing)."""
    events.record(session, "reminder.fired", "reminder", reminder.id, {
        "id": reminder.id, "title": reminder.title, "reason": reminder.reason, "due_at": reminder.due_at.isoformat(),
        "fired_at": fired_at.isoformat(), "assignee_id": reminder.assignee_id, "contact_id": reminder.contact_id,
        "company_id": reminder.company_id, "ticket_id": reminder.ticket_id, "call_id": reminder.call_id,
        "opportunity_id": reminder.opportunity_id})


def fire_due(factory: sessionmaker[Session], settings: Settings, now: datetime | None = None,
             batch: int = 200) -> int:
    """Fire every reminder that is due: mark it fired and queue its notification, in one transaction per
    batch. Returns how many fired here."""
    fired = 0
    while True:
        moment = now or utcnow()
        with write_lock(factory), unit_of_work(factory) as session:
            claimed = _claim_due(session, moment, batch)
            if claimed and settings.reminders.notify_by_mail:
                addresses = _Recipients(session, settings)
                for reminder in claimed:
                    _notify(session, settings, reminder, moment, addresses)
        fired += len(claimed)
        if len(claimed) < batch:
            return fired


class _Recipients:
    """Who is mailed for a reminder: its assignee, else the team; staff read once per batch."""

    def __init__(self, session: Session, settings: Settings) -> None:
        users = session.execute(select(StaffUser).where(StaffUser.active)).scalars().all()
        self.by_id = {u.id: u.primary_email for u in users if u.primary_email}
        self.team = ([settings.reminders.team_address] if settings.reminders.team_address else
                     [u.primary_email for u in sorted(users, key=lambda u: u.id)
                      if u.primary_email and u.role != StaffRole.READONLY])

    def __call__(self, reminder: Reminder) -> list[str]:
        email = self.by_id.get(reminder.assignee_id) if reminder.assignee_id is not None else None
        return [email] if email else self.team


def _notify(session: Session, settings: Settings, reminder: Reminder, fired_at: datetime,
            recipients: _Recipients) -> None:
    subject, body = notification_text(session, settings, reminder)
    for address in recipients(reminder):
        outbox.enqueue(session, settings, purpose="reminder",
                       dedupe_key=f"reminder:{reminder.id}:{fired_at.isoformat()}:{address}", to=address,
                       subject=subject, body=body, load=False,
                       headers={"Auto-Submitted": "auto-generated", "X-CRM-Inbox-Reminder": str(reminder.id)})


def page_url(settings: Settings, path: str) -> str:
    base = settings.web.base_url.rstrip("/") or f"http://{settings.web.host}:{settings.web.port}"
    return base + path


def _contact_label(session: Session, contact_id: int | None, company_id: int | None) -> str:
    contact = session.get(Contact, contact_id) if contact_id else None
    company = session.get(Company, company_id) if company_id else None
    if contact is not None:
        return contact.display_name + (f" ({company.name})" if company else "")
    return company.name if company else ""


def _local(settings: Settings, when: datetime) -> str:
    return when.astimezone(ZoneInfo(settings.reminders.timezone)).strftime("%a %d.%m.%Y %H:%M")


def notification_text(session: Session, settings: Settings, reminder: Reminder) -> tuple[str, str]:
    # Names and titles are one line on input; rows from before that are made so here, so that no name can
    # add a line to the mail.
    who = single_line(_contact_label(session, reminder.contact_id, reminder.company_id))
    title = single_line(reminder.title)
    if reminder.contact_id:
        link = page_url(settings, f"/contacts/{reminder.contact_id}")
    elif reminder.company_id:
        link = page_url(settings, f"/companies/{reminder.company_id}")
    elif reminder.interaction_id:
        link = page_url(settings, f"/interactions/{reminder.interaction_id}")
    else:
        link = page_url(settings, "/dashboard")
    lines = [f"Wiedervorlage / Reminder: {title}", "",
             f"Due:      {_local(settings, reminder.due_at)} ({settings.reminders.timezone})",
             f"Customer: {who or '(none)'}", f"Reason:   {reminder.reason.replace('_', ' ')}"]
    if reminder.ticket_id:
        ticket = session.get(Ticket, reminder.ticket_id)
        if ticket is not None:
            lines.append(f"Ticket:   {ticket.label} {single_line(ticket.subject)}")
    if reminder.note:
        lines += ["", reminder.note.strip()]
    lines += ["", f"Open the customer page: {link}", f"Your reminders: {page_url(settings, '/dashboard')}", ""]
    return f"Wiedervorlage: {title}", "\n".join(lines)

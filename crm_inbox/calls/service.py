"""Calls from phone-system events: one call per (source, call id), derived from its events, on the timeline.

Every phone adapter turns its webhook into ``CallEvent``s. The call's state is recomputed from the set
of events each time, so the same event twice changes nothing and late or out-of-order events (an
``answer`` after the ``hangup``, a ``hangup`` with no ``new``) still give the right call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, bindparam, exists, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from crm_inbox import events
from crm_inbox.calls.matching import (
    PhoneMatch,
    StaffDirectory,
    e164_of,
    match_number,
    match_parameters,
    match_rows_as_json,
    read_matches,
)
from crm_inbox.config import Settings
from crm_inbox.models import (
    Call,
    CallState,
    Company,
    Contact,
    Direction,
    Interaction,
    InteractionContact,
    InteractionKind,
    InteractionStaff,
    utcnow,
)
from crm_inbox.phone import to_e164
from crm_inbox.reminders import service as reminders
from crm_inbox.tickets.queries import open_count
from crm_inbox.timeline.service import record_interaction

log = logging.getLogger(__name__)

EventKind = Literal["new", "answer", "hangup"]

@dataclass(frozen=True)
class CallEvent:
    source: str
    call_id: str
    kind: EventKind
    at: datetime
    direction: Direction | None = None
    from_number: str | None = None
    to_number: str | None = None
    users: tuple[str, ...] = ()  # staff names the phone system gives (sipgate "user[]")
    answering_number: str | None = None
    extension: str | None = None
    cause: str | None = None
    orig_call_id: str | None = None
    diversion: str | None = None
    duration_seconds: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at.isoformat(), "direction": self.direction.value if self.direction
                else None, "from": self.from_number, "to": self.to_number, "users": list(self.users),
                "answering_number": self.answering_number, "extension": self.extension, "cause": self.cause,
                "duration_seconds": self.duration_seconds}


# --- applying events ---

def _event_key(event: dict[str, Any]) -> str:
    return str(event["kind"])  # a call has one new, one answer and one hangup: repeats change nothing


_CALLS = Call.__table__
_COLUMNS = [c.key for c in _CALLS.c]
_NEW_CALL = {"state": CallState.RINGING, "events": [], "missed": False, "callback_needed": False,
             "closed_by_timeout": False, "remote_withheld": False}


def _claim_statement(dialect: str) -> Any:
    """Create the call on first sight, else lock it, and read it: one statement. ON CONFLICT DO UPDATE locks
    the existing row on PostgreSQL, so two events of one call at once are applied one after the other (SQLite
    has one writer at a time anyway). On PostgreSQL the same round trip brings the staff directory and the
    match of the number the event names (as JSON), which the call needs next; SQLite asks in-process."""
    insert_into = postgresql_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert_into(_CALLS).values({c: bindparam(c) for c in ("source", "call_id", *_NEW_CALL, "updated_at")})
    # Setting a column to itself: the lock and the row, without changing it (a repeated event changes nothing).
    stmt = stmt.on_conflict_do_update(index_elements=["source", "call_id"], set_={"updated_at": _CALLS.c.updated_at})
    if dialect != "postgresql":
        return stmt.returning(*_CALLS.c)
    return stmt.returning(*_CALLS.c, StaffDirectory.as_json().label("staff"), match_rows_as_json().label("matches"))


_CLAIM = {dialect: _claim_statement(dialect) for dialect in ("postgresql", "sqlite")}
_WRITE_CALL = update(_CALLS).where(_CALLS.c.id == bindparam("call_pk")).values(
    {c: bindparam(c) for c in _COLUMNS if c not in ("id", "source", "call_id")})


@dataclass(frozen=True)
class _Caller:
    """The person on the timeline line (``record_interaction`` needs only the id: no Contact is loaded)."""

    id: int


@dataclass(frozen=True)
class Prepared:
    """What an event's call reads before it writes: the staff directory, and the match rows of the number
    the event names."""

    staff: StaffDirectory
    number: str | None
    matches: Sequence[Sequence[Any]]


# SQLite: the staff directory and the number's match rows in one statement, as JSON text (as PostgreSQL's claim
# brings them along): one statement's overhead instead of two.
_PREPARE = select(StaffDirectory.as_json("sqlite").label("staff"), match_rows_as_json("sqlite").label("matches"))


def prepare(session: Session, settings: Settings, event: CallEvent) -> Prepared | None:
    """SQLite: the reads of ``apply_event`` done before its transaction writes, so that they can happen before
    queueing for the write lock (a SELECT opens no SQLite transaction: nothing stale is held), and writers
    hold it for less. PostgreSQL reads them with the claim of the call: None."""
    if session.get_bind().dialect.name == "postgresql":
        return None
    number = _remote_number_named(settings, event)
    row = session.connection().execute(_PREPARE, match_parameters(number)).one()
    return Prepared(StaffDirectory.of(json.loads(row.staff)), number, json.loads(row.matches) if number else [])


def apply_event(session: Session, settings: Settings, event: CallEvent,
                prepared: Prepared | None = None) -> tuple[Call, bool]:
    """Record ``event`` on its call (created on first sight); returns (call, changed). ``prepared``: what
    ``prepare`` read for the event (read here if not given).

    Core statements built once, five to eight per event; the call is worked out on a detached ``Call`` and
    written back in one UPDATE, then handed to the session as it is stored."""
    call, changed, _match = apply_event_matched(session, settings, event, prepared)
    return call, changed


def apply_event_matched(session: Session, settings: Settings, event: CallEvent,
                        prepared: Prepared | None = None) -> tuple[Call, bool, PhoneMatch | None]:
    """``apply_event``, also returning the caller's match when the event changed the call (None when not): a
    screen pop names the caller from it instead of reading the name again."""
    session.flush()  # what the caller changed through the ORM comes before our statements
    connection = session.connection()
    now = utcnow()
    together = connection.dialect.name == "postgresql"
    if not together and prepared is None:
        prepared = prepare(session, settings, event)
    guess = _remote_number_named(settings, event) if together else None
    row = connection.execute(_CLAIM[connection.dialect.name], {
        "source": event.source, "call_id": event.call_id, **_NEW_CALL, "updated_at": now,
        **(match_parameters(guess) if together else {})}).one()
    before = row._asdict()
    if prepared is None:
        staff, known = StaffDirectory.of(before.pop("staff") or []), (guess, before.pop("matches") or [])
    else:
        staff, known = prepared.staff, (prepared.number, prepared.matches)
    call = Call(**before)
    if any(_event_key(e) == event.kind for e in call.events):
        return _in_session(session, call), False, None
    call.events = [*call.events, event.as_json()]
    match = _derive(session, settings, call, event, staff, known)
    _record_on_timeline(session, call, match.reason, before)
    if call.state == CallState.ENDED and before["state"] != CallState.ENDED:
        _ended(session, call)
    if call.callback_needed or before["missed"]:  # else there is no call-back to owe or to cancel
        reminders.after_call(session, settings, call, who=match.label)
    if call.state == CallState.ENDED and call.answered_at is not None and call.remote_e164:
        _clear_callbacks(session, call)
    call.updated_at = now
    connection.execute(_WRITE_CALL, {"call_pk": call.id, **{c: getattr(call, c) for c in _COLUMNS
                                                             if c not in ("id", "source", "call_id")}})
    log.info("call %s/%s: %s → %s (contact %s, staff %s)", call.source, call.call_id, event.kind,
             call.state.value, call.contact_id, call.staff_id)
    return _in_session(session, call), True, match


def _in_session(session: Session, call: Call) -> Call:
    """The call as stored, as the session's own (the one it already holds, brought up to date, if any)."""
    held = session.identity_map.get(identity_key(Call, call.id))
    if held is None:
        make_transient_to_detached(call)
        session.add(call)
        return call
    for key in _COLUMNS:
        set_committed_value(held, key, getattr(call, key))
    return held


def _remote_number_named(settings: Settings, event: CallEvent) -> str | None:
    """The other side's number as this event alone tells it: nearly always what the whole call gives."""
    number = event.to_number if event.direction == Direction.OUT else event.from_number
    return e164_of(number, settings.phone.default_region)


def _derive(session: Session, settings: Settings, call: Call, event: CallEvent, staff: StaffDirectory,
            known: tuple[str | None, Sequence[Sequence[Any]]]) -> PhoneMatch:
    """Everything about the call from all its events so far (order of arrival does not matter); returns the
    caller's match (with why the number was matched to whom, for the timeline). ``staff`` and ``known`` (a
    number and its match rows) were read with the claim or before it; the match is read again only for
    another number."""
    events = call.events
    by_kind = {e["kind"]: e for e in events}
    first = by_kind.get("new") or events[0]
    direction = first.get("direction") or (event.direction and event.direction.value)
    from_number = first.get("from") or next((e.get("from") for e in events if e.get("from")), None)
    to_number = first.get("to") or next((e.get("to") for e in events if e.get("to")), None)
    from_ours, from_staff = staff.own_side(settings, from_number)
    if direction is None:
        direction = "out" if from_ours else "in"
    call.direction = Direction(direction)
    call.from_raw, call.to_raw = from_number, to_number
    remote_raw = from_number if call.direction == Direction.IN else to_number
    remote = e164_of(remote_raw, settings.phone.default_region)
    call.remote_e164 = remote
    call.remote_withheld = remote is None
    call.orig_call_id = first.get("orig_call_id") or call.orig_call_id or event.orig_call_id
    call.diversion = call.diversion or event.diversion

    times = [datetime.fromisoformat(e["at"]) for e in events]
    call.started_at = datetime.fromisoformat(by_kind["new"]["at"]) if "new" in by_kind else min(times)
    answer, hangup = by_kind.get("answer"), by_kind.get("hangup")
    call.answered_at = datetime.fromisoformat(answer["at"]) if answer else None
    call.ended_at = datetime.fromisoformat(hangup["at"]) if hangup else None
    call.cause = hangup.get("cause") if hangup else None
    if hangup and call.ended_at and not answer and hangup.get("duration_seconds"):
        # Some systems report only the end, with the talk time: it was answered that long before.
        call.answered_at = call.ended_at - timedelta(seconds=int(hangup["duration_seconds"]))
    if call.answered_at and call.ended_at and call.answered_at > call.ended_at:
        call.answered_at = call.ended_at  # an answer delivered after the hangup (receipt-time stamps)
    call.state = (CallState.ENDED if hangup else CallState.ANSWERED if call.answered_at else CallState.RINGING)
    was_missed = call.missed
    call.missed = (call.state == CallState.ENDED and call.answered_at is None and call.direction == Direction.IN
                   and call.cause != "forwarded")
    owed = call.missed and not call.remote_withheld and not call.closed_by_timeout
    if not owed or not was_missed:
        # Decided once, when the call turns out missed: a late event for it must not bring back a
        # call-back that has meanwhile happened.
        call.callback_needed = owed

    # Who took it: the answering user or extension, else the one user it rang for, else the dialling side.
    staff_id = None
    for e in ([answer] if answer else []) + [first]:
        staff_id = staff_id or staff.by_names(tuple(e.get("users") or ()))
        for number in (e.get("extension"), e.get("answering_number")):
            staff_id = staff_id or staff.own_side(settings, number)[1]
    if call.direction == Direction.OUT:
        staff_id = staff_id or from_staff
    else:
        staff_id = staff_id or staff.own_side(settings, to_number)[1]
    call.staff_id = staff_id or call.staff_id
    names = sorted({u for e in events for u in (e.get("users") or [])})
    call.staff_hint = ", ".join(names)[:200] or None

    same_number = remote and known[0] == remote
    match = read_matches(remote, known[1]) if remote and same_number else match_number(session, remote)
    call.contact_id, call.company_id = match.contact_id, match.company_id
    return match


def _summary(call: Call) -> tuple[str, str]:
    who = call.remote_e164 or (call.from_raw if call.direction == Direction.IN else call.to_raw) or "withheld number"
    if call.remote_withheld:
        who = "withheld number"
    way = "Incoming" if call.direction == Direction.IN else "Outgoing"
    if call.state != CallState.ENDED:
        status = "answered, in progress" if call.answered_at else "ringing"
    elif call.answered_at:
        talk = int((call.ended_at - call.answered_at).total_seconds()) if call.ended_at else 0
        status = f"answered, {talk // 60}:{talk % 60:02d} min"
    elif call.cause == "forwarded":
        status = "forwarded"
    elif call.direction == Direction.IN:
        status = f"missed ({call.cause or 'no answer'})"
    else:
        status = f"not reached ({call.cause or 'no answer'})"
    if call.closed_by_timeout:
        status += ", closed without hangup event"
    return f"{way} call {who}: {status}", status


def call_details(call: Call) -> dict[str, Any]:
    ring = talk = None
    if call.started_at:
        end_ring = call.answered_at or call.ended_at
        ring = int((end_ring - call.started_at).total_seconds()) if end_ring else None
    if call.answered_at and call.ended_at:
        talk = int((call.ended_at - call.answered_at).total_seconds())
    return {"call_id": call.id, "source": call.source, "external_call_id": call.call_id,
            "from": call.from_raw, "to": call.to_raw, "number": call.remote_e164, "withheld": call.remote_withheld,
            "answered": call.answered_at is not None, "missed": call.missed, "cause": call.cause,
            "state": call.state.value, "ring_seconds": ring, "talk_seconds": talk, "staff_id": call.staff_id,
            "staff_hint": call.staff_hint, "closed_by_timeout": call.closed_by_timeout,
            "orig_call_id": call.orig_call_id, "diversion": call.diversion}


def _ended(session: Session, call: Call) -> None:
    """``call.missed`` for a missed call (incoming, nobody answered), else ``call.ended``: once per call, when
    its hangup first arrives (a replayed hangup changes nothing, see ``apply_event``; a late answer after it
    corrects the call but is not a second end)."""
    talk = int((call.ended_at - call.answered_at).total_seconds()) if call.answered_at and call.ended_at else 0
    events.record(session, "call.missed" if call.missed else "call.ended", "call", call.id, {
        "id": call.id, "from": call.from_raw, "to": call.to_raw,
        "direction": call.direction.value if call.direction else None, "duration_seconds": talk,
        "contact_id": call.contact_id, "company_id": call.company_id, "staff_id": call.staff_id,
        "answered": call.answered_at is not None, "cause": call.cause,
        "started_at": call.started_at.isoformat() if call.started_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None})


_LINES = Interaction.__table__
_UPDATE_LINE = update(_LINES).where(_LINES.c.id == bindparam("line_id")).values(
    {c: bindparam(c) for c in ("subject", "text", "excerpt", "details", "attribution_reason", "direction",
                               "occurred_at", "company_id")})
_CONTACT_LINKS = InteractionContact.__table__
# The caller joins the line only when it names nobody yet (staff may have put it on someone else meanwhile).
_ADD_CALLER = insert(_CONTACT_LINKS).from_select(
    ["interaction_id", "contact_id", "occurred_at", "role"],
    select(bindparam("line_id"), bindparam("contact_id"), bindparam("occurred_at"), literal("caller")).where(
        ~exists().where(_CONTACT_LINKS.c.interaction_id == bindparam("line_id"))))
_MOVE_LINKS = update(_CONTACT_LINKS).where(_CONTACT_LINKS.c.interaction_id == bindparam("line_id")).values(
    occurred_at=bindparam("occurred_at"))
_ADD_STAFF = {dialect: insert_into(InteractionStaff.__table__).values(
    interaction_id=bindparam("line_id"), staff_id=bindparam("staff_id"), role="participant")
    .on_conflict_do_nothing() for dialect, insert_into in (("postgresql", postgresql_insert),
                                                          ("sqlite", sqlite_insert))}


def _record_on_timeline(session: Session, call: Call, reason: str, before: dict[str, Any]) -> None:
    """The call's line on the timeline: written with its first event, brought up to date by the others
    (links only where this event changed who the call was with)."""
    subject, status = _summary(call)
    occurred = call.started_at or utcnow()
    if call.interaction_id is None:
        contacts = [(_Caller(call.contact_id), "caller")] if call.contact_id else []
        interaction = record_interaction(
            session, kind=InteractionKind.CALL, direction=call.direction or Direction.IN, occurred_at=occurred,
            subject=subject, text=status, source_ref=f"{call.source}:{call.call_id}", contacts=contacts,
            staff_ids=[call.staff_id] if call.staff_id else [], reason=reason, details=call_details(call),
            company_id=call.company_id)
        call.interaction_id = interaction.id
        return
    connection = session.connection()
    line = {"line_id": call.interaction_id, "occurred_at": occurred}
    connection.execute(_UPDATE_LINE, {**line, "subject": subject, "text": status, "excerpt": subject,
                                      "details": call_details(call), "attribution_reason": reason,
                                      "direction": call.direction or Direction.IN, "company_id": call.company_id})
    if call.contact_id and call.contact_id != before["contact_id"]:
        connection.execute(_ADD_CALLER, {**line, "contact_id": call.contact_id})
    if occurred != before["started_at"]:
        connection.execute(_MOVE_LINKS, line)
    if call.staff_id and call.staff_id != before["staff_id"]:
        connection.execute(_ADD_STAFF[connection.dialect.name], {**line, "staff_id": call.staff_id})
    held = session.identity_map.get(identity_key(Interaction, call.interaction_id))
    if held is not None:
        session.expire(held)  # the session's copy of the line is read again when next used


def _clear_callbacks(session: Session, call: Call) -> None:
    """An answered call with the same person (either way round) is the call-back: nothing is owed."""
    conditions = [Call.remote_e164 == call.remote_e164]
    if call.contact_id:
        conditions.append(Call.contact_id == call.contact_id)
    owed = list(session.connection().execute(
        update(Call).where(Call.callback_needed, Call.id != call.id, or_(*conditions))
        .values(callback_needed=False, updated_at=utcnow()).returning(Call.id)).scalars())
    if owed:
        for held in (session.identity_map.get(identity_key(Call, call_id)) for call_id in owed):
            if held is not None:
                set_committed_value(held, "callback_needed", False)
        reminders.callbacks_done(session, owed, call)


def close_stale_calls(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Calls whose hangup never came are closed after ``[phone] max_call_minutes``, and say so."""
    now = now or utcnow()
    cutoff = now - timedelta(minutes=settings.phone.max_call_minutes)
    stale = session.execute(update(Call).where(Call.state != CallState.ENDED, Call.started_at < cutoff)
                            .values(closed_by_timeout=True).returning(Call.source, Call.call_id)
                            .execution_options(synchronize_session=False)).all()
    for source, call_id in stale:
        apply_event(session, settings, CallEvent(source, call_id, "hangup", now, cause="timeout"))
    return len(stale)


# --- caller lookup ---

@dataclass
class Lookup:
    contact: Contact | None = None
    company: Company | None = None
    last_interaction: dict[str, Any] | None = None
    open_tickets: int = 0

    @property
    def display_name(self) -> str:
        if self.contact is not None:
            company = f" ({self.company.name})" if self.company else ""
            return self.contact.display_name + company
        return self.company.name if self.company else ""


def lookup(session: Session, settings: Settings, number: str) -> Lookup | None:
    """Who is calling? The contact (or company) behind ``number`` in any format, or None."""
    match = match_number(session, to_e164(number, settings.phone.default_region))
    if match.contact_id is None and match.company_id is None:
        return None
    result = Lookup(contact=session.get(Contact, match.contact_id) if match.contact_id else None,
                    company=session.get(Company, match.company_id) if match.company_id else None)
    # The last time we were in touch: ticket changes and reminders on the timeline are our own bookkeeping.
    in_touch = Interaction.kind.not_in([InteractionKind.TICKET, InteractionKind.REMINDER])
    if match.contact_id:
        newest = (select(InteractionContact.interaction_id)
                  .join(Interaction, Interaction.id == InteractionContact.interaction_id)
                  .where(InteractionContact.contact_id == match.contact_id, in_touch)
                  .order_by(InteractionContact.occurred_at.desc()).limit(1))
    else:
        newest = (select(Interaction.id).where(Interaction.company_id == match.company_id, in_touch)
                  .order_by(Interaction.occurred_at.desc()).limit(1))
    if match.contact_id:
        result.open_tickets = open_count(session, match.contact_id)
    last_id = session.execute(newest).scalar_one_or_none()
    if last_id is not None:
        last = session.get_one(Interaction, last_id)
        result.last_interaction = {"id": last.id, "kind": last.kind.value, "direction": last.direction.value,
                                   "occurred_at": last.occurred_at.isoformat(), "subject": last.subject}
    return result


def owes_callback() -> ColumnElement[bool]:
    """A missed call nobody has called back yet (a later call with the number settles it)."""
    return Call.callback_needed == True  # noqa: E712 (a comparison SQL can answer from the index)


def callbacks_owed_by(session: Session, staff_id: int, limit: int = 50) -> Sequence[Call]:
    """Call-backs a staff member owes: their missed calls and those that reached nobody, newest first."""
    return session.execute(select(Call).where(owes_callback(), or_(Call.staff_id == staff_id, Call.staff_id.is_(None)))
                           .order_by(Call.started_at.desc()).limit(limit)).scalars().all()

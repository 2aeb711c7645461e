"""Calls from phone-system events: one call per (source, call id), derived from its events, on the timeline.

Every phone adapter turns its webhook into ``CallEvent``s. The call's state is recomputed from the set
of events each time, so the same event twice changes nothing and late or out-of-order events (an
``answer`` after the ``hangup``, a ``hangup`` with no ``new``) still give the right call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from crm_inbox import events
from crm_inbox.config import Settings
from crm_inbox.db import insert_ignoring_conflicts
from crm_inbox.models import (
    Call,
    CallState,
    Company,
    CompanyPhone,
    Contact,
    ContactPhone,
    Direction,
    Interaction,
    InteractionContact,
    InteractionKind,
    InteractionStaff,
    StaffUser,
    utcnow,
)
from crm_inbox.models.contacts import search_key
from crm_inbox.phone import block_prefix, to_e164
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


@dataclass
class PhoneMatch:
    contact_id: int | None = None
    company_id: int | None = None
    reason: str = ""


# --- matching numbers ---

def match_number(session: Session, e164: str | None) -> PhoneMatch:
    """A person with exactly this number; else a company with it; else the company whose switchboard
    block (``+49 89 4711-0``) contains it. Two people with one number and no common company: nobody."""
    if not e164:
        return PhoneMatch(reason="no usable number")
    rows = session.execute(
        select(ContactPhone.contact_id, Contact.company_id).join(Contact, Contact.id == ContactPhone.contact_id)
        .where(ContactPhone.e164 == e164)).all()
    contact_ids = sorted({r[0] for r in rows})
    if len(contact_ids) == 1:
        return PhoneMatch(contact_ids[0], rows[0][1], f"number {e164} belongs to contact {contact_ids[0]}")
    if len(contact_ids) > 1:
        companies = {r[1] for r in rows}
        if len(companies) == 1 and None not in companies:
            return PhoneMatch(None, companies.pop(), f"number {e164} is shared by people of one company")
        return PhoneMatch(reason=f"number {e164} belongs to {len(contact_ids)} contacts: left for triage")
    company_ids = sorted(set(session.execute(
        select(CompanyPhone.company_id).where(CompanyPhone.e164 == e164)).scalars()))
    if len(company_ids) == 1:
        return PhoneMatch(None, company_ids[0], f"number {e164} belongs to company {company_ids[0]}")
    # Every prefix of the number is a candidate block: one indexed IN query, the longest prefix wins.
    prefixes = [e164[:n] for n in range(4, len(e164))]
    blocks = [(prefix, company_id) for prefix, company_id in session.execute(
        select(CompanyPhone.block_prefix, CompanyPhone.company_id).where(CompanyPhone.block_prefix.in_(prefixes))
    ).all() if prefix is not None]
    if blocks:
        longest = max(len(prefix) for prefix, _ in blocks)
        owners = {company_id for prefix, company_id in blocks if len(prefix) == longest}
        if len(owners) == 1:
            company_id = owners.pop()
            return PhoneMatch(None, company_id, f"number {e164} is an extension of company {company_id}'s "
                                                 f"switchboard")
    return PhoneMatch(reason=f"number {e164} is unknown")


# --- our side of the call ---

def _own_side(settings: Settings, number: str | None, staff_extensions: dict[str, int]) -> tuple[bool, int | None]:
    """(is this number ours?, the staff user behind it if an extension tells)."""
    if not number:
        return False, None
    digits = number.strip()
    if digits in staff_extensions:
        return True, staff_extensions[digits]
    e164 = to_e164(number, settings.phone.default_region)
    for own in settings.phone.own_numbers:
        own_e164 = to_e164(own, settings.phone.default_region)
        if not own_e164 or not e164:
            continue
        prefix = block_prefix(own, own_e164) or own_e164
        if e164 == own_e164 or e164.startswith(prefix):
            return True, staff_extensions.get(e164[len(prefix):]) if e164 != own_e164 else None
    return False, None


def _staff_by_names(session: Session, names: tuple[str, ...]) -> int | None:
    keys = {search_key(n) for n in names if n.strip()}
    if len(keys) != 1:
        return None  # several people rang at once: the one who answers tells us later
    users = session.execute(select(StaffUser.id, StaffUser.name).where(StaffUser.active)).all()
    hits = [uid for uid, name in users if search_key(name) in keys]
    return hits[0] if len(hits) == 1 else None


# --- applying events ---

def _event_key(event: dict[str, Any]) -> str:
    return str(event["kind"])  # a call has one new, one answer and one hangup: repeats change nothing


def apply_event(session: Session, settings: Settings, event: CallEvent) -> tuple[Call, bool]:
    """Record ``event`` on its call (created on first sight); returns (call, changed)."""
    insert_ignoring_conflicts(session, Call.__table__, {
        "source": event.source, "call_id": event.call_id, "state": CallState.RINGING.value, "events": [],
        "missed": False, "callback_needed": False, "closed_by_timeout": False, "remote_withheld": False,
        "updated_at": utcnow()}, ["source", "call_id"])
    query = select(Call).where(Call.source == event.source, Call.call_id == event.call_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()  # two events of one call at once: one after the other
    call = session.execute(query).scalar_one()
    if any(_event_key(e) == event.kind for e in call.events):
        return call, False
    call.events = [*call.events, event.as_json()]
    was_ended = call.state == CallState.ENDED
    reason = _derive(session, settings, call, event)
    _record_on_timeline(session, call, reason)
    if call.state == CallState.ENDED and not was_ended:
        _ended(session, call)
    reminders.after_call(session, settings, call)
    if call.state == CallState.ENDED and call.answered_at is not None and call.remote_e164:
        _clear_callbacks(session, call)
    log.info("call %s/%s: %s → %s (contact %s, staff %s)", call.source, call.call_id, event.kind,
             call.state.value, call.contact_id, call.staff_id)
    return call, True


def _derive(session: Session, settings: Settings, call: Call, event: CallEvent) -> str:
    """Everything about the call from all its events so far (order of arrival does not matter); returns why
    the number was matched to whom, for the timeline."""
    events = call.events
    by_kind = {e["kind"]: e for e in events}
    first = by_kind.get("new") or events[0]
    direction = first.get("direction") or (event.direction and event.direction.value)
    extensions = {ext: sid for sid, ext in session.execute(
        select(StaffUser.id, StaffUser.extension).where(StaffUser.extension.is_not(None))).all() if ext}
    from_number = first.get("from") or next((e.get("from") for e in events if e.get("from")), None)
    to_number = first.get("to") or next((e.get("to") for e in events if e.get("to")), None)
    from_ours, from_staff = _own_side(settings, from_number, extensions)
    if direction is None:
        direction = "out" if from_ours else "in"
    call.direction = Direction(direction)
    call.from_raw, call.to_raw = from_number, to_number
    remote_raw = from_number if call.direction == Direction.IN else to_number
    remote = to_e164(remote_raw, settings.phone.default_region)
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
        staff_id = staff_id or _staff_by_names(session, tuple(e.get("users") or ()))
        for number in (e.get("extension"), e.get("answering_number")):
            staff_id = staff_id or _own_side(settings, number, extensions)[1]
    if call.direction == Direction.OUT:
        staff_id = staff_id or from_staff
    else:
        staff_id = staff_id or _own_side(settings, to_number, extensions)[1]
    call.staff_id = staff_id or call.staff_id
    names = sorted({u for e in events for u in (e.get("users") or [])})
    call.staff_hint = ", ".join(names)[:200] or None

    match = match_number(session, remote)
    call.contact_id, call.company_id = match.contact_id, match.company_id
    call.events = [*events]  # keep the JSON column marked as changed
    return match.reason


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


def _record_on_timeline(session: Session, call: Call, reason: str) -> None:
    subject, status = _summary(call)
    occurred = call.started_at or utcnow()
    if call.interaction_id is None:
        contacts = [(session.get_one(Contact, call.contact_id), "caller")] if call.contact_id else []
        interaction = record_interaction(
            session, kind=InteractionKind.CALL, direction=call.direction or Direction.IN, occurred_at=occurred,
            subject=subject, text=status, source_ref=f"{call.source}:{call.call_id}", contacts=contacts,
            staff_ids=[call.staff_id] if call.staff_id else [], reason=reason, details=call_details(call),
            company_id=call.company_id)
        call.interaction_id = interaction.id
        return
    interaction = session.get_one(Interaction, call.interaction_id)
    interaction.subject, interaction.text, interaction.excerpt = subject, status, subject
    interaction.details = call_details(call)
    interaction.attribution_reason = reason or interaction.attribution_reason
    interaction.direction = call.direction or interaction.direction
    interaction.occurred_at = occurred
    interaction.company_id = call.company_id
    if call.contact_id and call.contact_id not in interaction.contact_ids and not interaction.contact_links:
        interaction.contact_links.append(InteractionContact(contact_id=call.contact_id, occurred_at=occurred,
                                                            role="caller"))
    for link in interaction.contact_links:
        link.occurred_at = occurred
    if call.staff_id and all(s.staff_id != call.staff_id for s in interaction.staff_links):
        interaction.staff_links.append(InteractionStaff(staff_id=call.staff_id))


def _clear_callbacks(session: Session, call: Call) -> None:
    """An answered call with the same person (either way round) is the call-back: nothing is owed."""
    conditions = [Call.remote_e164 == call.remote_e164]
    if call.contact_id:
        conditions.append(Call.contact_id == call.contact_id)
    owed = list(session.execute(select(Call.id).where(Call.callback_needed, Call.id != call.id,
                                                      or_(*conditions))).scalars())
    if owed:
        session.execute(update(Call).where(Call.id.in_(owed)).values(callback_needed=False)
                        .execution_options(synchronize_session=False))
        reminders.callbacks_done(session, owed, call)


def close_stale_calls(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Calls whose hangup never came are closed after ``[phone] max_call_minutes``, and say so."""
    now = now or utcnow()
    cutoff = now - timedelta(minutes=settings.phone.max_call_minutes)
    stale = session.execute(select(Call).where(Call.state != CallState.ENDED, Call.started_at < cutoff)).scalars().all()
    for call in stale:
        call.closed_by_timeout = True
        apply_event(session, settings, CallEvent(call.source, call.call_id, "hangup", now, cause="timeout"))
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

"""Support tickets: opened by mail to a support address, followed up by number or Message-ID, never looping.

Follow-ups are found by the ticket number in the subject (``[#10042]``), then by In-Reply-To/References
pointing at any message already in the ticket, and by nothing else: the same subject alone is not enough.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import replace as with_changes
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from crm_inbox import audit, events, outbox
from crm_inbox.config import Settings
from crm_inbox.contacts.directory import ContactRef
from crm_inbox.contacts.inputs import NOT_GIVEN
from crm_inbox.correspondence.service import MailDraft, send_mail
from crm_inbox.errors import ValidationError
from crm_inbox.ids import is_id
from crm_inbox.mail.parse import referenced
from crm_inbox.models import (
    Contact,
    Direction,
    Interaction,
    InteractionKind,
    OutgoingMail,
    Priority,
    StaffUser,
    Ticket,
    TicketEvent,
    TicketState,
    utcnow,
)
from crm_inbox.models.tickets import NUMBER_OFFSET
from crm_inbox.reminders import service as reminders
from crm_inbox.text import single_line
from crm_inbox.tickets import policy
from crm_inbox.tickets.inputs import TicketChanges
from crm_inbox.tickets.policy import InThread, MailFacts
from crm_inbox.timeline.service import record_interaction

log = logging.getLogger(__name__)

_REPLY_PREFIX = re.compile(r"^\s*((re|aw|antw|wg|fw|fwd|tr|sv|vs|rif|r)\s*(\[\d+\])?\s*:\s*)+", re.I)


def ticket_numbers(subject: str, prefix: str) -> list[int]:
    """``[#10042]`` (with the configured prefix) in a subject, in order."""
    return [int(n) for n in re.findall(rf"\[\s*{re.escape(prefix)}(\d{{1,12}})\s*\]", subject or "")]


def clean_subject(subject: str, prefix: str) -> str:
    """The subject without reply/forward prefixes and ticket tags: what the ticket is about."""
    without_tags = re.sub(rf"\[\s*{re.escape(prefix)}\d{{1,12}}\s*\]", "", subject or "")
    text = _REPLY_PREFIX.sub("", without_tags).strip()
    return " ".join(single_line(text).split()) or "(no subject)"


def _live(session: Session, ticket: Ticket | None) -> Ticket | None:
    """Follow merges to the ticket that lives on."""
    seen: set[int] = set()
    while ticket is not None and ticket.merged_into_id is not None and ticket.id not in seen:
        seen.add(ticket.id)
        ticket = session.get(Ticket, ticket.merged_into_id)
    return ticket


def _current(session: Session, ticket: Ticket | None) -> Ticket | None:
    """The live ticket, and for a closed one the newer ticket a reply to it opened (if any): otherwise every
    further mail in the old thread (it still carries the old number) would open yet another ticket."""
    seen: set[int] = set()
    while ticket is not None and ticket.id not in seen:
        seen.add(ticket.id)
        ticket = _live(session, ticket)
        if ticket is None or ticket.state != TicketState.CLOSED:
            break
        # Found by the old ticket's own events (indexed by ticket_id), not by scanning previous_ticket_id.
        followed = session.execute(select(TicketEvent.details).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "followed_by")
            .order_by(TicketEvent.id.desc()).limit(1)).scalar_one_or_none()
        if not followed:
            break
        ticket = session.get(Ticket, followed["ticket_id"])
    return ticket


# Asked for every mail that answers another: built once (SQLAlchemy reuses its compiled form). Rows: the
# referenced mail's interaction id and its ticket id.
TICKETS_BY_REF = select(Interaction.id, Interaction.ticket_id).where(
    Interaction.source_ref.in_(bindparam("refs", expanding=True)), Interaction.ticket_id.is_not(None))


def find_ticket(session: Session, prefix: str, subject: str, references: Iterable[str],
                answered: Sequence[tuple[int, int]] | None = None) -> tuple[Ticket | None, str]:
    """The ticket a mail belongs to: by the number in its subject, else by the mails it answers. ``answered``:
    the rows of ``TICKETS_BY_REF`` for its references when the caller read them already (the pipeline reads a
    reply's look-ups in one statement), else they are read here."""
    for number in ticket_numbers(subject, prefix):
        ticket = session.execute(select(Ticket).where(Ticket.number == number)).scalar_one_or_none()
        if ticket is not None:
            return _current(session, ticket), f"ticket number {prefix}{number} in the subject"
    refs = referenced(references)
    if refs:
        # The newest match, picked here: with ORDER BY id LIMIT 1 PostgreSQL may walk the whole table backwards
        # by id instead of looking the few Message-IDs up (4 ms a mail at 10,000 interactions).
        # Core on the session's connection, as for every reply: the referenced mails are earlier ones.
        matches = (session.connection().execute(TICKETS_BY_REF, {"refs": refs}).all() if answered is None
                   else answered)
        ticket_id = max(matches)[1] if matches else None
        if ticket_id is not None:
            return _current(session, session.get(Ticket, ticket_id)), "In-Reply-To/References point into the ticket"
    return None, ""


def _event(session: Session, ticket: Ticket, kind: str, *, staff_id: int | None = None,
           interaction_id: int | None = None, timeline: str | None = None, **details: Any) -> TicketEvent:
    """Record a change on the ticket, and (for changes people make) on the customer's timeline."""
    event = TicketEvent(ticket_id=ticket.id, kind=kind, staff_id=staff_id, interaction_id=interaction_id,
                        details=details)
    session.add(event)
    if timeline is not None:
        contacts = [(session.get_one(Contact, ticket.contact_id), "ticket")] if ticket.contact_id else []
        item = record_interaction(session, kind=InteractionKind.TICKET, direction=Direction.INTERNAL,
                                  occurred_at=utcnow(), subject=f"{ticket.label}: {timeline}", text=timeline,
                                  contacts=contacts, staff_ids=[staff_id] if staff_id else [],
                                  details={"ticket_event": kind, **details}, created_by_id=staff_id,
                                  company_id=ticket.company_id)
        item.ticket_id = ticket.id
    session.flush()
    return event


def _announce(session: Session, ticket: Ticket, changed: list[str] | None = None) -> None:
    """``ticket.created`` (``changed`` None) or ``ticket.changed`` with the fields that changed, for other
    systems; the subject stays out (the customer's words: a receiver asks the API)."""
    payload: dict[str, Any] = {
        "id": ticket.id, "number": ticket.number, "label": ticket.label, "state": ticket.state.value,
        "priority": ticket.priority.value, "assignee_id": ticket.assignee_id, "contact_id": ticket.contact_id,
        "company_id": ticket.company_id, "merged_into_id": ticket.merged_into_id}
    if changed is None:
        events.record(session, "ticket.created", "ticket", ticket.id, payload)
    elif changed:
        events.record(session, "ticket.changed", "ticket", ticket.id, {**payload, "changed": changed})


def open_ticket(session: Session, settings: Settings, *, subject: str, contact: Contact | ContactRef | None,
                interaction: Interaction | None, opened_by: str | None, staff_id: int | None = None,
                previous: Ticket | None = None, history: bool = False) -> Ticket:
    """``history``: old mail imported now (``policy.is_history``): no reminder to answer it, which would be
    overdue at once (ten years of a mailbox would bring thousands)."""
    ticket = Ticket(subject=clean_subject(subject, settings.tickets.subject_prefix)[:998], state=TicketState.NEW,
                    priority=Priority.NORMAL, contact_id=contact.id if contact else None,
                    company_id=contact.company_id if contact else None,
                    assignee_id=contact.owner_id if contact else None, opened_by_email=opened_by,
                    previous_ticket_id=previous.id if previous else None, last_customer_reply_at=utcnow())
    session.add(ticket)
    session.flush()
    ticket.number = NUMBER_OFFSET + ticket.id  # unique by construction, even with two nodes at once
    if interaction is not None:
        interaction.ticket_id = ticket.id
    text = f"opened: {ticket.subject}" + (f" (follows closed ticket {previous.label})" if previous else "")
    _event(session, ticket, "opened", staff_id=staff_id, interaction_id=interaction.id if interaction else None,
           timeline=text, previous_ticket=previous.label if previous else None)
    if previous is not None:  # where later mail in the old thread goes (see _current)
        _event(session, previous, "followed_by", staff_id=staff_id, label=ticket.label, ticket_id=ticket.id)
    _announce(session, ticket)
    if not history:
        reminders.ticket_waiting(session, settings, ticket, ticket.opened_at or utcnow())
    log.info("ticket %s opened for contact %s (%s)", ticket.label, ticket.contact_id, ticket.subject)
    return ticket


@dataclass(frozen=True)
class Filed:
    """Where an inbound mail went: its ticket (if any), a note for the mail's explanation, mail queued."""

    ticket: Ticket | None
    note: str | None = None
    queued_mail: bool = False


def file_mail(session: Session, settings: Settings, facts: MailFacts, interaction: Interaction, *, subject: str,
              references: Iterable[str], message_id: str | None, contact: ContactRef | None,
              staff_id: int | None, answered: Sequence[tuple[int, int]] | None = None) -> Filed:
    """Thread a recorded mail into its ticket, or open one for a new request to support (see ``policy``).
    ``answered``: see ``find_ticket``."""
    cfg = settings.tickets
    ticket, how = find_ticket(session, cfg.subject_prefix, subject, references, answered)
    if ticket is not None:
        action = policy.reply_in_thread(facts, ticket.state, ticket.closed_at or ticket.updated_at, cfg, utcnow())
        if action is InThread.STAFF_REPLY:
            staff_reply(session, ticket, interaction, staff_id)
            return Filed(ticket, f"staff reply in ticket {ticket.label} ({how})")
        if action is InThread.NEW_TICKET:
            new = open_ticket(session, settings, subject=subject, contact=contact, interaction=interaction,
                              opened_by=facts.sender, previous=ticket, history=facts.imported)
            return Filed(new, f"reply to closed ticket {ticket.label}: opened {new.label}")
        if action is InThread.CUSTOMER_REPLY:
            customer_reply(session, settings, ticket, interaction, automatic=facts.automatic, history=facts.imported)
            return Filed(ticket, f"follow-up in ticket {ticket.label} ({how})")
        interaction.ticket_id = ticket.id
        return Filed(ticket)
    why_not = policy.why_no_new_ticket(facts)
    if why_not is not None:
        return Filed(None, f"no ticket: {why_not}" if why_not else None)
    # Old mail imported now is never a loop (nothing of it is answered), though ten years of a customer's
    # requests open their tickets within minutes (``policy.is_history``).
    if facts.sender and not facts.imported and policy.is_loop(
            _recent_tickets(session, cfg.loop_window_minutes, facts.sender), cfg):
        log.warning("interaction %s: suspected mail loop from %s: more than %d tickets in %d minutes; no ticket",
                    interaction.id, facts.sender, cfg.loop_max_tickets, cfg.loop_window_minutes)
        return Filed(None, f"no ticket: suspected mail loop from {facts.sender}")
    ticket = open_ticket(session, settings, subject=subject, contact=contact, interaction=interaction,
                         opened_by=facts.sender, history=facts.imported)
    queued = False
    if facts.sender and policy.may_acknowledge(facts, cfg, settings.mail.own_addresses):
        queued = queue_acknowledgement(session, settings, ticket, facts.sender, contact.name if contact else None,
                                       message_id) is not None
    return Filed(ticket, f"opened ticket {ticket.label}", queued)


def _recent_tickets(session: Session, window_minutes: int, sender: str) -> int:
    """New tickets from one address within the loop window."""
    since = utcnow() - timedelta(minutes=window_minutes)
    return session.execute(select(func.count()).select_from(Ticket).where(
        Ticket.opened_by_email == sender, Ticket.opened_at >= since)).scalar_one()


def customer_reply(session: Session, settings: Settings, ticket: Ticket, interaction: Interaction, *,
                   automatic: bool, history: bool = False) -> None:
    interaction.ticket_id = ticket.id
    if automatic:  # an auto-reply joins the thread but changes nothing (no reopen, no loop)
        _event(session, ticket, "automatic_reply", interaction_id=interaction.id)
        return
    ticket.last_customer_reply_at = utcnow()
    before = ticket.state
    # CLOSED too: the caller opens a new ticket instead only once the ticket has been closed long enough
    # ([tickets] new_ticket_after_closed_days); before that the customer's mail must not sit in a closed one.
    if ticket.state in policy.REOPENED_BY_REPLY:
        ticket.state = TicketState.OPEN
        ticket.closed_at = None
    _event(session, ticket, "customer_reply", interaction_id=interaction.id,
           timeline=f"reopened by the customer's reply (was {before.value})" if ticket.state != before else None,
           state_before=before.value, state=ticket.state.value)
    _announce(session, ticket, ["state"] if ticket.state != before else [])
    if not history:
        reminders.ticket_waiting(session, settings, ticket, ticket.last_customer_reply_at)


def staff_reply(session: Session, ticket: Ticket, interaction: Interaction, staff_id: int | None) -> None:
    interaction.ticket_id = ticket.id
    ticket.last_staff_reply_at = utcnow()
    before, assigned = ticket.state, ticket.assignee_id
    if ticket.state in policy.ANSWERED_BY_STAFF_REPLY:
        ticket.state = TicketState.PENDING  # answered: now waiting for the customer
    if ticket.assignee_id is None and staff_id is not None:
        ticket.assignee_id = staff_id  # whoever answers first takes it
    _event(session, ticket, "staff_reply", staff_id=staff_id, interaction_id=interaction.id,
           state_before=before.value, state=ticket.state.value)
    _announce(session, ticket, [name for name, was, now in (
        ("state", before, ticket.state), ("assignee_id", assigned, ticket.assignee_id)) if was != now])
    reminders.ticket_reassigned(session, ticket)
    reminders.ticket_answered(session, ticket, "answered by staff", staff_id)


def queue_acknowledgement(session: Session, settings: Settings, ticket: Ticket, to: str, name: str | None,
                          in_reply_to: str | None) -> OutgoingMail | None:
    """At most one acknowledgement per sender per window (whether one is allowed at all is
    ``policy.may_acknowledge``, checked by the caller). Recorded on the timeline so replies to it thread into
    the ticket."""
    cfg = settings.tickets
    since = utcnow() - timedelta(minutes=cfg.ack_window_minutes)
    recent = session.execute(select(OutgoingMail.id).where(
        OutgoingMail.purpose == "ticket_ack", OutgoingMail.to_address == to, OutgoingMail.created_at >= since)
    ).first()
    if recent is not None:
        log.info("ticket %s: no acknowledgement, %s had one within %d minutes", ticket.label, to,
                 cfg.ack_window_minutes)
        return None
    values = {"ticket": ticket.label, "subject": ticket.subject, "name": single_line(name or "")}
    headers = {"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All", "Precedence": "auto_reply",
               "X-CRM-Inbox-Ticket": ticket.label}
    if in_reply_to:
        headers.update({"In-Reply-To": in_reply_to, "References": in_reply_to})
    mail = outbox.enqueue(session, settings, purpose="ticket_ack", dedupe_key=f"ticket_ack:{ticket.id}", to=to,
                          subject=cfg.ack_subject.format(**values), body=cfg.ack_body.format(**values),
                          headers=headers)
    if mail is not None:
        contacts = [(session.get_one(Contact, ticket.contact_id), "to")] if ticket.contact_id else []
        item = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.OUT,
                                  occurred_at=utcnow(), subject=mail.subject, text=mail.body,
                                  source_ref=mail.message_id, contacts=contacts,
                                  details={"automatic": "acknowledgement", "outgoing_mail_id": mail.id})
        item.ticket_id = ticket.id
    return mail


# --- staff changes (API and pages) ---

def last_customer_mail(session: Session, ticket: Ticket) -> Interaction | None:
    """The newest mail from the customer in the ticket: what a reply from the ticket page answers."""
    return session.execute(select(Interaction).where(
        Interaction.ticket_id == ticket.id, Interaction.kind == InteractionKind.EMAIL,
        Interaction.direction == Direction.IN).order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(1)).scalar_one_or_none()


def reply_by_mail(session: Session, settings: Settings, ticket: Ticket, draft: MailDraft, *, by: int) -> Interaction:
    """A reply written on the ticket page: sent from the CRM (correspondence.send_mail) in answer to the
    customer's last mail unless the draft names another, with the ticket's tag in the subject (the customer's
    reply finds the ticket even when a relay drops In-Reply-To); the ticket then becomes pending exactly as
    when staff reply by mail with the CRM in BCC (``staff_reply``)."""
    live = _live(session, ticket) or ticket
    prefix = settings.tickets.subject_prefix
    subject = draft.subject.strip()
    if subject and live.number is not None and live.number not in ticket_numbers(subject, prefix):
        subject = f"{subject} [{prefix}{live.number}]"
    answered = draft.in_reply_to
    if answered is None:
        last = last_customer_mail(session, live)
        answered = last.id if last is not None else None
    draft = with_changes(draft, subject=subject, in_reply_to=answered,
                         contact_id=draft.contact_id if draft.contact_id is not None else live.contact_id,
                         company_id=draft.company_id if draft.company_id is not None else live.company_id)
    item = send_mail(session, settings, draft, by=by, ticket_id=live.id, purpose="ticket_reply")
    staff_reply(session, live, item, by)
    return item


def open_for_contact(session: Session, settings: Settings, contact: Contact, subject: str,
                     actor: int | None) -> Ticket:
    """A ticket staff open for a customer (a phone request, say), audited as opened by ``actor`` and assigned to
    them unless the contact's owner already has it."""
    ticket = open_ticket(session, settings, subject=subject, contact=contact, interaction=None, opened_by=None,
                         staff_id=actor)
    audit.record(session, actor, "create", "ticket", ticket.id, {"contact_id": contact.id, "subject": subject})
    if ticket.assignee_id is None and actor is not None:
        change(session, ticket, actor, TicketChanges(assignee_id=actor))
    return ticket


def change(session: Session, ticket: Ticket, staff_id: int | None, changes: TicketChanges) -> dict[str, Any]:
    """State, priority, assignee and subject changes, each an event, audited as made by ``staff_id``; returns what
    changed. Every value is checked before the first change, so a bad one changes nothing."""
    if changes.state is not NOT_GIVEN and changes.state not in {s.value for s in TicketState}:
        raise ValidationError("state", "must be one of " + ", ".join(s.value for s in TicketState))
    if changes.priority is not NOT_GIVEN and changes.priority not in {p.value for p in Priority}:
        raise ValidationError("priority", "must be one of " + ", ".join(p.value for p in Priority))
    assignee = changes.assignee_id
    if assignee is not NOT_GIVEN and assignee is not None and (
            not is_id(assignee) or session.get(StaffUser, assignee) is None):
        raise ValidationError("assignee_id", "no such staff user")
    subject = changes.subject
    if subject is not NOT_GIVEN and (not single_line(subject) or len(subject) > 998):
        raise ValidationError("subject", "must be a non-empty string")
    changed: dict[str, Any] = {}
    if changes.state is not NOT_GIVEN and (state := TicketState(changes.state)) != ticket.state:
        before, ticket.state = ticket.state, state
        if state == TicketState.CLOSED:
            ticket.closed_at = utcnow()
        _event(session, ticket, "state", staff_id=staff_id, timeline=f"state {before.value} → {state.value}",
               before=before.value, after=state.value)
        if state in {TicketState.PENDING, TicketState.SOLVED, TicketState.CLOSED}:
            reminders.ticket_answered(session, ticket, f"ticket set to {state.value}", staff_id)
        changed["state"] = state.value
    if changes.priority is not NOT_GIVEN and (priority := Priority(changes.priority)) != ticket.priority:
        before_p, ticket.priority = ticket.priority, priority
        _event(session, ticket, "priority", staff_id=staff_id,
               timeline=f"priority {before_p.value} → {priority.value}", before=before_p.value,
               after=priority.value)
        changed["priority"] = priority.value
    if assignee is not NOT_GIVEN and assignee != ticket.assignee_id:
        before_a, ticket.assignee_id = ticket.assignee_id, assignee
        name = session.get_one(StaffUser, assignee).name if assignee else "nobody"
        _event(session, ticket, "assignee", staff_id=staff_id, timeline=f"assigned to {name}",
               before=before_a, after=assignee)
        reminders.ticket_reassigned(session, ticket)
        changed["assignee_id"] = assignee
    # A subject change is a change like any other: an event, and on the timeline.
    if subject is not NOT_GIVEN and single_line(subject) != ticket.subject:
        before_s, ticket.subject = ticket.subject, single_line(subject)
        _event(session, ticket, "subject", staff_id=staff_id, timeline=f"subject changed to {ticket.subject!r}",
               before=before_s, after=ticket.subject)
        changed["subject"] = ticket.subject
    if changed:
        audit.record(session, staff_id, "update", "ticket", ticket.id, changed)
        _announce(session, ticket, list(changed))
    return changed


def add_note(session: Session, ticket: Ticket, staff_id: int | None, text: Any) -> TicketEvent:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("text", "is required")
    if len(text) > 20000:
        raise ValidationError("text", "must be at most 20000 characters")
    note = text.strip()
    event = _event(session, ticket, "note", staff_id=staff_id, timeline=f"internal note: {note}", text=note)
    audit.record(session, staff_id, "note", "ticket", ticket.id, {"event_id": event.id})
    return event


def merge(session: Session, source: Ticket, target: Ticket, staff_id: int | None) -> None:
    """Move ``source``'s messages into ``target``; ``source`` is closed and points at it."""
    if source.id == target.id:
        raise ValidationError("target_id", "a ticket cannot be merged into itself")
    if _live(session, target) is not target:
        raise ValidationError("target_id", f"{target.label} was itself merged; merge into the ticket it went to")
    for item in session.execute(select(Interaction).where(Interaction.ticket_id == source.id)).scalars():
        item.ticket_id = target.id
    source.merged_into_id = target.id
    closed_before = source.state == TicketState.CLOSED
    source.state = TicketState.CLOSED
    source.closed_at = utcnow()
    _announce(session, source, ["merged_into_id"] if closed_before else ["merged_into_id", "state"])
    _event(session, source, "merged", staff_id=staff_id, timeline=f"merged into {target.label}", into=target.label)
    reminders.ticket_answered(session, source, f"merged into {target.label}", staff_id)
    _event(session, target, "merged_in", staff_id=staff_id, timeline=f"{source.label} merged in", source=source.label)
    audit.record(session, staff_id, "merge", "ticket", source.id, {"into": target.id})

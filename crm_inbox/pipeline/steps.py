"""The default steps, in order. Decisions live in pure modules (mail.*, attribution); steps wire them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, update

from crm_inbox.campaigns import responses as campaign_responses
from crm_inbox.contacts.directory import ContactRef
from crm_inbox.contacts.service import create_lead, lock_new_addresses
from crm_inbox.intake.store import raw_chunks
from crm_inbox.mail.attribution import Evidence, decide
from crm_inbox.mail.automatic import detect_automatic
from crm_inbox.mail.parse import Limits, parse_mail_chunks
from crm_inbox.models import (
    ContactEmail,
    InboundMessage,
    InboundState,
    Interaction,
    InteractionKind,
    utcnow,
)
from crm_inbox.pipeline import answered
from crm_inbox.pipeline.context import MailContext, Step
from crm_inbox.privacy.service import is_erased_message
from crm_inbox.reminders import service as reminders
from crm_inbox.sales import replies
from crm_inbox.tickets import service as ticket_service
from crm_inbox.tickets.policy import MailFacts, is_history
from crm_inbox.timeline.service import clean_excerpt, record_interaction

log = logging.getLogger(__name__)


def _limits(ctx: MailContext) -> Limits:
    mail = ctx.settings.mail
    return Limits(mail.max_nesting_depth, mail.max_parts, mail.max_decoded_bytes)


def honour_erasure(ctx: MailContext) -> None:
    """A re-sent copy of mail that was erased (same Message-ID, content changed on the way) stays erased.
    (An unchanged copy never gets here: its content hash makes it a duplicate at intake.)"""
    erased = ctx.inbound.erased_copy
    if erased is None:
        erased = is_erased_message(ctx.session, ctx.inbound.message_id, ctx.inbound.id)
    if erased:
        ctx.erased = True
        ctx.stop("a copy of mail that was erased (privacy): not recorded again")


def parse(ctx: MailContext) -> None:
    # The raw bytes are read here only (the column is deferred), piece by piece where the database can.
    # Closed at once also when parsing stops early (a limit): an open SQLite blob must not outlive the session.
    if ctx.inbound.raw is not None:  # read with the row (PostgreSQL)
        ctx.parsed = parse_mail_chunks(iter((ctx.inbound.raw,)), _limits(ctx))
        return
    with closing(raw_chunks(ctx.session, ctx.inbound.id)) as chunks:
        ctx.parsed = parse_mail_chunks(chunks, _limits(ctx))


_INBOUND = InboundMessage.__table__
# Not the copies still waiting: one may be processed at this very moment by another worker (its row locked, and it
# waiting for ours: a deadlock); each flags itself when its turn comes, as its load finds this one.
_FLAG_OTHERS = update(_INBOUND).where(_INBOUND.c.message_id == bindparam("mid"),
                                      _INBOUND.c.content_hash != bindparam("hash"),
                                      _INBOUND.c.state != InboundState.RECEIVED.value).values(message_id_conflict=True)
_FLAG_ONE = update(_INBOUND).where(_INBOUND.c.id == bindparam("row_id")).values(message_id_conflict=True)


_SET_REASON = update(Interaction.__table__).where(Interaction.__table__.c.id == bindparam("row_id")).values(
    attribution_reason=bindparam("new_reason"))


def flag_reused_message_id(ctx: MailContext) -> None:
    """Two different messages with one Message-ID are both kept and flagged, never merged."""
    inbound = ctx.inbound
    if not inbound.message_id or not inbound.message_id_reused:  # read with the row: is there another copy?
        return
    ctx.session.execute(_FLAG_OTHERS, {"mid": inbound.message_id, "hash": inbound.content_hash})
    ctx.session.execute(_FLAG_ONE, {"row_id": inbound.id})
    log.warning("inbound %s: message-id %s reused by a different message; both kept", inbound.id, inbound.message_id)


def detect_automatic_mail(ctx: MailContext) -> None:
    assert ctx.parsed is not None
    ctx.automatic = detect_automatic(ctx.parsed, ctx.inbound.envelope_from)


def find_parties(ctx: MailContext) -> None:
    assert ctx.parsed is not None
    ctx.attribution = decide(
        ctx.parsed, is_staff=ctx.directory.is_staff, is_staff_user=ctx.directory.is_staff_user,
        settings=ctx.settings.mail, evidence=Evidence(ctx.inbound.peer, ctx.inbound.envelope_from, ctx.inbound.source),
        automatic=ctx.automatic, limits=_limits(ctx))


def match_contacts(ctx: MailContext) -> None:
    assert ctx.attribution is not None
    parties = ctx.attribution.parties
    found = ctx.directory.contacts_by_email(p.address.email for p in parties if not p.by_name)
    new = [p.address.email for p in parties if not p.by_name and p.address.email not in found]
    if new and not ctx.attribution.automatic and lock_new_addresses(ctx.session, new):
        found.update(ctx.directory.contacts_by_email(new))  # a lead another node made meanwhile
    chosen: list[tuple[int | ContactRef, str]] = []
    for party in parties:
        if party.by_name:
            ids = ctx.directory.contacts_by_name(party.address.name)
            if len(ids) != 1:
                ctx.note(f"{len(ids) or 'no'} contact(s) named {party.address.name!r}: left for triage")
                continue
            ctx.note(f"matched by name to the one contact called {party.address.name!r}")
        else:
            ids = found.get(party.address.email, [])
        if len(ids) > 1:
            # A shared address (info@…) on several contacts: guessing would leak mail to the wrong one.
            ctx.note(f"{party.address.email} belongs to {len(ids)} contacts: left for triage")
            continue
        if ids:
            chosen.append((ids[0], party.role))
        elif ctx.attribution.automatic:
            ctx.note(f"{party.address.email} is unknown and automatic mail creates no lead")
        else:
            lead = create_lead(ctx.session, ctx.directory, party.address,
                               f"mail {ctx.inbound.message_id or ctx.inbound.id}",
                               new_company_for_domain=ctx.settings.mail.create_company_for_unknown_domain)
            ctx.new_contacts.append(lead)
            ctx.note(f"new lead {party.address.email}")
            chosen.append((lead, party.role))
    refs = ctx.directory.contact_refs(c for c, _ in chosen if isinstance(c, int))
    for contact, role in chosen:
        ctx.contacts.append((refs[contact] if isinstance(contact, int) else contact, role))


def mark_bounces(ctx: MailContext) -> None:
    """Every failed recipient that is a contact's address is marked bouncing; every per-recipient block
    of the report (failed, delayed, delivered) is kept in the reason shown to staff."""
    if ctx.automatic is None:
        return
    if ctx.automatic.statuses:
        ctx.note("delivery status: " + "; ".join(s.describe() for s in ctx.automatic.statuses))
    if not ctx.automatic.bounced:
        return
    emails = ContactEmail.__table__
    marked = ctx.session.execute(update(emails).where(emails.c.email.in_(ctx.automatic.bounced))
                                 .values(bouncing=True).returning(emails.c.email)).scalars().all()
    if marked:
        ctx.note(f"marked {', '.join(dict.fromkeys(marked))} as bouncing")


def record(ctx: MailContext) -> None:
    assert ctx.parsed is not None and ctx.attribution is not None
    parsed, decision = ctx.parsed, ctx.attribution
    received = ctx.inbound.received_at
    # The Date header is the sender's clock: trust it unless it is absurdly far in the future.
    occurred = parsed.date if parsed.date and parsed.date <= received + timedelta(days=1) else received
    staff_ids = [ctx.directory.staff_by_email[e] for e in decision.staff if e in ctx.directory.staff_by_email]
    forwarded = decision.forwarded
    details: dict[str, Any] = {
        "from": str(parsed.author) if parsed.author else None,
        "to": [str(a) for a in parsed.to], "cc": [str(a) for a in parsed.cc],
        "envelope_to": ctx.inbound.envelope_to,
        "automatic": decision.automatic, "spoof_suspected": decision.spoof_suspected,
        "new_contact_ids": [c.id for c in ctx.new_contacts],
        # The outside address the mail is from, for staff who assign it by hand (and may remember it).
        "sender_email": next((p.address.email for p in decision.parties if p.address.email), None)
        or (forwarded.sender.email if forwarded else None)
        or (parsed.author.email if parsed.author and not ctx.directory.is_staff(parsed.author.email) else None),
    }
    if forwarded is not None:
        details["forwarded"] = {"style": forwarded.style, "from": str(forwarded.sender),
                                "subject": forwarded.subject}
        if forwarded.note:
            details["staff_note"] = forwarded.note  # the colleague's comment above the forward
    ctx.interaction = record_interaction(
        ctx.session,
        kind=InteractionKind.EMAIL,
        direction=decision.direction,
        occurred_at=occurred or utcnow(),
        subject=(forwarded.subject if forwarded and forwarded.subject else parsed.subject) or None,
        text=parsed.text,
        excerpt=clean_excerpt(forwarded.body if forwarded else parsed.text),
        html=parsed.html,
        source_ref=parsed.message_id,
        inbound_message_id=ctx.inbound.id,
        contacts=ctx.contacts,
        staff_ids=staff_ids,
        attachments=[(a.filename, a.content_type, a.content) for a in parsed.attachments],
        reason=decision.reason,
        details=details,
    )
    log.info("inbound %s: interaction %s (%s) linked to contacts %s: %s",
             ctx.inbound.id, ctx.interaction.id, decision.direction.value,
             [c.id for c, _ in ctx.contacts] or "none", decision.reason)


def look_up_answered(ctx: MailContext) -> None:
    """The tickets, deals and campaign mails a reply's In-Reply-To and References name, in one statement for the
    three steps after it (each still decides alone what they mean)."""
    assert ctx.parsed is not None
    ctx.answered = answered.look_up(ctx.session, [*ctx.parsed.in_reply_to, *ctx.parsed.references])


def tickets(ctx: MailContext) -> None:
    """Open a ticket for a new request to support; thread follow-ups (customer or staff) into theirs."""
    assert ctx.parsed is not None and ctx.attribution is not None and ctx.interaction is not None
    parsed, decision = ctx.parsed, ctx.attribution
    facts = MailFacts(
        direction=decision.direction, automatic=decision.automatic is not None,
        spoof_suspected=decision.spoof_suspected,
        to_support=bool((set(ctx.inbound.envelope_to) | {a.email for a in parsed.to + parsed.cc})
                        & set(ctx.settings.mail.support_addresses)),
        sender=decision.parties[0].address.email if decision.parties else None,
        imported=is_history(ctx.inbound.source, parsed.date, ctx.inbound.received_at))
    filed = ticket_service.file_mail(
        ctx.session, ctx.settings, facts, ctx.interaction, subject=parsed.subject,
        references=[*parsed.in_reply_to, *parsed.references], message_id=parsed.message_id,
        contact=ctx.contacts[0][0] if ctx.contacts else None,
        staff_id=ctx.directory.staff_by_email.get(decision.staff[0]) if decision.staff else None,
        answered=ctx.answered.tickets if ctx.answered else None)
    if filed.note:
        ctx.note(filed.note)
    ctx.queued_mail = ctx.queued_mail or filed.queued_mail


def link_deals(ctx: MailContext) -> None:
    """A customer's reply to our mail about a deal, or a mail naming a quote or order number, lands on the deal
    (``sales.replies`` decides; precision first: another customer's number is only suggested)."""
    assert ctx.parsed is not None and ctx.attribution is not None and ctx.interaction is not None
    parsed, decision = ctx.parsed, ctx.attribution
    notes = replies.file_reply(
        ctx.session, ctx.settings, ctx.interaction, direction=decision.direction,
        automatic=decision.automatic is not None, spoof_suspected=decision.spoof_suspected,
        contacts=[(ref.id, ref.company_id) for ref, _ in ctx.contacts], subject=ctx.interaction.subject or "",
        text=parsed.text, references=[*parsed.in_reply_to, *parsed.references],
        answered=ctx.answered.deals if ctx.answered else None)
    for note in notes:
        ctx.note(note)


def link_campaigns(ctx: MailContext) -> None:
    """A reply to a campaign mail lands on the campaign (a wish to unsubscribe goes to triage as a suggestion, it
    opts nobody out); a spam complaint about one opts the person out; a bounce of one marks it bounced
    (``campaigns.responses`` decides; robots are never counted as replies)."""
    assert ctx.parsed is not None and ctx.attribution is not None and ctx.interaction is not None
    decision = ctx.attribution
    notes = campaign_responses.file_mail(ctx.session, ctx.interaction, ctx.parsed, campaign_responses.MailFacts(
        direction=decision.direction, automatic=decision.automatic is not None,
        bounced=ctx.automatic.bounced if ctx.automatic is not None else (),
        spoof_suspected=decision.spoof_suspected, contact_ids=tuple(ref.id for ref, _ in ctx.contacts),
        inbound_id=ctx.inbound.id), answered=ctx.answered.campaign_mails if ctx.answered else None)
    for note in notes:
        ctx.note(note)


def follow_up_note(ctx: MailContext) -> None:
    """A staff member's note above a forwarded mail ("Wiedervorlage Freitag") becomes their reminder."""
    assert ctx.attribution is not None and ctx.interaction is not None
    forwarded, decision = ctx.attribution.forwarded, ctx.attribution
    if forwarded is None or not forwarded.note or not decision.staff:
        return
    staff_id = ctx.directory.staff_by_email.get(decision.staff[0])
    if staff_id is None:
        return
    contact_id = ctx.contacts[0][0].id if ctx.contacts else None
    reminder = reminders.from_mail_note(ctx.session, ctx.settings, note=forwarded.note, staff_id=staff_id,
                                        contact_id=contact_id, interaction=ctx.interaction)
    if reminder is not None:
        ctx.note(f"reminder {reminder.id} for the forwarding staff member, due {reminder.due_at.isoformat()}")


DEFAULT_STEPS: tuple[Step, ...] = (
    Step("honour_erasure", "drop a copy of mail that was erased for data protection", honour_erasure, writes=False),
    Step("parse", "read the raw bytes into headers, text, sanitised HTML and attachments", parse, writes=False),
    Step("detect_automatic", "recognise auto-replies, bounces, list and bulk mail", detect_automatic_mail,
         writes=False),
    Step("find_parties", "decide direction and who the mail is about, with the reasons", find_parties,
         writes=False),
    Step("flag_reused_message_id", "flag different messages that share one Message-ID", flag_reused_message_id),
    Step("match_contacts", "link the parties to contacts; unknown people become leads", match_contacts),
    Step("mark_bounces", "flag addresses a delivery report says are failing", mark_bounces),
    Step("record", "write the interaction on the timeline", record),
    Step("look_up_answered", "read what a reply answers (ticket, deals, campaign mail) in one query",
         look_up_answered, writes=False),
    Step("tickets", "open a support ticket or thread the mail into its ticket", tickets),
    Step("link_deals", "link a reply about a quote or order to its deal and complete the follow-up", link_deals),
    Step("link_campaigns", "link a reply to its campaign; complaints opt out, bounces are counted", link_campaigns),
    Step("follow_up_note", "a forwarding note such as \"Wiedervorlage Freitag\" becomes a reminder", follow_up_note),
)


def run_pipeline(ctx: MailContext, steps: tuple[Step, ...] = DEFAULT_STEPS,
                 before_writes: Callable[[], bool] | None = None) -> bool:
    """Run the steps; ``before_writes`` (claiming the message) is called before the first writing step
    and may return False to stop (someone else has it). Returns False when stopped that way."""
    claimed = False
    for step in steps:
        if step.writes and not claimed:
            claimed = True
            if before_writes is not None and not before_writes():
                return False
        ctx.step = step.name
        step.run(ctx)
        if ctx.stopped:
            log.info("inbound %s: stopped at %s: %s", ctx.inbound.id, step.name, ctx.stopped)
            break
    if not claimed and before_writes is not None and not before_writes():
        return False  # stopped before any writing step: the state change still needs the claim
    ctx.step = None
    if ctx.interaction is not None and ctx.attribution is not None:
        reason = ctx.attribution.reason  # with what later steps added
        if reason != ctx.interaction.attribution_reason:
            # a Core update: setting the ORM attribute would cost a whole flush at commit
            ctx.session.execute(_SET_REASON, {"row_id": ctx.interaction.id, "new_reason": reason})
    return True

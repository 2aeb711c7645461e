"""The default steps, in order. Decisions live in pure modules (mail.*, attribution); steps wire them."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import update

from crm_inbox.attribution import Evidence, decide
from crm_inbox.contacts import create_lead
from crm_inbox.mail.automatic import detect_automatic
from crm_inbox.mail.parse import Limits, parse_mail
from crm_inbox.models import Contact, ContactEmail, InteractionKind, utcnow
from crm_inbox.pipeline.context import MailContext, Step
from crm_inbox.timeline import clean_excerpt, record_interaction

log = logging.getLogger(__name__)


def _limits(ctx: MailContext) -> Limits:
    return Limits(ctx.settings.mail.max_nesting_depth, ctx.settings.mail.max_parts)


def parse(ctx: MailContext) -> None:
    ctx.parsed = parse_mail(ctx.inbound.raw, _limits(ctx))


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
            contact = ctx.session.get_one(Contact, ids[0])
        elif ctx.attribution.automatic:
            ctx.note(f"{party.address.email} is unknown and automatic mail creates no lead")
            continue
        else:
            contact = create_lead(ctx.session, ctx.directory, party.address,
                                  f"mail {ctx.inbound.message_id or ctx.inbound.id}",
                                  new_company_for_domain=ctx.settings.mail.create_company_for_unknown_domain)
            ctx.new_contacts.append(contact)
            ctx.note(f"new lead {party.address.email}")
        ctx.contacts.append((contact, party.role))


def mark_bounces(ctx: MailContext) -> None:
    if ctx.automatic is None or not ctx.automatic.bounced:
        return
    marked = ctx.session.execute(
        update(ContactEmail).where(ContactEmail.email.in_(ctx.automatic.bounced)).values(bouncing=True)).rowcount
    if marked:
        ctx.note(f"marked {', '.join(ctx.automatic.bounced)} as bouncing")


def record(ctx: MailContext) -> None:
    assert ctx.parsed is not None and ctx.attribution is not None
    parsed, decision = ctx.parsed, ctx.attribution
    received = ctx.inbound.received_at
    # The Date header is the sender's clock: trust it unless it is absurdly far in the future.
    occurred = parsed.date if parsed.date and parsed.date <= received + timedelta(days=1) else received
    staff_ids = [ctx.directory.staff_by_email[e] for e in decision.staff if e in ctx.directory.staff_by_email]
    forwarded = decision.forwarded
    details = {
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


DEFAULT_STEPS: tuple[Step, ...] = (
    Step("parse", "read the raw bytes into headers, text, sanitised HTML and attachments", parse),
    Step("detect_automatic", "recognise auto-replies, bounces, list and bulk mail", detect_automatic_mail),
    Step("find_parties", "decide direction and who the mail is about, with the reasons", find_parties),
    Step("match_contacts", "link the parties to contacts; unknown people become leads", match_contacts),
    Step("mark_bounces", "flag addresses a delivery report says are failing", mark_bounces),
    Step("record", "write the interaction on the timeline", record),
)


def run_pipeline(ctx: MailContext, steps: tuple[Step, ...] = DEFAULT_STEPS) -> None:
    for step in steps:
        step.run(ctx)
        if ctx.stopped:
            log.info("inbound %s: stopped at %s: %s", ctx.inbound.id, step.name, ctx.stopped)
            return

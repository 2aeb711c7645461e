"""The default steps, in order. Decisions live in pure modules (mail.parse, attribution); steps wire them."""

from __future__ import annotations

import logging
from datetime import timedelta

from crm_inbox.attribution import decide
from crm_inbox.contacts import create_lead
from crm_inbox.mail.parse import Limits, parse_mail
from crm_inbox.models import Contact, InteractionKind, utcnow
from crm_inbox.pipeline.context import MailContext, Step
from crm_inbox.timeline import excerpt_of, record_interaction

log = logging.getLogger(__name__)


def parse(ctx: MailContext) -> None:
    mail = ctx.settings.mail
    ctx.parsed = parse_mail(ctx.inbound.raw, Limits(mail.max_nesting_depth, mail.max_parts))


def find_parties(ctx: MailContext) -> None:
    assert ctx.parsed is not None
    ctx.attribution = decide(ctx.parsed, ctx.directory.is_staff, ctx.settings.mail.own_addresses)


def match_contacts(ctx: MailContext) -> None:
    assert ctx.attribution is not None
    parties = ctx.attribution.parties
    found = ctx.directory.contacts_by_email(p.address.email for p in parties)
    for party in parties:
        ids = found.get(party.address.email, [])
        if len(ids) > 1:
            # A shared address (info@…) on several contacts: guessing would leak mail to the wrong one.
            ctx.note(f"{party.address.email} belongs to {len(ids)} contacts: left for triage")
            continue
        if ids:
            contact = ctx.session.get_one(Contact, ids[0])
        else:
            contact = create_lead(ctx.session, ctx.directory, party.address,
                                  f"mail {ctx.inbound.message_id or ctx.inbound.id}")
            ctx.new_contacts.append(contact)
            ctx.note(f"new lead {party.address.email}")
        ctx.contacts.append((contact, party.role))


def record(ctx: MailContext) -> None:
    assert ctx.parsed is not None and ctx.attribution is not None
    parsed = ctx.parsed
    received = ctx.inbound.received_at
    # The Date header is the sender's clock: trust it unless it is absurdly far in the future.
    occurred = parsed.date if parsed.date and parsed.date <= received + timedelta(days=1) else received
    staff_ids = [ctx.directory.staff_by_email[e] for e in ctx.attribution.staff
                 if e in ctx.directory.staff_by_email]
    ctx.interaction = record_interaction(
        ctx.session,
        kind=InteractionKind.EMAIL,
        direction=ctx.attribution.direction,
        occurred_at=occurred or utcnow(),
        subject=parsed.subject or None,
        text=parsed.text,
        excerpt=excerpt_of(parsed.text),
        html=parsed.html,
        source_ref=parsed.message_id,
        inbound_message_id=ctx.inbound.id,
        contacts=ctx.contacts,
        staff_ids=staff_ids,
        attachments=[(a.filename, a.content_type, a.content) for a in parsed.attachments],
        reason=ctx.attribution.reason,
        details={"from": str(parsed.author) if parsed.author else None,
                 "to": [str(a) for a in parsed.to], "cc": [str(a) for a in parsed.cc]},
    )
    log.info("inbound %s: interaction %s (%s) linked to contacts %s",
             ctx.inbound.id, ctx.interaction.id, ctx.attribution.direction.value,
             [c.id for c, _ in ctx.contacts] or "none (unassigned)")


DEFAULT_STEPS: tuple[Step, ...] = (
    Step("parse", "read the raw bytes into headers, text, sanitised HTML and attachments", parse),
    Step("find_parties", "decide direction and who the mail is about", find_parties),
    Step("match_contacts", "link the parties to contacts; unknown people become leads", match_contacts),
    Step("record", "write the interaction on the timeline", record),
)


def run_pipeline(ctx: MailContext, steps: tuple[Step, ...] = DEFAULT_STEPS) -> None:
    for step in steps:
        step.run(ctx)
        if ctx.stopped:
            log.info("inbound %s: stopped at %s: %s", ctx.inbound.id, step.name, ctx.stopped)
            return

"""Campaigns: write one (validated, audited), preview it for any recipient, send a test to oneself, and start it:
the send ledger is written once (every segment member, included with the legal basis or left out with the
reason) with one rendered, held outbox mail per included e-mail recipient; ``campaigns.sending`` releases those
at the configured rate.

States: draft → (awaiting_approval →) sending ⇄ paused → done; cancelled from any state after the draft and
before done (a draft is deleted). ``actions`` says what a state allows. Every
transition is a conditional UPDATE on the state it leaves, so a double click, a second browser tab or a
second process starting the same campaign gets Conflict and never a second ledger (the unique
(campaign, contact) index of the ledger backs it). A campaign to more than ``[campaigns] approval_threshold``
recipients waits for an admin (an admin who starts it approves it).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from crm_inbox import audit, events, outbox
from crm_inbox.campaigns import audience, placeholders
from crm_inbox.campaigns.audience import Member
from crm_inbox.campaigns.placeholders import Rendered
from crm_inbox.config import Settings
from crm_inbox.consent import policy
from crm_inbox.consent.double_opt_in import instance_secret, opt_out_token
from crm_inbox.db import affected, bulk_insert
from crm_inbox.errors import Conflict, Forbidden, NotFound, ValidationError
from crm_inbox.ids import MAX_ID
from crm_inbox.models import (
    Campaign,
    CampaignRecipient,
    CampaignState,
    Channel,
    Contact,
    OutboxState,
    OutgoingMail,
    RecipientState,
    Segment,
    StaffRole,
    StaffUser,
    utcnow,
)
from crm_inbox.segments import service as segments
from crm_inbox.text import single_line

MAX_NAME = 200
MAX_SUBJECT = placeholders.MAX_SUBJECT
MAX_BODY = placeholders.MAX_BODY
MAX_SENDER = 200
BATCH = 1000
PURPOSE = "campaign"
TEST_PURPOSE = "campaign_test"
CHANNELS = (Channel.EMAIL, Channel.LETTER)
# States in which sending can still be stopped (a draft is deleted instead: it has no ledger to keep).
CANCELLABLE = (CampaignState.AWAITING_APPROVAL, CampaignState.SENDING, CampaignState.PAUSED)
DELETABLE = (CampaignState.DRAFT, CampaignState.CANCELLED)
PRINTABLE = (CampaignState.SENDING, CampaignState.DONE)  # a letter campaign's letters: first print, reprints
ACTIONS = ("edit", "delete", "start", "approve", "pause", "resume", "cancel", "test", "print")


# --- reading ---

def get(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    return campaign


def list_campaigns(session: Session) -> list[Campaign]:
    """Newest first."""
    return list(session.scalars(select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc())))


# --- who acts, and what a campaign allows ---

def require_staff(session: Session, actor: int | None) -> StaffUser:
    """The acting user, when they may change or send campaigns (active, not read-only); else Forbidden."""
    user = session.get(StaffUser, actor) if actor is not None else None
    if user is None or not user.active:
        raise Forbidden("only an active staff user can do this")
    if user.role == StaffRole.READONLY:
        raise Forbidden("read-only users cannot change or send campaigns")
    return user


def actions(campaign: Campaign) -> frozenset[str]:
    """What the campaign's state allows: "edit", "delete", "start", "approve", "pause", "resume", "cancel",
    "test" (a test mail) and "print" (its letters). The services refuse anything else with Conflict; the pages
    and the API show and offer exactly these. (Who may do it is checked apart: ``require_staff``, admins.)"""
    state, email = campaign.state, campaign.channel == Channel.EMAIL
    allowed = {
        "edit": state == CampaignState.DRAFT,
        "delete": state in DELETABLE,
        "start": state == CampaignState.DRAFT,
        "approve": state == CampaignState.AWAITING_APPROVAL,
        "pause": email and state == CampaignState.SENDING,
        "resume": state == CampaignState.PAUSED,
        "cancel": state in CANCELLABLE,
        "test": email,
        "print": not email and state in PRINTABLE,
    }
    return frozenset(name for name, ok in allowed.items() if ok)


# --- validation ---

def _name(session: Session, raw: Any, campaign_id: int | None = None) -> str:
    if not isinstance(raw, str):
        raise ValidationError("name", "must be a text")
    name = single_line(raw).strip()
    name = " ".join(name.split())
    if not name:
        raise ValidationError("name", "must not be empty")
    if len(name) > MAX_NAME:
        raise ValidationError("name", f"must be at most {MAX_NAME} characters")
    taken = session.scalar(select(Campaign.id).where(func.lower(Campaign.name) == name.lower()))
    if taken is not None and taken != campaign_id:
        raise ValidationError("name", f"a campaign named {name!r} exists already")
    return name


def _channel(raw: Any) -> Channel:
    """The channel as given by any edge (a Channel, or its value from a form or JSON)."""
    try:
        channel = Channel(raw)
    except (ValueError, TypeError):
        raise ValidationError("channel", "must be email or letter") from None
    if channel not in CHANNELS:
        raise ValidationError("channel", "phone campaigns are not supported: choose email or letter")
    return channel


def _segment(session: Session, raw: Any) -> int:
    """The segment's id as given by any edge (an int; None or anything else is refused, never a 500)."""
    if raw is None or raw == "":
        raise ValidationError("segment_id", "choose a segment")
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= MAX_ID \
            or session.get(Segment, raw) is None:
        raise ValidationError("segment_id", f"no segment {raw!r}")
    return raw


def _texts(channel: Channel, subject: Any, body: Any) -> tuple[str, str]:
    if not isinstance(subject, str):
        raise ValidationError("subject", "must be a text")
    if not isinstance(body, str):
        raise ValidationError("body", "must be a text")
    subject = single_line(subject).strip()
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if channel == Channel.EMAIL and not subject:
        raise ValidationError("subject", "an e-mail needs a subject")
    if len(subject) > MAX_SUBJECT:
        raise ValidationError("subject", f"must be at most {MAX_SUBJECT} characters")
    if not body.strip():
        raise ValidationError("body", "must not be empty")
    if len(body) > MAX_BODY:
        raise ValidationError("body", f"must be at most {MAX_BODY} characters")
    placeholders.check(subject, body)
    return subject, body


def _sender(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValidationError("sender_name", "must be a text")
    sender = " ".join(single_line(raw).split())
    if len(sender) > MAX_SENDER:
        raise ValidationError("sender_name", f"must be at most {MAX_SENDER} characters")
    return sender or None


# --- writing ---

def create(session: Session, settings: Settings, *, name: str, segment_id: int, channel: Channel | str,
           subject: str, body: str, sender_name: str | None, actor: int | None) -> Campaign:
    """A new draft; every field is checked (the templates too: a misspelt placeholder is refused here)."""
    del settings
    require_staff(session, actor)
    checked_channel = _channel(channel)
    subject, body = _texts(checked_channel, subject, body)
    campaign = Campaign(name=_name(session, name), segment_id=_segment(session, segment_id),
                        channel=checked_channel, subject=subject, body=body, sender_name=_sender(sender_name),
                        state=CampaignState.DRAFT, created_by_id=actor)
    session.add(campaign)
    session.flush()
    audit.record(session, actor, "create", "campaign", campaign.id,
                 {"name": campaign.name, "segment": campaign.segment_id, "channel": checked_channel.value})
    return campaign


def update(session: Session, settings: Settings, campaign_id: int, *, actor: int | None, name: str | None = None,
           segment_id: int | None = None, channel: Channel | str | None = None, subject: str | None = None,
           body: str | None = None, sender_name: str | None = None) -> Campaign:
    """Change a draft (what is given; ``sender_name=""`` clears it); audited with what changed."""
    del settings
    require_staff(session, actor)
    campaign = get(session, campaign_id)
    if campaign.state != CampaignState.DRAFT:
        raise Conflict(f"campaign {campaign.id} is {campaign.state.value}: only a draft can be changed")
    new_channel = _channel(channel) if channel is not None else campaign.channel
    new_subject, new_body = _texts(new_channel, campaign.subject if subject is None else subject,
                                   campaign.body if body is None else body)
    wanted: dict[str, Any] = {
        "name": _name(session, name, campaign.id) if name is not None else campaign.name,
        "segment_id": _segment(session, segment_id) if segment_id is not None else campaign.segment_id,
        "channel": new_channel, "subject": new_subject, "body": new_body,
        "sender_name": _sender(sender_name) if sender_name is not None else campaign.sender_name,
    }
    changes: dict[str, Any] = {}
    for key, value in wanted.items():
        old = getattr(campaign, key)
        if value != old:
            # The texts can be long: the audit says that they changed, the names and ids what they became.
            changes[key] = True if key in ("subject", "body") else [
                old.value if isinstance(old, Channel) else old, value.value if isinstance(value, Channel) else value]
            setattr(campaign, key, value)
    if changes:
        session.flush()
        audit.record(session, actor, "update", "campaign", campaign.id, changes)
    return campaign


def delete(session: Session, campaign_id: int, *, actor: int | None) -> None:
    """Delete a draft, or a cancelled campaign that never released a mail (one that did stays as the record of
    who got what)."""
    require_staff(session, actor)
    campaign = get(session, campaign_id)
    if campaign.state not in DELETABLE:
        raise Conflict(f"campaign {campaign.id} is {campaign.state.value}: only a draft or a cancelled campaign "
                       "can be deleted")
    sent = session.scalar(select(CampaignRecipient.id).where(
        CampaignRecipient.campaign_id == campaign.id,
        CampaignRecipient.state.in_((RecipientState.RELEASED, RecipientState.PRINTED))).limit(1))
    if sent is not None:
        raise Conflict(f"campaign {campaign.id} reached people before it was cancelled: it stays as the record")
    audit.record(session, actor, "delete", "campaign", campaign.id,
                 {"name": campaign.name, "state": campaign.state.value})
    session.execute(sql_delete(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign.id))
    session.delete(campaign)
    session.flush()


# --- rendering for one person ---

def unsubscribe_url(settings: Settings, contact_id: int, address: str | None,
                    campaign_id: int | None = None) -> str:
    """The one-click opt-out link of a mail to this person at this address (valid for ever); ``campaign_id``
    names the campaign whose figures count the opt-out."""
    base = settings.web.base_url.rstrip("/")
    token = opt_out_token(_secret(settings), contact_id, address, Channel.EMAIL, campaign_id=campaign_id)
    return f"{base}/unsubscribe/{token}"


def _secret(settings: Settings) -> str:
    try:
        return instance_secret(settings)
    except RuntimeError as exc:
        raise Conflict(str(exc)) from None


def footer(basis: str | None, language: str) -> str | None:
    """What a mail says below its text besides the opt-out line: for an existing customer the notice of the
    right to object (§ 7(3) Nr. 4 UWG), in the person's language."""
    if basis == policy.EXISTING_CUSTOMER:
        return placeholders.objection_notice(language)
    return None


def _render_for(settings: Settings, campaign: Campaign, variables: dict[str, Any], member: Member | None,
                *, opt_out_url: str | None) -> Rendered:
    if campaign.channel != Channel.EMAIL:
        opt_out_url = None
    # The footer and the opt-out line speak the person's language, as the greeting above them does.
    language = variables.get("language") or settings.company.language
    return placeholders.render(campaign.subject, campaign.body, variables, opt_out_url=opt_out_url,
                               footer=footer(member.basis if member else None, language), language=language)


def _first_member(session: Session, settings: Settings, campaign: Campaign) -> Member | None:
    """The first member the campaign would reach (else the first one at all)."""
    if campaign.segment_id is None:
        return None
    segment = segments.get(session, campaign.segment_id)
    ids = list(session.scalars(segments.member_ids(session, segment).order_by(Contact.id).limit(200)))
    decided = audience.decide(session, ids, campaign.channel)
    return next((m for m in decided if m.allowed), decided[0] if decided else None)


def preview_for(session: Session, settings: Settings, campaign_id: int, contact_id: int | None = None) -> Rendered:
    """The campaign as this contact would get it (None: the first member it reaches; an example person when
    the segment is empty), with the footer their legal basis calls for."""
    campaign = get(session, campaign_id)
    if contact_id is None:
        member = _first_member(session, settings, campaign)
    else:
        if session.get(Contact, contact_id) is None:
            raise NotFound(f"no contact {contact_id}")
        member = audience.decide(session, [contact_id], campaign.channel)[0]
    if member is None:
        return _render_for(settings, campaign, placeholders.sample(settings.company.language), None,
                           opt_out_url=_preview_url(settings, 0, None))
    variables = placeholders.facts(session, settings, [member.contact_id])[member.contact_id]
    if member.address:
        variables["email"] = member.address
    return _render_for(settings, campaign, variables, member,
                       opt_out_url=_preview_url(settings, member.contact_id, member.address, campaign.id))


def _preview_url(settings: Settings, contact_id: int, address: str | None, campaign_id: int | None = None) -> str:
    try:
        return unsubscribe_url(settings, contact_id, address, campaign_id)
    except Conflict:  # no secret key yet (the web app was never started): the preview still shows the text
        return f"{settings.web.base_url.rstrip('/')}/unsubscribe/…"


def send_test(session: Session, settings: Settings, campaign_id: int, *, actor: int) -> OutgoingMail:
    """The preview (first member) as a mail to the acting user's own address, subject "[Test] …". Not on any
    timeline, not in the ledger; its opt-out link names nobody (clicking it opts nobody out)."""
    user = require_staff(session, actor)
    campaign = get(session, campaign_id)
    if campaign.channel != Channel.EMAIL:
        raise Conflict("a letter campaign has no test mail: print a preview instead")
    to = user.primary_email
    if not to:
        raise ValidationError("to", "you have no e-mail address of your own to send the test to")
    member = _first_member(session, settings, campaign)
    if member is None:
        variables = placeholders.sample(settings.company.language)
    else:
        variables = placeholders.facts(session, settings, [member.contact_id])[member.contact_id]
    rendered = _render_for(settings, campaign, variables, member, opt_out_url=unsubscribe_url(settings, 0, None))
    mail = outbox.enqueue(session, settings, purpose=TEST_PURPOSE,
                          dedupe_key=f"campaign-test:{campaign.id}:{uuid.uuid4().hex}", to=to,
                          subject=f"[Test] {rendered.subject}", body=rendered.text, html=rendered.html,
                          from_address=settings.campaigns.from_address or None, from_name=campaign.sender_name,
                          headers=_list_headers(settings, unsubscribe_url(settings, 0, None)))
    if mail is None:
        raise ValidationError("to", f"{to!r} is not a single address")
    audit.record(session, actor, "test_send", "campaign", campaign.id, {"to": to})
    return mail


def reply_to(settings: Settings) -> str | None:
    """Where replies must go when the campaign's sender address is not one the CRM receives: its first CRM
    (else support) address; None when the sender address is one of them."""
    sender = (settings.campaigns.from_address or parseaddr(settings.notifications.from_address)[1]).lower()
    if sender in settings.mail.own_addresses:
        return None
    return next(iter(settings.mail.crm_addresses or settings.mail.support_addresses), None)


def _list_headers(settings: Settings, url: str) -> dict[str, str]:
    # RFC 8058 one-click; Precedence bulk keeps auto-responders quiet. Not Auto-Submitted: replies are wanted.
    headers = {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
               "Precedence": "bulk"}
    if (address := reply_to(settings)) is not None:
        headers["Reply-To"] = address
    return headers


# --- the state machine ---

def _move(session: Session, campaign: Campaign, leaving: Iterable[CampaignState], to: CampaignState,
          **values: Any) -> None:
    """One conditional UPDATE: exactly one caller wins the transition, every other gets Conflict."""
    leaving = tuple(leaving)
    moved = affected(session.execute(
        sql_update(Campaign).where(Campaign.id == campaign.id, Campaign.state.in_(leaving))
        .values(state=to, updated_at=utcnow(), **values).execution_options(synchronize_session=False)))
    if not moved:
        session.refresh(campaign)
        raise Conflict(f"campaign {campaign.id} is {campaign.state.value}: it cannot become {to.value}")
    session.refresh(campaign)


def start(session: Session, settings: Settings, campaign_id: int, *, actor: int) -> Campaign:
    """Send the campaign: above the approval threshold a staff user's start waits for an admin
    (AWAITING_APPROVAL); otherwise the ledger is written and the campaign is SENDING."""
    user = require_staff(session, actor)
    campaign = get(session, campaign_id)
    if campaign.state != CampaignState.DRAFT:
        raise Conflict(f"campaign {campaign.id} is {campaign.state.value}: only a draft can be started")
    _ready(session, settings, campaign)
    # Decided once: the same decisions give the count against the threshold and the ledger (50,000 members
    # are a few MB here; deciding them twice cost a fifth of the start).
    decided = list(audience.members(session, settings, _segment_of(campaign), campaign.channel, batch=BATCH))
    found = _count(decided)
    if found.included == 0:
        raise Conflict(f"nobody may receive campaign {campaign.id}: {_left_out_words(found.left_out)}")
    if found.included > settings.campaigns.approval_threshold and user.role != StaffRole.ADMIN:
        _move(session, campaign, [CampaignState.DRAFT], CampaignState.AWAITING_APPROVAL,
              recipient_count=found.included, left_out=found.left_out)
        audit.record(session, actor, "submit", "campaign", campaign.id,
                     {"recipients": found.included, "threshold": settings.campaigns.approval_threshold})
        return campaign
    approved = ({"approved_by_id": actor, "approved_at": utcnow()}
                if found.included > settings.campaigns.approval_threshold else {})
    return _queue(session, settings, campaign, [CampaignState.DRAFT], actor=actor, decided=decided, **approved)


def approve(session: Session, settings: Settings, campaign_id: int, *, actor: int) -> Campaign:
    """An admin approves a campaign waiting for approval; its ledger is written (with who may receive it now)."""
    user = require_staff(session, actor)
    if user.role != StaffRole.ADMIN:
        raise Forbidden("only an admin can approve a campaign")
    campaign = get(session, campaign_id)
    if campaign.state != CampaignState.AWAITING_APPROVAL:
        raise Conflict(f"campaign {campaign.id} is {campaign.state.value}: nothing to approve")
    _ready(session, settings, campaign)
    return _queue(session, settings, campaign, [CampaignState.AWAITING_APPROVAL], actor=actor,
                  approved_by_id=actor, approved_at=utcnow())


def pause(session: Session, campaign_id: int, *, actor: int) -> Campaign:
    require_staff(session, actor)
    campaign = get(session, campaign_id)
    if campaign.channel != Channel.EMAIL:
        raise Conflict("a letter campaign is not sent: nothing to pause")
    _move(session, campaign, [CampaignState.SENDING], CampaignState.PAUSED)
    audit.record(session, actor, "pause", "campaign", campaign.id, {})
    return campaign


def resume(session: Session, campaign_id: int, *, actor: int) -> Campaign:
    require_staff(session, actor)
    campaign = get(session, campaign_id)
    _move(session, campaign, [CampaignState.PAUSED], CampaignState.SENDING, next_send_at=utcnow())
    audit.record(session, actor, "resume", "campaign", campaign.id, {})
    return campaign


def cancel(session: Session, campaign_id: int, *, actor: int) -> Campaign:
    """Stop for good: recipients not released yet are CANCELLED and their held mails deleted (a mail the
    sender released a moment before stays released: the conditional updates decide who was first)."""
    require_staff(session, actor)
    campaign = get(session, campaign_id)
    _move(session, campaign, CANCELLABLE, CampaignState.CANCELLED, finished_at=utcnow())
    cancelled = affected(session.execute(
        sql_update(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign.id,
                                        CampaignRecipient.state == RecipientState.QUEUED)
        .values(state=RecipientState.CANCELLED).execution_options(synchronize_session=False)))
    session.execute(sql_delete(OutgoingMail).where(
        OutgoingMail.state == OutboxState.HELD,
        OutgoingMail.id.in_(select(CampaignRecipient.outgoing_mail_id).where(
            CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == RecipientState.CANCELLED)))
        .execution_options(synchronize_session=False))
    audit.record(session, actor, "cancel", "campaign", campaign.id, {"not_sent": cancelled})
    events.record(session, "campaign.cancelled", "campaign", campaign.id,
                  {"name": campaign.name, "not_sent": cancelled})
    return campaign


# --- writing the send ledger ---

def _segment_of(campaign: Campaign) -> int:
    if campaign.segment_id is None:
        raise Conflict(f"campaign {campaign.id} has no segment any more: choose one")
    return campaign.segment_id


def _ready(session: Session, settings: Settings, campaign: Campaign) -> None:
    """What must hold before a single mail is queued: a segment, valid templates, and for e-mail the secret key
    and base URL the opt-out link is made of."""
    _segment_of(campaign)
    placeholders.check(campaign.subject, campaign.body)
    if campaign.channel == Channel.EMAIL:
        if not settings.web.base_url.strip():
            raise Conflict("set [web] base_url: every campaign mail carries an opt-out link to this CRM")
        if not link_base_ok(settings.web.base_url):
            raise Conflict("[web] base_url must start with https://: the opt-out link in every campaign mail "
                           "carries a token that must not travel unencrypted (http only for localhost)")
        _secret(settings)


LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def link_base_ok(base_url: str) -> bool:
    """Whether the base URL may carry opt-out tokens: https, or http to this machine (the demo, tests)."""
    try:
        parts = urlsplit(base_url.strip())
        host = parts.hostname
    except ValueError:
        return False
    if not host:
        return False
    return parts.scheme.lower() == "https" or (parts.scheme.lower() == "http" and host in LOCAL_HOSTS)


def _left_out_words(left_out: dict[str, int]) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in left_out.items()) or "the segment is empty"


def _count(decided: list[list[Member]]) -> audience.Preview:
    left_out = Counter(m.reason or "no_consent" for batch in decided for m in batch if not m.allowed)
    return audience.Preview(sum(m.allowed for batch in decided for m in batch),
                            dict(sorted(left_out.items(), key=lambda item: (-item[1], item[0]))))


def _queue(session: Session, settings: Settings, campaign: Campaign, leaving: list[CampaignState], *,
           actor: int, decided: list[list[Member]] | None = None, **values: Any) -> Campaign:
    """Write the ledger: a row per member (QUEUED with its basis, or LEFT_OUT with the reason) and, for
    e-mail, its rendered mail HELD in the outbox, in batches of ``BATCH`` with multi-row INSERTs. The state
    moves first, so a second start fails before it writes anything."""
    now = utcnow()
    _move(session, campaign, leaving, CampaignState.SENDING, started_at=now, next_send_at=now, **values)
    included = 0
    left_out: Counter[str] = Counter()
    secret = _secret(settings) if campaign.channel == Channel.EMAIL else ""
    batches = decided if decided is not None else audience.members(session, settings, _segment_of(campaign),
                                                                   campaign.channel, batch=BATCH)
    for batch in batches:
        written, unusable = _write_batch(session, settings, campaign, batch, secret, now)
        included += written
        left_out.update(m.reason or "no_consent" for m in batch if not m.allowed)
        if unusable:
            left_out["no_address"] += unusable
    ordered = dict(sorted(left_out.items(), key=lambda item: (-item[1], item[0])))
    session.execute(sql_update(Campaign).where(Campaign.id == campaign.id)
                    .values(recipient_count=included, left_out=ordered)
                    .execution_options(synchronize_session=False))
    session.refresh(campaign)
    audit.record(session, actor, "start", "campaign", campaign.id,
                 {"recipients": included, "left_out": ordered, "approved_by": campaign.approved_by_id})
    events.record(session, "campaign.started", "campaign", campaign.id,
                  {"name": campaign.name, "channel": campaign.channel.value, "recipients": included,
                   "left_out": ordered})
    return campaign


def _write_batch(session: Session, settings: Settings, campaign: Campaign, batch: list[Member], secret: str,
                 now: datetime) -> tuple[int, int]:
    """The batch's ledger rows and held mails; (recipients queued, allowed members left out for an address
    the outbox refuses)."""
    rows: list[dict[str, Any]] = []
    email = campaign.channel == Channel.EMAIL
    allowed = [m for m in batch if m.allowed]
    mails: dict[int, tuple[str, str]] = {}  # contact -> (message id, dedupe key)
    if email and allowed:
        variables = placeholders.facts(session, settings, [m.contact_id for m in allowed])
        from_address = settings.campaigns.from_address or None
        base = settings.web.base_url.rstrip("/")
        outgoing: list[dict[str, Any]] = []
        for member in allowed:
            assert member.address is not None  # decide() leaves out who has none
            token = opt_out_token(secret, member.contact_id, member.address, Channel.EMAIL, campaign_id=campaign.id)
            url = f"{base}/unsubscribe/{token}"
            person = variables[member.contact_id]
            person["email"] = member.address
            try:
                mail = _render_for(settings, campaign, person, member, opt_out_url=url)
            except ValidationError as exc:  # one person's values the template cannot take: name them
                raise ValidationError(exc.field, f"contact {member.contact_id} ({person.get('name') or '?'}): "
                                                 f"{exc.message}") from None
            message_id = outbox.new_message_id(settings, PURPOSE)
            key = f"campaign:{campaign.id}:{member.contact_id}"
            mails[member.contact_id] = (message_id, key)
            queued = outbox.row(settings, purpose=PURPOSE, dedupe_key=key, to=member.address, subject=mail.subject,
                                body=mail.text, html=mail.html, headers=_list_headers(settings, url),
                                message_id=message_id,
                                from_address=from_address, from_name=campaign.sender_name, held=True, now=now)
            if queued is None:  # not one plain address (an old import?): left out, never guessed at
                del mails[member.contact_id]
                continue
            outgoing.append(queued)
        ids = {key: mail_id for mail_id, key in bulk_insert(session, OutgoingMail.__table__, outgoing,
                                                             conflict="dedupe_key", returning=("id", "dedupe_key"))
               } if outgoing else {}
        if len(ids) != len(outgoing):  # a mail of this campaign to this person exists: a ledger exists
            raise Conflict(f"campaign {campaign.id} was queued already")
    for member in batch:
        row: dict[str, Any] = {"campaign_id": campaign.id, "contact_id": member.contact_id, "address": None,
                               "state": RecipientState.LEFT_OUT.value, "reason": member.reason, "basis": None,
                               "message_id": None, "outgoing_mail_id": None}
        if email and member.allowed and member.contact_id not in mails:
            row.update(reason="no_address")
        elif member.allowed:
            row.update(state=RecipientState.QUEUED.value, reason=None, basis=member.basis)
            if email:
                message_id, key = mails[member.contact_id]
                row.update(address=member.address, message_id=message_id, outgoing_mail_id=ids[key])
        rows.append(row)
    if rows:
        bulk_insert(session, CampaignRecipient.__table__, rows)
    unusable = len(allowed) - len(mails) if email else 0
    return len(allowed) - unusable, unusable

"""Releasing a campaign's held mails at ``[campaigns] per_minute`` (per campaign), over all ``serve`` processes.

``campaigns.service.start`` writes the send ledger (one ``CampaignRecipient`` per person) and one held
``OutgoingMail`` per included recipient; nothing is sent until it is released here. Each release is one
transaction: the campaign's rate gate (``Campaign.next_send_at``) is moved on by one interval with a
conditional update (compare-and-set on the value read, so exactly one process wins each interval), the next
QUEUED recipient is claimed with a conditional update, its mail is made pending and its timeline entry is
written. Progress is therefore saved per recipient, never per fetched batch: a kill -9 loses at most the
transaction in flight, which is rolled back as a whole, and a restart goes on with the next recipient.

The outbox (``crm_inbox.outbox``) then sends the pending mail, claimed per row, and marks a mail whose dead
sender's claim it takes over, or whose relay took the whole message without answering in time, as
``uncertain``: the only ways a person gets a campaign mail twice.

Consent is checked again at release (an opt-out, a bounce or an erasure since the ledger was written takes
effect at once, even in the middle of a campaign that runs for hours): such a recipient is left out with the
reason and the held mail deleted, without using up an interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.campaigns import placeholders
from crm_inbox.campaigns.audience import ContactRef, suppression_reason
from crm_inbox.config import Settings
from crm_inbox.consent import ledger, policy
from crm_inbox.db import affected, unit_of_work, write_lock
from crm_inbox.models import (
    Campaign,
    CampaignRecipient,
    CampaignState,
    Channel,
    ConsentSuppression,
    ContactEmail,
    Direction,
    InteractionKind,
    OutboxState,
    OutgoingMail,
    RecipientState,
    utcnow,
)
from crm_inbox.outbox import release
from crm_inbox.timeline.service import excerpt_of, record_interaction

log = logging.getLogger(__name__)


def interval(settings: Settings) -> timedelta:
    """The time between two releases of one campaign."""
    return timedelta(seconds=60 / settings.campaigns.per_minute)


def next_gate(gate: datetime | None, now: datetime, step: timedelta) -> datetime:
    """Where a winner moves the gate: one interval on from the previous gate while the releases keep roughly to
    the schedule (a thread that woke up to two intervals late finds the next gate due at once, so the rate
    holds on a busy machine), else one interval after now: after a pause, a restart or a campaign's start the
    missed intervals are not caught up in a burst."""
    if gate is not None and gate > now - 2 * step:
        return gate + step
    return now + step


def withdrawn(consent: policy.Consent | None, *, bouncing: bool, suppression: str | None) -> str | None:
    """Why a queued recipient may no longer get the mail (a key of ``campaigns.audience.REASONS``), or None.

    What can only have changed since the ledger was written: an opt-out (also by a suppressed address), an
    erasure, a bounce. The purchase behind the existing-customer basis was checked at start and stays."""
    if suppression is not None:
        return suppression_reason(suppression)
    decision = policy.may_receive(Channel.EMAIL, consent, has_order=True, bouncing=bouncing)
    return None if decision.allowed else decision.reason


_DUE_STATES = (CampaignState.SENDING,)
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")


def _due_campaigns(session: Session, now: datetime) -> list[int]:
    gate = Campaign.next_send_at
    return list(session.execute(
        select(Campaign.id).where(Campaign.state.in_(_DUE_STATES), Campaign.channel == Channel.EMAIL,
                                        (gate.is_(None)) | (gate <= now))
        .order_by(gate.is_(None).desc(), gate, Campaign.id)).scalars())


def next_due_at(session: Session) -> datetime | None:
    """When the earliest gate of a sending e-mail campaign opens (``datetime.min``-like: the past, for a
    campaign without a gate yet); None when no campaign is sending."""
    row = session.execute(
        select(Campaign.next_send_at).where(Campaign.state.in_(_DUE_STATES), Campaign.channel == Channel.EMAIL)
        .order_by(Campaign.next_send_at.is_(None).desc(), Campaign.next_send_at).limit(1)).first()
    if row is None:
        return None
    return row[0] if row[0] is not None else utcnow()


def release_due(factory: sessionmaker[Session], settings: Settings, *, now: datetime | None = None,
                limit: int = 100) -> int:
    """Release the queued mails of sending e-mail campaigns whose rate gate is due (one per open gate and
    campaign, and again while a gate is still due); returns how many were released by this call. ``now``
    fixes the clock (tests); else each round reads it afresh."""
    step = interval(settings)
    released = 0
    while released < limit:
        at = now or utcnow()
        with factory() as session:
            due = _due_campaigns(session, at)
        if not due:
            break
        progress = False
        for campaign_id in due:
            if released >= limit:
                break
            outcome = _release_one(factory, campaign_id, at, step)
            released += outcome == "released"
            progress |= outcome in ("released", "done")
        if not progress:
            break  # every gate went to another process this round: its new time is in the future
    return released


def _release_one(factory: sessionmaker[Session], campaign_id: int, now: datetime, step: timedelta) -> str:
    """One transaction: win the gate, release the next queued recipient (or finish the campaign).
    Returns "released", "done" or "lost" (another process moved the gate, or the campaign stopped sending)."""
    with write_lock(factory), unit_of_work(factory) as session:
        # The gate is read and moved under a lock (the row's on PostgreSQL, the write lock on SQLite), so two
        # processes never both move it from the same value: one release per interval over all of them.
        query = select(Campaign).where(Campaign.id == campaign_id)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
            # No wait for the disk at commit (as the non-durable engine on SQLite): a later synchronous commit,
            # the outbox's claim before the mail is sent, flushes this one too; one lost with the power is
            # released again, its mail not yet sent.
            session.execute(_ASYNC_COMMIT)
        campaign = session.execute(query).scalar_one_or_none()
        if campaign is None or campaign.state != CampaignState.SENDING or (
                campaign.next_send_at is not None and campaign.next_send_at > now):
            return "lost"
        gate = Campaign.next_send_at
        # Conditional as well: a pause or cancel written meanwhile (a writer without the lock) wins.
        if not affected(session.execute(
                update(Campaign).where(Campaign.id == campaign_id, Campaign.state == CampaignState.SENDING,
                                       gate.is_(None) | (gate <= now))
                .values(next_send_at=next_gate(campaign.next_send_at, now, step)))):
            return "lost"
        while True:
            recipient = _claim(session, campaign_id, now)
            if recipient is None:
                _finish(session, campaign, now)
                return "done"
            reason = _withdrawn(session, recipient)
            if reason is None:
                break
            _leave_out(session, campaign, recipient, reason)
        _hand_over(session, campaign, recipient, now)
        if _next_queued(session, campaign_id, skip_locked=False) is None:
            _finish(session, campaign, now)
        return "released"


def _next_queued(session: Session, campaign_id: int, *, skip_locked: bool) -> int | None:
    query = (select(CampaignRecipient.id)
             .where(CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == RecipientState.QUEUED)
             .order_by(CampaignRecipient.id).limit(1))
    if skip_locked and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # a row a cancel is changing now: take the next
    return session.execute(query).scalar_one_or_none()


def _claim(session: Session, campaign_id: int, now: datetime) -> CampaignRecipient | None:
    """The next queued recipient, marked released (a conditional update: a concurrent cancel or another
    release that took it makes this one try the next)."""
    while True:
        candidate = _next_queued(session, campaign_id, skip_locked=True)
        if candidate is None:
            return None
        if affected(session.execute(
                update(CampaignRecipient)
                .where(CampaignRecipient.id == candidate, CampaignRecipient.state == RecipientState.QUEUED)
                .values(state=RecipientState.RELEASED, released_at=now))):
            return session.get_one(CampaignRecipient, candidate, populate_existing=True)


def _withdrawn(session: Session, recipient: CampaignRecipient) -> str | None:
    if recipient.contact_id is None:
        return "erased"  # the contact was deleted or erased after the ledger was written
    address = recipient.address or ""
    suppression, bouncing = session.execute(select(
        select(ConsentSuppression.reason).where(
            ConsentSuppression.channel == Channel.EMAIL,
            ConsentSuppression.digest == ledger.address_digest(Channel.EMAIL, address)).limit(1).scalar_subquery(),
        exists().where(ContactEmail.contact_id == recipient.contact_id, ContactEmail.email == address.lower(),
                       ContactEmail.bouncing.is_(True)))).one()
    consent = ledger.current(session, [recipient.contact_id], Channel.EMAIL)[recipient.contact_id]
    return withdrawn(consent, bouncing=bouncing, suppression=suppression)


def _mail_of(session: Session, campaign: Campaign, recipient: CampaignRecipient) -> OutgoingMail | None:
    if recipient.outgoing_mail_id is not None:
        return session.get(OutgoingMail, recipient.outgoing_mail_id)
    # The ledger may be written without reading each inserted mail back: its dedupe key names it.
    return session.execute(select(OutgoingMail).where(
        OutgoingMail.dedupe_key == f"campaign:{campaign.id}:{recipient.contact_id}")).scalar_one_or_none()


def _leave_out(session: Session, campaign: Campaign, recipient: CampaignRecipient, reason: str) -> None:
    """Never sent: the ledger says why, the held mail goes (as a cancel deletes it)."""
    mail = _mail_of(session, campaign, recipient)
    if mail is not None:
        session.execute(delete(OutgoingMail).where(OutgoingMail.id == mail.id,
                                                   OutgoingMail.state == OutboxState.HELD))
    recipient.state, recipient.reason, recipient.released_at = RecipientState.LEFT_OUT, reason, None
    recipient.outgoing_mail_id = None
    counts: dict[str, Any] = dict(campaign.left_out or {})
    counts[reason] = int(counts.get(reason, 0)) + 1
    campaign.left_out = counts  # a new dict: the JSON column sees the change
    log.info("campaign %s: contact %s left out at release (%s)", campaign.id, recipient.contact_id, reason)


def _hand_over(session: Session, campaign: Campaign, recipient: CampaignRecipient, now: datetime) -> None:
    """The mail becomes sendable and appears on the recipient's timeline as campaign mail."""
    mail = _mail_of(session, campaign, recipient)
    if mail is None:  # its held row was deleted (a cancel racing us can do no more than this)
        log.warning("campaign %s: the mail to contact %s is gone; nothing released", campaign.id,
                    recipient.contact_id)
        recipient.state = RecipientState.CANCELLED
        return
    if not release(session, mail.id):
        log.warning("campaign %s: mail %s was not held (state %s)", campaign.id, mail.id, mail.state)
    assert recipient.contact_id is not None  # _withdrawn left out those without one
    # The timeline keeps the mail without its opt-out link: the link's token opts the person out for ever, and
    # the timeline is read by every colleague (and shown, exported, forwarded).
    text = placeholders.without_opt_out(mail.body)
    item = record_interaction(
        session, kind=InteractionKind.EMAIL, direction=Direction.OUT, occurred_at=now, subject=mail.subject,
        text=text, excerpt=excerpt_of(text), source_ref=mail.message_id,
        contacts=[(ContactRef(recipient.contact_id), "to")], reason=f"campaign {campaign.name}",
        details={"campaign_id": campaign.id, "campaign": campaign.name, "purpose": "campaign",
                 "to": [mail.to_address], "outgoing_mail_id": mail.id})
    session.execute(update(OutgoingMail).where(OutgoingMail.id == mail.id).values(interaction_id=item.id))
    recipient.interaction_id = item.id
    recipient.outgoing_mail_id = mail.id
    if recipient.message_id is None:
        recipient.message_id = mail.message_id


def _finish(session: Session, campaign: Campaign, now: datetime) -> None:
    if campaign.state == CampaignState.SENDING:
        campaign.state, campaign.finished_at = CampaignState.DONE, now
        log.info("campaign %s (%s): every recipient released", campaign.id, campaign.name)


class CampaignSender:
    """A background thread of ``serve`` that releases campaign mail when a gate opens: it sleeps until the
    earliest gate of a sending campaign (at most ``[campaigns] poll_seconds``, so campaigns started or resumed
    by another process are found), and ``wake`` makes it look at once (a campaign started here)."""


    def __init__(self, factory: sessionmaker[Session], settings: Settings,
                 on_released: Callable[[], None] = lambda: None) -> None:
        self.factory, self.settings, self.on_released = factory, settings, on_released
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crm-inbox-campaigns", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _wait_time(self) -> float:
        poll = float(self.settings.campaigns.poll_seconds)
        with self.factory() as session:
            upcoming = next_due_at(session)
        if upcoming is None:
            return poll
        return min(poll, max(0.0, (upcoming - utcnow()).total_seconds()))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # One at a time, each handed to the outbox sender at once (it sends them as they come, not
                # in a heap after a round), and a stop waits for one release at most.
                released = release_due(self.factory, self.settings, limit=1)
                if released:
                    self.on_released()
                # Until the next gate (at once when one is due: another campaign, or this one running late); a
                # gate due by our clock but not by the database's must not make this spin.
                wait = self._wait_time() if released else max(self._wait_time(), 0.001)
            except Exception:  # the database is away: never let the thread die, try again after the poll time
                log.exception("campaigns: releasing failed")
                wait = float(self.settings.campaigns.poll_seconds)
            self._wake.wait(wait)
            self._wake.clear()

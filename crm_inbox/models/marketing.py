"""Marketing: saved segments (a filter over master data and behaviour), the consent ledger (per person and
channel, append-only: every opt-in, pending double opt-in and opt-out with its legal basis and proof), and
campaigns to a segment with their per-recipient send ledger."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_inbox.models.base import Base, str_enum, utcnow


class Segment(Base):
    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the condition tree (AND/OR/NOT)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Channel(enum.StrEnum):
    EMAIL = "email"
    LETTER = "letter"
    PHONE = "phone"


class ConsentState(enum.StrEnum):
    """No record for a channel means "unknown"."""

    PENDING = "pending"  # double opt-in mail sent, not yet confirmed
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


class LegalBasis(enum.StrEnum):
    CONSENT = "consent"  # Art. 6(1)(a) GDPR, § 7(2) UWG
    EXISTING_CUSTOMER = "existing_customer"  # § 7(3) UWG: similar products, until they object
    PRESUMED_CONSENT = "presumed_consent"  # § 7(2) Nr. 1 UWG: a phone call to a business, with its recorded reason


class ConsentRecord(Base):
    """One change of a person's consent for one channel. Never updated or deleted except by erasure: the latest
    record per (contact, channel) is the state, all of them together are the proof."""

    __tablename__ = "consent_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, "consent_channel"))
    state: Mapped[ConsentState] = mapped_column(str_enum(ConsentState, "consent_state"))
    legal_basis: Mapped[LegalBasis | None] = mapped_column(str_enum(LegalBasis, "legal_basis"))
    source: Mapped[str] = mapped_column(String(50))  # web_form, double_opt_in, staff, import, unsubscribe, …
    proof: Mapped[dict[str, Any]] = mapped_column(default=dict)  # what shows it: IP, link id, mail id, text
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)  # when the person did it
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # The latest record per person and channel: by occurred_at (a backdated import never outranks a later
    # opt-out), then id.
    __table_args__ = (Index("ix_consent_records_contact", "contact_id", "channel", "occurred_at", "id"),)


class ConsentSuppression(Base):
    """An address that campaigns never write to again although no contact holds it any more: an erased
    person's e-mail addresses and phone numbers, or an opt-out link clicked for a contact that is gone. Only the
    SHA-256 of the normalised address is kept (lower-cased e-mail, E.164 number), as erased mail keeps only the
    hash of its Message-ID; a confirmed double opt-in for the address lifts it."""

    __tablename__ = "consent_suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, "consent_channel"))
    digest: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(30))  # erased, unsubscribed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("channel", "digest", name="uq_consent_suppressions_channel_digest"),)


class CampaignState(enum.StrEnum):
    DRAFT = "draft"  # being written; preview and test send
    AWAITING_APPROVAL = "awaiting_approval"  # more recipients than [campaigns] approval_threshold: an admin decides
    SENDING = "sending"  # the ledger is written; mails are released at [campaigns] per_minute
    PAUSED = "paused"  # nothing is released until resumed
    DONE = "done"  # every recipient released (e-mail) or the letters printed
    CANCELLED = "cancelled"  # what was not released yet never will be


class Campaign(Base):
    """A mailing to a segment, by e-mail or letter. The texts are templates (subject and body with
    placeholders); what each recipient got is in the send ledger (``CampaignRecipient``) and the outbox."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, "consent_channel"))  # email or letter
    state: Mapped[CampaignState] = mapped_column(str_enum(CampaignState, "campaign_state"),
                                                 default=CampaignState.DRAFT, index=True)
    sender_name: Mapped[str | None] = mapped_column(String(200))  # display name in From / the letter's signature
    subject: Mapped[str] = mapped_column(String(998), default="")  # template
    body: Mapped[str] = mapped_column(Text, default="")  # template (plain text; the HTML part is made from it)
    # What was decided when the ledger was written: how many recipients, and who was left out why.
    recipient_count: Mapped[int] = mapped_column(default=0)
    left_out: Mapped[dict[str, Any]] = mapped_column(default=dict)  # reason -> count
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    approved_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]  # the ledger written
    finished_at: Mapped[datetime | None]
    # The rate gate shared by every ``serve`` process: a mail is released only by the process that moves this
    # on by one interval with a conditional update, so the rate holds whatever the number of processes.
    next_send_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RecipientState(enum.StrEnum):
    LEFT_OUT = "left_out"  # no legal basis, opted out, bouncing, erased, no address: ``reason`` says which
    QUEUED = "queued"  # rendered, its mail held in the outbox until the rate gate releases it
    RELEASED = "released"  # handed to the outbox (sent, failed or uncertain: the outbox row says)
    PRINTED = "printed"  # a letter: in the printed PDF
    CANCELLED = "cancelled"  # the campaign was cancelled before this one was released


class CampaignRecipient(Base):
    """The send ledger: one row per person a campaign considered. Its progress (released, and the outbox
    row's sent/failed/uncertain) is written per recipient as it happens, never per fetched batch."""

    __tablename__ = "campaign_recipients"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    address: Mapped[str | None] = mapped_column(String(320))  # e-mail address; None for letters and left-out
    state: Mapped[RecipientState] = mapped_column(str_enum(RecipientState, "recipient_state"))
    reason: Mapped[str | None] = mapped_column(String(30))  # when left out: a key of consent.policy.REASONS
    basis: Mapped[str | None] = mapped_column(String(30))  # when included: consent, existing_customer, …
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)  # replies find the campaign by it
    outgoing_mail_id: Mapped[int | None] = mapped_column(ForeignKey("outgoing_mail.id", ondelete="SET NULL"))
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))
    released_at: Mapped[datetime | None]
    # What came back
    reply_interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))
    replied_at: Mapped[datetime | None]
    bounced_at: Mapped[datetime | None]
    opted_out_at: Mapped[datetime | None]
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunities.id", ondelete="SET NULL"))

    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id", name="uq_campaign_recipients_contact"),
        Index("ix_campaign_recipients_campaign_state", "campaign_id", "state", "id"),
    )

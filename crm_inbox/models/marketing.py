"""Marketing: saved segments (a filter over master data and behaviour) and the consent ledger (per person and
channel, append-only: every opt-in, pending double opt-in and opt-out with its legal basis and proof)."""

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

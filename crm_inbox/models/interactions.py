"""Interactions on the timeline (mail, call, note, …), who they are linked to, and their attachments."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_inbox.models.base import Base, str_enum, utcnow
from crm_inbox.models.contacts import Contact
from crm_inbox.models.staff import StaffUser


class InteractionKind(enum.StrEnum):
    EMAIL = "email"
    CALL = "call"
    NOTE = "note"
    DOCUMENT = "document"
    MEETING = "meeting"
    TICKET = "ticket"  # a change of a support ticket (opened, state, assignee, note, …)
    REMINDER = "reminder"  # a reminder set, done, cancelled or reopened
    DEAL = "deal"  # an opportunity opened or changed, a quote sent, accepted or declined, an order created
    OTHER = "other"


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"
    INTERNAL = "internal"



class Interaction(Base):
    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[InteractionKind] = mapped_column(str_enum(InteractionKind, "interaction_kind"))
    direction: Mapped[Direction] = mapped_column(str_enum(Direction, "direction"))
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    subject: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    excerpt: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)  # sanitised before it is stored
    source_ref: Mapped[str | None] = mapped_column(String(998), index=True)  # Message-ID, call id
    inbound_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL"), unique=True)
    # Why the interaction landed where it did (shown to staff); details for the API.
    # A call from a company's switchboard block with no known person lands on the company.
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    attribution_reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    contact_links: Mapped[list[InteractionContact]] = relationship(
        back_populates="interaction", cascade="all, delete-orphan")
    staff_links: Mapped[list[InteractionStaff]] = relationship(
        back_populates="interaction", cascade="all, delete-orphan")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="interaction", cascade="all, delete-orphan", order_by="Attachment.id")

    @property
    def contact_ids(self) -> list[int]:
        return sorted(link.contact_id for link in self.contact_links)


class InteractionContact(Base):
    """Links an interaction to a contact. ``occurred_at`` is copied here so a contact's timeline is one
    index range scan, newest first, however many interactions the database holds."""

    __tablename__ = "interaction_contacts"

    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    occurred_at: Mapped[datetime]
    role: Mapped[str] = mapped_column(String(20), default="party")  # from, to, cc, party

    interaction: Mapped[Interaction] = relationship(back_populates="contact_links")
    contact: Mapped[Contact] = relationship()

    __table_args__ = (Index("ix_interaction_contacts_timeline", "contact_id", "occurred_at", "interaction_id"),)


class InteractionStaff(Base):
    __tablename__ = "interaction_staff"

    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), default="participant")

    interaction: Mapped[Interaction] = relationship(back_populates="staff_links")
    staff: Mapped[StaffUser] = relationship()


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))  # a safe base name, never a path
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)  # empty when the file lies in the documents directory
    # A customer-file upload kept in ``[documents] directory`` instead of the database: its path there.
    stored_file: Mapped[str | None] = mapped_column(String(300))

    interaction: Mapped[Interaction] = relationship(back_populates="attachments")

"""Support tickets: opened by mail to a support address, threaded by number and Message-IDs."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_inbox.models.base import Base, str_enum, utcnow

NUMBER_OFFSET = 10000  # ticket numbers start at #10001 and are the row id plus this offset


class TicketState(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"  # waiting for the customer
    SOLVED = "solved"
    CLOSED = "closed"


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int | None] = mapped_column(unique=True)
    subject: Mapped[str] = mapped_column(String(998))
    state: Mapped[TicketState] = mapped_column(str_enum(TicketState, "ticket_state"), default=TicketState.NEW,
                                               index=True)
    priority: Mapped[Priority] = mapped_column(str_enum(Priority, "ticket_priority"), default=Priority.NORMAL)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), index=True)
    opened_by_email: Mapped[str | None] = mapped_column(String(320))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_customer_reply_at: Mapped[datetime | None]
    last_staff_reply_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    previous_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))

    __table_args__ = (Index("ix_tickets_opened_by", "opened_by_email", "opened_at"),)

    @property
    def label(self) -> str:
        return f"#{self.number}"


class TicketEvent(Base):
    """Every change of a ticket: who, when, what (shown on the ticket and on the customer's timeline)."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(30))  # opened, customer_reply, staff_reply, state, priority, …
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

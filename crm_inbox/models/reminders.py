"""Follow-up reminders (Wiedervorlage): created by rules or by staff, fired once when due."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_inbox.models.base import Base, str_enum, utcnow


class ReminderState(enum.StrEnum):
    OPEN = "open"
    SNOOZED = "snoozed"  # open, with its due time moved on by staff
    DONE = "done"
    CANCELLED = "cancelled"


ACTIVE_STATES = (ReminderState.OPEN, ReminderState.SNOOZED)


class Reminder(Base):
    __tablename__ = "reminders"

    id: Mapped[int] = mapped_column(primary_key=True)
    due_at: Mapped[datetime]
    title: Mapped[str] = mapped_column(String(300))
    note: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(30))  # missed_call, ticket_no_reply, manual, mail_note
    state: Mapped[ReminderState] = mapped_column(str_enum(ReminderState, "reminder_state"),
                                                 default=ReminderState.OPEN)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunities.id", ondelete="SET NULL"),
                                                       index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    # A rule's reminder carries the rule's key (``missed_call:42``): a retried transaction, a second node or
    # a replayed event cannot create it twice. Manual reminders have none.
    rule_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    # The due time while the reminder still has to fire; NULL once it fired or ended. The scheduler's tick
    # asks only this indexed column ("fire_at <= now"), so a million future or finished reminders cost nothing.
    fire_at: Mapped[datetime | None] = mapped_column(index=True)
    fired_at: Mapped[datetime | None]  # when it last fired (snoozing sets fire_at again, so it fires again)
    completed_at: Mapped[datetime | None]
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    completion: Mapped[str | None] = mapped_column(String(300))  # why it ended: "call-back happened", …
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_reminders_assignee", "assignee_id", "state", "due_at"),)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

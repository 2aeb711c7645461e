"""Mail we send (acknowledgements, reminder notifications): written in the same transaction as the
reason for it, sent after the commit, so a crash neither loses nor doubles a mail."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_inbox.models.base import Base, str_enum, utcnow


class OutboxState(enum.StrEnum):
    HELD = "held"  # queued but not to be sent yet (a campaign's mail waiting for its rate gate)
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutgoingMail(Base):
    __tablename__ = "outgoing_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(30))  # ticket_ack, reminder, …
    # One mail per reason: a retried transaction or a second node cannot queue the same mail twice.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    to_address: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(String(998))
    body: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message_id: Mapped[str] = mapped_column(String(998))
    state: Mapped[OutboxState] = mapped_column(str_enum(OutboxState, "outbox_state"), default=OutboxState.PENDING,
                                               index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    # Mail staff write in the CRM: its timeline entry, whose attachments go with it, and the writer's name
    # shown in From (the address stays ours, so the customer's reply comes back to the CRM).
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))
    from_name: Mapped[str | None] = mapped_column(String(200))
    html: Mapped[str | None] = mapped_column(Text)  # an HTML alternative to ``body``
    from_address: Mapped[str | None] = mapped_column(String(320))  # instead of [notifications] from_address
    # A claim of a process that died mid-send was taken over: the relay may have accepted the first try, so
    # the recipient may have it twice. Reported, never hidden.
    uncertain: Mapped[bool] = mapped_column(default=False)

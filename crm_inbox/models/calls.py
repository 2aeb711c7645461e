"""Phone calls, built from the phone system's events (one row per call, keyed by source and call id)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_inbox.models.base import Base, str_enum, utcnow
from crm_inbox.models.interactions import Direction


class CallState(enum.StrEnum):
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(30))  # sipgate, cti, twilio, placetel, 3cx, generic
    call_id: Mapped[str] = mapped_column(String(200))
    direction: Mapped[Direction | None] = mapped_column(str_enum(Direction, "direction"))
    state: Mapped[CallState] = mapped_column(str_enum(CallState, "call_state"), default=CallState.RINGING)
    from_raw: Mapped[str | None] = mapped_column(String(100))
    to_raw: Mapped[str | None] = mapped_column(String(100))
    remote_e164: Mapped[str | None] = mapped_column(String(32), index=True)  # the customer's side
    remote_withheld: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    cause: Mapped[str | None] = mapped_column(String(50))
    missed: Mapped[bool] = mapped_column(default=False)
    callback_needed: Mapped[bool] = mapped_column(default=False, index=True)
    closed_by_timeout: Mapped[bool] = mapped_column(default=False)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), index=True)
    staff_hint: Mapped[str | None] = mapped_column(String(200))  # user names or extension as sent
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"), index=True)
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))
    orig_call_id: Mapped[str | None] = mapped_column(String(200))
    diversion: Mapped[str | None] = mapped_column(String(100))
    events: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("source", "call_id", name="uq_calls_source_call_id"),
        Index("ix_calls_open", "state", "started_at"),
    )

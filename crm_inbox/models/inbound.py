"""Raw inbound mail, stored before anything else; processing state lives on this row."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from crm_inbox.models.base import Base, str_enum, utcnow


class InboundState(enum.StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"
    IGNORED = "ignored"
    # The person it concerned was erased (privacy): only the hashes are kept, so a redelivery is recognised
    # and stays gone. Never processed again.
    ERASED = "erased"


class InboundMessage(Base):
    __tablename__ = "inbound_messages"
    # Partial: only tombstones have a hash. A full index holds one key (NULL) for every other row, and once
    # ANALYZE has counted that, SQLite prefers scanning the table for each message processed (5x slower).
    __table_args__ = (Index("ix_inbound_messages_message_id_sha256", "message_id_sha256",
                            sqlite_where=text("message_id_sha256 IS NOT NULL"),
                            postgresql_where=text("message_id_sha256 IS NOT NULL")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # loaded only when needed
    size: Mapped[int]
    # Identity for idempotency: SHA-256 over the message without trace headers (Received, …), so a
    # redelivery over another path is still the same message. Unique: a race stores one row.
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The Message-ID header exactly as it arrived (unfolded), not parsed: broken ones are common.
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    # Another message with the same Message-ID but different content exists: kept, flagged.
    message_id_conflict: Mapped[bool] = mapped_column(default=False)
    envelope_from: Mapped[str | None] = mapped_column(String(998))
    envelope_to: Mapped[list[str]] = mapped_column(default=list)
    peer: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(30), default="smtp")
    deliveries: Mapped[int] = mapped_column(default=1)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    state: Mapped[InboundState] = mapped_column(
        str_enum(InboundState, "inbound_state"),
        default=InboundState.RECEIVED, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    # The pipeline step a failed message failed in ("parse", "record", …), for staff and for finding the bug.
    failed_step: Mapped[str | None] = mapped_column(String(60))
    attempts: Mapped[int] = mapped_column(default=0)
    processed_at: Mapped[datetime | None]
    # When the raw bytes were deleted (retention, or erasure): the row stays as the message's identity
    # (content hash, Message-ID), so a redelivery is still recognised as a duplicate.
    raw_deleted_at: Mapped[datetime | None]
    # An erased message keeps only the SHA-256 of its Message-ID: a re-sent copy with changed content
    # (a relay that rewrote something) is still known as the erased message.
    message_id_sha256: Mapped[str | None] = mapped_column(String(64))

"""Data in and out: import batches with what each row created or changed (so a whole import can be undone,
restoring the old values), saved column mappings, and the tokens desk phones fetch their phone book with."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_inbox.models.base import Base, str_enum, utcnow


class ImportState(enum.StrEnum):
    DONE = "done"
    UNDONE = "undone"


class ImportBatch(Base):
    """One confirmed import (a dry run leaves no row: it is the same import, rolled back)."""

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    file_format: Mapped[str] = mapped_column(String(20))  # csv, xlsx, vcard
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the column mapping used
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # created, updated, unchanged, duplicates, errors
    state: Mapped[ImportState] = mapped_column(str_enum(ImportState, "import_state"), default=ImportState.DONE)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    undone_at: Mapped[datetime | None]


class ImportChange(Base):
    """What one import did to one record: ``created`` (undo deletes it) or ``updated`` (undo writes ``before``
    back: the old values of exactly the fields the import changed, e-mail and phone lists included)."""

    __tablename__ = "import_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id", ondelete="CASCADE"))
    object_type: Mapped[str] = mapped_column(String(20))  # contact, company
    object_id: Mapped[int]
    action: Mapped[str] = mapped_column(String(20))  # created, updated
    before: Mapped[dict[str, Any]] = mapped_column(default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (Index("ix_import_changes_batch", "batch_id", "id"),
                      Index("ix_import_changes_object", "object_type", "object_id"))


class ImportMapping(Base):
    """A saved column mapping ("Outlook export") to reuse for the next file of the same shape."""

    __tablename__ = "import_mappings"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PhoneBookToken(Base):
    """The secret in a desk phone's or router's phone-book URL (phones cannot log in). Only its hash is kept."""

    __tablename__ = "phone_book_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(100))  # "Fritz!Box Büro"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    note: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

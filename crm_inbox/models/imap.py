"""What the CRM knows about each IMAP folder it imports from: the server's UIDVALIDITY, the highest UID
already stored, and how the last attempt went (for the operator)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_inbox.models.base import Base, utcnow


class ImapFolder(Base):
    __tablename__ = "imap_folders"
    __table_args__ = (UniqueConstraint("account", "folder", name="uq_imap_folders_account_folder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(100))  # the account's name in the configuration
    folder: Mapped[str] = mapped_column(String(500))  # as configured ("INBOX", "Support/Incoming")
    # UIDs and UIDVALIDITY are unsigned 32-bit numbers: too big for a signed INTEGER.
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)  # every UID up to this one is stored
    imported: Mapped[int] = mapped_column(default=0)  # messages stored from this folder, all time
    uidvalidity_changes: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]  # the last complete pass over the folder
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

"""Staff users (the company's own people), their addresses and API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_inbox.models.base import Base, str_enum, utcnow


class StaffRole(enum.StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    READONLY = "readonly"


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[StaffRole] = mapped_column(
        str_enum(StaffRole, "staff_role"),
        default=StaffRole.STAFF)
    extension: Mapped[str | None] = mapped_column(String(32), index=True)
    # The team reports group staff figures by (never per person unless [analytics] per_person_reports).
    team: Mapped[str | None] = mapped_column(String(100))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    # The private iCalendar feed's secret, hashed like API tokens; a separate secret because calendar apps
    # keep the URL in places an API token must never be (shared calendars, sync logs).
    calendar_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    emails: Mapped[list[StaffEmail]] = relationship(
        back_populates="staff", cascade="all, delete-orphan", order_by="StaffEmail.id")

    @property
    def primary_email(self) -> str | None:
        return self.emails[0].email if self.emails else None


class StaffEmail(Base):
    __tablename__ = "staff_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)

    staff: Mapped[StaffUser] = relationship(back_populates="emails")


class StaffSession(Base):
    """One login in one browser. The signed session cookie carries a random key whose SHA-256 is stored
    here; a cookie is good only while its row exists, so logout (this row), a new password or deactivation
    (all the user's rows) end it on the server, also for a copy of the cookie."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    staff: Mapped[StaffUser] = relationship()


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored, the token itself is shown once at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    staff: Mapped[StaffUser] = relationship()

"""Failed logins, counted in the database so that several ``serve`` processes share one limit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_inbox.models.base import Base, utcnow


class LoginFailure(Base):
    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_account", "account", "at"),
        Index("ix_login_failures_ip", "ip", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(320))  # the address typed, lower-case (it may not exist)
    ip: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(default=utcnow)

"""Outbound webhooks: subscriptions of URLs to event types, and one delivery row per event and subscription
(the durable outbox, written in the transaction of the change, delivered after commit, at least once)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_inbox.models.base import Base, str_enum, utcnow


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(200))
    event_types: Mapped[list[str]] = mapped_column(default=list)  # "contact.created", "company.*", "*"
    # "whsec_" + base64 key (Standard Webhooks); shown to the admin once, kept to sign, never logged.
    secret: Mapped[str] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(default=True)
    failing_since: Mapped[datetime | None]  # the first failure since the last success
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # given up (retries exhausted, or the subscription was disabled)


class WebhookDelivery(Base):
    """One event for one subscription. ``subject`` ("contact:12") keeps deliveries of one object in event order;
    ``claimed_until`` is the lease of the process attempting it (several ``serve`` processes share the table)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    subject: Mapped[str] = mapped_column(String(60))
    state: Mapped[DeliveryState] = mapped_column(str_enum(DeliveryState, "delivery_state"),
                                                 default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    response_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_order", "subscription_id", "subject", "event_id"),
    )

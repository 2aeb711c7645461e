"""The sales path: products (price list), opportunities (Verkaufschancen), quotes (Angebote) with versions and
lines, orders (Aufträge) with lines, the number series that numbers quotes and orders, the links between
timeline entries and deals, and the events other systems hear about (the ERP handoff)."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_inbox.models.base import Base, str_enum, utcnow

# Money: amounts in cents precision; unit prices and quantities may carry more places (0.0049 €/piece).
MONEY = Numeric(14, 2)
UNIT_PRICE = Numeric(16, 4)
QUANTITY = Numeric(14, 3)
PERCENT = Numeric(5, 2)


class Product(Base):
    """One article or service of the price list."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(50), unique=True)  # Artikelnummer
    name: Mapped[str] = mapped_column(String(300))
    search_name: Mapped[str] = mapped_column(String(400), index=True)  # case-folded number and name
    description: Mapped[str | None] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(String(30), default="Stück")
    net_price: Mapped[Decimal] = mapped_column(UNIT_PRICE)
    vat_rate: Mapped[Decimal] = mapped_column(PERCENT)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OpportunitySource(enum.StrEnum):
    MAIL = "mail"
    CALL = "call"
    WEB_FORM = "web_form"
    CAMPAIGN = "campaign"
    MANUAL = "manual"


class Opportunity(Base):
    """A sales opportunity (Verkaufschance). ``stage`` is one of ``[sales] stages`` or won / lost."""

    __tablename__ = "opportunities"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), index=True)
    # The expected amount: the current quote's net total while ``amount_from_quote``, else as typed.
    amount: Mapped[Decimal | None] = mapped_column(MONEY)
    amount_from_quote: Mapped[bool] = mapped_column(default=False)
    close_date: Mapped[date | None]
    stage: Mapped[str] = mapped_column(String(40), index=True)
    probability: Mapped[int]  # percent
    source: Mapped[OpportunitySource] = mapped_column(str_enum(OpportunitySource, "opportunity_source"),
                                                      default=OpportunitySource.MANUAL)
    lost_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None]  # when it was won or lost
    # When the customer last wrote or called about it (or staff did): "days since last contact".
    last_contact_at: Mapped[datetime | None]

    @property
    def is_open(self) -> bool:
        return self.stage not in ("won", "lost")


class QuoteState(enum.StrEnum):
    DRAFT = "draft"  # editable, no number yet (a new version of a sent quote keeps the number)
    FINAL = "final"  # numbered and frozen, not sent yet (printed, or sent outside the CRM)
    SENT = "sent"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    SUPERSEDED = "superseded"  # a newer version was finalised or sent


class Quote(Base):
    """One version of a quote. Versions of one quote share ``number``; ``AN-2026-0001-2`` is version 2."""

    __tablename__ = "quotes"

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id", ondelete="CASCADE"), index=True)
    number: Mapped[str | None] = mapped_column(String(60), index=True)
    version: Mapped[int] = mapped_column(default=1)
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("quotes.id", ondelete="SET NULL"))
    state: Mapped[QuoteState] = mapped_column(str_enum(QuoteState, "quote_state"), default=QuoteState.DRAFT,
                                              index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"), index=True)
    language: Mapped[str] = mapped_column(String(5), default="de")
    quote_date: Mapped[date | None]  # set when it is numbered
    valid_until: Mapped[date | None]
    intro: Mapped[str | None] = mapped_column(Text)  # text above the lines
    terms: Mapped[str | None] = mapped_column(Text)  # text below the totals (payment, delivery)
    # The address as printed, frozen with the quote: later edits of the customer do not change a sent quote.
    address: Mapped[list[str]] = mapped_column(default=list)
    # Totals as computed by sales.totals when the lines last changed (for lists; documents recompute).
    net_total: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    vat_total: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    gross_total: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    sent_at: Mapped[datetime | None]
    sent_message_id: Mapped[str | None] = mapped_column(String(998), index=True)  # our mail's Message-ID
    decided_at: Mapped[datetime | None]
    decline_reason: Mapped[str | None] = mapped_column(Text)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))  # its PDF
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    lines: Mapped[list[QuoteLine]] = relationship(
        back_populates="quote", cascade="all, delete-orphan", order_by="QuoteLine.position")

    __table_args__ = (UniqueConstraint("number", "version", name="uq_quotes_number_version"),)

    @property
    def label(self) -> str:
        """The number as printed: ``AN-2026-0001``, ``AN-2026-0001-2`` from version 2; a draft's id."""
        if self.number is None:
            return f"#{self.id}"
        return self.number if self.version == 1 else f"{self.number}-{self.version}"


class QuoteLine(Base):
    __tablename__ = "quote_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)  # the product's name or free text
    description: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(QUANTITY)
    unit: Mapped[str] = mapped_column(String(30))
    unit_price: Mapped[Decimal] = mapped_column(UNIT_PRICE)
    discount_percent: Mapped[Decimal] = mapped_column(PERCENT, default=Decimal("0"))
    vat_rate: Mapped[Decimal] = mapped_column(PERCENT)

    quote: Mapped[Quote] = relationship(back_populates="lines")


class OrderState(enum.StrEnum):
    OPEN = "open"
    HANDED_OFF = "handed_off"  # the ERP has taken it (it invoices)
    CANCELLED = "cancelled"


class Order(Base):
    """An order (Auftrag) with its confirmation (Auftragsbestätigung); numbered when created."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(60), unique=True)
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quotes.id", ondelete="SET NULL"), index=True)
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunities.id", ondelete="SET NULL"),
                                                       index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"), index=True)
    state: Mapped[OrderState] = mapped_column(str_enum(OrderState, "order_state"), default=OrderState.OPEN,
                                              index=True)
    language: Mapped[str] = mapped_column(String(5), default="de")
    order_date: Mapped[date]
    address: Mapped[list[str]] = mapped_column(default=list)
    net_total: Mapped[Decimal] = mapped_column(MONEY)
    vat_total: Mapped[Decimal] = mapped_column(MONEY)
    gross_total: Mapped[Decimal] = mapped_column(MONEY)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)  # the ERP polls by it

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderLine.position")


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"))
    product_number: Mapped[str | None] = mapped_column(String(50))  # as it was: the ERP matches by number
    text: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(QUANTITY)
    unit: Mapped[str] = mapped_column(String(30))
    unit_price: Mapped[Decimal] = mapped_column(UNIT_PRICE)
    discount_percent: Mapped[Decimal] = mapped_column(PERCENT, default=Decimal("0"))
    vat_rate: Mapped[Decimal] = mapped_column(PERCENT)
    net: Mapped[Decimal] = mapped_column(MONEY)  # the line's rounded net amount

    order: Mapped[Order] = relationship(back_populates="lines")


class NumberCounter(Base):
    """The last number handed out per series (``quote``, ``order``) and year. Incremented in the transaction
    that uses the number (the row lock makes concurrent allocations wait, never fail), so numbers are unique,
    never reused and have no gaps."""

    __tablename__ = "number_counters"

    series: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    last: Mapped[int] = mapped_column(default=0)


class InteractionOpportunity(Base):
    """A timeline entry that belongs to a deal (a reply to the quote mail, a mail naming the quote number),
    with the reason; the entry stays on the contact's timeline as well."""

    __tablename__ = "interaction_opportunities"

    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("opportunities.id", ondelete="CASCADE"), primary_key=True)
    occurred_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_interaction_opportunities_timeline", "opportunity_id", "occurred_at"),)


class Event(Base):
    """Something other systems hear about (``order.created``), written in the same transaction as the change;
    the outbound webhooks deliver it after commit. ``id`` is the stable event id receivers deduplicate by."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(60), index=True)
    subject_type: Mapped[str] = mapped_column(String(30))
    subject_id: Mapped[int]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    # A person's events are found for the data-protection export and erasure.
    __table_args__ = (Index("ix_events_subject", "subject_type", "subject_id"),)

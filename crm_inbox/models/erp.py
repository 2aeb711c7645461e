"""What the ERP tells the CRM: invoices (with the order they bill and optionally their PDF) and payments.
The ERP is the master of both; the CRM shows them on the customer's timeline and flags overdue ones."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_inbox.models.base import Base, str_enum, utcnow
from crm_inbox.models.sales import MONEY


class InvoiceStatus(enum.StrEnum):
    OPEN = "open"
    PAID = "paid"
    OVERDUE = "overdue"
    CANCELLED = "cancelled"


class Invoice(Base):
    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(50), unique=True)  # the ERP's invoice number: the upsert key
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"), index=True)
    order_number: Mapped[str | None] = mapped_column(String(50))  # as the ERP sent it
    customer_number: Mapped[str | None] = mapped_column(String(50))  # as the ERP sent it
    issued_on: Mapped[date]
    due_on: Mapped[date | None] = mapped_column(index=True)
    net: Mapped[Decimal] = mapped_column(MONEY)
    gross: Mapped[Decimal] = mapped_column(MONEY)
    paid: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    status: Mapped[InvoiceStatus] = mapped_column(str_enum(InvoiceStatus, "invoice_status"), index=True)
    # The timeline entry (a document) showing this invoice, with the PDF as its attachment when sent.
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100), unique=True)  # the ERP's id: posting twice is harmless
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    paid_on: Mapped[date]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

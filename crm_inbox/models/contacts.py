"""Companies and contacts (persons), with their e-mail addresses, phone numbers and company domains."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from crm_inbox.models.base import Base, str_enum, utcnow

if TYPE_CHECKING:
    from crm_inbox.models.staff import StaffUser


class Role(enum.StrEnum):
    LEAD = "lead"
    PROSPECT = "prospect"
    CUSTOMER = "customer"
    DEBTOR = "debtor"
    SUPPLIER = "supplier"
    OTHER = "other"


class Category(enum.StrEnum):
    A = "A"
    B = "B"
    C = "C"


class Salutation(enum.StrEnum):
    """How a person is addressed in letters: "Sehr geehrte Frau …", "Sehr geehrter Herr …", or by name."""

    FRAU = "frau"
    HERR = "herr"
    NONE = "none"


class CustomerType(enum.StrEnum):
    B2B = "B2B"
    B2C = "B2C"



def search_key(text: str | None) -> str | None:
    """Case-folded text for case-insensitive search on every backend (SQLite folds ASCII only)."""
    return " ".join(text.casefold().split()) if text else None


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), index=True)
    search_name: Mapped[str | None] = mapped_column(String(300), index=True)
    industry: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[str | None] = mapped_column(String(50))
    customer_type: Mapped[CustomerType | None] = mapped_column(str_enum(CustomerType, "customer_type"))
    category: Mapped[Category | None] = mapped_column(str_enum(Category, "category"))
    tags: Mapped[list[str]] = mapped_column(default=list)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    origin: Mapped[str] = mapped_column(String(30), default="manual")
    customer_number: Mapped[str | None] = mapped_column(String(50), index=True)  # the ERP's Kundennummer
    # The postal (billing) address; quotes and orders are addressed with it.
    street: Mapped[str | None] = mapped_column(String(200))
    postcode: Mapped[str | None] = mapped_column(String(20), index=True)
    city: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))  # ISO 3166 code
    # Where goods go, when not to the billing address.
    delivery_street: Mapped[str | None] = mapped_column(String(200))
    delivery_postcode: Mapped[str | None] = mapped_column(String(20))
    delivery_city: Mapped[str | None] = mapped_column(String(100))
    delivery_country: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    domains: Mapped[list[CompanyDomain]] = relationship(
        back_populates="company", cascade="all, delete-orphan", order_by="CompanyDomain.id")
    phones: Mapped[list[CompanyPhone]] = relationship(
        back_populates="company", cascade="all, delete-orphan", order_by="CompanyPhone.id")
    contacts: Mapped[list[Contact]] = relationship(back_populates="company")

    @validates("name")
    def _set_search_name(self, _key: str, value: str) -> str:
        self.search_name = search_key(value)
        return value


class CompanyDomain(Base):
    """A mail domain owned by one company (people at it join the company)."""

    __tablename__ = "company_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    domain: Mapped[str] = mapped_column(String(255), unique=True)

    company: Mapped[Company] = relationship(back_populates="domains")


class CompanyPhone(Base):
    __tablename__ = "company_phones"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    label: Mapped[str | None] = mapped_column(String(50))
    raw: Mapped[str] = mapped_column(String(100))
    e164: Mapped[str | None] = mapped_column(String(32), index=True)
    # "+49 89 4711-0" is a switchboard: the company owns every extension "+49 89 4711-…".
    block_prefix: Mapped[str | None] = mapped_column(String(32), index=True)

    company: Mapped[Company] = relationship(back_populates="phones")


class Contact(Base):
    """A person. "Dirty CRM": nothing is mandatory beyond what arrived, so even the name may be missing."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(300), index=True)
    search_name: Mapped[str | None] = mapped_column(String(300), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"), index=True)
    role: Mapped[Role] = mapped_column(str_enum(Role, "contact_role"), default=Role.LEAD)
    category: Mapped[Category | None] = mapped_column(str_enum(Category, "category"))
    tags: Mapped[list[str]] = mapped_column(default=list)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    origin: Mapped[str] = mapped_column(String(30), default="manual")
    origin_detail: Mapped[str | None] = mapped_column(Text)
    salutation: Mapped[Salutation | None] = mapped_column(str_enum(Salutation, "salutation"))
    title: Mapped[str | None] = mapped_column(String(50))  # "Dr.", "Prof. Dr."
    language: Mapped[str | None] = mapped_column(String(5))  # "de" or "en"; None: the company's default
    customer_number: Mapped[str | None] = mapped_column(String(50), index=True)  # the ERP's Kundennummer
    # A person's own postal address (private customers; a company's people use the company's).
    street: Mapped[str | None] = mapped_column(String(200))
    postcode: Mapped[str | None] = mapped_column(String(20), index=True)
    city: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    company: Mapped[Company | None] = relationship(back_populates="contacts")
    owner: Mapped[StaffUser | None] = relationship()
    emails: Mapped[list[ContactEmail]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", order_by="ContactEmail.id")
    phones: Mapped[list[ContactPhone]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", order_by="ContactPhone.id")

    @validates("name")
    def _set_search_name(self, _key: str, value: str | None) -> str | None:
        self.search_name = search_key(value)
        return value

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        return self.emails[0].email if self.emails else f"Contact {self.id}"


class ContactEmail(Base):
    """One address of a contact, stored lower-cased. Not unique: a shared address is ambiguous, not an error."""

    __tablename__ = "contact_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    label: Mapped[str | None] = mapped_column(String(50))
    bouncing: Mapped[bool] = mapped_column(default=False)

    contact: Mapped[Contact] = relationship(back_populates="emails")


class ContactPhone(Base):
    """A phone number as typed (``raw``) and as E.164 for matching (None when it could not be parsed)."""

    __tablename__ = "contact_phones"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    label: Mapped[str | None] = mapped_column(String(50))
    raw: Mapped[str] = mapped_column(String(100))
    e164: Mapped[str | None] = mapped_column(String(32), index=True)

    contact: Mapped[Contact] = relationship(back_populates="phones")


Index("ix_contacts_role", Contact.role)

"""Finding contacts, companies and mail by what staff type: one implementation for the pages and the API.

"Contains" searches use LIKE with its own wildcards (``%``, ``_``) and the escape character taken literally,
so ``%`` finds a percent sign rather than everybody. A query is at most ``MAX_QUERY`` characters: nobody
types more, and a very long LIKE pattern is refused by SQLite (a 500 before this limit).
"""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.sql.elements import SQLCoreOperations

from crm_inbox.errors import ValidationError
from crm_inbox.models import Company, CompanyDomain, Contact, ContactEmail, ContactPhone, Interaction
from crm_inbox.models.contacts import search_key
from crm_inbox.phone import to_e164

MAX_QUERY = 200
# Digits and what people type between them; with five digits or more it may be a phone number.
_PHONE_QUERY = re.compile(r"^\+?[\d\s()/.\-]+$")
_PHONE_MIN_DIGITS = 5


def query_text(raw: str | None, field: str = "q") -> str:
    """The search as typed, without surrounding blanks; a ValidationError (400) when it is too long."""
    text = (raw or "").strip()
    if len(text) > MAX_QUERY:
        raise ValidationError(field, f"must be at most {MAX_QUERY} characters")
    return text


def like_contains(text: str) -> str:
    """A LIKE pattern for "contains ``text``" (use with ``escape="\\\\"``), LIKE's wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: SQLCoreOperations[str | None] | SQLCoreOperations[str], text: str) -> ColumnElement[bool]:
    return column.like(like_contains(text), escape="\\")


def phone_query(q: str, region: str) -> str | None:
    """The E.164 number when ``q`` looks like a phone number typed any way ("0171/234 5678", "+49 171…")."""
    if _PHONE_QUERY.match(q) and sum(ch.isdigit() for ch in q) >= _PHONE_MIN_DIGITS:
        return to_e164(q, region)
    return None


def contact_matches(q: str, region: str) -> ColumnElement[bool]:
    """People by part of their name, of their company's name or of an address; by a phone number or by the
    ERP's customer number (whole).

    Names are matched on their case-folded copy, so "özdemir" finds "Özdemir" on SQLite too."""
    name = search_key(q) or ""
    conditions: list[ColumnElement[bool]] = [
        _contains(Contact.search_name, name),
        Contact.id.in_(select(ContactEmail.contact_id).where(_contains(ContactEmail.email, q.strip().lower()))),
        Contact.company_id.in_(select(Company.id).where(_contains(Company.search_name, name))),
        Contact.customer_number == q.strip(),  # the ERP's customer number, as staff read it off an invoice
    ]
    if e164 := phone_query(q, region):
        conditions.append(Contact.id.in_(select(ContactPhone.contact_id).where(ContactPhone.e164 == e164)))
    return or_(*conditions)


def company_matches(q: str) -> ColumnElement[bool]:
    """Companies by part of their name, or of one of their mail domains (``mueller-maschinenbau`` finds it), or
    by the ERP's customer number (whole)."""
    return or_(_contains(Company.search_name, search_key(q) or ""),
               Company.customer_number == q.strip(),  # the ERP's customer number
               Company.id.in_(select(CompanyDomain.company_id)
                              .where(_contains(CompanyDomain.domain, q.strip().lower().lstrip("@")))))


def subject_matches(q: str) -> ColumnElement[bool]:
    """Interactions whose subject contains ``q`` (reads every subject: asked for on purpose, not as you type)."""
    return _contains(Interaction.subject, q)


def contacts_by_name(query: Select[Contact]) -> Select[Contact]:
    """The order of search results people read: by name, nameless last, then oldest first."""
    return query.order_by(Contact.search_name.is_(None), Contact.search_name, Contact.id)

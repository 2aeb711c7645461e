"""What an import matches rows against, loaded in a few queries up front (customer numbers, e-mail addresses,
E.164 numbers, company keys and mail domains → ids), and the current values of the records rows match."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_inbox.imports.matching import company_key
from crm_inbox.models import Company, CompanyDomain, CompanyPhone, Contact, ContactEmail, ContactPhone

CHUNK = 900  # ids per IN (…) query: well below SQLite's limit on bound parameters

CONTACT_COLUMNS = ("name", "salutation", "title", "customer_number", "street", "postcode", "city", "country",
                   "category", "role", "company_id", "tags", "fields")
COMPANY_COLUMNS = ("name", "customer_number", "street", "postcode", "city", "country", "category", "industry",
                   "tags", "fields")


Ids = dict[str, "int | tuple[int, ...]"]  # one id, or a tuple when several records share the key (less memory)


@dataclass
class KeyIndex:
    contact_cn: Ids = field(default_factory=dict)
    contact_email: Ids = field(default_factory=dict)
    contact_phone: Ids = field(default_factory=dict)
    company_key: Ids = field(default_factory=dict)
    company_cn: Ids = field(default_factory=dict)
    domain_owner: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> KeyIndex:
        index = cls()
        for ident, number in session.execute(select(Contact.id, Contact.customer_number)
                                             .where(Contact.customer_number.is_not(None))):
            _add(index.contact_cn, (number or "").strip(), ident)
        for email, ident in session.execute(select(ContactEmail.email, ContactEmail.contact_id)):
            _add(index.contact_email, email, ident)
        for e164, ident in session.execute(select(ContactPhone.e164, ContactPhone.contact_id)
                                           .where(ContactPhone.e164.is_not(None))):
            _add(index.contact_phone, e164 or "", ident)
        for ident, name, number in session.execute(select(Company.id, Company.name, Company.customer_number)):
            _add(index.company_key, company_key(name), ident)
            if number:
                _add(index.company_cn, number.strip(), ident)
        index.domain_owner = {d: c for d, c in session.execute(select(CompanyDomain.domain, CompanyDomain.company_id))}
        return index


def _add(table: Ids, key: str, ident: int) -> None:
    if not key:
        return
    found = table.get(key)
    if found is None:
        table[key] = ident
    elif isinstance(found, int):
        if found != ident:
            table[key] = (found, ident)
    elif ident not in found:
        table[key] = (*found, ident)


def ids(table: Ids, key: str) -> tuple[int, ...]:
    found = table.get(key)
    return () if found is None else (found,) if isinstance(found, int) else found


def chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    batch = sorted(set(ids))
    for start in range(0, len(batch), CHUNK):
        yield batch[start:start + CHUNK]


@dataclass
class State:
    """A record's current values: the columns an import may change, and its addresses and numbers."""

    values: dict[str, Any]
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)  # as typed (raw)
    phone_keys: set[str] = field(default_factory=set)  # E.164, or the raw text when it has none
    domains: list[str] = field(default_factory=list)
    updated_at: datetime | None = None  # undo puts it back when it takes back all of an import's changes


def contact_states(session: Session, ids: Iterable[int]) -> dict[int, State]:
    out: dict[int, State] = {}
    columns = [getattr(Contact, c) for c in CONTACT_COLUMNS]
    for batch in chunks(ids):
        for row in session.execute(select(Contact.id, Contact.updated_at, *columns).where(Contact.id.in_(batch))):
            out[row[0]] = State(dict(zip(CONTACT_COLUMNS, row[2:], strict=True)), updated_at=row[1])
        for ident, email in session.execute(select(ContactEmail.contact_id, ContactEmail.email)
                                            .where(ContactEmail.contact_id.in_(batch)).order_by(ContactEmail.id)):
            out[ident].emails.append(email)
        for ident, raw, e164 in session.execute(select(ContactPhone.contact_id, ContactPhone.raw, ContactPhone.e164)
                                                .where(ContactPhone.contact_id.in_(batch)).order_by(ContactPhone.id)):
            out[ident].phones.append(raw)
            out[ident].phone_keys.add(e164 or raw)
    return out


def company_states(session: Session, ids: Iterable[int]) -> dict[int, State]:
    out: dict[int, State] = {}
    columns = [getattr(Company, c) for c in COMPANY_COLUMNS]
    for batch in chunks(ids):
        for row in session.execute(select(Company.id, Company.updated_at, *columns).where(Company.id.in_(batch))):
            out[row[0]] = State(dict(zip(COMPANY_COLUMNS, row[2:], strict=True)), updated_at=row[1])
        for ident, domain in session.execute(select(CompanyDomain.company_id, CompanyDomain.domain)
                                             .where(CompanyDomain.company_id.in_(batch)).order_by(CompanyDomain.id)):
            out[ident].domains.append(domain)
        for ident, raw, e164 in session.execute(select(CompanyPhone.company_id, CompanyPhone.raw, CompanyPhone.e164)
                                                .where(CompanyPhone.company_id.in_(batch)).order_by(CompanyPhone.id)):
            out[ident].phones.append(raw)
            out[ident].phone_keys.add(e164 or raw)
    return out

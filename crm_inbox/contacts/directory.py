"""Who is who: finds staff and contacts by address and companies by domain (database reads only)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, String, bindparam, cast, func, literal, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from crm_inbox.config import MailSettings
from crm_inbox.models import CompanyDomain, Contact, ContactEmail, StaffEmail
from crm_inbox.models.contacts import search_key

_STAFF = select(StaffEmail.email, StaffEmail.staff_id)
# An IN list, also on PostgreSQL: with one array parameter PostgreSQL planned the statement again for every
# message (its plan for "any array" costs more than for the few addresses given); with one parameter per
# address it keeps one plan per list length.
_BY_EMAIL = (select(ContactEmail.email, Contact.id, Contact.name, Contact.company_id, Contact.owner_id)
             .join(Contact, Contact.id == ContactEmail.contact_id)
             .where(ContactEmail.email.in_(bindparam("emails", expanding=True))))
_REFS = select(Contact.id, Contact.name, Contact.company_id, Contact.owner_id).where(
    Contact.id.in_(bindparam("ids", expanding=True)))
_BY_NAME = select(Contact.id).where(Contact.search_name == bindparam("key")).limit(5)
_COMPANY_BY_DOMAIN = select(CompanyDomain.company_id).where(CompanyDomain.domain == bindparam("domain"))


@dataclass(frozen=True)
class ContactRef:
    """What processing needs of a contact, read in one query instead of loading whole objects."""

    id: int
    name: str | None
    company_id: int | None
    owner_id: int | None


def staff_version() -> ColumnElement[Any]:
    """A column for a PostgreSQL query that is read anyway: a digest of every staff address, so the process's
    copy of the staff directory is used only while it is exactly what the database holds (a few dozen rows
    hashed by the server cost microseconds; a round trip to read them costs a fraction of a millisecond)."""
    pair = func.concat(StaffEmail.email, literal(":"), StaffEmail.staff_id)
    digest = func.md5(func.coalesce(func.string_agg(pair, aggregate_order_by(literal(","), StaffEmail.id)),
                                    literal("")))
    return select(digest).scalar_subquery().label("staff_digest")


def staff_version_sqlite() -> ColumnElement[Any]:
    """``staff_version`` for SQLite, which has no md5: every address itself (a few dozen, read in-process)."""
    ordered = select(StaffEmail.email, StaffEmail.staff_id).order_by(StaffEmail.id).subquery()
    pairs = func.group_concat(ordered.c.email + literal(":") + cast(ordered.c.staff_id, String), literal(","))
    return select(func.coalesce(pairs, literal(""))).scalar_subquery().label("staff_digest")


_STAFF_WITH_DIGEST = {
    "postgresql": select(StaffEmail.email, StaffEmail.staff_id, staff_version()),
    "sqlite": select(StaffEmail.email, StaffEmail.staff_id, staff_version_sqlite()),
}

# Per process: the staff addresses by the digest they were read with.
_STAFF_CACHE: dict[str, dict[str, int]] = {}
_STAFF_CACHE_GUARD = threading.Lock()


@dataclass
class Directory:
    """A read view for one unit of work: staff addresses are loaded once (or taken from the process's copy when
    ``staff_version`` says it is current), contacts on demand."""

    session: Session
    mail: MailSettings
    staff_version: str | None = None
    _staff: dict[str, int] | None = None
    _refs: dict[int, ContactRef] = field(default_factory=dict)

    @property
    def staff_by_email(self) -> dict[str, int]:
        if self._staff is None:
            if self.staff_version is not None:
                with _STAFF_CACHE_GUARD:
                    cached = _STAFF_CACHE.get(self.staff_version)
                if cached is not None:
                    self._staff = cached
                    return cached
            if self.staff_version is None:
                rows = self.session.connection().execute(_STAFF).all()
                self._staff = {email.lower(): staff_id for email, staff_id in rows}
                return self._staff
            # The rows with their digest in one statement (one snapshot): kept under what they really are, even
            # if staff changed since the row's digest was read.
            connection = self.session.connection()
            rows = connection.execute(_STAFF_WITH_DIGEST[connection.dialect.name]).all()
            self._staff = {row.email.lower(): row.staff_id for row in rows}
            with _STAFF_CACHE_GUARD:
                _STAFF_CACHE.clear()  # one directory is current; older ones are never asked for again
                _STAFF_CACHE[rows[0].staff_digest if rows else self.staff_version] = self._staff
        return self._staff

    def is_staff(self, email: str) -> bool:
        """A staff user's address, or any address at one of the company's own domains."""
        email = email.lower()
        return email in self.staff_by_email or email.rpartition("@")[2] in self.mail.staff_domains

    def is_staff_user(self, email: str) -> bool:
        """The address of a staff user (a person), not merely an address at one of our domains."""
        return email.lower() in self.staff_by_email

    def contacts_by_email(self, emails: Iterable[str]) -> dict[str, list[int]]:
        wanted = sorted({e.lower() for e in emails if e})
        found: dict[str, list[int]] = defaultdict(list)
        if wanted:
            connection = self.session.connection()
            rows = connection.execute(_BY_EMAIL, {"emails": wanted}).all()
            for email, contact_id, name, company_id, owner_id in rows:
                self._refs[contact_id] = ContactRef(contact_id, name, company_id, owner_id)
                if contact_id not in found[email]:
                    found[email].append(contact_id)
        return dict(found)

    def contact_refs(self, ids: Iterable[int]) -> dict[int, ContactRef]:
        """The contacts' references; those an address look-up of this unit of work found cost no query."""
        wanted = set(ids)
        missing = sorted(wanted - self._refs.keys())
        if missing:
            rows = self.session.execute(_REFS, {"ids": missing}).all()
            self._refs.update((row.id, ContactRef(row.id, row.name, row.company_id, row.owner_id)) for row in rows)
        return {i: self._refs[i] for i in wanted if i in self._refs}

    def contacts_by_name(self, name: str) -> list[int]:
        key = search_key(name)
        if not key:
            return []
        return list(self.session.execute(_BY_NAME, {"key": key}).scalars())

    def company_for_domain(self, domain: str) -> int | None:
        domain = domain.lower()
        if not domain or domain in self.mail.free_mail_domains:
            return None
        return self.session.execute(_COMPANY_BY_DOMAIN, {"domain": domain}).scalar_one_or_none()

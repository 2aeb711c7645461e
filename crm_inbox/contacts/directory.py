"""Who is who: finds staff and contacts by address and companies by domain (database reads only)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from crm_inbox.config import MailSettings
from crm_inbox.models import CompanyDomain, Contact, ContactEmail, StaffEmail
from crm_inbox.models.contacts import search_key

_STAFF = select(StaffEmail.email, StaffEmail.staff_id)
_BY_EMAIL = select(ContactEmail.email, ContactEmail.contact_id).where(
    ContactEmail.email.in_(bindparam("emails", expanding=True)))
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


@dataclass
class Directory:
    """A read view for one unit of work: staff addresses are loaded once, contacts on demand."""

    session: Session
    mail: MailSettings
    _staff: dict[str, int] | None = None

    @property
    def staff_by_email(self) -> dict[str, int]:
        if self._staff is None:
            rows = self.session.execute(_STAFF).all()
            self._staff = {email.lower(): staff_id for email, staff_id in rows}
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
            rows = self.session.execute(_BY_EMAIL, {"emails": wanted}).all()
            for email, contact_id in rows:
                if contact_id not in found[email]:
                    found[email].append(contact_id)
        return dict(found)

    def contact_refs(self, ids: Iterable[int]) -> dict[int, ContactRef]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = self.session.execute(_REFS, {"ids": wanted}).all()
        return {row.id: ContactRef(row.id, row.name, row.company_id, row.owner_id) for row in rows}

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

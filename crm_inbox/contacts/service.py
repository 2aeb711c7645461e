"""Creating and changing contacts and companies (leads from mail, and staff edits through the API)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from crm_inbox.contacts.directory import Directory
from crm_inbox.errors import Conflict, ValidationError
from crm_inbox.ids import ref_id
from crm_inbox.mail.addresses import Address, normalise_email
from crm_inbox.models import (
    Category,
    Company,
    CompanyDomain,
    CompanyPhone,
    Contact,
    ContactEmail,
    ContactPhone,
    CustomerType,
    Role,
)
from crm_inbox.phone import block_prefix, to_e164
from crm_inbox.text import single_line


def lead_name(address: Address) -> str | None:
    """A lead's name from the display name; none when the display name is just the address again."""
    name = single_line(address.name)  # an encoded-word can carry CR/LF into a display name
    if not name or normalise_email(name) or "@" in name:
        return None
    if "," in name and name.count(",") == 1:  # "Müller, Klaus" as Outlook writes it
        last, first = (p.strip() for p in name.split(","))
        if first and last and " " not in last:
            return f"{first} {last}"
    return name


def lock_new_addresses(session: Session, emails: Iterable[str]) -> bool:
    """Before making leads for addresses nobody has: with several nodes on one PostgreSQL database, two mails
    from one new sender processed at once would each make a lead. A transaction-scoped advisory lock per
    address (taken in sorted order, so two messages never wait for each other) makes the second wait for the
    first's commit; looking again then finds the first's lead. True when locks were taken (and a second look
    is due); SQLite has one writing process, so nothing to lock there."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    for email in sorted({e.lower() for e in emails}):
        session.execute(_ADVISORY_LOCK, {"key": f"lead:{email}"})
    return True


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


def create_lead(session: Session, directory: Directory, address: Address, origin_detail: str, *,
                new_company_for_domain: bool = False) -> Contact:
    """An unknown sender becomes a lead with whatever is known (dirty CRM: nothing is mandatory).

    A person at a company's domain joins it; free-mail domains never create or join a company.
    """
    company_id = directory.company_for_domain(address.domain)
    if company_id is None and new_company_for_domain and address.domain not in directory.mail.free_mail_domains:
        company = Company(name=address.domain, origin="mail", tags=[], fields={})
        company.domains.append(CompanyDomain(domain=address.domain))
        session.add(company)
        session.flush()
        company_id = company.id
    contact = Contact(name=lead_name(address), role=Role.LEAD, origin="mail", origin_detail=origin_detail,
                      company_id=company_id, tags=[], fields={})
    contact.emails.append(ContactEmail(email=address.email))
    session.add(contact)
    session.flush()
    return contact


# --- staff edits (API) ---

def _choice(field: str, enum_cls: Any, value: Any) -> Any:
    if value is None:
        return None
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise ValidationError(field, f"must be one of {allowed}") from None


def _str(field: str, value: Any, *, max_len: int = 300, required: bool = False) -> str | None:
    """A name or similar one-line value: control characters (CR/LF/TAB…) become spaces."""
    if value is not None and not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    value = single_line(value) if value is not None else None
    if not value:
        if required:
            raise ValidationError(field, "is required")
        return None
    if len(value) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters")
    return value


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValidationError("tags", "must be a list of strings")
    if any(len(t) > 100 for t in value):
        raise ValidationError("tags", "a tag must be at most 100 characters")
    return sorted({single_line(t) for t in value if single_line(t)})


def _fields(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("fields", "must be an object")
    for key, val in value.items():
        if not isinstance(val, str | int | float | bool) and val is not None:
            raise ValidationError(f"fields.{key}", "must be a string, number, boolean or null")
    return dict(value)


def _emails(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise ValidationError("emails", "must be a list of e-mail addresses")
    out: list[str] = []
    for raw in value:
        email = normalise_email(raw)
        if not email or len(email) > 320:
            raise ValidationError("emails", f"{raw!r} is not an e-mail address")
        if email not in out:
            out.append(email)
    return out


def _phones(value: Any, region: str) -> list[tuple[str, str | None]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ValidationError("phones", "must be a list of phone numbers")
    if any(len(p) > 100 for p in value):
        raise ValidationError("phones", "a phone number must be at most 100 characters")
    return [(p.strip(), to_e164(p, region)) for p in value if p.strip()]


def _domains(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
        raise ValidationError("domains", "must be a list of domain names")
    out = []
    for raw in value:
        domain = raw.strip().lower().lstrip("@")
        if not domain or "." not in domain or " " in domain or "@" in domain or len(domain) > 253:
            raise ValidationError("domains", f"{raw!r} is not a domain name")
        if domain not in out:
            out.append(domain)
    return out


def _check_keys(data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")


CONTACT_FIELDS = ("name", "company_id", "emails", "phones", "role", "category", "tags", "fields", "owner_id")
COMPANY_FIELDS = ("name", "domains", "phones", "industry", "size", "customer_type", "category", "tags", "fields")


def apply_contact(session: Session, contact: Contact, data: Mapping[str, Any], region: str) -> dict[str, Any]:
    """Set the given fields on ``contact``; returns {field: new value} for the audit log."""
    _check_keys(data, CONTACT_FIELDS)
    changed: dict[str, Any] = {}
    if "name" in data:
        contact.name = _str("name", data["name"])
        changed["name"] = contact.name
    if "company_id" in data:
        company_id = ref_id("company_id", data["company_id"])
        if company_id is not None and session.get(Company, company_id) is None:
            raise ValidationError("company_id", "no such company")
        contact.company_id = company_id
        changed["company_id"] = company_id
    if "role" in data:
        contact.role = _choice("role", Role, data["role"]) or Role.LEAD
        changed["role"] = contact.role.value
    if "category" in data:
        contact.category = _choice("category", Category, data["category"])
        changed["category"] = contact.category.value if contact.category else None
    if "tags" in data:
        contact.tags = _tags(data["tags"])
        changed["tags"] = contact.tags
    if "fields" in data:
        contact.fields = _fields(data["fields"])
        changed["fields"] = contact.fields
    if "owner_id" in data:
        from crm_inbox.models import StaffUser

        owner = ref_id("owner_id", data["owner_id"])
        if owner is not None and session.get(StaffUser, owner) is None:
            raise ValidationError("owner_id", "no such staff user")
        contact.owner_id = owner
        changed["owner_id"] = owner
    if "emails" in data:
        emails = _emails(data["emails"])
        keep = {e.email: e for e in contact.emails}
        contact.emails = [keep.get(e) or ContactEmail(email=e) for e in emails]
        changed["emails"] = emails
    if "phones" in data:
        contact.phones = [ContactPhone(raw=raw, e164=e164) for raw, e164 in _phones(data["phones"], region)]
        changed["phones"] = [raw for raw, _ in _phones(data["phones"], region)]
    return changed


def apply_company(session: Session, company: Company, data: Mapping[str, Any], region: str) -> dict[str, Any]:
    _check_keys(data, COMPANY_FIELDS)
    changed: dict[str, Any] = {}
    if "name" in data:
        company.name = _str("name", data["name"], required=True) or ""
        changed["name"] = company.name
    for key in ("industry", "size"):
        if key in data:
            setattr(company, key, _str(key, data[key], max_len=200))
            changed[key] = getattr(company, key)
    if "customer_type" in data:
        company.customer_type = _choice("customer_type", CustomerType, data["customer_type"])
        changed["customer_type"] = company.customer_type.value if company.customer_type else None
    if "category" in data:
        company.category = _choice("category", Category, data["category"])
        changed["category"] = company.category.value if company.category else None
    if "tags" in data:
        company.tags = _tags(data["tags"])
        changed["tags"] = company.tags
    if "fields" in data:
        company.fields = _fields(data["fields"])
        changed["fields"] = company.fields
    if "domains" in data:
        domains = _domains(data["domains"])
        taken = session.execute(
            select(CompanyDomain.domain).where(CompanyDomain.domain.in_(domains),
                                               CompanyDomain.company_id != (company.id or -1))).scalars().all()
        if taken:
            raise Conflict(f"domain {taken[0]} already belongs to another company")
        keep = {d.domain: d for d in company.domains}
        company.domains = [keep.get(d) or CompanyDomain(domain=d) for d in domains]
        changed["domains"] = domains
    if "phones" in data:
        company.phones = [CompanyPhone(raw=raw, e164=e164, block_prefix=block_prefix(raw, e164))
                          for raw, e164 in _phones(data["phones"], region)]
        changed["phones"] = [raw for raw, _ in _phones(data["phones"], region)]
    return changed


def company_named(session: Session, name: str) -> tuple[Company, bool]:
    """The company a person typed by name: the one with that name (case and umlaut spelling aside), or a
    new one when none has it (returned with True). Several with that name: a ValidationError, never a guess."""
    from crm_inbox.models.contacts import search_key

    wanted = _str("company", name, max_len=300, required=True) or ""
    found = session.execute(select(Company).where(Company.search_name == search_key(wanted)).limit(2)
                            ).scalars().all()
    if len(found) > 1:
        raise ValidationError("company", f"several companies are named {wanted!r}: open the right one and add the "
                                         "person there")
    if found:
        return found[0], False
    company = Company(name=wanted, tags=[], fields={})
    session.add(company)
    session.flush()
    return company, True

"""Creating and changing contacts and companies: leads from mail, and staff edits (API and pages), each
audited here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, bindparam, false, insert, select, text
from sqlalchemy.orm import Session

from crm_inbox import audit, events
from crm_inbox.contacts import payloads
from crm_inbox.contacts.countries import country_code
from crm_inbox.contacts.directory import ContactRef, Directory
from crm_inbox.contacts.inputs import NOT_GIVEN, CompanyChanges, ContactChanges
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
    Salutation,
    StaffUser,
    utcnow,
)
from crm_inbox.models.contacts import search_key
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
    address (taken in sorted order, so two single messages never wait for each other) makes the second wait for
    the first's commit; looking again then finds the first's lead. Several messages in one transaction
    (``runner.process_batch``) take them message by message: two such batches can deadlock, and PostgreSQL's
    deadlock detection ends one, which is then processed a message at a time. True when locks were taken (and a
    second look is due); SQLite has one writing process, so nothing to lock there."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    for email in sorted({e.lower() for e in emails}):
        session.execute(_ADVISORY_LOCK, {"key": f"lead:{email}"})
    return True


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


_CONTACTS = Contact.__table__
_INSERT_LEAD = insert(_CONTACTS).returning(_CONTACTS.c.id)
_INSERT_LEAD_EMAIL = insert(ContactEmail.__table__)
_LEAD_COLUMNS = ("name", "search_name", "company_id", "role", "origin", "origin_detail", "tags", "fields",
                 "created_at", "updated_at")


def _create_lead_pg() -> Select[Any]:
    """PostgreSQL: the lead, its address and its ``contact.created`` event (``events.recorded_along``) as one
    statement of data-modifying WITHs."""
    lead = insert(_CONTACTS).values({c: bindparam(c) for c in _LEAD_COLUMNS}).returning(_CONTACTS.c.id).cte("lead")
    emails = ContactEmail.__table__
    address = insert(emails).from_select(
        ["contact_id", "email", "bouncing"],
        select(lead.c.id, bindparam("email", type_=emails.c.email.type), false())).cte("lead_email")
    return events.recorded_along(lead, "contact.created", "contact").add_cte(address)


_CREATE_LEAD_PG = _create_lead_pg()


def create_lead(session: Session, directory: Directory, address: Address, origin_detail: str, *,
                new_company_for_domain: bool = False) -> ContactRef:
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
        payloads.company_created(session, company)
    # Core statements, no Contact object: the ORM's unit of work for it cost more than the rest of processing
    # the mail, and a new sender is a lead on every mail of a first import or a burst from new addresses.
    name = lead_name(address)
    now = utcnow()
    connection = session.connection()
    values: dict[str, Any] = {
        "name": name, "search_name": search_key(name), "company_id": company_id, "role": Role.LEAD,
        "origin": "mail", "origin_detail": origin_detail, "tags": [], "fields": {}, "created_at": now,
        "updated_at": now}
    if connection.dialect.name == "postgresql":  # one round trip instead of three
        payload = payloads.lead_payload(name, address.email, company_id)
        rows = connection.execute(_CREATE_LEAD_PG, {**values, "email": address.email, "event_payload": payload,
                                                    "event_at": now}).all()
        contact_id = events.fan_out_along(session, rows, "contact.created", "contact", payload, now)
    else:
        contact_id = connection.execute(_INSERT_LEAD, values).scalar_one()
        connection.execute(_INSERT_LEAD_EMAIL, {"contact_id": contact_id, "email": address.email, "bouncing": False})
        payloads.lead_created(session, contact_id, name, address.email, company_id)
    return ContactRef(contact_id, name, company_id, None)


# --- staff edits (API and pages) ---
# The edges hand over typed changes (contacts.inputs); the rules for values live here, and every change is
# audited here with the actor passed in, so a new entry point cannot forget it.

def _choice(field: str, enum_cls: Any, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise ValidationError(field, f"must be one of {allowed}") from None


def _str(field: str, value: str | None, *, max_len: int = 300, required: bool = False) -> str | None:
    """A name or similar one-line value: control characters (CR/LF/TAB…) become spaces."""
    value = single_line(value) if value is not None else None
    if not value:
        if required:
            raise ValidationError(field, "is required")
        return None
    if len(value) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters")
    return value


def _tags(value: tuple[str, ...]) -> list[str]:
    if any(len(t) > 100 for t in value):
        raise ValidationError("tags", "a tag must be at most 100 characters")
    return sorted({single_line(t) for t in value if single_line(t)})


def _emails(value: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for raw in value:
        email = normalise_email(raw)
        if not email or len(email) > 320:
            raise ValidationError("emails", f"{raw!r} is not an e-mail address")
        if email not in out:
            out.append(email)
    return out


def _phones(value: tuple[str, ...], region: str) -> list[tuple[str, str | None]]:
    if any(len(p) > 100 for p in value):
        raise ValidationError("phones", "a phone number must be at most 100 characters")
    return [(p.strip(), to_e164(p, region)) for p in value if p.strip()]


def _domains(value: tuple[str, ...]) -> list[str]:
    out = []
    for raw in value:
        domain = raw.strip().lower().lstrip("@")
        if not domain or "." not in domain or " " in domain or "@" in domain or len(domain) > 253:
            raise ValidationError("domains", f"{raw!r} is not a domain name")
        if domain not in out:
            out.append(domain)
    return out


LANGUAGES = ("de", "en")
# Postal fields and their longest value (the columns' sizes); the country is checked apart.
_POSTAL = {"street": 200, "postcode": 20, "city": 100}


def _country(field: str, value: str | None) -> str | None:
    """An ISO 3166 code, upper-cased ("de" → "DE"); a name ("Deutschland") is refused, not guessed."""
    if value is None or not value.strip():
        return None
    code = country_code(value)
    if code is None:
        raise ValidationError(field, f"{value.strip()[:40]!r} is not a country code: give the two-letter ISO 3166 "
                                     "code, e.g. DE, AT, CH")
    return code


def _language(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if value.strip().lower() not in LANGUAGES:
        raise ValidationError("language", "must be one of " + ", ".join(LANGUAGES))
    return value.strip().lower()


def _address(changes: Any, prefix: str = "") -> dict[str, Any]:
    """The given fields of one postal address (``prefix`` "delivery_" for a company's delivery address),
    checked: {column: new value}."""
    out: dict[str, Any] = {}
    for name, max_len in _POSTAL.items():
        value = getattr(changes, prefix + name)
        if value is not NOT_GIVEN:
            out[prefix + name] = _str(prefix + name, value, max_len=max_len)
    country = getattr(changes, prefix + "country")
    if country is not NOT_GIVEN:
        out[prefix + "country"] = _country(prefix + "country", country)
    return out


def _contact_master(changes: ContactChanges) -> dict[str, Any]:
    """Salutation, title, language, customer number and address, checked before anything changes."""
    out: dict[str, Any] = {}
    if changes.salutation is not NOT_GIVEN:
        out["salutation"] = _choice("salutation", Salutation, changes.salutation)
    if changes.title is not NOT_GIVEN:
        out["title"] = _str("title", changes.title, max_len=50)
    if changes.language is not NOT_GIVEN:
        out["language"] = _language(changes.language)
    if changes.customer_number is not NOT_GIVEN:
        out["customer_number"] = _str("customer_number", changes.customer_number, max_len=50)
    return {**out, **_address(changes)}


def _company_master(changes: CompanyChanges) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if changes.customer_number is not NOT_GIVEN:
        out["customer_number"] = _str("customer_number", changes.customer_number, max_len=50)
    return {**out, **_address(changes), **_address(changes, "delivery_")}


def _set(row: Any, values: dict[str, Any], changed: dict[str, Any]) -> None:
    for column, value in values.items():
        setattr(row, column, value)
        changed[column] = value.value if isinstance(value, Salutation) else value


def _existing(session: Session, model: Any, field: str, ident: int | None, what: str) -> int | None:
    """An id another row is linked by: in the id range and naming a row that exists."""
    ident = ref_id(field, ident)
    if ident is not None and session.get(model, ident) is None:
        raise ValidationError(field, f"no such {what}")
    return ident


def _apply_contact(session: Session, contact: Contact, changes: ContactChanges, region: str) -> dict[str, Any]:
    """Set the given fields on ``contact``; returns {field: new value} for the audit log."""

    master = _contact_master(changes)
    changed: dict[str, Any] = {}
    if changes.name is not NOT_GIVEN:
        contact.name = _str("name", changes.name)
        changed["name"] = contact.name
    if changes.company_id is not NOT_GIVEN:
        contact.company_id = _existing(session, Company, "company_id", changes.company_id, "company")
        changed["company_id"] = contact.company_id
    if changes.role is not NOT_GIVEN:
        contact.role = _choice("role", Role, changes.role) or Role.LEAD
        changed["role"] = contact.role.value
    if changes.category is not NOT_GIVEN:
        contact.category = _choice("category", Category, changes.category)
        changed["category"] = contact.category.value if contact.category else None
    if changes.tags is not NOT_GIVEN:
        contact.tags = _tags(changes.tags)
        changed["tags"] = contact.tags
    if changes.fields is not NOT_GIVEN:
        contact.fields = dict(changes.fields)
        changed["fields"] = contact.fields
    if changes.owner_id is not NOT_GIVEN:
        contact.owner_id = _existing(session, StaffUser, "owner_id", changes.owner_id, "staff user")
        changed["owner_id"] = contact.owner_id
    if changes.emails is not NOT_GIVEN:
        emails = _emails(changes.emails)
        keep = {e.email: e for e in contact.emails}
        contact.emails = [keep.get(e) or ContactEmail(email=e) for e in emails]
        changed["emails"] = emails
    if changes.phones is not NOT_GIVEN:
        phones = _phones(changes.phones, region)
        contact.phones = [ContactPhone(raw=raw, e164=e164) for raw, e164 in phones]
        changed["phones"] = [raw for raw, _ in phones]
    _set(contact, master, changed)
    return changed


def create_contact(session: Session, changes: ContactChanges, region: str, actor: int | None, *,
                   origin: str = "api", origin_detail: str | None = None) -> Contact:
    """A contact staff make (nothing is mandatory: a dirty CRM), audited as made by ``actor``."""
    contact = Contact(origin=origin, origin_detail=origin_detail, tags=[], fields={}, emails=[], phones=[])
    changed = _apply_contact(session, contact, changes, region)
    session.add(contact)
    session.flush()
    # Where it came from stays in the log even when the contact is later merged away or erased.
    audit.record(session, actor, "create", "contact", contact.id,
                 {**changed, "origin_detail": origin_detail} if origin_detail else changed)
    payloads.contact_created(session, contact)
    return contact


def update_contact(session: Session, contact: Contact, changes: ContactChanges, region: str,
                   actor: int | None) -> dict[str, Any]:
    """Change the given fields, audited as changed by ``actor``; returns {field: new value}. Nothing given is
    no change and leaves no audit entry."""
    before = payloads.given_values(contact, changes)
    changed = _apply_contact(session, contact, changes, region)
    session.flush()
    if changed:
        audit.record(session, actor, "update", "contact", contact.id, changed)
    payloads.contact_updated(session, contact, payloads.really_changed(contact, before))
    return changed


def _apply_company(session: Session, company: Company, changes: CompanyChanges, region: str) -> dict[str, Any]:
    master = _company_master(changes)
    changed: dict[str, Any] = {}
    if changes.name is not NOT_GIVEN:
        company.name = _str("name", changes.name, required=True) or ""
        changed["name"] = company.name
    if changes.industry is not NOT_GIVEN:
        company.industry = _str("industry", changes.industry, max_len=200)
        changed["industry"] = company.industry
    if changes.size is not NOT_GIVEN:
        company.size = _str("size", changes.size, max_len=200)
        changed["size"] = company.size
    if changes.customer_type is not NOT_GIVEN:
        company.customer_type = _choice("customer_type", CustomerType, changes.customer_type)
        changed["customer_type"] = company.customer_type.value if company.customer_type else None
    if changes.category is not NOT_GIVEN:
        company.category = _choice("category", Category, changes.category)
        changed["category"] = company.category.value if company.category else None
    if changes.tags is not NOT_GIVEN:
        company.tags = _tags(changes.tags)
        changed["tags"] = company.tags
    if changes.fields is not NOT_GIVEN:
        company.fields = dict(changes.fields)
        changed["fields"] = company.fields
    if changes.domains is not NOT_GIVEN:
        domains = _domains(changes.domains)
        taken = session.execute(
            select(CompanyDomain.domain).where(CompanyDomain.domain.in_(domains),
                                               CompanyDomain.company_id != (company.id or -1))).scalars().all()
        if taken:
            raise Conflict(f"domain {taken[0]} already belongs to another company")
        keep = {d.domain: d for d in company.domains}
        company.domains = [keep.get(d) or CompanyDomain(domain=d) for d in domains]
        changed["domains"] = domains
    if changes.phones is not NOT_GIVEN:
        phones = _phones(changes.phones, region)
        company.phones = [CompanyPhone(raw=raw, e164=e164, block_prefix=block_prefix(raw, e164))
                          for raw, e164 in phones]
        changed["phones"] = [raw for raw, _ in phones]
    _set(company, master, changed)
    return changed


def create_company(session: Session, changes: CompanyChanges, region: str, actor: int | None, *,
                   origin: str = "api") -> Company:
    """A company staff make: it needs a name. Audited as made by ``actor``."""
    if changes.name is NOT_GIVEN:
        raise ValidationError("name", "is required")
    company = Company(origin=origin, tags=[], fields={}, domains=[])
    changed = _apply_company(session, company, changes, region)
    session.add(company)
    session.flush()
    audit.record(session, actor, "create", "company", company.id, changed)
    payloads.company_created(session, company)
    return company


def update_company(session: Session, company: Company, changes: CompanyChanges, region: str,
                   actor: int | None) -> dict[str, Any]:
    """Change the given fields, audited as changed by ``actor``; returns {field: new value}."""
    before = payloads.given_values(company, changes)
    changed = _apply_company(session, company, changes, region)
    session.flush()
    if changed:
        audit.record(session, actor, "update", "company", company.id, changed)
    payloads.company_updated(session, company, payloads.really_changed(company, before))
    return changed


def company_named(session: Session, name: str, actor: int | None) -> tuple[Company, bool]:
    """The company a person typed by name: the one with that name (case and umlaut spelling aside), or a
    new one when none has it (returned with True, audited as made by ``actor``). Several with that name: a
    ValidationError, never a guess."""

    wanted = _str("company", name, max_len=300, required=True) or ""
    found = session.execute(select(Company).where(Company.search_name == search_key(wanted)).limit(2)
                            ).scalars().all()
    if len(found) > 1:
        raise ValidationError("company", f"several companies are named {wanted!r}: open the right one and add the "
                                         "person there")
    if found:
        return found[0], False
    company = Company(name=wanted, tags=[], fields={}, domains=[])
    session.add(company)
    session.flush()
    audit.record(session, actor, "create", "company", company.id, {"name": company.name})
    payloads.company_created(session, company)
    return company, True

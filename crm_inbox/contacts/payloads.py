"""What other systems hear about contacts and companies: the event payloads (``contact.created``,
``company.updated``, …), JSON-ready, and the calls that record them. One shape for every event of a kind, so
a receiver reads ``contact.created`` and ``contact.updated`` alike; personal data beyond the identifiers
(address, free fields, notes) stays out: a receiver that wants it asks the API."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from crm_inbox import events
from crm_inbox.inputs import NOT_GIVEN
from crm_inbox.models import Company, Contact, Role


def contact_payload(contact: Contact) -> dict[str, Any]:
    """``{"id", "name", "emails", "phones", "company_id", "role", "customer_number"}`` (numbers in E.164 when
    they parse, else as typed)."""
    return {"id": contact.id, **_contact_fields(contact.name, [e.email for e in contact.emails],
                                                [p.e164 or p.raw for p in contact.phones], contact.company_id,
                                                contact.role, contact.customer_number)}


def _contact_fields(name: str | None, emails: list[str], phones: list[str], company_id: int | None,
                    role: Role | None, customer_number: str | None) -> dict[str, Any]:
    return {"name": name, "emails": emails, "phones": phones, "company_id": company_id,
            "role": role.value if role is not None else None, "customer_number": customer_number}


def company_payload(company: Company) -> dict[str, Any]:
    """``{"id", "name", "customer_number", "domains"}``."""
    return {"id": company.id, "name": company.name, "customer_number": company.customer_number,
            "domains": [d.domain for d in company.domains]}


def contact_created(session: Session, contact: Contact) -> None:
    events.record(session, "contact.created", "contact", contact.id, contact_payload(contact))


def lead_created(session: Session, contact_id: int, name: str | None, email: str, company_id: int | None) -> None:
    """``contact.created`` for a lead made from mail, which is written without a Contact object to read."""
    events.record(session, "contact.created", "contact", contact_id,
                  {"id": contact_id, **lead_payload(name, email, company_id)})


def lead_payload(name: str | None, email: str, company_id: int | None) -> dict[str, Any]:
    """A new lead's ``contact.created`` payload but its ``id`` (added by the statement that inserts it on
    PostgreSQL, ``contacts.service.create_lead``)."""
    return _contact_fields(name, [email], [], company_id, Role.LEAD, None)


def contact_updated(session: Session, contact: Contact, changed: Iterable[str]) -> None:
    """``changed``: the field names that changed; nothing changed, no event."""
    names = sorted(set(changed))
    if names:
        events.record(session, "contact.updated", "contact", contact.id,
                      {**contact_payload(contact), "changed": names})


def contact_merged(session: Session, survivor: Contact, merged_id: int) -> None:
    events.record(session, "contact.merged", "contact", survivor.id, {"id": survivor.id, "merged_id": merged_id})


def company_created(session: Session, company: Company) -> None:
    events.record(session, "company.created", "company", company.id, company_payload(company))


def company_updated(session: Session, company: Company, changed: Iterable[str]) -> None:
    names = sorted(set(changed))
    if names:
        events.record(session, "company.updated", "company", company.id,
                      {**company_payload(company), "changed": names})


# --- telling a change from a value given again ---
# A form or a PATCH hands over every field it shows, most of them unchanged: an event says what really changed.

def _value(row: Any, field: str) -> Any:
    if field == "emails":
        return [e.email for e in row.emails]
    if field == "phones":
        return [(p.raw, p.e164) for p in row.phones]
    if field == "domains":
        return [d.domain for d in row.domains]
    value = getattr(row, field)
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


def given_values(row: Contact | Company, changes: Any) -> dict[str, Any]:
    """The current values of the fields ``changes`` (ContactChanges, CompanyChanges) gives, before they apply."""
    return {f.name: _value(row, f.name) for f in dataclasses.fields(changes)
            if getattr(changes, f.name) is not NOT_GIVEN}


def really_changed(row: Contact | Company, before: dict[str, Any]) -> list[str]:
    """The fields of ``before`` (from ``given_values``) whose value is now different."""
    return sorted(field for field, value in before.items() if _value(row, field) != value)

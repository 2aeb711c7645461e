"""Merging a duplicate contact into the one that stays: every link and all history move, nothing is lost.

The duplicate's addresses and numbers join the survivor's (without doubles), its timeline entries, tickets,
calls, reminders, opportunities, quotes and orders point at the survivor (a reminder's link to an opportunity
needs no change: the opportunity itself moves), empty master data is filled from it (the postal address as a
whole, never a street of one with the city of the other), tags are united, and the audit log records what
moved, so the merge can be understood (and undone by hand) later. There is no merge of companies.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from crm_inbox import audit
from crm_inbox.contacts import payloads
from crm_inbox.db import affected
from crm_inbox.errors import ValidationError
from crm_inbox.models import (
    Call,
    CampaignRecipient,
    ConsentRecord,
    Contact,
    ContactEmail,
    ContactPhone,
    ImportChange,
    InteractionContact,
    Invoice,
    Opportunity,
    Order,
    Quote,
    Reminder,
    Ticket,
)

# Every table that points at a contact besides its own addresses and numbers (which go with it) and the
# timeline links (InteractionContact). Merging moves these rows to the survivor; erasure (privacy/) removes
# them, or keeps them detached: quotes and orders (privacy/sales.py), the ERP's invoices (privacy/invoices.py).
# A test fails when a new table references contacts without being listed here.
Reference = (type[Ticket] | type[Call] | type[Reminder] | type[Opportunity] | type[Quote] | type[Order]
             | type[Invoice] | type[ConsentRecord])
CONTACT_REFERENCES: tuple[Reference, ...] = (Ticket, Call, Reminder, Opportunity, Quote, Order, Invoice, ConsentRecord)
# Master data the survivor takes from the duplicate when it has none; the address only as a whole.
_FILL = ("name", "company_id", "category", "owner_id", "salutation", "title", "language", "customer_number")
_ADDRESS = ("street", "postcode", "city", "country")


def _move_campaign_rows(session: Session, survivor_id: int, duplicate_id: int) -> int:
    """The campaigns' send ledgers hold one row per person and campaign: where both got the same campaign, the
    duplicate's row stays in the campaign's figures without a person (the survivor's row speaks for them)."""
    r = CampaignRecipient
    both = select(r.campaign_id).where(r.contact_id == survivor_id).scalar_subquery()
    session.execute(update(r).where(r.contact_id == duplicate_id, r.campaign_id.in_(both)).values(contact_id=None))
    return affected(session.execute(update(r).where(r.contact_id == duplicate_id).values(contact_id=survivor_id)))


def merge_contacts(session: Session, survivor: Contact, duplicate: Contact, staff_id: int | None) -> dict[str, Any]:
    """Move everything of ``duplicate`` to ``survivor`` and delete ``duplicate``; returns what moved."""
    if survivor.id == duplicate.id:
        raise ValidationError("duplicate_id", "a contact cannot be merged into itself")
    moved: dict[str, Any] = {"duplicate": {"id": duplicate.id, "name": duplicate.name,
                                           "emails": [e.email for e in duplicate.emails],
                                           "phones": [p.raw for p in duplicate.phones]}}

    have_emails = {e.email for e in survivor.emails}
    for email in list(duplicate.emails):
        if email.email not in have_emails:
            survivor.emails.append(ContactEmail(email=email.email, label=email.label, bouncing=email.bouncing))
            have_emails.add(email.email)
    have_phones = {p.e164 or p.raw for p in survivor.phones}
    for phone in list(duplicate.phones):
        if (phone.e164 or phone.raw) not in have_phones:
            survivor.phones.append(ContactPhone(raw=phone.raw, e164=phone.e164, label=phone.label))
            have_phones.add(phone.e164 or phone.raw)

    # Timeline links: an interaction linked to both keeps the survivor's link; the rest move over.
    both = select(InteractionContact.interaction_id).where(InteractionContact.contact_id == survivor.id)
    session.execute(delete(InteractionContact).where(InteractionContact.contact_id == duplicate.id,
                                                     InteractionContact.interaction_id.in_(both)))
    moved["timeline_links"] = affected(session.execute(
        update(InteractionContact).where(InteractionContact.contact_id == duplicate.id)
        .values(contact_id=survivor.id)))
    for model in CONTACT_REFERENCES:
        moved[model.__tablename__] = affected(session.execute(
            update(model).where(model.contact_id == duplicate.id).values(contact_id=survivor.id)))
    moved["campaign_recipients"] = _move_campaign_rows(session, survivor.id, duplicate.id)

    # Master data: the survivor's values win; what it lacks comes from the duplicate.
    for attr in _FILL:
        if getattr(survivor, attr) is None and getattr(duplicate, attr) is not None:
            setattr(survivor, attr, getattr(duplicate, attr))
    if all(getattr(survivor, a) is None for a in _ADDRESS):
        for attr in _ADDRESS:
            setattr(survivor, attr, getattr(duplicate, attr))
    survivor.tags = list(dict.fromkeys([*survivor.tags, *duplicate.tags]))
    survivor.fields = {**duplicate.fields, **survivor.fields}
    if survivor.role.value == "lead" and duplicate.role.value != "lead":
        survivor.role = duplicate.role  # a lead that turns out to be a known customer is that customer

    # The imports' records of the duplicate go with it: undo must neither delete a record that later gets its id
    # (SQLite reuses ids) nor write the duplicate's old values into the survivor.
    moved["import_records"] = affected(session.execute(
        delete(ImportChange).where(ImportChange.object_type == "contact", ImportChange.object_id == duplicate.id)))
    session.flush()
    session.delete(duplicate)
    audit.record(session, staff_id, "merge", "contact", survivor.id, moved)
    session.flush()
    payloads.contact_merged(session, survivor, moved["duplicate"]["id"])
    return moved

"""Data protection (DSGVO/GDPR): everything stored about a person as one archive, and erasing the person.

Erasure, what happens (``erase_contact``):

- The contact goes, with its addresses, numbers, free fields and tags.
- Timeline entries (mail, calls, notes, ticket changes) linked only to this person are deleted with their
  attachments. Their raw inbound message keeps nothing but a tombstone: the content hash and the SHA-256
  of its Message-ID (state ``erased``), so a redelivery of that mail is recognised and stays gone.
- An entry shared with other contacts stays for them: the link to the person goes, and the person's
  addresses, numbers and name are replaced by ``[erased]`` in its subject, text, HTML and stored header
  data (from/to/cc, reasons). Its raw message's bytes are deleted (they hold the person's headers); the
  parsed text stays for the others.
- Unassigned mail from one of the person's addresses, and failed or ignored raw mail that mentions one,
  is deleted (tombstoned) as well.
- Tickets of the person (or opened from their address with no other contact) are deleted with their
  events; calls with the person or from their number with no other contact are deleted with their
  timeline entries; reminders about the person or any of those are deleted; mail the CRM sent to the
  person (acknowledgements) is deleted, and their identifiers are redacted in other queued/sent mail.
- The audit log: entries about the person (and about the deleted tickets, reminders, timeline entries)
  lose their details; every other entry is redacted. The erasure itself is recorded with who, when,
  the contact id and counts only.
- The person's company stays (it is not the person's data), as do other contacts.
- Documents uploaded to the person's customer file go with the other timeline entries; files kept in the
  documents directory are deleted after the commit. Documents filed for the company stay with it.
- Sales: the person's opportunities and draft quotes are deleted; quotes that went out and orders are
  commercial letters that must be kept (§ 257 HGB, § 147 AO; GDPR Art. 17 (3)(b)): they stay, detached from
  the person and with the person's line of their address blanked, as do their PDFs, and the summary says so.
  The details, and the opportunities that must stay, are in ``privacy.sales``.
- Invoices from the ERP (with payments and PDFs) are accounting records and stay for ten years, detached from
  the person (``privacy.invoices``).
- Consent records go; the person's addresses and numbers stay only as SHA-256 hashes on the campaigns'
  suppression list, so no campaign writes to them again (``privacy.consent``).
- Campaigns' send-ledger rows of the person stay as anonymous counts (``privacy.campaigns``).

A later mail from the same address is a new message: it makes a fresh lead with nothing of the old data.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import ColumnElement, Text, and_, bindparam, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from crm_inbox import audit
from crm_inbox.config import Settings
from crm_inbox.contacts.lookup import contacts_named_by
from crm_inbox.contacts.merge import CONTACT_REFERENCES
from crm_inbox.contacts.service import lead_name
from crm_inbox.db import affected
from crm_inbox.documents import storage
from crm_inbox.errors import NotFound
from crm_inbox.intake.store import raw_chunks
from crm_inbox.mail.addresses import parse_addresses
from crm_inbox.mail.attachments import safe_filename
from crm_inbox.models import (
    Attachment,
    AuditEntry,
    Call,
    Company,
    Contact,
    Event,
    InboundMessage,
    InboundState,
    Interaction,
    InteractionContact,
    InteractionKind,
    Opportunity,
    OutgoingMail,
    Quote,
    Reminder,
    Ticket,
    TicketEvent,
    utcnow,
)
from crm_inbox.privacy import campaigns as privacy_campaigns
from crm_inbox.privacy import consent as privacy_consent
from crm_inbox.privacy import events as privacy_events
from crm_inbox.privacy import imports as privacy_imports
from crm_inbox.privacy import invoices as erp_invoices
from crm_inbox.privacy import sales
from crm_inbox.privacy.redaction import Redactor
from crm_inbox.timeline.triage import unassigned_query

FORMAT = "crm-inbox-export/1"
_BATCH = 500


def find_contact(session: Session, ref: str | int) -> Contact:
    """A contact by id, or by an address that belongs to exactly one contact."""
    matches = contacts_named_by(session, ref)
    if len(matches) != 1:
        raise NotFound(f"no contact {str(ref).strip()}" if not matches
                       else f"{len(matches)} contacts have the address {str(ref).strip()}: name one by its id")
    return matches[0]


# --- export ---

def _row(obj: Any, skip: Iterable[str] = ()) -> dict[str, Any]:
    """Every column of a row, JSON-ready (binary columns are written as files, never inline)."""
    skipped = set(skip)
    return {attr.key: sales.plain(getattr(obj, attr.key)) for attr in obj.__mapper__.column_attrs
            if attr.key not in skipped}


def _in(column: Any, values: Iterable[int | str | None]) -> Any:
    """``column IN (values)``, sorted and without repeats (None, as from an outer column, never matches)."""
    return column.in_(sorted({v for v in values if v is not None}, key=str))


@dataclass(frozen=True)
class Owned:
    """What belongs to a contact: ids of its timeline entries, tickets, calls and reminders."""

    interactions: list[int]
    tickets: list[int]
    calls: list[int]
    reminders: list[int]


def _owned(session: Session, contact_id: int) -> Owned:
    interactions = list(session.execute(select(InteractionContact.interaction_id)
                                        .where(InteractionContact.contact_id == contact_id)).scalars())
    ids: dict[str, list[int]] = {}
    for model in CONTACT_REFERENCES:
        ids[model.__tablename__] = list(session.execute(select(model.id).where(model.contact_id == contact_id)
                                                        .order_by(model.id)).scalars())
    return Owned(sorted(interactions), ids["tickets"], ids["calls"], ids["reminders"])


def write_export(session: Session, contact_id: int, target: IO[bytes], actor: int | None, *,
                 via: str | None = None, settings: Settings | None = None) -> dict[str, int]:
    """Write the archive of everything stored about the contact to ``target`` (a zip: ``contact.json``,
    ``attachments/<id>-<name>``, ``mail/<inbound id>.eml``); returns counts. Audited as exported by ``actor``
    (``via``: the channel named in the entry, "cli"); a caller whose copy then fails rolls the entry back.
    The person's opportunities, quotes and orders (with lines) are in it; their PDFs are timeline entries with
    attachments, also when not linked to the person. ``settings`` say where customer-file documents kept in a
    directory are (without them such a file cannot be read, and the export fails)."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    owned = _owned(session, contact_id)
    company = session.get(Company, contact.company_id) if contact.company_id else None
    data: dict[str, Any] = {
        "format": FORMAT, "exported_at": utcnow().isoformat(),
        "contact": {**_row(contact), "emails": [_row(e, {"contact_id"}) for e in contact.emails],
                    "phones": [_row(p, {"contact_id"}) for p in contact.phones]},
        "company": {**_row(company), "domains": [d.domain for d in company.domains],
                    "phones": [_row(p, {"company_id"}) for p in company.phones]} if company else None,
        "interactions": [], "tickets": [], "calls": [], "reminders": [], "audit_log": [],
        **sales.export(session, contact_id), "events": privacy_events.export(session, contact),
        **privacy_consent.export(session, contact_id),  # the consent ledger's records
        **privacy_campaigns.export(session, contact_id),  # the campaigns' send-ledger rows
    }
    counts = {"interactions": 0, "attachments": 0, "raw_messages": 0, "tickets": 0, "calls": 0, "reminders": 0,
              "audit_entries": 0,
              **{key: len(data[key]) for key in ("opportunities", "quotes", "orders", "events", "consent",
                                                    "campaigns")}}
    data.update(erp_invoices.export(session, contact_id))  # the ERP's invoices with their payments
    counts["invoices"] = len(data["invoices"])
    data.update(privacy_imports.export(session, contact))  # what imports recorded about the person
    counts["imports"] = len(data["imports"])
    interactions = sorted(set(owned.interactions) | sales.document_ids(session, contact_id)
                          | erp_invoices.document_ids(session, contact_id))
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for chunk in _chunks(interactions):
            rows = session.execute(select(Interaction).where(_in(Interaction.id, chunk))
                                   .options(selectinload(Interaction.contact_links),
                                            selectinload(Interaction.attachments))
                                   .order_by(Interaction.occurred_at, Interaction.id)).scalars().all()
            kept_raw = set(session.execute(select(InboundMessage.id).where(
                _in(InboundMessage.id, [i.inbound_message_id for i in rows if i.inbound_message_id]),
                InboundMessage.raw_deleted_at.is_(None))).scalars())
            for item in rows:
                entry = _row(item)
                entry["links"] = [{"contact_id": link.contact_id, "role": link.role} for link in item.contact_links]
                entry["attachments"] = []
                for att in item.attachments:
                    name = f"attachments/{att.id}-{safe_filename(att.filename, att.content_type)}"
                    archive.writestr(name, _content(settings, att))
                    entry["attachments"].append({**_row(att, {"content", "interaction_id"}), "file": name})
                    counts["attachments"] += 1
                entry["raw_message"] = _write_raw(session, archive, item.inbound_message_id) \
                    if item.inbound_message_id in kept_raw else None
                counts["raw_messages"] += entry["raw_message"] is not None
                data["interactions"].append(entry)
                counts["interactions"] += 1
        for ticket in _rows(session, Ticket, owned.tickets):
            events = session.execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                                     .order_by(TicketEvent.at, TicketEvent.id)).scalars().all()
            data["tickets"].append({**_row(ticket), "events": [_row(e) for e in events]})
        for call in _rows(session, Call, owned.calls):
            data["calls"].append(_row(call))  # its events are the ``events`` column
        data["reminders"] = [_row(r) for r in _rows(session, Reminder, owned.reminders)]
        about = _about(owned, contact_id)
        # Only from the contact's creation on: SQLite may give a new row the id of a deleted (erased) one.
        data["audit_log"] = [_row(a) for a in session.execute(
            select(AuditEntry).where(about, AuditEntry.at >= contact.created_at)
            .order_by(AuditEntry.at, AuditEntry.id)).scalars()]
        counts.update(tickets=len(data["tickets"]), calls=len(data["calls"]), reminders=len(data["reminders"]),
                      audit_entries=len(data["audit_log"]))
        archive.writestr("contact.json", json.dumps(data, ensure_ascii=False, indent=2))
    audit.record(session, actor, "export", "contact", contact_id, {"by": via, **counts} if via else counts)
    return counts


def _content(settings: Settings | None, att: Attachment) -> bytes:
    if settings is None:
        if att.stored_file:
            raise RuntimeError(f"attachment {att.id} lies in the documents directory: the export needs the settings")
        return att.content
    return storage.content_of(settings, att)


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _BATCH):
        yield ids[start:start + _BATCH]


def _rows(session: Session, model: Any, ids: list[int]) -> list[Any]:
    out: list[Any] = []
    for chunk in _chunks(ids):
        out += session.execute(select(model).where(_in(model.id, chunk)).order_by(model.id)).scalars().all()
    return out


def _write_raw(session: Session, archive: zipfile.ZipFile, inbound_id: int) -> str:
    name = f"mail/{inbound_id}.eml"
    with archive.open(name, "w", force_zip64=True) as out:  # piece by piece: a 20 MB mail is never held twice
        for piece in raw_chunks(session, inbound_id):
            out.write(piece)
    return name


def _about(owned: Owned, contact_id: int) -> Any:
    """Audit entries about the contact or about anything that is its own."""
    conditions = [and_(AuditEntry.object_type == "contact", AuditEntry.object_id == contact_id)]
    for object_type, ids in (("interaction", owned.interactions), ("ticket", owned.tickets),
                             ("reminder", owned.reminders)):
        if ids:
            conditions.append(and_(AuditEntry.object_type == object_type, _in(AuditEntry.object_id, ids)))
    return or_(*conditions)


def audit_mail_view(session: Session, settings: Settings, interaction: Interaction, staff_id: int | None) -> None:
    """With ``[privacy] audit_mail_views``, opening a mail's full text is written to the audit log."""
    if settings.privacy.audit_mail_views and interaction.kind == InteractionKind.EMAIL:
        audit.record(session, staff_id, "view", "interaction", interaction.id)


# --- erasure ---

def message_id_hash(message_id: str | None) -> str | None:
    return hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest() if message_id else None


def tombstone_values(message_id: str | None) -> dict[str, Any]:
    """What an erased inbound message keeps: its content hash (the row's identity) and the hash of its
    Message-ID. Everything else (bytes, envelope, peer) goes."""
    return {"raw": b"", "envelope_from": None, "envelope_to": [], "peer": None, "message_id": None,
            "message_id_sha256": message_id_hash(message_id), "message_id_conflict": False,
            "state": InboundState.ERASED.value, "error": None, "raw_deleted_at": utcnow()}


_INBOUND = InboundMessage.__table__
# Asked for every message processed: a Core statement built once (its compiled form cached), on the index.
_ERASED_COPY = (select(_INBOUND.c.id)
                .where(_INBOUND.c.message_id_sha256 == bindparam("digest"),
                       _INBOUND.c.state == InboundState.ERASED, _INBOUND.c.id != bindparam("own_id"))
                .limit(1))


def is_erased_message(session: Session, message_id: str | None, own_id: int) -> bool:
    """Was a message with this Message-ID erased (a re-sent copy of erased mail)?"""
    digest = message_id_hash(message_id)
    if digest is None:
        return False
    return session.connection().execute(_ERASED_COPY, {"digest": digest, "own_id": own_id}).first() is not None


def _inbound_of(session: Session, interaction_ids: set[int]) -> set[int]:
    """The stored raw messages behind these timeline entries."""
    if not interaction_ids:
        return set()
    return {i for i in session.execute(select(Interaction.inbound_message_id).where(
        _in(Interaction.id, interaction_ids), Interaction.inbound_message_id.is_not(None))).scalars() if i is not None}


def _tombstone(session: Session, inbound_ids: Iterable[int]) -> int:
    done = 0
    for inbound_id in sorted(set(inbound_ids)):
        message_id = session.execute(select(InboundMessage.message_id).where(InboundMessage.id == inbound_id)
                                     ).scalar_one_or_none()
        done += affected(session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id)
                                         .values(**tombstone_values(message_id))))
    return done


def _redactor(session: Session, contact: Contact) -> Redactor:
    emails = [e.email for e in contact.emails]
    names = [n for n in {contact.name, *(lead_name(a) for a in parse_addresses(*emails))} if n]
    return Redactor(emails=emails, phones_e164=[p.e164 for p in contact.phones if p.e164],
                    phones_raw=[p.raw for p in contact.phones if not p.e164], names=names)


_TEXT_COLUMNS = ("subject", "text", "excerpt", "html", "attribution_reason", "details")


def erase_contact(session: Session, contact_id: int, actor_id: int | None, *,
                  settings: Settings | None = None) -> dict[str, int]:
    """Erase the person everywhere (see the module's description); returns counts. The caller commits; the
    files of the person's customer-file documents kept in a directory (``settings``) are deleted then."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    emails = sorted({e.email for e in contact.emails})
    numbers = sorted({p.e164 for p in contact.phones if p.e164})
    redact = _redactor(session, contact)
    owned = _owned(session, contact_id)
    deals = sales.plan(session, contact_id)

    linked = set(owned.interactions) - deals.kept_documents
    shared = set(session.execute(select(InteractionContact.interaction_id).where(
        _in(InteractionContact.interaction_id, linked), InteractionContact.contact_id != contact_id)).scalars()) \
        if linked else set()
    doomed = (linked - shared) | _unassigned_from(session, emails)

    tickets = set(owned.tickets)
    if emails:
        tickets |= set(session.execute(select(Ticket.id).where(
            Ticket.contact_id.is_(None), _in(Ticket.opened_by_email, emails))).scalars())
    calls = set(owned.calls)
    if numbers:
        calls |= set(session.execute(select(Call.id).where(
            Call.contact_id.is_(None), _in(Call.remote_e164, numbers))).scalars())
    # The timeline entries of those calls and tickets, unless other contacts are linked to them.
    followers: set[int] = {i for i in session.execute(select(Call.interaction_id).where(
        _in(Call.id, calls), Call.interaction_id.is_not(None))).scalars() if i is not None} if calls else set()
    if tickets:
        followers |= set(session.execute(select(Interaction.id).where(_in(Interaction.ticket_id, tickets))).scalars())
    others = set(session.execute(select(InteractionContact.interaction_id).where(
        _in(InteractionContact.interaction_id, followers), InteractionContact.contact_id != contact_id)).scalars()) \
        if followers else set()
    doomed |= followers - others
    shared |= followers & others
    doomed -= deals.kept_documents  # commercial letters stay (privacy.sales)
    doomed -= erp_invoices.document_ids(session, contact_id)  # so do invoices (privacy.invoices)

    reminders = set(owned.reminders) | deals.reminders
    for column, ids in ((Reminder.ticket_id, tickets), (Reminder.call_id, calls),
                        (Reminder.interaction_id, doomed)):
        if ids:
            reminders |= set(session.execute(select(Reminder.id).where(_in(column, ids))).scalars())

    inbound_doomed = _inbound_of(session, doomed) | _raw_mentions(session, emails)
    inbound_shared = _inbound_of(session, shared)

    counts = {"interactions": len(doomed), "shared_interactions_kept": len(shared), "tickets": len(tickets),
              "calls": len(calls), "reminders": len(reminders), "raw_messages": len(inbound_doomed | inbound_shared),
              "attachments": session.execute(select(func.count()).select_from(Attachment).where(
                  _in(Attachment.interaction_id, doomed))).scalar_one() if doomed else 0}
    audit_wipe = or_(_about(Owned(sorted(doomed), sorted(tickets), sorted(calls), sorted(reminders)), contact_id),
                     *sales.audit_about(deals))
    # The searches run before the first write: on SQLite the write lock is then held only for the writes.
    needles = _needles(contact, redact)
    going = {Interaction.__table__: doomed, Ticket.__table__: tickets, Reminder.__table__: reminders,
             Opportunity.__table__: deals.opportunities, Quote.__table__: deals.draft_quotes}
    mentions = [c for c in _mentions(session, contact_id, redact, needles) if c[1] not in going.get(c[0], ())]
    audit_mentions = _audit_mentions(session, audit_wipe, redact, needles)

    for chunk in _chunks(sorted(reminders)):
        session.execute(delete(Reminder).where(_in(Reminder.id, chunk)))
    for chunk in _chunks(sorted(calls)):
        session.execute(delete(Call).where(_in(Call.id, chunk)))
    for chunk in _chunks(sorted(tickets)):
        session.execute(delete(Ticket).where(_in(Ticket.id, chunk)))  # events go with it (ON DELETE CASCADE)
    counts.update(sales.apply(session, deals, redact))
    counts.update(erp_invoices.detach(session, contact_id))
    for chunk in _chunks(sorted(doomed)):
        files = session.execute(select(Attachment.stored_file).where(
            _in(Attachment.interaction_id, chunk), Attachment.stored_file.is_not(None))).scalars().all()
        if files:
            if settings is None:  # never an erasure that leaves the person's files behind
                raise RuntimeError(f"erasing contact {contact_id}: its documents lie in the documents directory; "
                                   "the erasure needs the settings")
            storage.delete(session, settings, files)  # after the commit
        session.execute(delete(Interaction).where(_in(Interaction.id, chunk)))  # links, attachments cascade
    _tombstone(session, inbound_doomed)
    for chunk in _chunks(sorted(inbound_shared - inbound_doomed)):
        session.execute(update(InboundMessage).where(_in(InboundMessage.id, chunk))
                        .values(raw=b"", raw_deleted_at=utcnow(), peer=None))
        if emails:
            session.execute(update(InboundMessage).where(_in(InboundMessage.id, chunk),
                                                         func.lower(InboundMessage.envelope_from).in_(emails))
                            .values(envelope_from=None))
    _redact_rows(session, Interaction, _TEXT_COLUMNS, shared, redact)
    counts["outgoing_mail"] = affected(session.execute(
        delete(OutgoingMail).where(_in(OutgoingMail.to_address, emails)))) if emails else 0
    counts["mentions_redacted"] = _apply(session, mentions)
    counts["events_blanked"] = privacy_events.erase(session, contact, {
        "interaction": doomed, "ticket": tickets, "call": calls, "reminder": reminders,
        "opportunity": deals.opportunities, "quote": deals.draft_quotes})
    counts["import_records"] = privacy_imports.erase(session, contact)
    counts.update(privacy_consent.erase(session, contact))  # records go, addresses are suppressed (hashed)
    counts.update(privacy_campaigns.erase(session, contact))  # send-ledger rows stay, anonymous
    # The person goes; addresses, numbers and timeline links cascade.
    session.execute(delete(Contact).where(Contact.id == contact_id))
    wiped = affected(session.execute(update(AuditEntry).where(audit_wipe).values(details={"erased": True})))
    counts["audit_entries_scrubbed"] = wiped + _apply(session, audit_mentions)
    session.expire_all()
    audit.record(session, actor_id, "erase", "contact", contact_id, counts)
    session.flush()
    return counts


def _unassigned_from(session: Session, emails: list[str]) -> set[int]:
    """Mail from one of these addresses that waits for triage (linked to nobody)."""
    if not emails:
        return set()

    wanted = set(emails)
    found: set[int] = set()
    rows = session.execute(unassigned_query().with_only_columns(Interaction.id, Interaction.details)
                           .execution_options(yield_per=_BATCH))
    for interaction_id, details in rows:
        sender = (details or {}).get("sender_email")
        if sender in wanted:
            found.add(interaction_id)
    return found


def _raw_mentions(session: Session, emails: list[str]) -> set[int]:
    """Failed or ignored raw mail (no timeline entry to follow) that names one of the addresses."""
    if not emails:
        return set()
    needles = [e.encode() for e in emails]
    found: set[int] = set()
    candidates = session.execute(select(InboundMessage.id, InboundMessage.envelope_from).where(
        InboundMessage.state.in_([InboundState.FAILED, InboundState.IGNORED]),
        InboundMessage.raw_deleted_at.is_(None))).all()
    for inbound_id, envelope_from in candidates:
        if envelope_from and envelope_from.lower() in emails:
            found.add(inbound_id)
            continue
        raw = b"".join(raw_chunks(session, inbound_id)).lower()
        if any(n in raw for n in needles):
            found.add(inbound_id)
    return found


def _redact_rows(session: Session, model: Any, columns: tuple[str, ...], ids: set[int], redact: Redactor) -> None:
    table = model.__table__
    for chunk in _chunks(sorted(ids)):
        rows = session.execute(select(table.c.id, *(table.c[c] for c in columns)).where(table.c.id.in_(chunk))).all()
        for row in rows:
            values = {c: redact.value(getattr(row, c)) for c in columns if getattr(row, c) is not None}
            changed = {c: v for c, v in values.items() if v != getattr(row, c)}
            if changed:
                session.execute(update(table).where(table.c.id == row.id).values(**changed))


# Free text kept for others that may mention the person: (model, text columns, JSON columns). Calls are
# left out on purpose: a call of another contact with the same number is that contact's number too.
_MENTIONS: tuple[tuple[Any, tuple[str, ...], tuple[str, ...]], ...] = (
    (Interaction, ("subject", "text", "excerpt", "html", "attribution_reason"), ("details",)),
    (Ticket, ("subject", "opened_by_email"), ()),
    (TicketEvent, (), ("details",)),
    (Reminder, ("title", "note", "completion"), ()),
    (Contact, ("origin_detail",), ("fields",)),
    (Company, (), ("fields",)),
    (OutgoingMail, ("subject", "body"), ("headers",)),
    (Opportunity, ("title", "lost_reason"), ()),
    (Quote, ("decline_reason",), ()),  # not the letter's own text: that is kept as sent (privacy.sales)
    (Event, (), ("payload",)),
)


def _needles(contact: Contact, redact: Redactor) -> list[str]:
    """Short strings any mention contains, for a cheap LIKE before the real match: an address, a name, the
    last four digits of a number; each also as JSON writes it (``\\u00fc`` for ``ü``)."""
    out = {e.email for e in contact.emails} | set(redact.names)
    out |= {re.sub(r"\D", "", p.e164 or p.raw)[-4:] for p in contact.phones if len(re.sub(r"\D", "", p.raw)) >= 5}
    out |= {json.dumps(n)[1:-1] for n in out}
    return sorted(n for n in out if n)


def _mentioning(columns: list[Any], json_columns: list[Any], needles: list[str]) -> Any:
    """Rows where one of the columns contains a needle: the columns are searched as one text, lower-cased;
    a non-ASCII needle also as written (SQLite's lower() folds ASCII only)."""
    parts: list[ColumnElement[Any]] = [func.coalesce(c, "") for c in columns]
    parts += [func.coalesce(cast(c, Text), "") for c in json_columns]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + "\n" + part
    lowered = func.lower(joined)
    conditions = [lowered.like(_contains(n.lower()), escape="\\") for n in needles]
    conditions += [joined.like(_contains(n), escape="\\") for n in needles if not n.isascii()]
    return or_(*conditions)


def _contains(text: str) -> str:
    """A LIKE pattern for "contains ``text``" (backslashes in JSON escapes taken literally)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


Change = tuple[Any, int, dict[str, Any]]  # (table, row id, new column values)


def _mentions(session: Session, contact_id: int, redact: Redactor, needles: list[str]) -> list[Change]:
    """The redacted values of every other record that mentions the person (read only)."""
    changes: list[Change] = []
    for model, text_columns, json_columns in _MENTIONS if needles else ():
        table = model.__table__
        texts, jsons = [table.c[c] for c in text_columns], [table.c[c] for c in json_columns]
        query = select(table.c.id, *texts, *jsons).where(_mentioning(texts, jsons, needles))
        if model is Contact:
            query = query.where(table.c.id != contact_id)
        for row in session.execute(query).all():
            values = {c.key: getattr(row, c.key) for c in (*texts, *jsons)}
            new = {k: redact.value(v) for k, v in values.items() if v is not None and redact.value(v) != v}
            if new:
                changes.append((table, row.id, new))
    return changes


def _audit_mentions(session: Session, about: Any, redact: Redactor, needles: list[str]) -> list[Change]:
    """The redacted details of audit entries (not about the person) that mention them (read only)."""
    if not needles:
        return []
    rows = session.execute(select(AuditEntry.id, AuditEntry.details).where(
        ~about, _mentioning([], [AuditEntry.details], needles))).all()
    table = AuditEntry.__table__
    return [(table, entry_id, {"details": redact.value(details)}) for entry_id, details in rows
            if redact.value(details) != details]


def _apply(session: Session, changes: list[Change]) -> int:
    for table, row_id, values in changes:
        session.execute(update(table).where(table.c.id == row_id).values(**values))
    return len(changes)

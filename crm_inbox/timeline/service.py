"""Recording interactions and reading a contact's timeline (newest first, cursor paging)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from mailparser_reply import EmailReplyParser
from sqlalchemy import Integer, Select, String, bindparam, func, insert, literal, or_, select, true, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, make_transient_to_detached, selectinload

from crm_inbox import audit, events
from crm_inbox.errors import BadCursor, ValidationError
from crm_inbox.models import (
    Attachment,
    Contact,
    Direction,
    Interaction,
    InteractionContact,
    InteractionKind,
    InteractionStaff,
    utcnow,
)

EXCERPT_CHARS = 280
PARSED_PER_EXCERPT_CHAR = 4  # clean_excerpt parses the first 4 × 280 characters of a long text first


class Identified(Protocol):
    """Anything with a contact id: a Contact, or the lighter ContactRef used while processing mail."""

    @property
    def id(self) -> int: ...


def clean_excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    """The new part of a mail for the timeline: quoted replies and the signature stripped
    (mail-parser-reply, which knows German and English mail clients' reply headers).

    The parser's regular expressions run over every quoted mail below the new part, which costs milliseconds
    for a long thread, yet only the first ``limit`` characters of the new part are kept: it reads the start of
    the text first, and the whole text only when the new part found there is shorter than the excerpt."""
    if not text:
        return ""
    head = text[: limit * PARSED_PER_EXCERPT_CHAR]
    if len(head) < len(text):
        excerpt = _first_reply_excerpt(head, limit)
        if len(excerpt) >= limit:
            return excerpt
    return _first_reply_excerpt(text, limit)


def _first_reply_excerpt(text: str, limit: int) -> str:
    try:
        replies = EmailReplyParser(languages=["de", "en"]).read(text).replies
        latest = replies[0].body if replies else text
    except Exception:  # a third-party heuristic must never fail the message: fall back to the text
        latest = text
    return excerpt_of(latest or text, limit)


def excerpt_of(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    flat = re.sub(r"\s+", " ", text or "").strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def record_interaction(
    session: Session,
    *,
    kind: InteractionKind,
    direction: Direction,
    occurred_at: datetime,
    subject: str | None = None,
    text: str | None = None,
    excerpt: str | None = None,
    html: str | None = None,
    source_ref: str | None = None,
    inbound_message_id: int | None = None,
    contacts: Sequence[tuple[Identified, str]] = (),
    staff_ids: Sequence[int] = (),
    attachments: Sequence[tuple[str, str, bytes]] = (),
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    created_by_id: int | None = None,
    company_id: int | None = None,
) -> Interaction:
    # Cached Core inserts, then the ORM object from one primary-key read: the ORM's unit of work costs
    # more than the whole rest of processing a mail.
    if occurred_at.tzinfo is None:
        raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
    created_at = utcnow()
    values = {
        # in UTC, as a read of the row would give it back
        "kind": kind, "direction": direction, "occurred_at": occurred_at.astimezone(UTC), "subject": subject,
        "text": text, "excerpt": excerpt if excerpt is not None else excerpt_of(text), "html": html,
        "source_ref": source_ref, "inbound_message_id": inbound_message_id, "company_id": company_id,
        "ticket_id": None,
        "attribution_reason": reason, "details": details or {}, "created_by_id": created_by_id,
        "created_at": created_at}
    session.flush()  # what the rows below refer to (a new lead, a company) is written first
    connection = session.connection()  # Core: the ORM's execution path would cost more than the statements
    links = {contact.id: role for contact, role in reversed(contacts)}  # the first role given wins
    staff = list(dict.fromkeys(staff_ids))
    # What other systems hear: who and when, never the text (they ask the API for that, with a token). "id" is
    # the new line's (added by the statement on PostgreSQL).
    payload = {"kind": kind.value, "direction": direction.value, "occurred_at": occurred_at.isoformat(),
               "subject": subject, "contact_ids": list(dict.fromkeys(contact.id for contact, _ in contacts)),
               "company_id": company_id}
    row = {**values, "kind": kind.value, "direction": direction.value}
    if connection.dialect.name == "postgresql":
        # The line, its people, its staff and its event in one round trip.
        rows = connection.execute(_RECORD_ALL, {
            **row, "contact_ids": list(links), "roles": list(links.values()), "staff_ids": staff,
            "link_occurred_at": occurred_at, "event_payload": payload, "event_at": created_at}).all()
        interaction_id = events.fan_out_along(session, rows, "interaction.created", "interaction", payload,
                                              created_at)
    else:
        interaction_id = connection.execute(_INSERT_INTERACTION, row).scalar_one()
        if links:
            connection.execute(insert(InteractionContact.__table__), [
                {"interaction_id": interaction_id, "contact_id": cid, "occurred_at": occurred_at, "role": role}
                for cid, role in links.items()])
        if staff:
            connection.execute(insert(InteractionStaff.__table__), [
                {"interaction_id": interaction_id, "staff_id": sid, "role": "participant"} for sid in staff])
        events.record(session, "interaction.created", "interaction", interaction_id,
                      {"id": interaction_id, **payload})
    for filename, content_type, content in attachments:
        connection.execute(insert(Attachment.__table__), {
            "interaction_id": interaction_id, "filename": filename, "content_type": content_type[:255],
            "size": len(content), "sha256": hashlib.sha256(content).hexdigest(), "content": content})
    # The row as written, made the session's own without reading it back (every column is in ``values``).
    interaction = Interaction(id=interaction_id, **values)
    make_transient_to_detached(interaction)
    session.add(interaction)
    return interaction


_INSERT_INTERACTION = insert(Interaction.__table__).returning(Interaction.__table__.c.id)
_LINE_COLUMNS = ("kind", "direction", "occurred_at", "subject", "text", "excerpt", "html", "source_ref",
                 "inbound_message_id", "company_id", "ticket_id", "attribution_reason", "details", "created_by_id",
                 "created_at")


def _record_all() -> Select[Any]:
    """PostgreSQL: the interaction's insert (``_LINE_COLUMNS``), its links to people (arrays ``contact_ids``,
    ``roles``) and staff (``staff_ids``) and its event (``events.recorded_along``), as one statement of
    data-modifying WITHs."""
    line = insert(Interaction.__table__).values({c: bindparam(c) for c in _LINE_COLUMNS}).returning(
        Interaction.__table__.c.id).cte("line")
    people = func.unnest(bindparam("contact_ids", type_=ARRAY(Integer)), bindparam("roles", type_=ARRAY(String))
                         ).table_valued("contact_id", "role").render_derived("people")
    links = InteractionContact.__table__
    linked = insert(links).from_select(
        ["interaction_id", "contact_id", "occurred_at", "role"],
        select(line.c.id, people.c.contact_id, bindparam("link_occurred_at", type_=links.c.occurred_at.type),
               people.c.role).select_from(line.join(people, true()))).cte("linked")
    staff = func.unnest(bindparam("staff_ids", type_=ARRAY(Integer))).table_valued("staff_id").render_derived("staff")
    staffed = insert(InteractionStaff.__table__).from_select(
        ["interaction_id", "staff_id", "role"],
        select(line.c.id, staff.c.staff_id, literal("participant")).select_from(line.join(staff, true()))
    ).cte("staffed")
    return events.recorded_along(line, "interaction.created", "interaction").add_cte(linked, staffed)


_RECORD_ALL = _record_all()


def encode_cursor(occurred_at: datetime, interaction_id: int) -> str:
    return base64.urlsafe_b64encode(f"{occurred_at.isoformat()}|{interaction_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        when, _, ident = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(when), int(ident)
    except (ValueError, UnicodeError) as exc:
        raise BadCursor("cursor is not valid") from exc


@dataclass
class TimelinePage:
    items: list[Interaction]
    next_cursor: str | None


def contact_timeline(session: Session, contact_id: int, *, limit: int = 50, cursor: str | None = None,
                     kind: InteractionKind | None = None) -> TimelinePage:
    """A page of the contact's interactions, newest first; one index range scan on the link table."""
    link = InteractionContact
    query = select(link.interaction_id).where(link.contact_id == contact_id)
    if cursor:
        when, ident = decode_cursor(cursor)
        # A row comparison, so both databases narrow the index range by the cursor too (an OR of two
        # conditions made them walk every newer entry of the contact first).
        query = query.where(tuple_(link.occurred_at, link.interaction_id) < tuple_(when, ident))
    if kind is not None:
        query = query.join(Interaction, Interaction.id == link.interaction_id).where(Interaction.kind == kind)
    ids = session.execute(
        query.order_by(link.occurred_at.desc(), link.interaction_id.desc()).limit(limit + 1)).scalars().all()
    return page_of(session, list(ids), limit)


def company_timeline(session: Session, company_id: int, *, limit: int = 50, cursor: str | None = None) -> TimelinePage:
    """All its people's interactions and those recorded on the company itself (a call to the switchboard),
    merged, newest first."""
    people = select(Contact.id).where(Contact.company_id == company_id)
    linked = select(InteractionContact.interaction_id).where(InteractionContact.contact_id.in_(people))
    query = select(Interaction.id).where(or_(Interaction.id.in_(linked), Interaction.company_id == company_id))
    if cursor:
        when, ident = decode_cursor(cursor)
        query = query.where(tuple_(Interaction.occurred_at, Interaction.id) < tuple_(when, ident))
    ids = session.execute(
        query.order_by(Interaction.occurred_at.desc(), Interaction.id.desc()).limit(limit + 1)).scalars().all()
    return page_of(session, list(ids), limit)


def page_of(session: Session, ids: list[int], limit: int) -> TimelinePage:
    """The interactions of ``ids`` (one more than a page, to know whether there is more), in that order."""
    has_more = len(ids) > limit
    ids = ids[:limit]
    rows = session.execute(
        select(Interaction).where(Interaction.id.in_(ids))
        .options(selectinload(Interaction.contact_links),
                 selectinload(Interaction.staff_links).selectinload(InteractionStaff.staff),
                 selectinload(Interaction.attachments).load_only(
            Attachment.id, Attachment.filename, Attachment.content_type, Attachment.size, Attachment.sha256))
    ).scalars().all()
    by_id = {r.id: r for r in rows}
    items = [by_id[i] for i in ids if i in by_id]
    next_cursor = encode_cursor(items[-1].occurred_at, items[-1].id) if has_more and items else None
    return TimelinePage(items, next_cursor)


def add_note(session: Session, contact: Contact, staff_id: int | None, text: Any) -> Interaction:
    """A staff member's note on a contact's timeline (audited)."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("text", "is required")
    if len(text) > 20000:
        raise ValidationError("text", "must be at most 20000 characters")
    note = record_interaction(session, kind=InteractionKind.NOTE, direction=Direction.INTERNAL,
                              occurred_at=utcnow(), subject="Note", text=text.strip(),
                              contacts=[(contact, "about")], staff_ids=[staff_id] if staff_id else [],
                              created_by_id=staff_id, company_id=contact.company_id)
    audit.record(session, staff_id, "note", "contact", contact.id, {"interaction_id": note.id})
    return note


def newest_first() -> Select[Interaction]:
    """Everything on the timeline, newest first (the dashboard's recent activity, the API's list)."""
    return select(Interaction).order_by(Interaction.occurred_at.desc(), Interaction.id.desc())


def recent(session: Session, limit: int = 15) -> Sequence[Interaction]:
    return session.execute(newest_first().limit(limit)).scalars().all()

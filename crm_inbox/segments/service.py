"""Saved segments: save, change (rename, redefine) and delete them, audited; count and list the people a
definition matches, and hand the match to the exports. The pages and the API call this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from crm_inbox import audit
from crm_inbox.contacts.listing import page_of
from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.exports import service as exports
from crm_inbox.models import Contact, Segment
from crm_inbox.segments import definition as defs
from crm_inbox.segments import query

MAX_NAME = 200
MAX_DESCRIPTION = 2000
MAX_PAGE = 500


def _name(raw: Any) -> str:
    name = " ".join(raw.split()) if isinstance(raw, str) else ""
    if not name:
        raise ValidationError("name", "must not be empty")
    if len(name) > MAX_NAME:
        raise ValidationError("name", f"must be at most {MAX_NAME} characters")
    return name


def _description(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > MAX_DESCRIPTION:
        raise ValidationError("description", f"must be a text of at most {MAX_DESCRIPTION} characters")
    return raw.strip() or None


def _free_name(session: Session, name: str, segment_id: int | None = None) -> None:
    taken = session.scalar(select(Segment.id).where(func.lower(Segment.name) == name.lower()))
    if taken is not None and taken != segment_id:
        raise Conflict(f"a segment named {name!r} exists already")


def get(session: Session, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id)
    if segment is None:
        raise NotFound(f"no segment {segment_id}")
    return segment


def list_segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(func.lower(Segment.name), Segment.id)))


def create(session: Session, name: str, definition: Any, *, actor: int | None,
           description: str | None = None) -> Segment:
    """A new saved segment; ``definition`` is checked (ValidationError with its path) and stored normalised."""
    name = _name(name)
    tree = defs.parse(definition)
    _free_name(session, name)
    segment = Segment(name=name, description=_description(description), definition=defs.dump(tree),
                      created_by_id=actor)
    session.add(segment)
    session.flush()
    audit.record(session, actor, "create", "segment", segment.id, {"name": name, "definition": segment.definition})
    return segment


def update(session: Session, segment_id: int, *, actor: int | None, name: str | None = None,
           definition: Any = None, description: str | None = None) -> Segment:
    """Rename, redefine or re-describe a segment (what is given); audited with what changed."""
    segment = get(session, segment_id)
    changes: dict[str, Any] = {}
    if name is not None and _name(name) != segment.name:
        new_name = _name(name)
        _free_name(session, new_name, segment.id)
        changes["name"] = [segment.name, new_name]
        segment.name = new_name
    if definition is not None:
        normalised = defs.dump(defs.parse(definition))
        if normalised != segment.definition:
            changes["definition"] = [segment.definition, normalised]
            segment.definition = normalised
    if description is not None and _description(description) != segment.description:
        changes["description"] = True
        segment.description = _description(description)
    if changes:
        session.flush()
        audit.record(session, actor, "update", "segment", segment.id, changes)
    return segment


def rename(session: Session, segment_id: int, name: str, *, actor: int | None) -> Segment:
    return update(session, segment_id, actor=actor, name=name)


def delete(session: Session, segment_id: int, *, actor: int | None) -> None:
    segment = get(session, segment_id)
    audit.record(session, actor, "delete", "segment", segment.id,
                 {"name": segment.name, "definition": segment.definition})
    session.delete(segment)
    session.flush()


# --- who matches ---

def _tree(definition: Any) -> defs.Condition:
    if isinstance(definition, Segment):
        return defs.parse(definition.definition)
    if isinstance(definition, defs.Leaf | defs.All | defs.Any_ | defs.Not):
        return definition
    return defs.parse(definition)


def matches(session: Session, definition: Any, *, now: datetime | None = None) -> ColumnElement[bool]:
    """The where-clause over ``Contact`` for a definition (JSON, a parsed tree or a Segment), e.g. for
    ``exports.service.export(…, matches=…)`` or a contact list."""
    dialect = session.get_bind().dialect.name
    return query.where(_tree(definition), dialect=dialect, now=now or datetime.now(UTC))


def member_ids(session: Session, definition: Any, *, now: datetime | None = None) -> Select[int]:
    """``select(Contact.id)`` of the people who match: a subquery for ``Contact.id.in_(…)``."""
    return select(Contact.id).where(matches(session, definition, now=now))


def count(session: Session, definition: Any, *, now: datetime | None = None) -> int:
    """How many people match (the live count while editing)."""
    return session.scalar(select(func.count()).select_from(Contact).where(matches(session, definition, now=now))) or 0


def contact_ids(session: Session, definition: Any, *, page: int = 1, size: int = 50,
                now: datetime | None = None) -> tuple[list[int], bool]:
    """Page ``page`` (from 1) of the ids of the people who match, in the contact list's dictionary order, and
    whether another page follows. (``contacts.listing.contacts_page(session, matches(…), page, size)`` gives the
    list's rows themselves.)"""
    if page < 1 or not 1 <= size <= MAX_PAGE:
        raise ValidationError("page", f"must be 1 or more, with 1 to {MAX_PAGE} people a page")
    rows = session.execute(select(Contact.id, Contact.name).where(matches(session, definition, now=now))).all()
    return page_of(rows, page, size)


def export(session: Session, segment_id: int, file_format: str | None, *,
           actor: int | None) -> exports.ExportFile:
    """The segment's people as CSV, XLSX or vCards, through the exports (audited there with the segment)."""
    segment = get(session, segment_id)
    return exports.export(session, "contacts", file_format, matches(session, segment), actor=actor,
                          query={"segment": segment.id, "name": segment.name})

"""A person's events (``contact.created``, ``interaction.created`` …) in their data-protection export, and what
their erasure does to them.

An event is about a person when its subject is the person's contact, or when its payload names the contact's id
(``contact_id``, at any depth: an order's ``customer.contact_id``; or in ``contact_ids``). On erasure:

- events about the contact itself, and events about what the erasure deletes (the person's timeline entries,
  tickets, calls, reminders, opportunities), are blanked to ``{"id": <subject id>, "erased": true}``;
- other events that name the contact (a shared mail, a kept quote or order) lose the id: ``contact_id``
  becomes null, ``contact_ids`` drops it. Names, addresses and numbers in any event payload are replaced by
  ``[erased]`` by the erasure's search for mentions (``privacy.service``), which runs before this.

Webhook deliveries still pending read the event row when they are sent, so they deliver the blanked payload.
Finally ``contact.erased`` is recorded, with the id only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Text, and_, cast, or_, select, update
from sqlalchemy.orm import Session

from crm_inbox import events
from crm_inbox.models import Contact, Event

_CHUNK = 500
_EVENTS = Event.__table__


def _names(payload: Any, contact_id: int) -> bool:
    """Does the payload name the contact by id (``contact_id`` or in ``contact_ids``, at any depth)?"""
    if isinstance(payload, dict):
        if payload.get("contact_id") == contact_id:
            return True
        ids = payload.get("contact_ids")
        if isinstance(ids, list) and contact_id in ids:
            return True
        return any(_names(value, contact_id) for value in payload.values() if isinstance(value, dict | list))
    if isinstance(payload, list):
        return any(_names(value, contact_id) for value in payload if isinstance(value, dict | list))
    return False


def _without(payload: Any, contact_id: int) -> Any:
    """The payload with the contact's id taken out (``contact_id`` null, ``contact_ids`` without it)."""
    if isinstance(payload, dict):
        out: dict[str, Any] = {}
        for key, value in payload.items():
            if key == "contact_id" and value == contact_id:
                out[key] = None
            elif key == "contact_ids" and isinstance(value, list):
                out[key] = [v for v in value if v != contact_id]
            else:
                out[key] = _without(value, contact_id)
        return out
    if isinstance(payload, list):
        return [_without(value, contact_id) for value in payload]
    return payload


def _naming(contact_id: int) -> Any:
    """Events whose payload text may name the contact's id: LIKE patterns written the way the JSON column stores
    a payload (``json.dumps``, SQLAlchemy's default); candidates only, ``_names`` decides."""
    key = json.dumps({"contact_id": contact_id})[1:-1]  # '"contact_id": 42'
    ids = '"contact_ids": ['
    patterns = [f"%{key},%", f"%{key}}}%", f"%{ids}{contact_id}]%", f"%{ids}{contact_id}, %",
                f"%{ids}%, {contact_id}]%", f"%{ids}%, {contact_id}, %"]
    text = cast(_EVENTS.c.payload, Text)
    return or_(*(text.like(p) for p in patterns))


def _rows(session: Session, contact_id: int, since: datetime | None,
          deleted: Mapping[str, Iterable[int]] | None = None) -> list[Any]:
    """The events about the contact (see the module's description) and about the ``deleted`` subjects
    ({subject type: ids}), oldest first."""
    about = or_(and_(_EVENTS.c.subject_type == "contact", _EVENTS.c.subject_id == contact_id), _naming(contact_id))
    if since is not None:
        # SQLite may give a new contact the id of a deleted one: only events from its creation on.
        about = and_(about, _EVENTS.c.created_at >= since)
    conditions: list[Any] = [about]
    gone = {(t, i) for t, ids in (deleted or {}).items() for i in ids}
    for subject_type, ids in (deleted or {}).items():
        ordered = sorted(set(ids))
        for start in range(0, len(ordered), _CHUNK):
            conditions.append(and_(_EVENTS.c.subject_type == subject_type,
                                   _EVENTS.c.subject_id.in_(ordered[start:start + _CHUNK])))
    found: dict[int, Any] = {}
    for condition in conditions:
        for row in session.execute(select(_EVENTS).where(condition).execution_options(yield_per=_CHUNK)):
            if ((row.subject_type == "contact" and row.subject_id == contact_id)
                    or (row.subject_type, row.subject_id) in gone or _names(row.payload, contact_id)):
                found[row.id] = row
    return sorted(found.values(), key=lambda row: (row.created_at, row.id))


def export(session: Session, contact: Contact) -> list[dict[str, Any]]:
    """The events about the person, JSON-ready, oldest first (for their data-protection export)."""
    return [{"id": row.id, "type": row.type, "subject_type": row.subject_type, "subject_id": row.subject_id,
             "created_at": row.created_at.isoformat(), "payload": row.payload}
            for row in _rows(session, contact.id, contact.created_at)]


def erase(session: Session, contact: Contact, deleted: Mapping[str, Iterable[int]]) -> int:
    """Blank or detach the events about the person (see the module's description) and record
    ``contact.erased``; ``deleted``: what the erasure deletes, {subject type: ids}. Call it after the erasure's
    mentions are redacted and before the contact row goes. Returns how many events changed."""
    blank_ids = {(t, i) for t, ids in deleted.items() for i in ids} | {("contact", contact.id)}
    changed = 0
    for row in _rows(session, contact.id, contact.created_at, deleted):
        if (row.subject_type, row.subject_id) in blank_ids:
            payload: Any = {"id": row.subject_id, "erased": True}
        else:
            payload = _without(row.payload, contact.id)
        if payload != row.payload:
            session.execute(update(_EVENTS).where(_EVENTS.c.id == row.id).values(payload=payload))
            changed += 1
    events.record(session, "contact.erased", "contact", contact.id, {"id": contact.id, "erased": True})
    return changed

"""Events other systems hear about (``order.created``): one row written in the transaction of the change, so an
event exists exactly when its change was committed. The outbound webhooks deliver the rows after commit;
``Event.id`` is the stable id receivers deduplicate by."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from crm_inbox.models import Event


def record(session: Session, type: str, subject_type: str, subject_id: int,
           payload: dict[str, Any] | None = None) -> Event:
    """Write an event row (flushed, so its id is known); the payload must be JSON-ready (money as strings)."""
    event = Event(type=type, subject_type=subject_type, subject_id=subject_id, payload=dict(payload or {}))
    session.add(event)
    session.flush()
    return event

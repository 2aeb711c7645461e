"""Writing the audit log (who changed or exported what)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from crm_inbox.models import AuditEntry


def record(session: Session, staff_id: int | None, action: str, object_type: str, object_id: int | None,
           details: dict[str, Any] | None = None) -> None:
    session.add(AuditEntry(staff_id=staff_id, action=action, object_type=object_type, object_id=object_id,
                           details=details or {}))

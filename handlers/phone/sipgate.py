"""sipgate.io push API and Zammad's generic CTI format (the same fields): newCall, answer, hangup.

sipgate only sends ``answer`` and ``hangup`` when the reply to the previous push asks for them, which
the web route does with ``<Response onAnswer="…" onHangup="…"/>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from crm_inbox.calls.service import CallEvent
from crm_inbox.errors import CallEventError
from crm_inbox.models import Direction
from handlers.phone._fields import many, one

EVENTS = {"newCall": "new", "answer": "answer", "hangup": "hangup"}
CAUSES = frozenset({"normalClearing", "busy", "cancel", "noAnswer", "congestion", "notFound", "forwarded"})


def parse(data: Mapping[str, Any], now: datetime, source: str = "sipgate") -> list[CallEvent]:
    event = one(data, "event", required=True)
    if event == "dtmf":
        return []  # keypresses: nothing for the CRM
    if event not in EVENTS:
        raise CallEventError("event", "must be newCall, answer or hangup")
    direction = one(data, "direction")
    if direction is not None and direction not in {"in", "out"}:
        raise CallEventError("direction", "must be in or out")
    if event == "newCall" and direction is None:
        raise CallEventError("direction", "is required for newCall")
    cause = one(data, "cause")
    if event == "hangup" and cause is not None and cause not in CAUSES:
        raise CallEventError("cause", "is not a known hangup cause")
    return [CallEvent(
        source=source,
        call_id=one(data, "callId", required=True) or "",
        kind=EVENTS[event],  # type: ignore[arg-type]
        at=now,
        direction=Direction(direction) if direction else None,
        from_number=one(data, "from"),
        to_number=one(data, "to"),
        users=many(data, "user[]", "user"),
        answering_number=one(data, "answeringNumber"),
        cause=cause,
        orig_call_id=one(data, "origCallId"),
        diversion=one(data, "diversion"),
    )]


def parse_zammad(data: Mapping[str, Any], now: datetime) -> list[CallEvent]:
    return parse(data, now, source="cti")

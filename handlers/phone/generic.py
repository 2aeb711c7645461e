"""The documented generic JSON format (for Asterisk AMI/ARI scripts and anything else).

    {"event": "new" | "answer" | "hangup", "call_id": "…", "at": "2026-11-23T10:15:00+01:00",
     "direction": "in" | "out", "from": "…", "to": "…", "user": "name", "extension": "22",
     "cause": "normalClearing" | "busy" | "cancel" | "noAnswer" | … , "duration": 75}

``call_id``, ``event`` and ``at`` are required; ``direction`` with ``new``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from crm_inbox.calls.service import CallEvent
from crm_inbox.errors import CallEventError
from crm_inbox.models import Direction
from handlers.phone._fields import many, one, seconds, timestamp
from handlers.phone.sipgate import CAUSES

EVENTS = {"new": "new", "newCall": "new", "answer": "answer", "hangup": "hangup"}


def parse(data: Mapping[str, Any], now: datetime) -> list[CallEvent]:
    event = one(data, "event", required=True)
    if event not in EVENTS:
        raise CallEventError("event", "must be new, answer or hangup")
    if one(data, "at") is None:
        raise CallEventError("at", "is required")
    direction = one(data, "direction")
    if direction is not None and direction not in {"in", "out"}:
        raise CallEventError("direction", "must be in or out")
    if EVENTS[event] == "new" and direction is None:
        raise CallEventError("direction", "is required for new")
    cause = one(data, "cause")
    if cause is not None and cause not in CAUSES:
        raise CallEventError("cause", "must be one of " + ", ".join(sorted(CAUSES)))
    duration = data.get("duration")
    return [CallEvent(
        source="generic", call_id=one(data, "call_id", required=True) or "", kind=EVENTS[event],  # type: ignore[arg-type]
        at=timestamp(data, "at", now), direction=Direction(direction) if direction else None,
        from_number=one(data, "from"), to_number=one(data, "to"), users=many(data, "user"),
        extension=one(data, "extension"), cause=cause,
        duration_seconds=seconds({"duration": str(duration)}, "duration") if duration is not None else None,
    )]

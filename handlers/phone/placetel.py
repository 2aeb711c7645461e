"""Placetel Notify API: IncomingCall, OutgoingCall, CallAccepted, HungUp (with type and duration)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from crm_inbox.calls.service import CallEvent
from crm_inbox.errors import CallEventError
from crm_inbox.models import Direction
from handlers.phone._fields import one, seconds

HANGUP_TYPES = {"accepted": "normalClearing", "missed": "noAnswer", "voicemail": "noAnswer", "busy": "busy",
                "unavailable": "congestion", "canceled": "cancel", "cancelled": "cancel"}


def signature(secret: str, payload: bytes) -> str:
    """Placetel's X-PLACETEL-SIGNATURE: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def parse(data: Mapping[str, Any], now: datetime) -> list[CallEvent]:
    event = one(data, "event", required=True)
    call_id = one(data, "call_id", required=True) or ""
    common = {"source": "placetel", "call_id": call_id, "at": now, "from_number": one(data, "from"),
              "to_number": one(data, "to")}
    if event == "IncomingCall":
        return [CallEvent(kind="new", direction=Direction.IN, **common)]  # type: ignore[arg-type]
    if event == "OutgoingCall":
        return [CallEvent(kind="new", direction=Direction.OUT, **common)]  # type: ignore[arg-type]
    if event == "CallAccepted":
        return [CallEvent(kind="answer", answering_number=one(data, "peer"), **common)]  # type: ignore[arg-type]
    if event == "HungUp":
        kind = one(data, "type") or "accepted"
        if kind not in HANGUP_TYPES:
            raise CallEventError("type", "must be one of " + ", ".join(sorted(HANGUP_TYPES)))
        return [CallEvent(kind="hangup", cause=HANGUP_TYPES[kind], duration_seconds=seconds(data, "duration")
                          if kind == "accepted" else None, **common)]  # type: ignore[arg-type]
    raise CallEventError("event", "must be IncomingCall, OutgoingCall, CallAccepted or HungUp")

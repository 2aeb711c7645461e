"""Twilio voice status callbacks (CallSid, CallStatus, …); the signature is checked by the web route."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from crm_inbox.calls.service import CallEvent, EventKind
from crm_inbox.errors import CallEventError
from crm_inbox.models import Direction
from handlers.phone._fields import in_utc, one, seconds

# CallStatus → the events it implies (a "completed" call was answered, then ended) and the hangup cause.
STATUS: dict[str, tuple[tuple[EventKind, ...], str | None]] = {
    "queued": (("new",), None), "initiated": (("new",), None), "ringing": (("new",), None),
    "in-progress": (("new", "answer"), None), "answered": (("new", "answer"), None),
    "completed": (("new", "answer", "hangup"), "normalClearing"),
    "busy": (("new", "hangup"), "busy"), "no-answer": (("new", "hangup"), "noAnswer"),
    "canceled": (("new", "hangup"), "cancel"), "failed": (("new", "hangup"), "congestion"),
}


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's X-Twilio-Signature: HMAC-SHA1 over the URL and the sorted POST fields, base64."""
    payload = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def parse(data: Mapping[str, Any], now: datetime) -> list[CallEvent]:
    status = one(data, "CallStatus", required=True)
    if status not in STATUS:
        raise CallEventError("CallStatus", "is not a Twilio call status")
    raw_direction = one(data, "Direction") or "inbound"
    direction = Direction.IN if raw_direction == "inbound" else Direction.OUT
    at = now
    if (stamp := one(data, "Timestamp")) is not None:
        try:
            at = parsedate_to_datetime(stamp)
        except (TypeError, ValueError):
            raise CallEventError("Timestamp", "must be an RFC 2822 date") from None
        # "-0000" (UTC, zone not given) parses as a naive time, which the database refuses: in_utc makes it UTC
        at = in_utc("Timestamp", at)
    duration = seconds(data, "CallDuration")
    kinds, cause = STATUS[status]
    call_id = one(data, "CallSid", required=True) or ""
    from_number, to_number = one(data, "From", "Caller"), one(data, "To", "Called")
    events = []
    for kind in kinds:
        when = at
        if kind == "answer" and "hangup" in kinds and duration is not None:
            when = at - timedelta(seconds=duration)
        events.append(CallEvent(source="twilio", call_id=call_id, kind=kind, at=when, direction=direction,
                                from_number=from_number, to_number=to_number,
                                cause=cause if kind == "hangup" else None,
                                duration_seconds=duration if kind == "hangup" else None))
    return events

"""Phone-system adapters: each turns one webhook payload into ``CallEvent``s for ``crm_inbox.calls.service``.

Payloads arrive as a plain mapping (form fields or JSON); repeated form fields (sipgate's ``user[]``)
arrive as lists. An adapter raises ``CallEventError`` naming the field when the payload is unusable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from crm_inbox.calls.service import CallEvent
from handlers.phone import generic, placetel, sipgate, threecx, twilio

Adapter = Callable[[Mapping[str, Any], datetime], list[CallEvent]]

ADAPTERS: dict[str, Adapter] = {
    "sipgate": sipgate.parse,
    "cti": sipgate.parse_zammad,  # Zammad's generic CTI format is sipgate's, under another name
    "twilio": twilio.parse,
    "placetel": placetel.parse,
    "3cx": threecx.parse_report,
    "generic": generic.parse,
}

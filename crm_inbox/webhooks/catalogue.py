"""The event types a subscription can ask for, and the patterns it may use ("contact.created", "company.*",
"*")."""

from __future__ import annotations

import re

from crm_inbox.errors import ValidationError
from crm_inbox.events import pattern_matches as matches

# In the order the admin page lists them. The services record these (crm_inbox.events.record calls).
EVENT_TYPES: tuple[str, ...] = (
    "contact.created", "contact.updated", "contact.merged", "contact.erased",
    "company.created", "company.updated",
    "interaction.created",
    "call.ended", "call.missed",
    "ticket.created", "ticket.changed",
    "reminder.fired",
    "opportunity.created", "opportunity.changed", "opportunity.won", "opportunity.lost",
    "quote.sent", "quote.accepted", "quote.declined",
    "order.created",
    "import.finished", "import.undone",
    "invoice.created", "invoice.updated", "payment.created",
    "campaign.started", "campaign.cancelled",
)
TEST_EVENT = "webhook.test"  # sent by "test-send" to one subscription only, never fanned out

# "contact.created", "company.*" or "*": lower-case words with dots; a star only as the last part.
_PATTERN = re.compile(r"^(\*|[a-z][a-z_]*(\.[a-z][a-z_]*)*(\.\*)?)$")
MAX_PATTERNS = 50


def clean_patterns(patterns: object) -> list[str]:
    """The patterns as stored: trimmed, without duplicates, in the order given; ValidationError for anything
    that is not a list of event types or patterns (a typo would otherwise subscribe to nothing, silently)."""
    if not isinstance(patterns, (list, tuple)) or not all(isinstance(p, str) for p in patterns):
        raise ValidationError("event_types", "must be a list of event types")
    cleaned: list[str] = []
    for raw in patterns:
        pattern = raw.strip()
        if not pattern or pattern in cleaned:
            continue
        if not _PATTERN.match(pattern) or len(pattern) > 60:
            raise ValidationError("event_types", f"{pattern[:60]!r} is not an event type or pattern "
                                                 "(contact.created, company.*, *)")
        known = pattern == "*" or any(matches(pattern, t) for t in EVENT_TYPES)
        if not known:
            raise ValidationError("event_types", f"{pattern!r} matches no event type")
        cleaned.append(pattern)
    if not cleaned:
        raise ValidationError("event_types", "choose at least one event type")
    if len(cleaned) > MAX_PATTERNS:
        raise ValidationError("event_types", f"at most {MAX_PATTERNS} event types")
    return cleaned

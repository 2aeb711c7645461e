"""The instants the CRM accepts: one range for every time that enters (webhooks, API, forms, IMAP, mail Date).

Python's datetime reaches year 9999, but converting such a value to a local time zone overflows, and a stored
value that cannot be shown breaks every page that lists it. So times outside a range any real event can have
are refused at the edge (400 with the field), and rendering falls back instead of failing.
"""

from __future__ import annotations

from datetime import UTC, datetime

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def in_range(moment: datetime) -> bool:
    """True when ``moment`` (aware; naive counts as UTC) lies in [EARLIEST, LATEST)."""
    try:
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return EARLIEST <= aware < LATEST
    except (OverflowError, ValueError):  # an offset that pushes year 1 or 9999 over the edge
        return False

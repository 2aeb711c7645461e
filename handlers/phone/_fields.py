"""Reading webhook fields: one value or a list, required or not, with errors that name the field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from crm_inbox.errors import CallEventError
from crm_inbox.time_range import EARLIEST, LATEST, in_range

MAX_FIELD = 200


def one(data: Mapping[str, Any], *names: str, required: bool = False) -> str | None:
    for name in names:
        value = data.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None or value == "":
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise CallEventError(name, "must be a string")
        text = str(value).strip()
        if len(text) > MAX_FIELD:
            raise CallEventError(name, f"must be at most {MAX_FIELD} characters")
        if text:
            return text
    if required:
        raise CallEventError(names[0], "is required")
    return None


def many(data: Mapping[str, Any], *names: str) -> tuple[str, ...]:
    values: list[str] = []
    for name in names:
        raw = data.get(name)
        items = raw if isinstance(raw, list) else [raw] if raw not in (None, "") else []
        for item in items:
            if not isinstance(item, str) or len(item) > MAX_FIELD:
                raise CallEventError(name, "must be a list of names")
            if item.strip():
                values.append(item.strip())
    return tuple(values)


def timestamp(data: Mapping[str, Any], name: str, default: datetime) -> datetime:
    value = one(data, name)
    if value is None:
        return default
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CallEventError(name, "must be an ISO 8601 time, e.g. 2026-11-23T10:15:00+01:00") from None
    return in_utc(name, parsed)


def in_utc(name: str, moment: datetime) -> datetime:
    """``moment`` in UTC (naive counts as UTC), refused naming ``name`` when outside the accepted range:
    a stored year 9999 breaks every page that shows it, and year 1 with an offset cannot even be converted."""
    if not in_range(moment):
        raise CallEventError(name, f"must lie between {EARLIEST.year} and {LATEST.year} (UTC)")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def seconds(data: Mapping[str, Any], name: str) -> int | None:
    value = one(data, name)
    if value is None:
        return None
    if not value.isdigit() or int(value) > 7 * 24 * 3600:
        raise CallEventError(name, "must be a whole number of seconds")
    return int(value)

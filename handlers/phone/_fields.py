"""Reading webhook fields: one value or a list, required or not, with errors that name the field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from crm_inbox.calls import CallEventError

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
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def seconds(data: Mapping[str, Any], name: str) -> int | None:
    value = one(data, name)
    if value is None:
        return None
    if not value.isdigit() or int(value) > 7 * 24 * 3600:
        raise CallEventError(name, "must be a whole number of seconds")
    return int(value)

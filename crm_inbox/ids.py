"""Row ids as clients and forms give them: one range for every id column (32-bit on PostgreSQL)."""

from __future__ import annotations

from typing import Any

from crm_inbox.errors import ValidationError

MAX_ID = 2**31 - 1  # the id columns are 32-bit integers on PostgreSQL


def ref_id(field: str, value: Any) -> int | None:
    """An id referring to another row: a whole number in the column's range, or None."""
    if value is None:
        return None
    if not is_id(value):
        raise ValidationError(field, "must be the id of an existing record")
    return int(value)


def is_id(value: Any) -> bool:
    """A whole number (not a bool) that can be a row id."""
    return not isinstance(value, bool) and isinstance(value, int) and 1 <= value <= MAX_ID

"""JSON into the services' typed changes: shapes only (what a value may be is the service's rule).

Each parser takes the field's name and the JSON value and returns what the dataclass field holds, or raises
``ValidationError`` naming the field (answered 400)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from crm_inbox.contacts.inputs import FieldValue
from crm_inbox.errors import ValidationError

T = TypeVar("T")
Parser = Callable[[str, Any], Any]


def text(field: str, value: Any) -> str | None:
    """A string, or null."""
    if value is not None and not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    return value


def string(field: str, value: Any) -> str:
    """A string; null is not one."""
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    return value


def list_of(what: str) -> Parser:
    def parse(field: str, value: Any) -> tuple[str, ...]:
        if value is None:  # null clears the list
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError(field, f"must be a list of {what}")
        return tuple(value)
    return parse


def free_fields(field: str, value: Any) -> dict[str, FieldValue]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(field, "must be an object")
    for key, val in value.items():
        if not isinstance(val, str | int | float | bool) and val is not None:
            raise ValidationError(f"{field}.{key}", "must be a string, number, boolean or null")
    return dict(value)


def changes(kind: Callable[..., T], parsers: dict[str, Parser], data: dict[str, Any]) -> T:
    """Only the keys sent are given (a PATCH changes just those); an unknown key is a 400 naming it."""
    unknown = sorted(set(data) - set(parsers))
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    return kind(**{key: parsers[key](key, value) for key, value in data.items()})

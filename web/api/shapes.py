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


ADDRESS_KEYS = ("street", "postcode", "city", "country")


def flatten_addresses(data: dict[str, Any], nests: dict[str, str]) -> dict[str, Any]:
    """The JSON's nested addresses as the dataclass's flat fields: ``nests`` maps a key ("address",
    "delivery_address") to the fields' prefix ("", "delivery_"). ``{"address": {"city": "Wien"}}`` gives
    ``{"city": "Wien"}`` (only the keys sent change), ``"address": null`` clears all four; a flat "city" on
    the top level is unknown. Errors name the JSON path ("address.city")."""
    out = {key: value for key, value in data.items() if key not in nests}
    flat = {prefix + key for prefix in nests.values() for key in ADDRESS_KEYS}
    clash = sorted(set(out) & flat)
    if clash:
        raise ValidationError(clash[0], "is not a known field")
    for key, prefix in nests.items():
        if key not in data:
            continue
        value = data[key]
        if value is None:
            value = dict.fromkeys(ADDRESS_KEYS)
        if not isinstance(value, dict):
            raise ValidationError(key, "must be an object with street, postcode, city and country, or null")
        for sub, sub_value in value.items():
            if sub not in ADDRESS_KEYS:
                raise ValidationError(f"{key}.{sub}", "is not a known field")
            out[prefix + sub] = text(f"{key}.{sub}", sub_value)
    return out


def json_field(name: str, nests: dict[str, str]) -> str:
    """A service's field name as the JSON spells it: "delivery_city" → "delivery_address.city"."""
    for key, prefix in sorted(nests.items(), key=lambda item: -len(item[1])):
        if name.startswith(prefix) and name[len(prefix):] in ADDRESS_KEYS:
            return f"{key}.{name[len(prefix):]}"
    return name


def changes(kind: Callable[..., T], parsers: dict[str, Parser], data: dict[str, Any]) -> T:
    """Only the keys sent are given (a PATCH changes just those); an unknown key is a 400 naming it."""
    unknown = sorted(set(data) - set(parsers))
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    return kind(**{key: parsers[key](key, value) for key, value in data.items()})

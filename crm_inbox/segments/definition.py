"""A segment's definition: a condition tree, parsed and checked from JSON.

    {"all": [cond, …]}   every condition holds (AND)
    {"any": [cond, …]}   at least one holds (OR)
    {"not": cond}        the condition does not hold
    {"field": "role", "op": "in", "value": ["customer"]}   a leaf

``parse`` turns the JSON into frozen dataclasses or raises a ValidationError whose ``field`` is the path of the
bad part (``definition.all[2].value``). Pure: no database. ``FIELDS`` lists every field with its operators; a
free field is ``fields.<key>`` (the key as staff typed it)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from crm_inbox.errors import ValidationError
from crm_inbox.ids import is_id
from crm_inbox.models import Category, Channel, ConsentState, CustomerType, Role

MAX_DEPTH = 6  # nesting of all/any/not
MAX_CONDITIONS = 100  # leaves in one definition
MAX_LIST = 200  # values in one "in" list
MAX_TEXT = 200  # one text value
MAX_DAYS = 36_500
UNKNOWN = "unknown"  # consent state when a person has no record for the channel
CONSENT_STATES = (UNKNOWN, *(s.value for s in ConsentState))
POSTCODE = re.compile(r"\d{5}")
FREE_FIELD_PREFIX = "fields."


@dataclass(frozen=True)
class Leaf:
    field: str  # "role", "company.industry", "fields.Branche", "consent.email", …
    op: str
    value: Any  # checked and normalised: an enum value, a list, a date, an int, a (low, high) pair, a bool


@dataclass(frozen=True)
class All:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Any_:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    part: Condition


Condition = Leaf | All | Any_ | Not


# --- value checkers: (path, raw) → normalised value, or a ValidationError naming the path ---

Checker = Callable[[str, Any], Any]


def _text(path: str, raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError(path, "must be a non-empty text")
    if len(raw) > MAX_TEXT:
        raise ValidationError(path, f"must be at most {MAX_TEXT} characters")
    return raw.strip()


def _choice(choices: tuple[str, ...], *, fold: Callable[[str], str] = lambda s: s) -> Checker:
    def check(path: str, raw: Any) -> str:
        value = fold(raw.strip()) if isinstance(raw, str) else raw
        if value not in choices:
            raise ValidationError(path, f"must be one of {', '.join(choices)}")
        return str(value)
    return check


def _list_of(item: Checker) -> Checker:
    def check(path: str, raw: Any) -> tuple[Any, ...]:
        if not isinstance(raw, list) or not raw:
            raise ValidationError(path, "must be a non-empty list")
        if len(raw) > MAX_LIST:
            raise ValidationError(path, f"must hold at most {MAX_LIST} values")
        return tuple(dict.fromkeys(item(f"{path}[{i}]", v) for i, v in enumerate(raw)))
    return check


def _date(path: str, raw: Any) -> date:
    if isinstance(raw, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip()):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise ValidationError(path, "must be a date (YYYY-MM-DD)")


def _days(path: str, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_DAYS:
        raise ValidationError(path, f"must be a whole number of days from 0 to {MAX_DAYS}")
    return raw


def _flag(path: str, raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ValidationError(path, "must be true or false")
    return raw


def _staff_id(path: str, raw: Any) -> int:
    if not is_id(raw):  # also bounded: 2**31 overflows PostgreSQL's integer column
        raise ValidationError(path, "must be a staff user's id")
    return int(raw)


def _postcode(path: str, raw: Any) -> str:
    value = raw.strip() if isinstance(raw, str) else ""
    if not POSTCODE.fullmatch(value):
        raise ValidationError(path, "must be a German postcode of five digits")
    return value


def _postcode_range(path: str, raw: Any) -> tuple[str, str]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise ValidationError(path, "must be [from, to], two postcodes of five digits")
    low, high = _postcode(f"{path}[0]", raw[0]), _postcode(f"{path}[1]", raw[1])
    if low > high:
        raise ValidationError(path, "the first postcode must not be greater than the second")
    return low, high


def _country(path: str, raw: Any) -> str:
    value = raw.strip().upper() if isinstance(raw, str) else ""
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise ValidationError(path, "must be a two-letter country code (DE, AT, …)")
    return value


def _none(path: str, raw: Any) -> None:
    if raw not in (None, True):
        raise ValidationError(path, "takes no value")


_ROLE = _choice(tuple(r.value for r in Role), fold=str.lower)
_CATEGORY = _choice(tuple(c.value for c in Category), fold=str.upper)
_CUSTOMER_TYPE = _choice(tuple(t.value for t in CustomerType), fold=str.upper)
_CONSENT = _choice(CONSENT_STATES, fold=str.lower)


def _enum_ops(item: Checker) -> dict[str, Checker]:
    return {"is": item, "in": _list_of(item)}


_DATES: dict[str, Checker] = {"before": _date, "after": _date, "within_days": _days, "older_than_days": _days}

# field → op → checker of the value. Text fields compare exactly (after trimming).
FIELDS: dict[str, dict[str, Checker]] = {
    "role": _enum_ops(_ROLE),
    "category": {**_enum_ops(_CATEGORY), "empty": _none},
    "tags": {"has": _text, "has_any": _list_of(_text), "has_all": _list_of(_text)},
    "company.industry": {**_enum_ops(_text), "empty": _none},
    "company.size": {**_enum_ops(_text), "empty": _none},
    "company.customer_type": {**_enum_ops(_CUSTOMER_TYPE), "empty": _none},
    "company.category": {**_enum_ops(_CATEGORY), "empty": _none},
    "postcode": {"between": _postcode_range},
    "city": {**_enum_ops(_text)},
    "country": {**_enum_ops(_country)},
    "owner": {**_enum_ops(_staff_id), "empty": _none},
    "created": dict(_DATES),
    "last_contact": {**_DATES, "never": _none},
    "open_ticket": {"is": _flag},
    "open_opportunity": {"is": _flag},
    "open_quote": {"is": _flag},
    "bouncing": {"is": _flag},
    **{f"consent.{channel.value}": _enum_ops(_CONSENT) for channel in Channel},
}
FREE_FIELD_OPS: dict[str, Checker] = {"equals": _text, "exists": _none}


def ops_for(field: str) -> dict[str, Checker] | None:
    if field.startswith(FREE_FIELD_PREFIX):
        key = field[len(FREE_FIELD_PREFIX):]
        return FREE_FIELD_OPS if key.strip() and len(key) <= MAX_TEXT and not {'"', '\\'} & set(key) else None
    return FIELDS.get(field)


# --- the tree ---

def parse(raw: Any, path: str = "definition") -> Condition:
    """The condition tree of ``raw`` (JSON as loaded), or a ValidationError naming the bad part's path."""
    counter = [0]
    return _parse(raw, path, 1, counter)


def _parse(raw: Any, path: str, depth: int, counter: list[int]) -> Condition:
    if not isinstance(raw, dict):
        raise ValidationError(path, "must be an object: {\"all\": […]}, {\"any\": […]}, {\"not\": …} or a condition")
    if depth > MAX_DEPTH:
        raise ValidationError(path, f"nests too deep (at most {MAX_DEPTH} levels)")
    if "field" in raw:
        return _leaf(raw, path, counter)
    keys = set(raw)
    if len(keys) != 1 or not keys <= {"all", "any", "not"}:
        raise ValidationError(path, "must have exactly one of all, any, not, or be a condition with field, op, value")
    (key,) = keys
    if key == "not":
        return Not(_parse(raw["not"], f"{path}.not", depth + 1, counter))
    items = raw[key]
    if not isinstance(items, list) or not items:
        raise ValidationError(f"{path}.{key}", "must be a non-empty list of conditions")
    parts = tuple(_parse(item, f"{path}.{key}[{i}]", depth + 1, counter) for i, item in enumerate(items))
    return All(parts) if key == "all" else Any_(parts)


def _leaf(raw: dict[str, Any], path: str, counter: list[int]) -> Leaf:
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise ValidationError(path, f"too many conditions (at most {MAX_CONDITIONS})")
    extra = set(raw) - {"field", "op", "value"}
    if extra:
        raise ValidationError(f"{path}.{sorted(extra)[0]}", "is not part of a condition (field, op, value)")
    field = raw["field"]
    ops = ops_for(field) if isinstance(field, str) else None
    if ops is None:
        raise ValidationError(f"{path}.field", f"unknown field {str(field)[:60]!r}")
    op = raw.get("op")
    if not isinstance(op, str) or op not in ops:
        raise ValidationError(f"{path}.op", f"must be one of {', '.join(ops)} for {field}")
    return Leaf(field, op, ops[op](f"{path}.value", raw.get("value")))


def dump(condition: Condition) -> dict[str, Any]:
    """The JSON of a parsed tree (normalised: trimmed, upper/lower-cased, duplicates dropped)."""
    match condition:
        case All(parts):
            return {"all": [dump(p) for p in parts]}
        case Any_(parts):
            return {"any": [dump(p) for p in parts]}
        case Not(part):
            return {"not": dump(part)}
        case Leaf(field, op, value):
            out: dict[str, Any] = {"field": field, "op": op}
            if value is not None:
                out["value"] = _json_value(value)
            return out
    raise TypeError(condition)  # pragma: no cover


def _json_value(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return value


def leaves(condition: Condition) -> list[Leaf]:
    match condition:
        case Leaf():
            return [condition]
        case All(parts) | Any_(parts):
            return [leaf for p in parts for leaf in leaves(p)]
        case Not(part):
            return leaves(part)
    raise TypeError(condition)  # pragma: no cover

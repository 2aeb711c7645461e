"""A figure's values as people read them (German 1.234,5 and 12,5 %, English 1,234.5 and 12.5%; money with €)
and as machines read them (CSV, JSON: 1234.5, ISO dates). Pure: the language comes from the caller."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from babel.dates import format_date

from crm_inbox.analytics.model import Unit
from crm_inbox.sales.totals import format_money, format_number

DASH = "—"
_CODE = re.compile(r"[a-z][a-z0-9_]*")  # a code the reports put in a row (stage, channel, other_teams)
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
# Decimal places a unit is read with.
PLACES: dict[str, int] = {"count": 0, "percent": 1, "hours": 1, "minutes": 1, "days": 1}


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else Decimal(repr(value))
    if isinstance(value, int | Decimal):
        return Decimal(value)
    return None


def is_code(value: object) -> bool:
    return isinstance(value, str) and _CODE.fullmatch(value) is not None


def as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def month_text(value: Any, language: str) -> str:
    if isinstance(value, str) and (m := _MONTH.fullmatch(value)):
        value = date(int(m.group(1)), int(m.group(2)), 1)
    day = as_date(value)
    return format_date(day, "MMM yyyy", locale=language) if day else str(value)


def week_text(value: Any, language: str) -> str:
    day = as_date(value)
    if day is None:
        return str(value)
    year, week, _ = day.isocalendar()
    return f"KW {week}/{year}" if language == "de" else f"W{week} {year}"


def cell_text(value: Any, unit: Unit, language: str, label: Any = None) -> str:
    """One cell for the page's table (and the chart's axis). ``label`` turns codes into words."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if unit == "eur":
        number = _number(value)
        return format_money(number, language) if number is not None else str(value)
    if unit in PLACES:
        number = _number(value)
        if number is None:
            return str(value)
        text = format_number(number, language, PLACES[unit])
        if unit == "percent":
            return f"{text} %" if language == "de" else f"{text}%"
        return text
    if unit == "date":
        day = as_date(value)
        return format_date(day, "dd.MM.yyyy", locale=language) if day else str(value)
    if unit == "month":
        return month_text(value, language)
    if unit == "week":
        return week_text(value, language)
    if label is not None and is_code(value):
        return str(label(value))
    return str(value)


def is_numeric(unit: Unit) -> bool:
    return unit in PLACES or unit == "eur"


def plain_value(value: Any) -> Any:
    """A value as JSON carries it: Decimal as a string (like the API's money), dates ISO, NaN as null."""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def csv_value(value: Any) -> str:
    """A value as the CSV writes it: machine form (1234.5, 2026-03-01), empty for nothing."""
    plain = plain_value(value)
    if plain is None:
        return ""
    if isinstance(plain, bool):
        return "true" if plain else "false"
    return str(plain)


def chart_value(value: Any) -> float | None:
    """A value for drawing only (never for sums): floats are what the chart library scales."""
    number = _number(value)
    return None if number is None else float(number)

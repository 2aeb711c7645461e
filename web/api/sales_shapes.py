"""JSON into the sales services' typed inputs (``crm_inbox.sales.inputs``): shapes only, as ``shapes.py`` does
for contacts. What a value may be (a stage, a VAT rate, a price >= 0) is the service's rule; here a value only
has to be of the right kind and fit its column, so that no client can reach the database with a float's
rounding, NaN or a number the column cannot hold (that would be a 500, not a 400).

Money and quantities are accepted as JSON strings ("1234.50") or numbers (1234.5), read with
``Decimal(str(value))``: a JSON number becomes a float in the parser, and ``str`` gives its shortest exact
spelling, so 0.1 stays 0.1 rather than 0.1000000000000000055…
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, cast

from crm_inbox.errors import ValidationError
from crm_inbox.ids import ref_id
from crm_inbox.sales.inputs import (
    LineFields,
    OpportunityChanges,
    OpportunityFields,
    ProductChanges,
    ProductFields,
    QuoteChanges,
    QuoteFields,
)
from web.api.shapes import Parser, changes, string, text

T = TypeVar("T")

# ASCII digits only (Decimal reads "١٢٣" as 123); no exponent, no "_", no "NaN" in a string.
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")


def decimal(places: int, digits: int) -> Parser:
    """A number with at most ``places`` decimal places that fits a NUMERIC(``digits``, ``places``) column."""
    limit = Decimal(10) ** (digits - places)

    def parse(field: str, value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValidationError(field, "must be a decimal number such as \"12.50\"")
        raw = value.strip() if isinstance(value, str) else str(value)
        if isinstance(value, str) and not _DECIMAL.fullmatch(raw):
            raise ValidationError(field, "must be a decimal number such as \"12.50\"")
        try:
            number = Decimal(raw)
        except InvalidOperation:
            raise ValidationError(field, "must be a decimal number such as \"12.50\"") from None
        if not number.is_finite():
            raise ValidationError(field, "must be a finite number")
        if abs(number) >= limit:
            raise ValidationError(field, f"must be less than {limit:f} in magnitude")
        if number != number.quantize(Decimal(1).scaleb(-places)):  # 1.50 is fine, 1.505 is not (2 places)
            raise ValidationError(field, f"must have at most {places} decimal places")
        return number

    return parse


def nullable(parser: Parser) -> Parser:
    def parse(field: str, value: Any) -> Any:
        return None if value is None else parser(field, value)
    return parse


# The columns of models/sales.py: prices NUMERIC(16,4), quantities (14,3), percentages (5,2), amounts (14,2).
price = decimal(4, 16)
quantity = decimal(3, 14)
percent = decimal(2, 5)
amount = decimal(2, 14)


def iso_date(field: str, value: Any) -> date | None:
    """A calendar day "2026-12-31", or null."""
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValidationError(field, "must be a date such as \"2026-12-31\"")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(field, "must be a date such as \"2026-12-31\"") from None


def whole(field: str, value: Any) -> int | None:
    """A whole number (not a bool), or null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, "must be a whole number")
    if not -(2**31) <= value < 2**31:  # an INTEGER column; the service's range is narrower
        raise ValidationError(field, "is out of range")
    return value


def boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, "must be true or false")
    return value


def fields(kind: Callable[..., T], parsers: dict[str, Parser], data: dict[str, Any], prefix: str = "") -> T:
    """A new record's input: like ``shapes.changes``, and a missing required field is a 400 naming it."""
    missing = [f.name for f in dataclasses.fields(cast(Any, kind))
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               and f.name not in data]
    if missing:
        raise ValidationError(prefix + missing[0], "is required")
    unknown = sorted(set(data) - set(parsers))
    if unknown:
        raise ValidationError(prefix + unknown[0], "is not a known field")
    return kind(**{key: parsers[key](prefix + key, value) for key, value in data.items()})


def _not_null(parser: Parser) -> Parser:
    def parse(field: str, value: Any) -> Any:
        if value is None:
            raise ValidationError(field, "must not be null")
        return parser(field, value)
    return parse


PRODUCT_JSON: dict[str, Parser] = {
    "number": string, "name": string, "net_price": price, "vat_rate": nullable(percent), "unit": string,
    "description": text, "active": boolean}

OPPORTUNITY_JSON: dict[str, Parser] = {
    "title": string, "contact_id": ref_id, "company_id": ref_id, "owner_id": ref_id, "amount": nullable(amount),
    "close_date": iso_date, "stage": text, "probability": whole, "source": string}
OPPORTUNITY_CHANGES_JSON: dict[str, Parser] = {
    **OPPORTUNITY_JSON, "stage": string, "lost_reason": text}

LINE_JSON: dict[str, Parser] = {
    "text": text, "product_id": ref_id, "quantity": quantity, "unit": text, "unit_price": nullable(price),
    "discount_percent": percent, "vat_rate": nullable(percent), "description": text}


def line(field: str, value: Any) -> LineFields:
    if not isinstance(value, dict):
        raise ValidationError(field, "must be an object")
    return fields(LineFields, LINE_JSON, value, prefix=f"{field}.")


def lines(field: str, value: Any) -> tuple[LineFields, ...]:
    """The whole list of lines in their order (the editor sends all of them; the order is the positions)."""
    if not isinstance(value, list):
        raise ValidationError(field, "must be a list of lines")
    if len(value) > 1000:
        raise ValidationError(field, "must have at most 1000 lines")
    return tuple(line(f"{field}[{index}]", item) for index, item in enumerate(value))


QUOTE_JSON: dict[str, Parser] = {
    "opportunity_id": _not_null(ref_id), "lines": lines, "intro": text, "terms": text, "language": text,
    "valid_until": iso_date}
QUOTE_CHANGES_JSON: dict[str, Parser] = {key: p for key, p in QUOTE_JSON.items() if key != "opportunity_id"}


def product_fields(data: dict[str, Any]) -> ProductFields:
    return fields(ProductFields, PRODUCT_JSON, data)


def product_changes(data: dict[str, Any]) -> ProductChanges:
    return changes(ProductChanges, PRODUCT_JSON, data)


def opportunity_fields(data: dict[str, Any]) -> OpportunityFields:
    return fields(OpportunityFields, OPPORTUNITY_JSON, data)


def opportunity_changes(data: dict[str, Any]) -> OpportunityChanges:
    return changes(OpportunityChanges, OPPORTUNITY_CHANGES_JSON, data)


def quote_fields(data: dict[str, Any]) -> QuoteFields:
    return fields(QuoteFields, QUOTE_JSON, data)


def quote_changes(data: dict[str, Any]) -> QuoteChanges:
    return changes(QuoteChanges, QUOTE_CHANGES_JSON, data)

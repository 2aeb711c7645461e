"""The value rules the sales services share: a money or percentage amount with at most so many places, a
one-line text of bounded length. Said once here, so a product's price and an opportunity's amount fail alike."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from crm_inbox.errors import ValidationError
from crm_inbox.text import single_line


def amount(field: str, value: Any, *, places: int, maximum: Decimal, minimum: Decimal = Decimal(0)) -> Decimal:
    """A Decimal (an int is taken, a float never: it cannot hold cents exactly) between ``minimum`` and below
    ``maximum``, with at most ``places`` decimal places."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise ValidationError(field, "must be a decimal number (as a string in JSON, e.g. \"1234.50\")")
    number = Decimal(value)
    if not number.is_finite():
        raise ValidationError(field, "must be a finite number")
    if number < minimum:
        raise ValidationError(field, f"must be at least {minimum}")
    if number >= maximum:
        raise ValidationError(field, f"must be less than {maximum}")
    if number != number.quantize(Decimal(1).scaleb(-places)):
        raise ValidationError(field, f"must have at most {places} decimal places")
    return number


def line(field: str, value: Any, *, max_len: int, required: bool = True) -> str | None:
    """A one-line text (control characters become spaces, runs of space one); empty is None or, when
    ``required``, an error."""
    if value is None or (isinstance(value, str) and not " ".join(single_line(value).split())):
        if required:
            raise ValidationError(field, "is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    text = " ".join(single_line(value).split())
    if len(text) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters")
    return text


def long_text(field: str, value: Any, *, max_len: int = 20000) -> str | None:
    """A multi-line text (a description); blank is None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    if len(value) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters")
    return value.strip() or None

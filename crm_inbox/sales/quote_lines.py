"""A quote's lines from what staff typed: every value checked before the first change, products filling in
what was not given, positions 1..n in the order given (the editor reorders by sending the new order).

Credit lines: a negative *quantity* (``-1 × 50,00 €`` "Gutschrift") is allowed, a negative unit price is not,
so that a line's sign is always read from one column (the ERP books quantity × price); the quote as a whole
must not come out below zero.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from decimal import Decimal

from sqlalchemy.orm import Session

from crm_inbox.config import Settings
from crm_inbox.errors import ValidationError
from crm_inbox.ids import ref_id
from crm_inbox.models import Product, QuoteLine
from crm_inbox.sales.inputs import LineFields
from crm_inbox.sales.totals import Totals, compute, line_net
from crm_inbox.sales.values import amount, long_text
from crm_inbox.sales.values import line as one_line

MAX_LINES = 1000
MAX_TEXT = 300  # a line's text is a product name or a short title; the description takes the rest
MAX_DESCRIPTION = 10_000
MAX_UNIT = 30
# What the columns hold (Numeric(14, 3), Numeric(16, 4), Numeric(14, 2)).
MAX_QUANTITY = Decimal("1e11")
MAX_UNIT_PRICE = Decimal("1e12")
MAX_TOTAL = Decimal("1e11")
DEFAULT_UNIT = {"de": "Stück", "en": "pc."}


def build_lines(session: Session, settings: Settings, fields: Sequence[LineFields], *, language: str,
                known_products: Collection[int] = ()) -> list[QuoteLine]:
    """New, unattached line rows for ``fields`` in the given order. A product must exist, and be active unless
    the quote already had a line with it (``known_products``: resending the editor's lines after the product
    was retired keeps that line)."""
    if len(fields) > MAX_LINES:
        raise ValidationError("lines", f"at most {MAX_LINES} lines")
    rates = settings.sales.rates
    out: list[QuoteLine] = []
    for position, line in enumerate(fields, start=1):
        where = f"lines[{position - 1}]"
        product: Product | None = None
        if line.product_id is not None:
            # In the id columns' range before the lookup (PostgreSQL refuses a larger int4 with an error).
            product = session.get(Product, ref_id(f"{where}.product_id", line.product_id))
            if product is None:
                raise ValidationError(f"{where}.product_id", "no such product")
            if not product.active and product.id not in known_products:
                raise ValidationError(f"{where}.product_id", f"product {product.number} is no longer sold")
        text = one_line(f"{where}.text", line.text, max_len=MAX_TEXT, required=product is None)
        if text is None:
            assert product is not None
            text = product.name
        description = long_text(f"{where}.description", line.description, max_len=MAX_DESCRIPTION)
        if line.description is None and product is not None:
            description = product.description
        unit = (one_line(f"{where}.unit", line.unit, max_len=MAX_UNIT, required=False)
                or (product.unit if product else DEFAULT_UNIT.get(language, DEFAULT_UNIT["de"])))
        quantity = amount(f"{where}.quantity", line.quantity, places=3, maximum=MAX_QUANTITY, minimum=-MAX_QUANTITY)
        if quantity == 0:
            raise ValidationError(f"{where}.quantity", "must not be 0 (a credit line has a negative quantity)")
        price = line.unit_price if line.unit_price is not None else (product.net_price if product else None)
        if price is None:
            raise ValidationError(f"{where}.unit_price", "a line without a product needs a unit price")
        # Not below 0: a credit line is a negative quantity (see the module's docstring).
        price = amount(f"{where}.unit_price", price, places=4, maximum=MAX_UNIT_PRICE)
        discount = amount(f"{where}.discount_percent", line.discount_percent, places=2, maximum=Decimal(1000))
        if discount > 100:
            raise ValidationError(f"{where}.discount_percent", "must lie between 0 and 100")
        rate = line.vat_rate if line.vat_rate is not None else (product.vat_rate if product else rates[0])
        rate = amount(f"{where}.vat_rate", rate, places=2, maximum=Decimal(1000))
        if rate not in rates:
            raise ValidationError(f"{where}.vat_rate",
                                  "must be one of " + ", ".join(str(r) for r in rates))
        out.append(QuoteLine(position=position, product_id=product.id if product else None, text=text,
                             description=description, quantity=quantity, unit=unit, unit_price=price,
                             discount_percent=discount, vat_rate=rate))
    return out


def preview(session: Session, settings: Settings, fields: Sequence[LineFields], *,
            known_products: Collection[int] = ()) -> Totals:
    """The totals the lines would have if saved, with every check saving makes (the editor's live totals), and
    nothing written. A line still being typed may lack its text: the sum does not depend on it."""
    typed = [line if line.text is not None or line.product_id is not None else replace(line, text="-")
             for line in fields]
    return checked_totals(build_lines(session, settings, typed, language="de", known_products=known_products))


def checked_totals(lines: Sequence[QuoteLine]) -> Totals:
    """``totals.compute`` of the lines, refused when the quote would come out negative or too large."""
    # Each line first: a thousand lines near the column limits would overflow the sum's decimal context.
    if any(abs(line_net(line)) >= MAX_TOTAL for line in lines):
        raise ValidationError("lines", "the amounts are too large")
    totals = compute(lines)
    if totals.gross < 0:
        raise ValidationError("lines", "the quote's total must not be negative")
    if totals.gross >= MAX_TOTAL or any(abs(net) >= MAX_TOTAL for net in totals.line_nets):
        raise ValidationError("lines", "the amounts are too large")
    return totals


def copy_lines(lines: Sequence[QuoteLine]) -> list[QuoteLine]:
    """Unattached copies (a new version starts with the lines of the one before)."""
    return [QuoteLine(position=line.position, product_id=line.product_id, text=line.text,
                      description=line.description, quantity=line.quantity, unit=line.unit,
                      unit_price=line.unit_price, discount_percent=line.discount_percent, vat_rate=line.vat_rate)
            for line in lines]

"""The one place that sums a quote or order: line nets rounded to cents, VAT per rate on the sum of that rate's
lines (not per line, which drifts by cents on long documents), net, VAT and gross.

The quote, its PDF, the order, the confirmation and the ERP export all call ``compute``, so they never disagree
by a cent. Pure functions on ``Decimal``; no database, no floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Protocol

ROUND = ROUND_HALF_UP  # kaufmännisches Runden: .005 goes away from zero
CENT = Decimal("0.01")
HUNDRED = Decimal(100)
# Quantity (3 places) × unit price (4 places) × discount factor needs far fewer digits; the wide context only
# makes sure no intermediate product is ever rounded before the one rounding to cents.
_EXACT = Context(prec=60, rounding=ROUND)


class Amounts(Protocol):
    """What compute reads of a line: LineAmounts, QuoteLine and OrderLine all have these attributes."""

    @property
    def quantity(self) -> Decimal: ...
    @property
    def unit_price(self) -> Decimal: ...
    @property
    def discount_percent(self) -> Decimal: ...
    @property
    def vat_rate(self) -> Decimal: ...


@dataclass(frozen=True)
class LineAmounts:
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal  # 0..100
    vat_rate: Decimal  # percent, e.g. Decimal("19")


@dataclass(frozen=True)
class RateTotal:
    rate: Decimal  # two places: Decimal("19.00")
    net: Decimal  # sum of the rounded line nets with this rate
    vat: Decimal  # round(net * rate / 100, 2): VAT on the sum per rate, not per line


@dataclass(frozen=True)
class Totals:
    line_nets: tuple[Decimal, ...]  # each line: round(quantity * unit_price * (1 - discount/100), 2)
    rates: tuple[RateTotal, ...]  # ordered by rate descending (19, 7, 0)
    net: Decimal
    vat: Decimal
    gross: Decimal  # net + vat


def _cents(value: Decimal) -> Decimal:
    rounded = value.quantize(CENT, rounding=ROUND)
    return rounded if rounded else CENT * 0  # no "-0.00" from a tiny negative amount


def line_net(line: Amounts) -> Decimal:
    """One line's net amount, rounded to cents once, at the end."""
    with localcontext(_EXACT):
        factor = (HUNDRED - Decimal(line.discount_percent)) / HUNDRED
        return _cents(Decimal(line.quantity) * Decimal(line.unit_price) * factor)


def compute(lines: Sequence[Amounts]) -> Totals:
    """Totals of a document's lines (empty: all zero, no rates)."""
    nets = tuple(line_net(line) for line in lines)
    by_rate: dict[Decimal, Decimal] = {}
    for line, net in zip(lines, nets, strict=True):
        # 19 and 19.00 are one rate (Decimal compares by value; the key is normalised for printing).
        rate = Decimal(line.vat_rate).quantize(CENT, rounding=ROUND)
        by_rate[rate] = by_rate.get(rate, CENT * 0) + net
    with localcontext(_EXACT):
        rates = tuple(RateTotal(rate=rate, net=_cents(net), vat=_cents(net * rate / HUNDRED))
                      for rate, net in sorted(by_rate.items(), key=lambda item: item[0], reverse=True))
    net = _cents(sum(nets, CENT * 0))
    vat = _cents(sum((rate.vat for rate in rates), CENT * 0))
    return Totals(line_nets=nets, rates=rates, net=net, vat=vat, gross=_cents(net + vat))


def money(value: Decimal) -> str:
    """The machine form of an amount, for JSON and CSV: ``"1234.50"``, ``"-5.00"``."""
    return f"{_cents(Decimal(value)):f}"


def format_number(value: Decimal, language: str, places: int = 2) -> str:
    """A number as people read it: ``1.234,50`` (de) / ``1,234.50`` (en), with exactly ``places`` places."""
    quantum = Decimal(1).scaleb(-places)
    rounded = Decimal(value).quantize(quantum, rounding=ROUND)
    if not rounded:
        rounded = abs(rounded)
    text = f"{rounded:,.{places}f}"
    if language == "de":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def format_money(value: Decimal, language: str) -> str:
    """An amount as printed: ``1.234,50 €`` (de) / ``€1,234.50`` (en); negative: ``-1.234,50 €`` / ``-€1,234.50``."""
    text = format_number(value, language)
    if language == "de":
        return f"{text} €"
    return f"-€{text[1:]}" if text.startswith("-") else f"€{text}"

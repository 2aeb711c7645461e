"""The one function that sums every quote and order: a table of the cases where naive sums go wrong by a cent."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from crm_inbox.models import OrderLine, QuoteLine
from crm_inbox.sales.totals import LineAmounts, RateTotal, compute, format_money, format_number, money


def line(quantity: str, price: str, rate: str = "19", discount: str = "0") -> LineAmounts:
    return LineAmounts(quantity=D(quantity), unit_price=D(price), discount_percent=D(discount), vat_rate=D(rate))


# (case, lines, expected line nets, expected (rate, net, vat) per rate, net, vat, gross)
CASES = [
    ("empty", [], [], [], "0.00", "0.00", "0.00"),
    ("one line", [line("1", "100")], ["100.00"], [("19", "100.00", "19.00")], "100.00", "19.00", "119.00"),
    ("half a cent rounds up", [line("1", "0.005", "0")], ["0.01"], [("0", "0.01", "0.00")], "0.01", "0.00",
     "0.01"),
    # 3 × 0.335 is 1.005 exactly in decimal (1.00499… in binary floating point, which rounds down)
    ("1.005 rounds up", [line("3", "0.335")], ["1.01"], [("19", "1.01", "0.19")], "1.01", "0.19", "1.20"),
    # each line is rounded on its own: 100 half-cents are a euro, not fifty cents
    ("many half cents", [line("1", "0.005")] * 100, ["0.01"] * 100, [("19", "1.00", "0.19")], "1.00", "0.19",
     "1.19"),
    ("many thirds of a cent", [line("1", "0.333")] * 1000, ["0.33"] * 1000, [("19", "330.00", "62.70")],
     "330.00", "62.70", "392.70"),
    # VAT on the sum per rate: 2 × 0.035 per line would be 0.08; on the sum 1.00 × 7 % it is 0.07
    ("VAT on the sum, not per line", [line("1", "0.50", "7")] * 2, ["0.50", "0.50"], [("7", "1.00", "0.07")],
     "1.00", "0.07", "1.07"),
    # per line 0.0038 would round to nothing ten times; on the sum it is 0.04
    ("VAT on the sum of tiny lines", [line("1", "0.02")] * 10, ["0.02"] * 10, [("19", "0.20", "0.04")], "0.20",
     "0.04", "0.24"),
    ("discount", [line("3", "19.99", discount="10")], ["53.97"], [("19", "53.97", "10.25")], "53.97", "10.25",
     "64.22"),
    ("discount to a half cent", [line("1", "0.04", discount="12.5")], ["0.04"], [("19", "0.04", "0.01")], "0.04",
     "0.01", "0.05"),
    ("full discount", [line("2", "99.99", discount="100")], ["0.00"], [("19", "0.00", "0.00")], "0.00", "0.00",
     "0.00"),
    ("mixed rates in any order come out 19, 7, 0",
     [line("1", "25", "0"), line("1.5", "12.34", "7"), line("2", "49.90", "19")], ["25.00", "18.51", "99.80"],
     [("19", "99.80", "18.96"), ("7", "18.51", "1.30"), ("0", "25.00", "0.00")], "143.31", "20.26", "163.57"),
    ("three-place quantity, four-place price",
     [line("2.125", "0.0049"), line("1.333", "3.3333"), line("12.345", "1.2345"), line("0.125", "0.0400")],
     ["0.01", "4.44", "15.24", "0.01"], [("19", "19.70", "3.74")], "19.70", "3.74", "23.44"),
    ("zero quantity", [line("0", "100")], ["0.00"], [("19", "0.00", "0.00")], "0.00", "0.00", "0.00"),
    ("credit line", [line("2", "50"), line("-1", "10")], ["100.00", "-10.00"], [("19", "90.00", "17.10")],
     "90.00", "17.10", "107.10"),
    ("negative half cents round away from zero", [line("-1", "0.005", "0"), line("-1", "0.50", "7")],
     ["-0.01", "-0.50"], [("7", "-0.50", "-0.04"), ("0", "-0.01", "0.00")], "-0.51", "-0.04", "-0.55"),
    ("a line and its credit cancel out", [line("1", "100"), line("-1", "100")], ["100.00", "-100.00"],
     [("19", "0.00", "0.00")], "0.00", "0.00", "0.00"),
    ("19 and 19.00 are one rate", [line("1", "10", "19"), line("1", "10", "19.00")], ["10.00", "10.00"],
     [("19", "20.00", "3.80")], "20.00", "3.80", "23.80"),
    ("reduced rate with places", [line("1", "100", "7.5")], ["100.00"], [("7.5", "100.00", "7.50")], "100.00",
     "7.50", "107.50"),
    ("200 lines of 1.005", [line("3", "0.3350")] * 200, ["1.01"] * 200, [("19", "202.00", "38.38")], "202.00",
     "38.38", "240.38"),
]


@pytest.mark.parametrize(("lines", "nets", "rates", "net", "vat", "gross"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_compute(lines: list[LineAmounts], nets: list[str], rates: list[tuple[str, str, str]], net: str, vat: str,
                 gross: str) -> None:
    totals = compute(lines)
    assert totals.line_nets == tuple(D(n) for n in nets)
    assert totals.rates == tuple(RateTotal(D(r), D(n), D(v)) for r, n, v in rates)
    assert (totals.net, totals.vat, totals.gross) == (D(net), D(vat), D(gross))
    # the printed forms: every amount with two places, so "100.00", never "1E+2" or "-0.00"
    assert all(str(amount) == money(amount) for amount in (*totals.line_nets, totals.net, totals.vat, totals.gross))
    assert totals.net == sum((r.net for r in totals.rates), D("0.00"))
    assert totals.gross == totals.net + totals.vat


def test_quote_and_order_lines_are_summed_alike() -> None:
    quote_lines = [QuoteLine(quantity=D("3.000"), unit_price=D("0.3350"), discount_percent=D("0.00"),
                             vat_rate=D("19.00")),
                   QuoteLine(quantity=D("1.000"), unit_price=D("0.5000"), discount_percent=D("0.00"),
                             vat_rate=D("7.00"))]
    order_lines = [OrderLine(quantity=q.quantity, unit_price=q.unit_price, discount_percent=q.discount_percent,
                             vat_rate=q.vat_rate) for q in quote_lines]
    assert compute(quote_lines) == compute(order_lines)
    assert compute(quote_lines).gross == D("1.74")  # 1.01 + 0.19 + 0.50 + 0.04


@pytest.mark.parametrize(("value", "expected"), [
    ("1234.5", "1234.50"), ("0", "0.00"), ("-5", "-5.00"), ("0.005", "0.01"), ("-0.004", "0.00"),
    ("1E+3", "1000.00"), ("12345678.999", "12345679.00"),
])
def test_money(value: str, expected: str) -> None:
    assert money(D(value)) == expected


@pytest.mark.parametrize(("value", "language", "expected"), [
    ("1234.5", "de", "1.234,50 €"), ("1234.5", "en", "€1,234.50"),
    ("0", "de", "0,00 €"), ("0", "en", "€0.00"),
    ("-1234567.891", "de", "-1.234.567,89 €"), ("-1234567.891", "en", "-€1,234,567.89"),
    ("999.995", "de", "1.000,00 €"), ("0.5", "en", "€0.50"), ("-0.001", "de", "0,00 €"),
])
def test_format_money(value: str, language: str, expected: str) -> None:
    assert format_money(D(value), language) == expected


def test_format_number_places() -> None:
    assert format_number(D("0.0049"), "de", 4) == "0,0049"
    assert format_number(D("1234.5"), "en", 3) == "1,234.500"
    assert format_number(D("19"), "de", 0) == "19"

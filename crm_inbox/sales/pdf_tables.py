"""The two tables of a quote or order confirmation: its lines and its totals (reportlab platypus)."""

from __future__ import annotations

from typing import Any

from reportlab.lib import colors  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.lib.utils import simpleSplit  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.platypus import Flowable, Table, TableStyle  # type: ignore[import-untyped]

from crm_inbox.sales.document import (
    DocumentLine,
    SalesDocument,
    amount,
    format_percent,
    format_quantity,
    format_unit_price,
    texts,
)

CELL_SIZE, CELL_LEADING, CELL_PADDING = 8.5, 10.5, 3  # the lines table: font size, line height, cell padding
ROW_LINES = 12  # text lines per table row: a longer description continues in the next row
GREY, RULE = colors.HexColor("#555555"), colors.HexColor("#BBBBBB")


def _wrap(text: str, font: str, width: float) -> list[str]:
    """Lines of at most ``width``: broken at spaces, and a word longer than the line (a URL) by characters."""
    out: list[str] = []
    for line in simpleSplit(text, font, CELL_SIZE, width):
        while pdfmetrics.stringWidth(line, font, CELL_SIZE) > width and len(line) > 1:
            cut = len(line) - 1
            while cut > 1 and pdfmetrics.stringWidth(line[:cut], font, CELL_SIZE) > width:
                cut -= 1
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    return out


class _TextCell(Flowable):
    """A line's text (bold) and description (grey), wrapped once by width. A Paragraph would do the same at
    several times the cost (markup parsing, per-fragment layout), which is most of a 200-line quote's time."""

    def __init__(self, lines: list[tuple[str, bool]], regular: str, bold: str) -> None:
        super().__init__()
        self.lines, self.regular, self.bold = lines, regular, bold

    @classmethod
    def of(cls, line: DocumentLine, width: float, regular: str, bold: str) -> list[_TextCell]:
        """The cells of one line: one, or more when the text is too long for one page (a table row never
        splits, and a row higher than the page could not be laid out at all)."""
        lines = [(part, True) for part in _wrap(line.text, bold, width)]
        if line.description:
            lines += [(part, False) for part in _wrap(line.description, regular, width)]
        return [cls(lines[start:start + ROW_LINES], regular, bold) for start in range(0, max(len(lines), 1),
                                                                                   ROW_LINES)]

    def wrap(self, available_width: float, _available_height: float) -> tuple[float, float]:
        self.width = available_width
        return available_width, len(self.lines) * CELL_LEADING

    def draw(self) -> None:
        canvas = self.canv
        y = len(self.lines) * CELL_LEADING - CELL_SIZE
        for text, strong in self.lines:
            canvas.setFont(self.bold if strong else self.regular, CELL_SIZE)
            canvas.setFillColor(colors.black if strong else GREY)
            canvas.drawString(0, y, text)
            y -= CELL_LEADING
        canvas.setFillColor(colors.black)


def lines_table(document: SalesDocument, regular: str, bold: str) -> Table:
    """Position, text with description, quantity, unit, unit price, discount, VAT rate, amount; the header
    row repeats on every page."""
    words, language = texts(document.language), document.language
    header = [words[key] for key in ("pos", "text", "quantity", "unit", "unit_price", "discount", "vat", "amount")]
    rows: list[list[Any]] = [header]
    widths = [w * mm for w in (10, 54, 16, 15, 24, 12, 10, 24)]
    text_width = widths[1] - 2 * CELL_PADDING
    ends = []  # the last row of each line, which gets a rule below it
    joins: list[tuple[Any, ...]] = []
    for line in document.lines:
        first, *more = _TextCell.of(line, text_width, regular, bold)
        rows.append([str(line.position), first, format_quantity(line.quantity, language), line.unit,
                     format_unit_price(line.unit_price, language),
                     f"{format_percent(line.discount_percent, language)} %" if line.discount_percent else "",
                     f"{format_percent(line.vat_rate, language)} %", amount(line.net, language)])
        for cell in more:  # continuation rows join their line without a gap
            rows.append(["", cell, "", "", "", "", "", ""])
            joins += [("BOTTOMPADDING", (0, len(rows) - 2), (-1, len(rows) - 2), 0),
                      ("TOPPADDING", (0, len(rows) - 1), (-1, len(rows) - 1), 0)]
        ends.append(len(rows) - 1)
    table = Table(rows, colWidths=widths, repeatRows=1)
    rules = [("LINEBELOW", (0, end), (-1, end), 0.25, RULE) for end in ends]
    table.setStyle(TableStyle([*rules, *joins,
        ("FONT", (0, 0), (-1, 0), bold, CELL_SIZE),
        ("FONT", (0, 1), (-1, -1), regular, CELL_SIZE),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#EEEEEE")),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ALIGN", (2, 0), (2, -1), "RIGHT"),
        ("ALIGN", (4, 0), (-1, -1), "RIGHT"),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PADDING),
        ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PADDING),
    ]))
    return table


def totals_table(document: SalesDocument, regular: str, bold: str) -> Table:
    """Net per rate (when there are several), net, VAT per rate, gross: as totals.compute summed them."""
    words, language, totals = texts(document.language), document.language, document.totals
    rows: list[list[str]] = []
    if len(totals.rates) > 1:
        rows += [[words["net_at"].format(rate=format_percent(rate.rate, language)), amount(rate.net, language)]
                 for rate in totals.rates]
    net_row = len(rows)
    rows.append([words["net"], amount(totals.net, language)])
    rows += [[words["vat_at"].format(rate=format_percent(rate.rate, language)), amount(rate.vat, language)]
             for rate in totals.rates]
    rows.append([words["gross"], amount(totals.gross, language)])
    table = Table(rows, colWidths=[70 * mm, 30 * mm], hAlign="RIGHT")
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), regular, 9),
        ("FONT", (0, -1), (-1, -1), bold, 10),
        ("ALIGN", (1, 0), (1, -1), "RIGHT"),
        ("LINEABOVE", (0, -1), (-1, -1), 0.6, colors.black),
        ("LINEBELOW", (0, -1), (-1, -1), 0.6, colors.black),
        ("LINEABOVE", (0, net_row), (-1, net_row), 0.3 if net_row else 0, colors.grey),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]))
    return table

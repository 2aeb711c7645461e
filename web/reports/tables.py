"""A figure's table as the page shows it: headers with units, cells formatted for the reader, and for a heat
map the shade of every cell (CSS classes: the page's CSP forbids inline styles)."""

from __future__ import annotations

from dataclasses import dataclass

from crm_inbox.analytics.model import Column, Figure
from web.reports.formatting import cell_text, chart_value, is_numeric
from web.reports.labels import label

HEAT_LEVELS = 5  # shades heat-1 … heat-5; heat-0 for nothing


@dataclass(frozen=True)
class Cell:
    text: str
    numeric: bool
    heat: int | None = None  # heat map shade, None outside heat maps


@dataclass(frozen=True)
class Table:
    headers: tuple[tuple[str, bool], ...]  # (text, numeric)
    rows: tuple[tuple[Cell, ...], ...]


_UNIT_SUFFIX = {"hours": "unit_hours", "minutes": "unit_minutes", "days": "unit_days"}


def header_text(column: Column) -> str:
    text = label(column.key)
    if column.unit in _UNIT_SUFFIX and "(" not in text:
        text = f"{text} ({label(_UNIT_SUFFIX[column.unit])})"
    return text


def heat_level(value: float | None, top: float) -> int:
    """0 for nothing, else 1 … HEAT_LEVELS by the share of the largest value."""
    if value is None or value <= 0 or top <= 0:
        return 0
    return max(1, min(HEAT_LEVELS, int(value / top * HEAT_LEVELS + 0.9999)))


def figure_table(figure: Figure, language: str) -> Table:
    units = [c.unit for c in figure.columns]
    shaded: set[int] = set()
    top = 0.0
    if figure.kind == "heatmap":
        # Every numeric column but the row's own label is a cell of the map.
        shaded = {i for i, c in enumerate(figure.columns)
                  if is_numeric(c.unit) and c.key != figure.x and (not figure.series or c.key in figure.series)}
        values = [chart_value(row[i]) for row in figure.rows for i in shaded]
        top = max((v for v in values if v is not None), default=0.0)
    rows = tuple(
        tuple(Cell(cell_text(value, units[i], language, label), is_numeric(units[i]),
                   heat_level(chart_value(value), top) if i in shaded else None)
              for i, value in enumerate(row))
        for row in figure.rows)
    headers = tuple((header_text(c), is_numeric(c.unit)) for c in figure.columns)
    return Table(headers, rows)

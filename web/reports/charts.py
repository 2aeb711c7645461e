"""A figure's chart as SVG, drawn on the server (pygal): the page shows it as an ``<img>``, so nothing in it
runs, and the page keeps its strict CSP. Heat maps and plain tables have no chart (the page draws those as
tables)."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pygal
from babel.dates import format_date
from pygal.style import Style

from crm_inbox.analytics.model import Figure, Unit
from crm_inbox.sales.totals import format_number
from web.reports.formatting import as_date, cell_text, chart_value
from web.reports.labels import label

CHART_KINDS = frozenset({"bar", "stacked_bar", "line", "hbar"})
WIDTH, HEIGHT = 880, 380
MAX_X_LABELS = 14  # more would overlap: the others are minor ticks (the table has every value)

STYLE = Style(
    background="#ffffff", plot_background="#ffffff", foreground="#1f2328", foreground_strong="#1f2328",
    foreground_subtle="#d0d7de", opacity="0.9", opacity_hover="1", transition="0ms",
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif",
    label_font_size=12, major_label_font_size=12, legend_font_size=13, value_font_size=11,
    title_font_size=14, tooltip_font_size=12, no_data_font_size=16,
    colors=("#0b5cad", "#e8833a", "#2e9e6b", "#8a63d2", "#c9455b", "#5b6b7a", "#d4a72c", "#1f9fb4"))

_CLASSES: dict[str, Callable[..., pygal.graph.graph.Graph]] = {
    "bar": pygal.Bar, "stacked_bar": pygal.StackedBar, "line": pygal.Line, "hbar": pygal.HorizontalBar}


def has_chart(figure: Figure) -> bool:
    return figure.kind in CHART_KINDS and not figure.suppressed and bool(figure.rows)


def _series_keys(figure: Figure) -> tuple[str, ...]:
    if figure.series:
        return figure.series
    return tuple(c.key for c in figure.columns if c.key != figure.x and c.unit not in ("text", "date", "week", "month"))


def axis_text(value: Any, unit: Unit, language: str) -> str:
    """A category on the chart's axis, shorter than in the table (the table has the long form)."""
    if unit == "week":
        day = as_date(value)
        if day is not None:
            week = day.isocalendar()[1]
            return f"KW {week}" if language == "de" else f"W{week}"
    if unit == "month":
        day = as_date(value)
        if day is not None:
            return format_date(day, "MMM yy", locale=language)
    if unit == "date":
        day = as_date(value)
        if day is not None:
            return format_date(day, "dd.MM.", locale=language)
    return cell_text(value, unit, language, label)


def scale_text(value: float, unit: Unit, language: str) -> str:
    """A value on the scale: whole euros and whole counts (cents and fractions only where they matter)."""
    if unit == "eur":
        text = format_number(Decimal(round(value)), language, 0)
        if language == "de":
            return f"{text} €"
        return f"-€{text[1:]}" if text.startswith("-") else f"€{text}"
    if unit == "count" and value != int(value):
        return format_number(Decimal(repr(value)), language, 1)
    return cell_text(value, unit, language)


def count_ticks(top: float) -> list[int]:
    """Whole-number ticks from 0 past ``top``, at most about eight (steps of 1, 2, 5 × 10ⁿ)."""
    raw = max(1.0, top / 8)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return list(range(0, int(math.ceil(top / step) * step) + 1, int(step)))


def chart_svg(figure: Figure, language: str) -> bytes:
    """The figure drawn: ``series`` over ``x`` (the first column when ``x`` is empty)."""
    if figure.kind not in CHART_KINDS:
        raise ValueError(f"{figure.key}: a {figure.kind} figure has no chart")
    keys = [c.key for c in figure.columns]
    units: dict[str, Unit] = {c.key: c.unit for c in figure.columns}
    x_key = figure.x or keys[0]
    series = [k for k in _series_keys(figure) if k in units]
    value_unit = units[series[0]] if series else "count"
    # A horizontal chart draws its first row at the bottom: reversed, it reads top-down like the table.
    rows = list(reversed(figure.rows)) if figure.kind == "hbar" else list(figure.rows)
    many = len(rows) > MAX_X_LABELS
    chart = _CLASSES[figure.kind](
        style=STYLE, width=WIDTH, height=HEIGHT, explicit_size=True, js=[],
        show_legend=len(series) > 1, legend_at_bottom=True, legend_at_bottom_columns=min(len(series), 4) or 1,
        truncate_legend=40, truncate_label=30, print_values=False, show_y_guides=True,
        x_label_rotation=35 if len(rows) > 8 and figure.kind != "hbar" else 0,
        show_minor_x_labels=not many, x_labels_major_every=math.ceil(len(rows) / MAX_X_LABELS) if many else None,
        no_data_text=label("no_data"),
        value_formatter=lambda v: scale_text(v, value_unit, language),
        margin=16, spacing=12)
    chart.x_labels = [axis_text(row[keys.index(x_key)], units[x_key], language) for row in rows]
    values = {key: [chart_value(row[keys.index(key)]) for row in rows] for key in series}
    if value_unit == "count":
        drawn = [v for vs in values.values() for v in vs if v is not None]
        top = (max(sum(v or 0 for v in column) for column in zip(*values.values(), strict=True))
               if figure.kind == "stacked_bar" else max(drawn, default=0))
        if top > 0:
            chart.y_labels = count_ticks(top)
    for key in series:
        chart.add(label(key), values[key])
    return bytes(chart.render())

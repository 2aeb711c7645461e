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
    """Whether the figure is drawn: a chart kind with something to see (all zeros draw nothing worth a look;
    the table says it)."""
    if figure.kind not in CHART_KINDS or figure.suppressed or not figure.rows:
        return False
    index = {c.key: i for i, c in enumerate(figure.columns)}
    columns = [index[k] for k in _series_keys(figure) if k in index]
    return any(chart_value(row[i]) for row in figure.rows for i in columns)


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
    """A value on the scale: whole euros, and whole numbers where the ticks are whole (no "14.0%")."""
    if unit == "eur":
        text = format_number(Decimal(round(value)), language, 0)
        if language == "de":
            return f"{text} €"
        return f"-€{text[1:]}" if text.startswith("-") else f"€{text}"
    places = next((p for p in (0, 1, 2) if round(value, p) == round(value, 10)), 2)
    if unit in ("count", "percent", "hours", "minutes", "days"):
        text = format_number(Decimal(repr(value)), language, places)
        if unit == "percent":
            return f"{text} %" if language == "de" else f"{text}%"
        return text
    return cell_text(value, unit, language)


def nice_ticks(top: float, whole: bool) -> list[float]:
    """Ticks from 0 past ``top``, at most about eight, in steps of 1, 2 or 5 × 10ⁿ (whole steps for counts)."""
    raw = top / 8
    if whole:
        raw = max(1.0, raw)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * 0.999)
    count = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


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
    x_labels = [axis_text(row[keys.index(x_key)], units[x_key], language) for row in rows]
    shown = x_labels[::math.ceil(len(rows) / MAX_X_LABELS)] if many else x_labels
    # Rotated only when the labels side by side would not fit (about 7 px a character, 20 px apart).
    crowded = figure.kind != "hbar" and sum(len(t) * 7 + 20 for t in shown) > WIDTH - 100
    chart = _CLASSES[figure.kind](
        style=STYLE, width=WIDTH, height=HEIGHT, explicit_size=True, js=[],
        show_legend=len(series) > 1, legend_at_bottom=True, legend_at_bottom_columns=min(len(series), 4) or 1,
        truncate_legend=40, truncate_label=30, print_values=False, show_y_guides=True,
        x_label_rotation=35 if crowded else 0,
        show_minor_x_labels=not many, x_labels_major_every=math.ceil(len(rows) / MAX_X_LABELS) if many else None,
        no_data_text=label("no_data"),
        value_formatter=lambda v: scale_text(v, value_unit, language),
        margin=16, spacing=12)
    chart.x_labels = x_labels
    values = {key: [chart_value(row[keys.index(key)]) for row in rows] for key in series}
    drawn = [v for vs in values.values() for v in vs if v is not None]
    top = (max((sum(v or 0 for v in column) for column in zip(*values.values(), strict=True)), default=0)
           if figure.kind == "stacked_bar" else max(drawn, default=0))
    if top > 0 and min(drawn, default=0) >= 0:  # a scale of its own only for what starts at zero
        chart.y_labels = nice_ticks(top, whole=value_unit == "count")
    for key in series:
        chart.add(label(key), values[key])
    return bytes(chart.render())

"""What reports are asked for and what they answer: typed values shared by the report queries, the web pages,
the API and the CSV downloads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

# How a column's values read: the web adapter formats (and the CSV writes) by it.
Unit = Literal["text", "count", "percent", "hours", "minutes", "days", "eur", "date", "week", "month"]
# How a figure is drawn: "heatmap" is a table of shaded cells, "table" has no chart.
ChartKind = Literal["bar", "stacked_bar", "line", "hbar", "heatmap", "table"]


@dataclass(frozen=True)
class Filters:
    """Period (``start`` inclusive, ``end`` exclusive, local calendar days), a team and a customer category.
    ``team`` filters only figures about staff work (tickets by assignee, calls by who took them, deals by
    owner); ``category`` is the customer's A/B/C category (the company's, else the contact's; "none": none)."""

    start: date
    end: date
    team: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class StaffPolicy:
    """[analytics] min_group_size and per_person_reports, as the report queries apply them."""

    min_group_size: int = 5
    per_person: bool = False


@dataclass(frozen=True)
class Column:
    key: str  # stable, English, snake_case: the CSV header and the label's key in the web adapter
    unit: Unit = "count"


@dataclass(frozen=True)
class Figure:
    """One chart and the table beside it. ``rows`` hold plain values (str, int, Decimal, float, date, None)
    in the order of ``columns``; the chart draws ``series`` (column keys) over ``x`` (a column key)."""

    key: str  # unique within its report: the chart's and the CSV's URL part
    kind: ChartKind
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    x: str = ""
    series: tuple[str, ...] = ()
    # Why some figures are missing: "small_groups" (staff groups under min_group_size pooled or withheld),
    # "team_too_small" (the filtered team is under min_group_size: nothing is shown).
    notes: tuple[str, ...] = ()
    suppressed: bool = False  # nothing may be shown (rows is then empty)


@dataclass(frozen=True)
class Report:
    name: Literal["service", "phone", "sales", "customers"]
    filters: Filters
    figures: tuple[Figure, ...] = field(default=())

    def figure(self, key: str) -> Figure:
        for f in self.figures:
            if f.key == key:
                return f
        raise KeyError(key)

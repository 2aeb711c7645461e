"""Shares and filter conditions the sales and customers reports share: pure functions, no I/O."""

from __future__ import annotations

from decimal import Decimal

from crm_inbox.analytics.model import Filters

CATEGORIES = ("A", "B", "C")


def percent(part: int | Decimal, whole: int | Decimal) -> float | None:
    """``part`` of ``whole`` in percent, rounded to one place; None when there is nothing to share."""
    if not whole:
        return None
    return round(float(part) * 100.0 / float(whole), 1)


def category_condition(column: str, filters: Filters) -> str:
    """SQL that keeps rows whose customer category ``column`` matches the filter (always true without one).
    The value itself travels as the ``$category`` parameter; "none" means no category assigned."""
    if filters.category is None:
        return "TRUE"
    if filters.category == "none":
        return f"{column} IS NULL"
    return f"{column} = $category"


def category_params(filters: Filters) -> dict[str, object]:
    """The parameter :func:`category_condition` refers to (DuckDB refuses unused named parameters)."""
    if filters.category is None or filters.category == "none":
        return {}
    return {"category": filters.category}

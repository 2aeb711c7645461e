"""Shares as the sales and customers reports show them: pure functions, no I/O."""

from __future__ import annotations

from decimal import Decimal

CATEGORIES = ("A", "B", "C")


def percent(part: int | Decimal, whole: int | Decimal) -> float | None:
    """``part`` of ``whole`` in percent, rounded to one place; None when there is nothing to share."""
    if not whole:
        return None
    return round(float(part) * 100.0 / float(whole), 1)


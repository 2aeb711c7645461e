"""Reports with charts at /reports, read from the analytical store only (never the operative database): the
overview, a page per report with filters, each figure's chart (SVG), table and CSV download."""

from __future__ import annotations

from web.reports import views  # noqa: F401  (registers routes)
from web.reports.blueprint import reports

__all__ = ["reports"]

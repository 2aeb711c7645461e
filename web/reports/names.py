"""The reports' names as the pages, links and API know them: the catalog's (crm_inbox.analytics.reports.catalog),
listed here so that an unknown name is a 404 and the overview lists them without loading the report queries,
and with them DuckDB, before a report is really run (tests/test_analytics_pages.py holds both lists equal)."""

from __future__ import annotations

REPORT_NAMES = ("service", "phone", "sales", "customers")

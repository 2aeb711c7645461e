"""The reports by name: what the pages, the API and the CSV downloads ask for."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from crm_inbox.analytics.model import Filters, Report, StaffPolicy
from crm_inbox.analytics.reports.customers import customers_report
from crm_inbox.analytics.reports.phone import phone_report
from crm_inbox.analytics.reports.sales import sales_report
from crm_inbox.analytics.reports.service import service_report

ReportQuery = Callable[[duckdb.DuckDBPyConnection, Filters, StaffPolicy], Report]

REPORTS: dict[str, ReportQuery] = {
    "service": service_report,
    "phone": phone_report,
    "sales": sales_report,
    "customers": customers_report,
}


def run(name: str, con: duckdb.DuckDBPyConnection, filters: Filters, policy: StaffPolicy) -> Report:
    """The named report on the store ``con`` (KeyError for an unknown name: the edges answer 404)."""
    return REPORTS[name](con, filters, policy)

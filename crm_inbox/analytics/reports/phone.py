"""The phone report (work in progress: the helper building it replaces this)."""

from __future__ import annotations

import duckdb

from crm_inbox.analytics.model import Filters, Report, StaffPolicy


def phone_report(con: duckdb.DuckDBPyConnection, filters: Filters, policy: StaffPolicy) -> Report:
    raise NotImplementedError

"""The JSON API under /api/v1: bearer-token authentication and JSON errors for every failure."""

from __future__ import annotations

from web.api import (  # noqa: F401  (registers routes)
    campaigns,
    consent,
    contacts,
    deals,
    documents,
    erp,
    errors,
    exports,
    imports,
    inbound,
    interactions,
    openapi,
    openapi_campaigns,
    openapi_exchange,
    openapi_marketing,
    openapi_reports,
    openapi_sales,
    opportunities,
    orders,
    privacy,
    products,
    quotes,
    reminders,
    reports,
    segments,
    subscriptions,
    tickets,
)
from web.api.blueprint import api

__all__ = ["api"]

"""The JSON API under /api/v1: bearer-token authentication and JSON errors for every failure."""

from __future__ import annotations

from web.api import (  # noqa: F401  (registers routes)
    contacts,
    deals,
    errors,
    inbound,
    interactions,
    openapi,
    openapi_sales,
    opportunities,
    orders,
    privacy,
    products,
    quotes,
    reminders,
    tickets,
)
from web.api.blueprint import api

__all__ = ["api"]

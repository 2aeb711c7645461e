"""Data in and out's part of the OpenAPI document: exports, customer-file documents, webhook subscriptions and
the ERP coupling. Added to ``openapi.PATHS`` and ``openapi.SCHEMAS`` when the API package imports this module."""

from __future__ import annotations

from web.api.openapi import PATHS, SCHEMAS  # noqa: F401

# --- exports ---

# --- documents ---

# --- webhook subscriptions ---

# --- ERP ---

"""The JSON API under /api/v1: bearer-token authentication and JSON errors for every failure."""

from __future__ import annotations

from flask import Blueprint

api = Blueprint("api", __name__, url_prefix="/api/v1")

from web.api import (  # noqa: E402,F401  (registers routes)
    contacts,
    errors,
    inbound,
    interactions,
    openapi,
    privacy,
    reminders,
    tickets,
)

"""The API's blueprint, apart from the package so that route modules import it without a circle."""

from __future__ import annotations

from flask import Blueprint

api = Blueprint("api", __name__, url_prefix="/api/v1")

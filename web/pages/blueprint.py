"""The staff pages' blueprint, apart from the package so that route modules import it without a circle.

Every page but /login and /healthz needs a logged-in staff user and every POST the CSRF token (web.auth)."""

from __future__ import annotations

from flask import Blueprint

from web.auth import login_required

pages = Blueprint("pages", __name__)
pages.before_request(login_required)

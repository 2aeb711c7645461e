"""The reports' blueprint, apart from the package so that route modules import it without a circle.

Mounted by the app factory only when [analytics] enabled. Every report page needs a logged-in staff user of any
role (reports only read)."""

from __future__ import annotations

from flask import Blueprint

from web.auth import login_required

reports = Blueprint("reports", __name__)
reports.before_request(login_required)

"""Staff pages (server-rendered). A plain contact list and contact page for now."""

from __future__ import annotations

from flask import Blueprint

pages = Blueprint("pages", __name__)

from web.pages import account, admin, masterdata, privacy, reminders, screenpop, tickets, triage, views  # noqa: E402,F401  (registers routes)

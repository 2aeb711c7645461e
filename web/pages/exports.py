"""The contact and company lists as files (CSV, Excel, vCard): exactly what the list's search shows, every page
of it. Read-only users may export, as they always could export the contact CSV; every export is audited."""

from __future__ import annotations

from flask import Response, abort, request
from flask_babel import gettext as _

from crm_inbox.contacts.search import company_matches
from crm_inbox.errors import ValidationError
from crm_inbox.exports.service import export
from web.auth import current_user
from web.downloads import export_response
from web.pages.blueprint import pages
from web.pages.contacts import contact_search, search_query, too_long_text
from web.requestdb import db


def _export(kind: str, file_format: str | None) -> Response:
    try:
        q = search_query()
    except ValidationError:
        abort(400, description=too_long_text())
    user = current_user()
    assert user is not None  # the blueprint's guard
    matches = (contact_search(q) if kind == "contacts" else company_matches(q)) if q else None
    try:
        done = export(db(), kind, file_format, matches, actor=user.id, query=q)
    except ValidationError:
        abort(400, description=_("Export as CSV, Excel (xlsx) or vCard (vcf)."))
    return export_response(done.content, done.mimetype, done.filename)


@pages.get("/contacts/export")
def contacts_export() -> Response:
    return _export("contacts", request.args.get("format"))


@pages.get("/companies/export")
def companies_export() -> Response:
    return _export("companies", request.args.get("format"))


@pages.get("/contacts.csv")
def contacts_csv() -> Response:
    """The contact CSV's old address (bookmarks, scripts): the same export as /contacts/export?format=csv."""
    return _export("contacts", "csv")

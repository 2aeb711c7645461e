"""Exports over the API: every contact or company (or those ``q`` finds, as the pages' search does) as CSV,
XLSX or vCard. Every role that reads may export, as with ``GET /contacts?format=csv``; each export is audited
with the request's parameters."""

from __future__ import annotations

from flask import Response, request

from crm_inbox.contacts.search import company_matches, contact_matches, query_text
from crm_inbox.exports.service import check_format, export
from web.api.blueprint import api
from web.auth import actor_id, require_token
from web.downloads import export_response
from web.requestdb import db, state


def _export(kind: str) -> Response:
    file_format = check_format(request.args.get("format"))  # a ValidationError is a 400 with field "format"
    q = query_text(request.args.get("q"))
    matches = None
    if q:
        matches = contact_matches(q, state().settings.phone.default_region) if kind == "contacts" \
            else company_matches(q)
    done = export(db(), kind, file_format, matches, actor=actor_id(), query=request.args.to_dict())
    return export_response(done.content, done.mimetype, done.filename)


@api.get("/contacts/export")
@require_token()
def export_contacts() -> Response:
    return _export("contacts")


@api.get("/companies/export")
@require_token()
def export_companies() -> Response:
    return _export("companies")

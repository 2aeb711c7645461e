"""The customer file over the API: upload a document to a person or a company (multipart), rename it, remove it.
Listing is the timeline (``kind=document``), downloading the attachment endpoint."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from crm_inbox.documents.service import (
    add_document,
    document_file,
    document_or_404,
    remove_document,
    rename_document,
)
from crm_inbox.errors import ValidationError
from crm_inbox.models import Company, Contact, Interaction
from web.api import serialize as ser
from web.api.blueprint import api
from web.api.errors import fail, get_or_404, json_body
from web.auth import actor_id, require_token
from web.json_errors import error_response
from web.requestdb import db, state

log = logging.getLogger(__name__)
UPLOADS = frozenset({"api.add_contact_document", "api.add_company_document"})
FORM_ALLOWANCE = 64 * 1024  # the title, the note and the multipart framing besides the file


@api.url_value_preprocessor
def _upload_limit(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Before the app's NUL check reads the body: an upload may be as large as [documents] max_bytes, whatever
    # the limit for other requests; far larger bodies are refused (413) before they are read.
    if endpoint in UPLOADS:
        request.max_content_length = state().settings.documents.max_bytes + FORM_ALLOWANCE


@api.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> Response:
    """Any API body over its limit (read no further): JSON as every API error, naming the limit, and a log line."""
    limit = request.max_content_length
    log.info("API %s %s refused: the body is larger than %s bytes", request.method, request.path, limit)
    code = "request_entity_too_large"  # werkzeug's name, as the API's other HTTP errors have it
    if request.endpoint in UPLOADS:
        document = state().settings.documents.max_bytes
        return error_response(413, code, f"a document may have at most {document} bytes", field="file")
    return error_response(413, code, f"the request body may have at most {limit} bytes")


def document_json(item: Interaction) -> dict[str, Any]:
    attachment = document_file(db(), item)
    return {"id": item.id, "title": item.subject, "note": item.text,
            "contact_id": item.contact_ids[0] if item.contact_ids else None, "company_id": item.company_id,
            "created_at": ser.when(item.occurred_at), "created_by_id": item.created_by_id,
            "file": ser.attachment(attachment),
            "url": f"/api/v1/interactions/{item.id}"}


def _upload(*, contact_id: int | None = None, company_id: int | None = None) -> Response:
    upload = request.files.get("file")
    limit = state().settings.documents.max_bytes
    try:
        item = add_document(
            db(), state().settings, contact_id=contact_id, company_id=company_id,
            filename=upload.filename if upload is not None else None,
            content_type=upload.mimetype if upload is not None else None,
            content=upload.read(limit + 1) if upload is not None else None,  # one byte more tells "too large"
            title=request.form.get("title"), note=request.form.get("note"), actor=actor_id())
    except ValidationError as exc:
        log.info("API document upload refused: %s", exc)
        raise
    response = jsonify(document_json(item))
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/interactions/{item.id}"
    return response


@api.post("/contacts/<int:contact_id>/documents")
@require_token(write=True)
def add_contact_document(contact_id: int) -> Response:
    get_or_404(Contact, contact_id, "contact")
    return _upload(contact_id=contact_id)


@api.post("/companies/<int:company_id>/documents")
@require_token(write=True)
def add_company_document(company_id: int) -> Response:
    get_or_404(Company, company_id, "company")
    return _upload(company_id=company_id)


@api.patch("/documents/<int:document_id>")
@require_token(write=True)
def patch_document(document_id: int) -> Response:
    item = document_or_404(db(), document_id)
    data = json_body()
    unknown = sorted(set(data) - {"title", "filename"})
    if unknown:
        fail(400, "invalid", f"{unknown[0]} is not a known field", field=unknown[0])
    rename_document(db(), item, data.get("title"), data.get("filename"), actor=actor_id())
    return jsonify(document_json(item))


@api.delete("/documents/<int:document_id>")
@require_token(write=True)
def delete_document(document_id: int) -> Response:
    item = document_or_404(db(), document_id)
    remove_document(db(), state().settings, item, actor_id())
    return Response(status=204)

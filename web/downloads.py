"""Attachment downloads, shared by the pages and the API: always a download, never rendered."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from flask import Response, abort

from crm_inbox.documents.storage import content_of
from crm_inbox.errors import NotFound
from crm_inbox.models import Attachment
from web.requestdb import state


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name plus the real one (RFC 6266): headers must stay latin-1."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    fallback = re.sub(r"[^A-Za-z0-9._ ()+-]", "_", fallback).strip() or "attachment"
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def attachment_response(att: Attachment) -> Response:
    try:
        content = content_of(state().settings, att)  # the database or the documents directory
    except NotFound as exc:
        abort(404, description=str(exc))
    # An attached .html, .svg or .js must never run under the app's own origin.
    response = Response(content, mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = content_disposition(att.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def pdf_response(content: bytes, filename: str) -> Response:
    """A PDF (a quote, an order confirmation) as a download: never shown inline under the app's origin, never
    sniffed, never cached. The pages and the API send it alike."""
    response = Response(content, mimetype="application/pdf")
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def csv_response(text: str, filename: str) -> Response:
    """An export: a download, never shown inline, never cached."""
    response = Response(text.encode("utf-8"), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def export_response(content: bytes, mimetype: str, filename: str) -> Response:
    """A file of many records (CSV, XLSX, vCard): a download, never shown inline, never cached."""
    response = Response(content, headers={"Content-Type": mimetype})
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response

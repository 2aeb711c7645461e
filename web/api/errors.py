"""JSON errors: ``{"error": {"code": …, "message": …}}`` with the right status, for every API failure."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from flask import Response, request
from werkzeug.exceptions import HTTPException

from crm_inbox.errors import BadCursor, Conflict, Forbidden, NotFound, ValidationError
from crm_inbox.ids import MAX_ID
from web.api.blueprint import api
from web.json_errors import ApiError, error_response, fail
from web.requestdb import db

log = logging.getLogger(__name__)

# The id columns are INTEGER: a larger id cannot exist, and PostgreSQL (like SQLite past 2**63) rejects it
# as a parameter, so such a URL is a 404 and such a filter a 400, never a 500.

T = TypeVar("T")


@api.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, **exc.extra)


@api.errorhandler(ValidationError)
def _validation(exc: ValidationError) -> Response:
    return error_response(400, "invalid", exc.message, field=exc.field)


@api.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Response:
    """A service's NotFound (a row named in the request vanished) is a 404, not an internal error."""
    log.info("API %s %s: not found: %s", request.method, request.path, exc)
    return error_response(404, "not_found", str(exc) or "not found")


@api.errorhandler(BadCursor)
def _bad_cursor(exc: BadCursor) -> Response:
    return error_response(400, "invalid", str(exc), field="cursor")


@api.errorhandler(Conflict)
def _conflict(exc: Conflict) -> Response:
    return error_response(409, "conflict", str(exc))


@api.errorhandler(Forbidden)
def _forbidden(exc: Forbidden) -> Response:
    """A service refused the acting user's role (the edges check roles too; this is the rule's own home)."""
    log.info("API %s %s: forbidden: %s", request.method, request.path, exc)
    return error_response(403, "forbidden", str(exc))


@api.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Response:
    code = (exc.name or "error").lower().replace(" ", "_")
    return error_response(exc.code or 500, code, exc.description or exc.name)


@api.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("API %s %s failed", request.method, request.path)
    return error_response(500, "internal", "internal error")


def json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        fail(400, "invalid", "the request body must be a JSON object", field="body")
    return data


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.removeprefix("-").isdigit()):  # int() would take "١٢٣", "1_000", " 7 "
        fail(400, "invalid", f"{name} must be a whole number", field=name)
    value = int(raw)
    if not lo <= value <= hi:
        fail(400, "invalid", f"{name} must be between {lo} and {hi}", field=name)
    return value


def get_or_404(model: type[T], ident: int, what: str, **kwargs: Any) -> T:
    """The row of ``model`` with id ``ident``, else a 404 naming ``what``."""
    row = db().get(model, ident, **kwargs) if ident <= MAX_ID else None
    if row is None:
        fail(404, "not_found", f"{what} {ident} not found")
    return row

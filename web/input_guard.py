"""Refuse NUL characters in any request input (query, form, JSON) with a 400 before a view sees it.

PostgreSQL cannot store U+0000 in text and answers an error deep inside a write, which became a 500;
no form, search or webhook has a use for it, so it is refused at the door on every backend alike.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, request

from web.json_errors import error_response


def _has_nul(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if depth > 50:  # deeper JSON than any of our inputs: the view refuses it anyway
        return False
    if isinstance(value, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


def offending_field() -> str | None:
    """The name of the first query, form or JSON field with a NUL character (``body`` for JSON), else None."""
    # Cache the raw body first: webhooks check signatures over it, and parsing the form would consume it.
    request.get_data(cache=True)
    for source in (request.args, request.form):
        for key in source:
            # A multipart part without a name has the key None (werkzeug): nothing to check in the name then.
            if "\x00" in (key or "") or any("\x00" in v for v in source.getlist(key)):
                return key.replace("\x00", "")
    if request.is_json and _has_nul(request.get_json(silent=True)):
        return "body"
    return None


def refuse_nul() -> Response | None:
    field = offending_field()
    if field is None:
        return None
    message = "text must not contain NUL characters"
    if request.path.startswith("/api/"):
        return error_response(400, "invalid", message, field=field)
    abort(400, description=message)

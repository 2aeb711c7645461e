"""CSRF protection for the staff pages: one random token per login session, checked on every POST (web.auth).

Forms carry it in a hidden ``csrf_token`` field (``{{ csrf_field() }}`` in templates).
"""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session
from markupsafe import Markup, escape

SESSION_KEY = "csrf_token"
FIELD = "csrf_token"


def token() -> str:
    """The session's token, created on first use."""
    value = session.get(SESSION_KEY)
    if not isinstance(value, str) or not value:
        value = secrets.token_urlsafe(32)
        session[SESSION_KEY] = value
    return value


def renew() -> str:
    """A fresh token (after login and logout, so a token seen before login is worthless after)."""
    session[SESSION_KEY] = secrets.token_urlsafe(32)
    return session[SESSION_KEY]


def field() -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">').format(FIELD, escape(token()))


def check() -> None:
    """400 unless the submitted token matches the session's."""
    expected = session.get(SESSION_KEY)
    sent = request.form.get(FIELD, "")
    if not isinstance(expected, str) or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="The form has expired or did not come from this site. Please try again.")

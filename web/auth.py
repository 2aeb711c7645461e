"""Who is asking: bearer tokens for the API, the login session for pages; roles decide what they may do."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, g, redirect, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.models import StaffRole, StaffUser
from crm_inbox.staff.service import (
    check_password,
    end_session,
    find_staff,
    hash_password,
    open_session,
    user_for_session,
    user_for_token,
)
from web import csrf
from web.json_errors import fail
from web.requestdb import db

F = TypeVar("F", bound=Callable[..., Any])


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def api_user() -> StaffUser | None:
    if "staff" not in g:
        g.staff = user_for_token(db(), bearer_token())
    return g.staff


def actor_id() -> int | None:
    """The staff user making this API request (for the audit log and ticket events)."""
    user = api_user()
    return user.id if user else None


def require_token(write: bool = False, admin: bool = False) -> Callable[[F], F]:
    """401 without a valid token; 403 when a read-only user tries to change something, or when ``admin``
    and the user is not an admin (data-protection exports and erasure)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = api_user()
            if user is None:
                fail(401, "unauthorized", "a valid bearer token is required")
            if write and user.role == StaffRole.READONLY:
                fail(403, "forbidden", "read-only users cannot change data")
            if admin and user.role != StaffRole.ADMIN:
                fail(403, "forbidden", "only an admin may do this")
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


# --- the page session: a login of a browser, kept in staff_sessions --------------------------------------

SESSION_KEY = "login"  # the cookie's key of the login's row in staff_sessions
PUBLIC_ENDPOINTS = frozenset({"pages.login", "pages.healthz"})
_dummy_hash: str | None = None


def current_user() -> StaffUser | None:
    """The user of this browser's login, while the login lasts on the server (see staff.open_session)."""
    if "page_user" not in g:
        g.page_user = user_for_session(db(), session.get(SESSION_KEY))
    return g.page_user


def verify(email: str, password: str) -> StaffUser | None:
    """The active user with this address and password, else None."""
    global _dummy_hash
    user = find_staff(db(), email) if email.strip() and password else None
    if user is None:
        # As slow as a real check, so response times do not tell which addresses exist.
        if _dummy_hash is None:
            _dummy_hash = hash_password("not a password")
        check_password(StaffUser(password_hash=_dummy_hash, active=True), password)
        return None
    return user if check_password(user, password) else None


def log_in(user: StaffUser) -> None:
    """A fresh cookie session for ``user``: nothing of the session before the login is kept."""
    session.clear()
    session[SESSION_KEY] = open_session(db(), user)
    csrf.renew()


def log_out() -> None:
    """Ends this login on the server too: a copy of the cookie taken before is worthless afterwards."""
    end_session(db(), session.get(SESSION_KEY))
    session.clear()
    csrf.renew()


def _here() -> str:
    return request.full_path if request.query_string else request.path


def login_required() -> BaseResponse | None:
    """The pages' guard: every POST carries the CSRF token; every page but login and health needs a login."""
    if request.method == "POST":
        csrf.check()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if current_user() is None:
        return redirect(url_for("pages.login", next=_here()))
    return None


def editor_id() -> int:
    """The logged-in user's id when they may change things; 403 for read-only users."""
    user = current_user()
    if user is None or user.role == StaffRole.READONLY:
        abort(403)
    return user.id


def editor_or_reader_id() -> int | None:
    user = current_user()
    return user.id if user else None

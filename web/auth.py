"""Who is asking: bearer tokens for the API, the login session for pages; roles decide what they may do."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from crm_inbox.models import StaffRole, StaffUser
from crm_inbox.staff.service import user_for_token
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
    from web.api.errors import fail

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

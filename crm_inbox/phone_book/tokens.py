"""The secrets in phone-book URLs: one per phone or router (labelled "Fritz!Box Büro"), shown once when made,
stored only as a SHA-256 hash (looked up by its unique index, so no comparison leaks timing), revocable."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_inbox import audit
from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.models import PhoneBookToken, utcnow

MAX_LABEL = 100
MAX_TOKEN = 100  # ours are 43 characters; a longer path segment is no token of ours


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, label: str, actor: int | None) -> tuple[PhoneBookToken, str]:
    """A new phone-book token: the row and the plain token (shown once, never stored)."""
    label = " ".join((label or "").split())
    if not label:
        raise ValidationError("label", "is required")
    if len(label) > MAX_LABEL:
        raise ValidationError("label", f"must be at most {MAX_LABEL} characters")
    token = secrets.token_urlsafe(32)
    row = PhoneBookToken(label=label, token_hash=token_hash(token), created_by_id=actor)
    session.add(row)
    session.flush()
    audit.record(session, actor, "create", "phone_book_token", row.id, {"label": label})
    return row, token


def revoke_token(session: Session, token_id: int, actor: int | None) -> PhoneBookToken:
    row = session.get(PhoneBookToken, token_id)
    if row is None:
        raise NotFound(f"phone-book token {token_id}")
    if row.revoked_at is not None:
        raise Conflict("this phone-book URL is revoked already")
    row.revoked_at = utcnow()
    audit.record(session, actor, "revoke", "phone_book_token", row.id, {"label": row.label})
    return row


def token_for(session: Session, token: str) -> PhoneBookToken | None:
    """The live token row for a URL's secret; None for an unknown or revoked one."""
    if not token or len(token) > MAX_TOKEN:
        return None
    row = session.execute(select(PhoneBookToken).where(PhoneBookToken.token_hash == token_hash(token))
                          ).scalar_one_or_none()
    return row if row is not None and row.revoked_at is None else None


def all_tokens(session: Session) -> list[PhoneBookToken]:
    return list(session.execute(select(PhoneBookToken).order_by(PhoneBookToken.revoked_at.is_not(None),
                                                                 PhoneBookToken.created_at.desc())).scalars())

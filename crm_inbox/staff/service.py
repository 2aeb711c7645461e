"""Staff users, their passwords and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from crm_inbox import audit
from crm_inbox.errors import StaffExists, ValidationError
from crm_inbox.mail.addresses import normalise_email
from crm_inbox.models import ApiToken, StaffEmail, StaffRole, StaffSession, StaffUser, utcnow
from crm_inbox.text import single_line

_hasher = PasswordHasher()
TOKEN_PREFIX = "crm_"

# Staff actions are audited here with the actor passed in (None: the command line), so every entry point
# writes the same entry. SETUP (the default of add_staff and create_token only) is set-up outside any staff
# action, test fixtures and demo data, which is not audited.
SETUP: Literal[False] = False
Actor = int | None | Literal[False]


def find_staff(session: Session, email: str) -> StaffUser | None:
    return session.execute(
        select(StaffUser).join(StaffEmail).where(StaffEmail.email == email.strip().lower())
        .options(selectinload(StaffUser.emails))).scalar_one_or_none()


TEAM_MAX_LENGTH = 100  # as the column
# Codes the reports use among team names (the pooled small teams, the filter's choices): a team so named
# would take the code's label or merge with the pooled row.
RESERVED_TEAMS = frozenset({"other_teams", "all", "none"})


def team_name(raw: str | None) -> str | None:
    """A team as stored: one line, at most 100 characters; empty means no team. Raises ValidationError for a
    name the reports use as a code (any case)."""
    team = single_line(raw or "")[:TEAM_MAX_LENGTH].strip() or None
    if team is not None and team.casefold() in RESERVED_TEAMS:
        raise ValidationError("team", f"{team!r} is reserved by the reports; choose another name")
    return team


def add_staff(session: Session, email: str, name: str, role: str = "staff", extension: str | None = None,
              password: str | None = None, more_emails: list[str] | None = None, *,
              team: str | None = None, actor: Actor = SETUP) -> StaffUser:
    """A new staff user, audited as made by ``actor`` (never with the password). ``team``: the group reports
    show this person's work under (never the person alone, unless [analytics] per_person_reports)."""
    addresses = []
    for raw in [email, *(more_emails or [])]:
        addr = normalise_email(raw)
        if not addr:
            raise ValidationError("email", f"{raw!r} is not an e-mail address")
        addresses.append(addr)
    try:
        staff_role = StaffRole(role)
    except ValueError:
        raise ValidationError("role", "must be one of " + ", ".join(r.value for r in StaffRole)) from None
    for addr in addresses:
        if find_staff(session, addr) is not None:
            raise StaffExists(f"a staff user with {addr} exists already")
    user = StaffUser(name=single_line(name)[:200] or addresses[0], role=staff_role, extension=extension or None,
                     team=team_name(team), password_hash=hash_password(password) if password else None)
    user.emails = [StaffEmail(email=a) for a in addresses]
    session.add(user)
    session.flush()
    if actor is not SETUP:
        audit.record(session, actor, "create", "staff_user", user.id,
                     {"emails": [email, *(more_emails or [])], "role": user.role.value,
                      **({"team": user.team} if user.team else {})})
    return user


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(user: StaffUser, password: str) -> bool:
    if not user.password_hash or not user.active:
        return False
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: StaffUser, name: str | None = None, *, actor: Actor = SETUP) -> str:
    """A new API token for ``user``, audited as made by ``actor``; only its hash is stored, so this is the one
    chance to see it."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(staff_id=user.id, token_hash=_token_hash(token), name=name))
    session.flush()
    if actor is not SETUP:
        audit.record(session, actor, "create", "api_token", None, {"name": name})
    return token


def user_for_token(session: Session, token: str) -> StaffUser | None:
    if not token:
        return None
    row = session.execute(
        select(ApiToken).where(ApiToken.token_hash == _token_hash(token), ApiToken.revoked_at.is_(None))
    ).scalar_one_or_none()
    if row is None or not row.staff.active:
        return None
    now = utcnow()
    # Written at most once a minute, so reads through the API do not each become a write.
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now
    return row.staff


def new_calendar_token(user: StaffUser) -> str:
    """A new secret for ``user``'s iCalendar feed (the old feed URL stops working); shown once."""
    token = secrets.token_urlsafe(32)
    user.calendar_token_hash = _token_hash(token)
    return token


def user_for_calendar_token(session: Session, token: str) -> StaffUser | None:
    if not token or len(token) > 100:
        return None
    user = session.execute(select(StaffUser).where(StaffUser.calendar_token_hash == _token_hash(token))
                           ).scalar_one_or_none()
    return user if user is not None and user.active else None


# As long as Flask accepts a signed session cookie: a login lasts at most this long.
SESSION_LIFETIME = timedelta(days=31)


def open_session(session: Session, user: StaffUser, now: datetime | None = None) -> str:
    """A new login for ``user`` in one browser; returns the key for its cookie (only the hash is stored).
    Logins past their lifetime, anybody's, are cleared out on the way, so the table holds live ones only."""
    now = now or utcnow()
    session.execute(delete(StaffSession).where(StaffSession.created_at < now - SESSION_LIFETIME))
    key = secrets.token_urlsafe(32)
    session.add(StaffSession(staff_id=user.id, key_hash=_token_hash(key), created_at=now))
    session.flush()
    return key


def user_for_session(session: Session, key: object, now: datetime | None = None) -> StaffUser | None:
    """The active user whose login ``key`` is still open; None for an ended, expired or unknown one."""
    if not isinstance(key, str) or not key or len(key) > 100:
        return None
    row = session.execute(select(StaffSession).where(StaffSession.key_hash == _token_hash(key))
                          ).scalar_one_or_none()
    if row is None or row.created_at < (now or utcnow()) - SESSION_LIFETIME or not row.staff.active:
        return None
    return row.staff


def end_session(session: Session, key: object) -> None:
    """Logout: this login ends, in every copy of its cookie; the user's other logins stay."""
    if isinstance(key, str) and key:
        session.execute(delete(StaffSession).where(StaffSession.key_hash == _token_hash(key)))


def end_all_sessions(session: Session, user: StaffUser) -> None:
    """Every login of ``user`` on every device ends (a new password, deactivation)."""
    session.execute(delete(StaffSession).where(StaffSession.staff_id == user.id))


def revoke_token(session: Session, user: StaffUser, token_id: int, *, actor: int | None) -> bool:
    """Revoke one of ``user``'s own tokens, audited as done by ``actor``; False when it is not theirs or
    already revoked (no entry then)."""
    token = session.get(ApiToken, token_id)
    if token is None or token.staff_id != user.id or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    audit.record(session, actor, "revoke", "api_token", token_id)
    return True


def _other_active_admins(session: Session, user: StaffUser) -> int:
    return len(session.execute(select(StaffUser.id).where(
        StaffUser.role == StaffRole.ADMIN, StaffUser.active, StaffUser.id != user.id)).all())


def change_staff(session: Session, user: StaffUser, *, name: str | None = None, role: str | None = None,
                 extension: str | None = None, active: bool | None = None, emails: list[str] | None = None,
                 password: str | None = None, team: str | None = None, actor: int | None) -> dict[str, Any]:
    """An admin's change to a staff user, audited as made by ``actor`` when anything changed; returns what
    changed (as in the audit entry: a new password shows as "changed", never itself). ``team``: None leaves it,
    "" takes the user out of any team.

    The last active admin can neither lose the role nor be deactivated: nobody could manage users then.
    A new password or deactivation ends all the user's logins on every device (a role change does not need
    to: the role is read on every request); a deactivated user's API tokens stop working too."""
    changed: dict[str, Any] = {}
    name = single_line(name)[:200] if name is not None else None
    if name and name != user.name:
        user.name = changed["name"] = name
    if role is not None and role != user.role.value:
        try:
            new_role = StaffRole(role)
        except ValueError:
            raise ValidationError("role", "must be one of " + ", ".join(r.value for r in StaffRole)) from None
        if user.role == StaffRole.ADMIN and user.active and not _other_active_admins(session, user):
            raise ValidationError("role", "the last active admin must stay admin")
        user.role, changed["role"] = new_role, new_role.value
    if extension is not None and (extension.strip() or None) != user.extension:
        user.extension = changed["extension"] = extension.strip()[:32] or None
    if team is not None and team_name(team) != user.team:
        user.team = changed["team"] = team_name(team)
    if active is not None and active != user.active:
        if not active and user.role == StaffRole.ADMIN and not _other_active_admins(session, user):
            raise ValidationError("active", "the last active admin cannot be deactivated")
        user.active = changed["active"] = active
    if emails is not None:
        wanted = []
        for raw in emails:
            addr = normalise_email(raw)
            if not addr:
                raise ValidationError("emails", f"{raw!r} is not an e-mail address")
            other = find_staff(session, addr)
            if other is not None and other.id != user.id:
                raise ValidationError("emails", f"{addr} belongs to {other.name}")
            wanted.append(addr)
        wanted = list(dict.fromkeys(wanted))
        if not wanted:
            raise ValidationError("emails", "at least one address is required")
        if wanted != [e.email for e in user.emails]:
            kept = {e.email: e for e in user.emails}
            user.emails = [kept.get(a) or StaffEmail(email=a) for a in wanted]
            changed["emails"] = wanted
    if password:
        if len(password) < 8:
            raise ValidationError("password", "must have at least 8 characters")
        user.password_hash = hash_password(password)
        changed["password"] = "changed"
    if "password" in changed or changed.get("active") is False:
        end_all_sessions(session, user)
    session.flush()
    if changed:
        audit.record(session, actor, "update", "staff_user", user.id, changed)
    return changed

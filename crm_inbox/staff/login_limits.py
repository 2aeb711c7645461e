"""Login rate limiting: too many failed logins for one address from one client (or from one client for any
addresses) within a window answer 429 until the oldest of them leaves the window. The failures live in the
database, so several ``serve`` processes (and a restart) share the count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crm_inbox.config import WebSettings
from crm_inbox.models import LoginFailure


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 5
    max_failures_per_ip: int = 50
    window: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, web: WebSettings) -> LoginPolicy:
        return cls(web.login_max_failures, web.login_max_failures_per_ip, timedelta(minutes=web.login_window_minutes))


def wait_needed(newest_first: list[datetime], limit: int, window: timedelta, now: datetime) -> timedelta | None:
    """How long until fewer than ``limit`` of these failures (newest first) lie within the window; None: now."""
    if limit <= 0 or len(newest_first) < limit:
        return None
    frees_at = newest_first[limit - 1] + window
    return frees_at - now if frees_at > now else None


def _recent(session: Session, where: object, since: datetime, limit: int) -> list[datetime]:
    return list(session.execute(select(LoginFailure.at).where(where, LoginFailure.at > since)  # type: ignore[arg-type]
                                .order_by(LoginFailure.at.desc()).limit(max(limit, 1))).scalars())


def blocked_for(session: Session, policy: LoginPolicy, account: str, ip: str, now: datetime) -> timedelta | None:
    """None when a login may be tried now, else how long the client has to wait."""
    since = now - policy.window
    waits = [
        wait_needed(_recent(session, (LoginFailure.account == account) & (LoginFailure.ip == ip), since,
                            policy.max_failures), policy.max_failures, policy.window, now),
        wait_needed(_recent(session, LoginFailure.ip == ip, since, policy.max_failures_per_ip),
                    policy.max_failures_per_ip, policy.window, now),
    ]
    found = [w for w in waits if w is not None]
    return max(found) if found else None


def record_failure(session: Session, policy: LoginPolicy, account: str, ip: str, now: datetime) -> None:
    # Rows older than the window count for nothing: pruned here, so the table stays small without a job.
    session.execute(delete(LoginFailure).where(LoginFailure.at <= now - policy.window))
    session.add(LoginFailure(account=account, ip=ip, at=now))


def clear(session: Session, account: str, ip: str) -> None:
    """A successful login forgets that client's failures for that address."""
    session.execute(delete(LoginFailure).where(LoginFailure.account == account, LoginFailure.ip == ip))

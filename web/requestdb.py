"""One database session per request, committed after a successful response, rolled back otherwise."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar, cast

from flask import Flask, Response, abort, current_app, g, jsonify
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from crm_inbox.ids import MAX_ID
from web.state import AppState

log = logging.getLogger(__name__)
T = TypeVar("T")


def state() -> AppState:
    return cast(AppState, current_app.extensions["crm_inbox"])


def db() -> Session:
    """The request's session (created on first use)."""
    if "db" not in g:
        g.db = state().factory()
    return g.db


def after_commit(callback: Callable[[], object]) -> None:
    """Run ``callback`` once the request's changes are committed (e.g. tell browsers about a call)."""
    g.setdefault("after_commit", []).append(callback)


def init_app(app: Flask) -> None:
    @app.after_request
    def commit(response: Response) -> Response:
        session: Session | None = g.get("db")
        if session is None:
            return response
        if response.status_code >= 400:
            session.rollback()
            return response
        try:
            session.commit()
        except OperationalError as exc:
            session.rollback()
            log.error("request commit failed: %s", exc.orig)
            failed = jsonify(error={"code": "unavailable", "message": "database unavailable, try again"})
            failed.status_code = 503
            return failed
        for callback in g.pop("after_commit", []):
            try:
                callback()
            except Exception:
                log.exception("after-commit callback failed")
        return response

    @app.teardown_request
    def close(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("db", None)
        if session is not None:
            session.close()


def row_or_404(model: type[T], ident: int) -> T:
    """The row with this id, else a 404 (also for ids beyond the id range, which no row has)."""
    row = db().get(model, ident) if ident <= MAX_ID else None
    if row is None:
        abort(404)
    return row

"""Application factory. The typed settings live on ``app.extensions["crm_inbox"]``, not in app.config."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from crm_inbox import log_masking
from crm_inbox.calls.screenpop import Broker
from crm_inbox.config import Settings
from crm_inbox.db import make_engine, make_sessionmaker
from crm_inbox.private_files import open_private
from web import i18n, input_guard, requestdb
from web.api import api
from web.feeds import feeds
from web.json_errors import error_response
from web.pages import pages
from web.pages.public_consent import public_consent
from web.state import AppState
from web.webhooks import webhooks

log = logging.getLogger(__name__)


class NestedTooDeep(BadRequest):
    description = "the JSON body is nested too deeply"


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON, except that a body nested deeper than the parser's recursion limit (100,000 ``[``) is a
    400 wherever it is read, also in the NUL check before any authentication, instead of a RecursionError."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise NestedTooDeep() from None


def _secret_key(settings: Settings) -> str:
    """The configured key, else one generated once and kept in the instance folder."""
    if settings.web.secret_key:
        return settings.web.secret_key
    path = settings.instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    with open_private(path) as out:  # whoever reads it can forge any user's session
        out.write(key.encode())
    return key


def create_app(settings: Settings, factory: sessionmaker[Session] | None = None, *,
               on_reminders_changed: Callable[[], None] | None = None,
               on_mail_queued: Callable[[], None] | None = None) -> Flask:
    log_masking.install()  # webhook tokens in request paths never reach the log
    app = Flask(__name__, template_folder=str(Path(__file__).parent / "templates"))
    app.json = JsonProvider(app)
    if factory is None:
        engine = make_engine(settings.database.url, echo=settings.database.echo)
        factory = make_sessionmaker(engine)
    engine = factory.kw["bind"]
    # Screen-pop streams may take the web threads but eight: pages always have some left.
    app.extensions["crm_inbox"] = AppState(settings, engine, factory,
                                           Broker(total=max(1, settings.web.threads - 8)))
    if on_reminders_changed is not None:
        app.extensions["crm_inbox"].reminders_changed = on_reminders_changed
    if on_mail_queued is not None:
        app.extensions["crm_inbox"].mail_queued = on_mail_queued
    app.secret_key = _secret_key(settings)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.web.secure_cookies or settings.web.base_url.startswith("https://"),
        MAX_CONTENT_LENGTH=settings.smtp.max_message_bytes + 1_000_000,
        JSON_SORT_KEYS=False,
    )
    if settings.web.proxy_hops > 0:
        # Behind a reverse proxy: the client address (login limits) and scheme come from its headers,
        # believed for exactly that many hops, never from whatever a client sends itself.
        hops = settings.web.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    requestdb.init_app(app)
    app.before_request(input_guard.refuse_nul)
    i18n.init_app(app, settings.reminders.timezone)

    app.register_blueprint(api)
    app.register_blueprint(webhooks)
    app.register_blueprint(feeds)
    app.register_blueprint(pages)
    app.register_blueprint(public_consent)  # opt-out and double opt-in links: no login, no CSRF token
    if settings.analytics.enabled:
        # Imported only then: without analytics the app never loads the analytics package (nor DuckDB).
        from web.reports import reports

        app.register_blueprint(reports)
        app.jinja_env.globals["reports_link"] = True

    @app.errorhandler(NestedTooDeep)
    def nested_too_deep(exc: NestedTooDeep) -> Response | HTTPException:
        log.info("%s %s: refused a JSON body nested too deeply", request.method, request.path)
        if request.path.startswith("/api/"):
            return error_response(400, "invalid", exc.description or "", field="body")
        return exc

    @app.errorhandler(404)
    @app.errorhandler(405)
    def not_found(exc: HTTPException) -> Response | HTTPException:
        # Blueprint handlers only see routes that matched; unknown /api paths still answer JSON.
        if request.path.startswith("/api/"):
            return error_response(exc.code or 404, (exc.name or "").lower().replace(" ", "_"),
                                  exc.description or "")
        return exc

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app

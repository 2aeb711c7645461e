"""The way in: the health check, the front door, logging in and out (the session itself: web.auth)."""

from __future__ import annotations

import math

from flask import Response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.models import utcnow
from crm_inbox.staff import login_limits
from crm_inbox.staff.login_limits import LoginPolicy
from web.auth import current_user, log_in, log_out, verify
from web.pages.blueprint import pages
from web.redirects import safe_next
from web.requestdb import db, state


@pages.get("/healthz")
def healthz() -> tuple[str, int]:
    return "ok", 200


@pages.get("/")
def index() -> BaseResponse:
    return redirect(url_for("pages.dashboard"))


@pages.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | str:
    """Failed attempts are counted per address and client (and per client) in the database: see login_limits.
    A login lands on the dashboard, or on the page that sent the browser here (``next``, same site only)."""
    next_url = safe_next(request.values.get("next"), url_for("pages.dashboard"))
    if request.method == "GET":
        if current_user() is not None:
            return redirect(next_url)
        return render_template("login.html", next_url=next_url, email="", error=None)
    email = request.form.get("email", "")
    account, client = email.strip().lower()[:320], (request.remote_addr or "unknown")[:100]
    policy = LoginPolicy.from_settings(state().settings.web)
    wait = login_limits.blocked_for(db(), policy, account, client, utcnow())
    if wait is not None:
        # Checked before the password, so a blocked client learns nothing and costs no hashing.
        minutes = max(1, math.ceil(wait.total_seconds() / 60))
        page = render_template("login.html", next_url=next_url, email=email, error=_(
            "Too many failed log-ins. Please try again in %(minutes)d minutes.", minutes=minutes))
        return Response(page, status=429, headers={"Retry-After": str(math.ceil(wait.total_seconds()))})
    user = verify(email, request.form.get("password", ""))
    if user is None:
        login_limits.record_failure(db(), policy, account, client, utcnow())
        return render_template("login.html", next_url=next_url, email=email,
                               error=_("Wrong e-mail address or password."))
    login_limits.clear(db(), account, client)
    log_in(user)
    return redirect(next_url)


@pages.post("/logout")
def logout() -> BaseResponse:
    log_out()
    return redirect(url_for("pages.login"))

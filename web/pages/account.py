"""The user's own page: who they are, their API tokens (create, shown once; revoke) and calendar feed."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.models import ApiToken, StaffUser
from crm_inbox.staff.service import create_token, revoke_token
from web.auth import current_user
from web.pages.blueprint import pages
from web.requestdb import db


def _me() -> StaffUser:
    user = current_user()
    if user is None:
        abort(403)
    return user


@pages.get("/me")
def account() -> str:
    user = _me()
    tokens = db().execute(select(ApiToken).where(ApiToken.staff_id == user.id).order_by(ApiToken.id.desc())
                          ).scalars().all()
    return render_template("account.html", user=user, tokens=tokens, new_token=None)


@pages.post("/me/tokens")
def account_new_token() -> str:
    user = _me()
    name = request.form.get("name", "").strip()[:100] or None
    token = create_token(db(), user, name, actor=user.id)
    tokens = db().execute(select(ApiToken).where(ApiToken.staff_id == user.id).order_by(ApiToken.id.desc())
                          ).scalars().all()
    return render_template("account.html", user=user, tokens=tokens, new_token=token)


@pages.post("/me/tokens/<int:token_id>/revoke")
def account_revoke_token(token_id: int) -> BaseResponse:
    user = _me()
    if revoke_token(db(), user, token_id, actor=user.id):
        flash(_("Token revoked: programs using it can no longer reach the API."))
    return redirect(url_for("pages.account"))

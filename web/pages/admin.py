"""Admin pages: staff users (add, change role, addresses, extension, team, password, deactivate) and the settings
in force. Settings come from the configuration file, so the page shows them and says where to change them."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.config import public_view
from crm_inbox.errors import StaffExists, ValidationError
from crm_inbox.models import StaffRole, StaffUser
from crm_inbox.staff.service import add_staff, change_staff
from web.auth import current_user
from web.pages.blueprint import pages
from web.requestdb import db, row_or_404, state

ROLES = [r.value for r in StaffRole]


def admin_id() -> int:
    """The logged-in user's id when they are an admin; 403 for everyone else."""
    user = current_user()
    if user is None or user.role != StaffRole.ADMIN:
        abort(403)
    return user.id


def _addresses(text: str) -> list[str]:
    return [a for a in text.replace(",", " ").split() if a]


def _teams() -> list[str]:
    """The teams staff are in now: offered when typing one, so one team is not spelt two ways (reports group
    by the exact name)."""
    teams = db().execute(select(StaffUser.team).where(StaffUser.team.is_not(None)).distinct()
                         .order_by(StaffUser.team)).scalars()
    return [team for team in teams if team]


def _user_page(user: StaffUser, error: str | None = None) -> str:
    return render_template("admin_user.html", user=user, roles=ROLES, teams=_teams(), error=error,
                           min_group_size=state().settings.analytics.min_group_size)


def _users_page(error: str | None = None, status: int = 200) -> tuple[str, int]:
    users = db().execute(select(StaffUser).options(selectinload(StaffUser.emails))
                         .order_by(StaffUser.active.desc(), StaffUser.name)).scalars().all()
    return render_template("admin_users.html", users=users, roles=ROLES, teams=_teams(), error=error,
                           form=request.form, min_group_size=state().settings.analytics.min_group_size), status


@pages.get("/admin/users")
def admin_users() -> tuple[str, int]:
    admin_id()
    return _users_page()


@pages.post("/admin/users")
def admin_user_add() -> BaseResponse | tuple[str, int]:
    by = admin_id()
    form = request.form
    emails = _addresses(form.get("emails", ""))
    password = form.get("password", "")
    try:
        if not emails:
            raise ValidationError("emails", "at least one address is required")
        if password and len(password) < 8:
            raise ValidationError("password", "must have at least 8 characters")
        user = add_staff(db(), emails[0], form.get("name", ""), form.get("role", "staff"),
                         form.get("extension", "").strip() or None, password or None, more_emails=emails[1:],
                         team=form.get("team"), actor=by)
    except (ValidationError, StaffExists) as exc:
        return _users_page(str(exc), 400)
    flash(_("%(name)s can now log in.", name=user.name) if password else
          _("%(name)s was added; set a password so they can log in.", name=user.name))
    return redirect(url_for("pages.admin_users"))


@pages.get("/admin/users/<int:user_id>")
def admin_user(user_id: int) -> str:
    admin_id()
    return _user_page(row_or_404(StaffUser, user_id))


@pages.post("/admin/users/<int:user_id>")
def admin_user_change(user_id: int) -> BaseResponse | tuple[str, int]:
    by = admin_id()
    user = row_or_404(StaffUser, user_id)
    form = request.form
    try:
        changed = change_staff(db(), user, name=form.get("name"), role=form.get("role"),
                               extension=form.get("extension"), active=form.get("active") == "on",
                               emails=_addresses(form.get("emails", "")), password=form.get("password") or None,
                               team=form.get("team"), actor=by)
    except ValidationError as exc:
        db().rollback()
        return _user_page(row_or_404(StaffUser, user_id), str(exc)), 400
    if changed:
        flash(_("Saved."))
    return redirect(url_for("pages.admin_user", user_id=user.id))


@pages.get("/admin/settings")
def admin_settings() -> str:
    admin_id()
    return render_template("admin_settings.html", sections=public_view(state().settings))

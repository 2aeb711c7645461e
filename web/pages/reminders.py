"""The daily dashboard: my due reminders (done, snooze, new), my open tickets, call-backs owed, mail waiting
for triage, recent activity."""

from __future__ import annotations

from datetime import timedelta

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, or_, select
from sqlalchemy.sql.elements import ColumnElement
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.errors import ValidationError
from crm_inbox.models import (
    Call,
    Contact,
    InboundMessage,
    InboundState,
    Interaction,
    Reminder,
    Ticket,
    TicketState,
    utcnow,
)
from crm_inbox.models.reminders import ACTIVE_STATES
from crm_inbox.reminders import service
from crm_inbox.staff.service import new_calendar_token
from crm_inbox.timeline.triage import unassigned_query
from web.auth import current_user, editor_id
from web.i18n import N_
from web.pages.blueprint import pages
from web.redirects import safe_next
from web.requestdb import after_commit, db, row_or_404, state

# Sent as they are (dateparser reads them); shown translated.
SNOOZE_CHOICES = (N_("in 1 hour"), N_("tomorrow 9:00"), N_("in 3 days"), N_("next monday 9:00"))


def _mine_or_team(user_id: int) -> ColumnElement[bool]:
    return or_(Reminder.assignee_id == user_id, Reminder.assignee_id.is_(None))


@pages.get("/dashboard")
def dashboard() -> str:
    user = current_user()
    assert user is not None
    now = utcnow()
    base = select(Reminder).where(_mine_or_team(user.id), Reminder.state.in_(ACTIVE_STATES))
    due = db().execute(base.where(Reminder.due_at <= now).order_by(Reminder.due_at).limit(200)).scalars().all()
    upcoming = db().execute(base.where(Reminder.due_at > now, Reminder.due_at <= now + timedelta(days=7))
                            .order_by(Reminder.due_at).limit(200)).scalars().all()
    tickets = db().execute(select(Ticket).where(
        Ticket.assignee_id == user.id, Ticket.merged_into_id.is_(None),
        Ticket.state.in_([TicketState.NEW, TicketState.OPEN, TicketState.PENDING]))
        .order_by(Ticket.updated_at.desc()).limit(50)).scalars().all()
    unassigned_tickets = db().execute(select(func.count()).select_from(Ticket).where(
        Ticket.assignee_id.is_(None), Ticket.merged_into_id.is_(None),
        Ticket.state.in_([TicketState.NEW, TicketState.OPEN]))).scalar_one()
    callbacks = db().execute(select(Call).where(
        Call.callback_needed, or_(Call.staff_id == user.id, Call.staff_id.is_(None)))
        .order_by(Call.started_at.desc()).limit(50)).scalars().all()
    triage = db().execute(select(func.count()).select_from(unassigned_query().subquery())).scalar_one()
    failed = db().execute(select(func.count()).select_from(InboundMessage)
                          .where(InboundMessage.state == InboundState.FAILED)).scalar_one()
    recent = db().execute(select(Interaction).order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
                          .limit(15)).scalars().all()
    contact_ids = ({r.contact_id for r in [*due, *upcoming]} | {t.contact_id for t in tickets}
                   | {c.contact_id for c in callbacks}) - {None}
    names = {c.id: c.display_name for c in db().execute(select(Contact).where(Contact.id.in_(contact_ids))).scalars()}
    return render_template("dashboard.html", due=due, upcoming=upcoming, names=names, snooze=SNOOZE_CHOICES,
                           tickets=tickets, unassigned_tickets=unassigned_tickets, callbacks=callbacks,
                           triage=triage, failed=failed, recent=recent)


def _back() -> BaseResponse:
    after_commit(state().reminders_changed)
    target = request.form.get("back", "")
    return redirect(safe_next(target, url_for("pages.dashboard")))


@pages.post("/reminders/<int:reminder_id>/done")
def reminder_done(reminder_id: int) -> BaseResponse:
    by = editor_id()
    service.change(db(), state().settings, row_or_404(Reminder, reminder_id), {"state": "done"}, by)
    return _back()


@pages.post("/reminders/<int:reminder_id>/snooze")
def reminder_snooze(reminder_id: int) -> BaseResponse:
    by = editor_id()
    try:
        service.change(db(), state().settings, row_or_404(Reminder, reminder_id),
                       {"snooze": request.form.get("until", "")}, by)
    except ValidationError as exc:
        flash(_("Not snoozed: %(why)s", why=exc.message))
    return _back()


@pages.post("/reminders")
def reminder_new() -> BaseResponse:
    by = editor_id()
    data: dict[str, object] = {"title": request.form.get("title", ""), "due": request.form.get("due", "")}
    if request.form.get("contact_id", "").isdigit():
        data["contact_id"] = int(request.form["contact_id"])
    if request.form.get("for") == "team":
        data["assignee_id"] = None
    try:
        service.create(db(), service.read_input(db(), state().settings, data, creating=True), by)
    except ValidationError as exc:
        flash(_("No reminder made: %(field)s %(why)s", field=exc.field, why=exc.message))
    return _back()


@pages.post("/dashboard/calendar")
def calendar_url() -> str:
    user = current_user()
    assert user is not None
    token = new_calendar_token(user)
    path = url_for("feeds.reminders_ics", token=token)
    base = state().settings.web.base_url.rstrip("/")
    return render_template("calendar_url.html", url=(base + path) if base else request.host_url.rstrip("/") + path)

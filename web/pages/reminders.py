"""The daily dashboard: my due reminders (done, snooze, new), my open tickets, call-backs owed, mail waiting
for triage, recent activity."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.calls.service import callbacks_owed_by
from crm_inbox.contacts.listing import people_of
from crm_inbox.errors import ValidationError
from crm_inbox.models import Contact, Reminder, utcnow
from crm_inbox.pipeline.runner import failed_count
from crm_inbox.reminders import service
from crm_inbox.reminders.inputs import NOT_GIVEN, ReminderChanges, ReminderFields
from crm_inbox.staff.service import new_calendar_token
from crm_inbox.tickets import queries as tickets_queries
from crm_inbox.timeline.service import recent as recent_activity
from crm_inbox.timeline.triage import unassigned_count
from web.auth import current_user, editor_id
from web.i18n import N_
from web.pages.blueprint import pages
from web.redirects import safe_next
from web.requestdb import after_commit, db, row_or_404, state

# Sent as they are (dateparser reads them); shown translated.
SNOOZE_CHOICES = (N_("in 1 hour"), N_("tomorrow 9:00"), N_("in 3 days"), N_("next monday 9:00"))


@pages.get("/dashboard")
def dashboard() -> str:
    user = current_user()
    assert user is not None
    now = utcnow()
    due = service.due_for(db(), user.id, now)
    upcoming = service.upcoming_for(db(), user.id, now, days=7)
    tickets = tickets_queries.open_assigned_to(db(), user.id)
    unassigned_tickets = tickets_queries.unassigned_awaiting_staff_count(db())
    callbacks = callbacks_owed_by(db(), user.id)
    triage = unassigned_count(db())
    failed = failed_count(db())
    recent = recent_activity(db())
    contact_ids = ({r.contact_id for r in [*due, *upcoming]} | {t.contact_id for t in tickets}
                   | {c.contact_id for c in callbacks}) - {None}
    names = {c.id: c.display_name for c in db().execute(select(Contact).where(Contact.id.in_(contact_ids))).scalars()}
    return render_template("dashboard.html", due=due, upcoming=upcoming, names=names, snooze=SNOOZE_CHOICES,
                           tickets=tickets, unassigned_tickets=unassigned_tickets, callbacks=callbacks,
                           triage=triage, failed=failed, recent=recent,
                           recent_people=people_of(db(), [i.id for i in recent]))


def _back() -> BaseResponse:
    after_commit(state().reminders_changed)
    target = request.form.get("back", "")
    return redirect(safe_next(target, url_for("pages.dashboard")))


@pages.post("/reminders/<int:reminder_id>/done")
def reminder_done(reminder_id: int) -> BaseResponse:
    by = editor_id()
    service.change(db(), state().settings, row_or_404(Reminder, reminder_id), ReminderChanges(state="done"), by)
    return _back()


@pages.post("/reminders/<int:reminder_id>/snooze")
def reminder_snooze(reminder_id: int) -> BaseResponse:
    by = editor_id()
    try:
        service.change(db(), state().settings, row_or_404(Reminder, reminder_id),
                       ReminderChanges(snooze=request.form.get("until", "")), by)
    except ValidationError as exc:
        flash(_("Not snoozed: %(why)s", why=exc.message))
    return _back()


@pages.post("/reminders")
def reminder_new() -> BaseResponse:
    by = editor_id()
    contact = request.form.get("contact_id", "")
    fields = ReminderFields(title=request.form.get("title", ""), due=request.form.get("due", ""),
                            contact_id=int(contact) if contact.isdigit() else NOT_GIVEN,
                            assignee_id=None if request.form.get("for") == "team" else NOT_GIVEN)
    try:
        service.create(db(), service.read_input(db(), state().settings, fields), by)
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

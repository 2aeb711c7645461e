"""Feeds that calendar apps fetch by themselves: authenticated by the secret in the URL alone, since
Outlook and Thunderbird cannot send a bearer token."""

from __future__ import annotations

from flask import Blueprint, Response, abort

from crm_inbox.reminders.calendar_feed import open_reminders_feed
from crm_inbox.staff.service import user_for_calendar_token
from web.requestdb import db, state

feeds = Blueprint("feeds", __name__)


@feeds.get("/calendar/<token>/reminders.ics")
def reminders_ics(token: str) -> Response:
    user = user_for_calendar_token(db(), token)
    if user is None:
        abort(404)  # not 401: an unknown URL should look like no URL at all
    body = open_reminders_feed(db(), state().settings, user)
    return Response(body, mimetype="text/calendar", headers={
        "Cache-Control": "private, no-store", "Content-Disposition": 'inline; filename="reminders.ics"'})

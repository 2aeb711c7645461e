"""Feeds that calendar apps, desk phones and routers fetch by themselves: authenticated by the secret in the
URL alone, since Outlook, Thunderbird and phones cannot send a bearer token."""

from __future__ import annotations

from flask import Blueprint, Response, abort

from crm_inbox.phone_book.formats import FORMATS, phone_book
from crm_inbox.phone_book.queries import phone_book_entries
from crm_inbox.phone_book.tokens import token_for
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


# Snom's remote directory may be fetched with POST; nothing is changed either way.
@feeds.route("/phonebook/<token>/<any(yealink.xml, grandstream.xml, snom.xml, fritzbox.xml, contacts.vcf):filename>",
             methods=["GET", "POST"])
def phone_book_feed(token: str, filename: str) -> Response:
    """The phone book for a desk phone or router: names and numbers only (crm_inbox.phone_book)."""
    if not state().settings.phone_book.enabled or token_for(db(), token) is None:
        abort(404)  # an unknown or revoked token looks like no URL at all
    body = phone_book(phone_book_entries(db()), filename)
    return Response(body, headers={"Content-Type": FORMATS[filename] + "; charset=utf-8",
                                   "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})

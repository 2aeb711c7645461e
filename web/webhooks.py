"""Phone-system webhooks (routes as Zammad's, so a PBX pointed at Zammad only needs a new host name),
the caller lookup for screen pops and PBX caller names, and the list of calls.

Each route checks its system's secret in constant time, lets ``handlers.phone`` turn the payload into
call events, records them through ``crm_inbox.calls.service`` and answers in the phone system's own format.
A phone system waits for that answer: its events are committed in one short transaction of their own (on
SQLite queued on the write lock rather than polling for the database), and the screen pop is sent after.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import quoteattr

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from crm_inbox.calls.matching import PhoneMatch
from crm_inbox.calls.relay import Pop, PopSender
from crm_inbox.calls.service import apply_event_matched, call_details, lookup, owes_callback, prepare
from crm_inbox.db import write_lock
from crm_inbox.errors import CallEventError
from crm_inbox.models import Call, StaffRole, utcnow
from handlers.phone import ADAPTERS, placetel, threecx, twilio
from web.api.errors import ApiError, error_response, fail, int_arg
from web.auth import api_user
from web.requestdb import db, state

log = logging.getLogger(__name__)
webhooks = Blueprint("webhooks", __name__, url_prefix="/api/v1")


@webhooks.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, **exc.extra)


@webhooks.errorhandler(CallEventError)
def _bad_event(exc: CallEventError) -> Response:
    log.info("webhook %s: bad event: %s", request.path.split("/")[3], exc)
    return error_response(400, "invalid", exc.message, field=exc.field)


@webhooks.errorhandler(OperationalError)
def _database_unavailable(exc: OperationalError) -> Response:
    """The phone system may try again. A lost connection is one line; anything else (SQLite names its SQL
    errors operational too) comes with its traceback."""
    log.error("webhook %s: database unavailable: %s", request.path.split("/")[3], exc.orig,
              exc_info=None if exc.connection_invalidated else exc)
    return error_response(503, "unavailable", "database unavailable, try again")


def _check_token(system: str, given: str | None) -> None:
    expected = state().settings.cti.token_for(system)
    if not expected:
        fail(403, "forbidden", f"no token is configured for {system}: set [cti] token")
    given = given or request.headers.get("X-CRM-Token", "")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        fail(401, "unauthorized", "wrong or missing token")


def _payload() -> dict[str, Any]:
    """Form fields (repeated ones as lists) or a JSON object."""
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            fail(400, "invalid", "the request body must be a JSON object", field="body")
        return data
    fields: dict[str, Any] = {}
    for key in request.form:
        values = request.form.getlist(key)
        fields[key] = values if len(values) > 1 or key.endswith("[]") else values[0]
    return fields


def _record(system: str, data: Mapping[str, Any]) -> list[Call]:
    events = ADAPTERS[system](data, utcnow())
    app = state()
    calls, changes = [], []
    with app.factory() as session:
        # SQLite: the events' reads before queueing for the write lock, so that it is held for the writes alone
        # (a SELECT opens no SQLite transaction); PostgreSQL reads them with the claim of the call.
        prepared = [prepare(session, app.settings, event) for event in events]
        with write_lock(app.factory):
            try:
                for event, ready in zip(events, prepared, strict=True):
                    call, changed, match = apply_event_matched(session, app.settings, event, ready)
                    calls.append(call)
                    if changed:
                        changes.append((event.kind, call, match))
                session.commit()
            except BaseException:
                session.rollback()
                raise
    for kind, call, match in changes:
        if kind == "new" and call.direction is not None and call.direction.value == "in":
            _screen_pop(call, match)
        if kind == "hangup":
            app.reminders_changed()  # a missed call's call-back may be due at once
    return calls


def _screen_pop(call: Call, match: PhoneMatch | None) -> None:
    """Tell the browsers of the staff being called (everyone when the phone system does not say)."""
    app = state()
    sender = current_app.extensions.get("crm_inbox.pops")
    if sender is None:
        sender = current_app.extensions.setdefault("crm_inbox.pops", PopSender(app.engine, app.broker))
    # The caller's name as the event read it: the sender reads it only for a nameless person.
    name = match.contact_name if match is not None and match.contact_id == call.contact_id else None
    sender.send(Pop(call.id, call.remote_e164 or "withheld", call.contact_id,
                    url_for("pages.contact", contact_id=call.contact_id) if call.contact_id else None,
                    frozenset({call.staff_id}) if call.staff_id else None, name))


@webhooks.post("/cti/<token>")
def zammad_cti(token: str) -> Response:
    _check_token("cti", token)
    _record("cti", _payload())
    return jsonify({})


@webhooks.post("/sipgate/<token>/in")
@webhooks.post("/sipgate/<token>/out")
def sipgate(token: str) -> Response:
    _check_token("sipgate", token)
    _record("sipgate", _payload())
    # sipgate sends answer and hangup only when asked to, in the reply to each push.
    base = state().settings.web.base_url.rstrip("/")
    url = (base + request.path) if base else request.base_url
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response onAnswer={quoteattr(url)} '
           f'onHangup={quoteattr(url)} />\n')
    return Response(xml, mimetype="application/xml")


@webhooks.post("/placetel/<token>")
def placetel_notify(token: str) -> Response:
    _check_token("placetel", token)
    secret = state().settings.cti.placetel_secret
    if secret:
        given = request.headers.get("X-PLACETEL-SIGNATURE", "")
        if not hmac.compare_digest(given.encode(), placetel.signature(secret, request.get_data()).encode()):
            fail(401, "unauthorized", "wrong or missing X-PLACETEL-SIGNATURE")
    _record("placetel", _payload())
    return Response("", status=200, mimetype="text/plain")


@webhooks.post("/twilio/<token>")
def twilio_status(token: str) -> Response:
    _check_token("twilio", token)
    auth_token = state().settings.cti.twilio_auth_token
    if auth_token:
        base = state().settings.web.base_url.rstrip("/")
        url = (base + request.full_path.rstrip("?")) if base else request.url
        expected = twilio.signature(auth_token, url, {k: request.form[k] for k in request.form})
        if not hmac.compare_digest(request.headers.get("X-Twilio-Signature", "").encode(), expected.encode()):
            fail(403, "forbidden", "X-Twilio-Signature does not match")
    _record("twilio", _payload())
    return Response(status=204)


@webhooks.post("/calls/events")
def generic_events() -> Response:
    """The generic JSON format; a staff API token or the CTI token as bearer."""
    user = api_user()
    if user is not None and user.role == StaffRole.READONLY:
        fail(403, "forbidden", "read-only users cannot change data")
    if user is None:
        _check_token("generic", request.headers.get("Authorization", "").removeprefix("Bearer ").strip())
    calls = _record("generic", _payload())
    return jsonify(call_id=calls[-1].id if calls else None)


@webhooks.post("/3cx/<token>/journal")
def threecx_journal(token: str) -> Response:
    _check_token("threecx", token)
    calls = _record("3cx", _payload())
    return jsonify(call_id=calls[-1].id if calls else None)


@webhooks.get("/3cx/<token>/lookup")
def threecx_lookup(token: str) -> Response:
    _check_token("threecx", token)
    found = lookup(db(), state().settings, request.args.get("number", ""))
    if found is None:
        return jsonify(contact=None)
    if found.contact is None and found.company is not None:  # an extension of a company's switchboard
        company = found.company
        return jsonify(contact={
            "id": f"company-{company.id}", "first_name": "", "last_name": company.name, "company": company.name,
            "email": "", "phone": company.phones[0].raw if company.phones else "",
            "url": _absolute(url_for("pages.company", company_id=company.id))})
    contact = found.contact
    assert contact is not None
    first, _, last = (contact.name or "").rpartition(" ")
    return jsonify(contact={
        "id": contact.id, "first_name": first or last, "last_name": last if first else "",
        "company": found.company.name if found.company else "",
        "email": contact.emails[0].email if contact.emails else "",
        "phone": contact.phones[0].raw if contact.phones else "",
        "url": _absolute(url_for("pages.contact", contact_id=contact.id))})


@webhooks.get("/3cx/template.xml")
def threecx_template() -> Response:
    user = api_user()
    if user is None:
        fail(401, "unauthorized", "an admin's bearer token is required")
    if user.role != StaffRole.ADMIN:
        fail(403, "forbidden", "only an admin may download the template")
    token = state().settings.cti.token_for("threecx")
    if not token:
        fail(409, "conflict", "set [cti] threecx_token (or token) first")
    response = Response(threecx.template(_absolute("").rstrip("/"), token), mimetype="application/xml")
    response.headers["Content-Disposition"] = 'attachment; filename="crm-inbox-3cx.xml"'
    return response


def _absolute(path: str) -> str:
    base = state().settings.web.base_url.rstrip("/") or request.host_url.rstrip("/")
    return base + path


@webhooks.get("/lookup")
def caller_lookup() -> Response:
    """Who is calling? JSON for screen pops, ``format=text`` (the display name) for PBX caller names.

    A staff bearer token, or the CTI token in ``?token=`` or X-CRM-Token (Asterisk's CURL() cannot
    send an Authorization header)."""
    if api_user() is None:
        _check_token("generic", request.args.get("token"))
    number = request.args.get("number", "").strip()
    if not number or len(number) > 100:
        fail(400, "invalid", "number is required", field="number")
    found = lookup(db(), state().settings, number)
    if request.args.get("format") == "text":
        if found is None:
            return Response("", status=404, mimetype="text/plain")
        return Response(found.display_name, mimetype="text/plain")
    if found is None:
        fail(404, "not_found", "nobody is known with this number")
    contact, company = found.contact, found.company
    return jsonify(
        display_name=found.display_name,
        contact={"id": contact.id, "name": contact.name, "category": contact.category.value if contact.category
                 else None, "role": contact.role.value, "url": url_for("pages.contact", contact_id=contact.id)}
        if contact else None,
        company={"id": company.id, "name": company.name,
                 "category": company.category.value if company.category else None} if company else None,
        open_tickets=found.open_tickets,
        last_interaction=found.last_interaction,
    )


@webhooks.get("/calls")
def list_calls() -> Response:
    """Calls, newest first; ``missed=1``, ``callback=1`` (missed and not yet called back),
    ``unassigned=1`` (no known caller: for triage)."""
    if api_user() is None:
        fail(401, "unauthorized", "a valid bearer token is required")
    query = select(Call).order_by(Call.started_at.desc().nulls_last(), Call.id.desc())
    for name, condition in (("missed", Call.missed), ("callback", owes_callback())):
        if request.args.get(name) == "1":
            query = query.where(condition)
    if request.args.get("unassigned") == "1":
        query = query.where(Call.contact_id.is_(None), Call.company_id.is_(None))
    rows = db().execute(query.limit(int_arg("limit", 50, 1, 500))).scalars().all()
    return jsonify(items=[{**call_details(c), "direction": c.direction.value if c.direction else None,
                           "started_at": c.started_at.isoformat() if c.started_at else None,
                           "contact_id": c.contact_id, "company_id": c.company_id,
                           "interaction_id": c.interaction_id, "callback_needed": c.callback_needed}
                          for c in rows])

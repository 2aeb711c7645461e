"""Stored inbound messages: list them (failed ones for triage) and retry failed ones."""

from __future__ import annotations

from flask import Response, jsonify, request
from sqlalchemy import select

from crm_inbox.models import InboundMessage, InboundState
from crm_inbox.pipeline.runner import retry_now
from web.api import serialize as ser
from web.api.blueprint import api
from web.api.errors import fail, get_or_404, int_arg
from web.auth import actor_id, require_token
from web.requestdb import db, state


@api.get("/inbound")
@require_token()
def list_inbound() -> Response:
    query = select(InboundMessage)
    if raw_state := request.args.get("state"):
        if raw_state not in {s.value for s in InboundState}:
            fail(400, "invalid", "state must be one of " + ", ".join(s.value for s in InboundState), field="state")
        query = query.where(InboundMessage.state == InboundState(raw_state))
    limit = int_arg("limit", 50, 1, 500)
    rows = db().execute(query.order_by(InboundMessage.id.desc()).limit(limit)).scalars().all()
    return jsonify(items=[ser.inbound(m) for m in rows])


@api.post("/inbound/<int:inbound_id>/retry")
@require_token(write=True)
def retry_inbound(inbound_id: int) -> Response:
    message = get_or_404(InboundMessage, inbound_id, "inbound message")
    if message.state != InboundState.FAILED:
        fail(409, "conflict", f"inbound message {inbound_id} is {message.state.value}, not failed")
    db().rollback()  # the retry runs in its own units of work
    app_state = state()
    outcomes = retry_now(app_state.factory, app_state.settings, [inbound_id], actor_id())
    if not outcomes:  # another retry was first
        fail(409, "conflict", f"inbound message {inbound_id} is not failed any more")
    fresh = db().get_one(InboundMessage, inbound_id)
    db().refresh(fresh)
    return jsonify({**ser.inbound(fresh), "interaction_id": outcomes[0].interaction_id})

"""Interactions (single, lists, triage assignment) and attachment downloads."""

from __future__ import annotations

from flask import Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from crm_inbox.errors import ValidationError
from crm_inbox.ids import is_id
from crm_inbox.models import Attachment, Interaction
from crm_inbox.privacy.service import audit_mail_view
from crm_inbox.timeline.triage import assign, unassigned_query
from web.api import serialize as ser
from web.api.blueprint import api
from web.api.errors import fail, get_or_404, int_arg, json_body
from web.auth import actor_id, require_token
from web.downloads import attachment_response
from web.requestdb import db, state


@api.get("/interactions/<int:interaction_id>")
@require_token()
def get_interaction(interaction_id: int) -> Response:
    interaction = get_or_404(Interaction, interaction_id, "interaction", options=[
        selectinload(Interaction.contact_links), selectinload(Interaction.staff_links),
        selectinload(Interaction.attachments)])
    audit_mail_view(db(), state().settings, interaction, actor_id())
    return jsonify(ser.interaction(interaction))


@api.get("/interactions")
@require_token()
def list_interactions() -> Response:
    """Newest first; ``unassigned=1`` lists what waits for triage."""
    unassigned = request.args.get("unassigned", "0")
    if unassigned not in {"0", "1", "true", "false"}:
        fail(400, "invalid", "unassigned must be 1 or 0", field="unassigned")
    query = unassigned_query() if unassigned in {"1", "true"} else select(Interaction).order_by(
        Interaction.occurred_at.desc(), Interaction.id.desc())
    limit = int_arg("limit", 50, 1, 500)
    offset = int_arg("offset", 0, 0, 10_000_000)
    rows = db().execute(query.options(selectinload(Interaction.contact_links),
                                      selectinload(Interaction.attachments))
                        .limit(limit).offset(offset)).scalars().all()
    return jsonify(items=[{**ser.timeline_item(i), "attribution_reason": i.attribution_reason,
                           "details": i.details} for i in rows])


@api.post("/interactions/<int:interaction_id>/assign")
@require_token(write=True)
def assign_interaction(interaction_id: int) -> Response:
    interaction = get_or_404(Interaction, interaction_id, "interaction")
    data = json_body()
    unknown = sorted(set(data) - {"contact_ids", "remember_address"})
    if unknown:
        fail(400, "invalid", f"{unknown[0]} is not a known field", field=unknown[0])
    remember = data.get("remember_address", False)
    if not isinstance(remember, bool):
        fail(400, "invalid", "remember_address must be true or false", field="remember_address")
    contact_ids = data.get("contact_ids")
    if not isinstance(contact_ids, list) or not all(is_id(c) for c in contact_ids):
        raise ValidationError("contact_ids", "must be a non-empty list of contact ids")
    assign(db(), interaction, contact_ids, actor_id(), remember_address=remember)
    db().refresh(interaction)
    return jsonify(ser.interaction(interaction))


@api.get("/attachments/<int:attachment_id>")
@require_token()
def download_attachment(attachment_id: int) -> Response:
    att = get_or_404(Attachment, attachment_id, "attachment")
    return attachment_response(att)

"""Single interactions and attachment downloads."""

from __future__ import annotations

from flask import Response, jsonify
from sqlalchemy.orm import selectinload

from crm_inbox.models import Attachment, Interaction
from web.api import api
from web.api import serialize as ser
from web.api.errors import get_or_404
from web.auth import require_token


@api.get("/interactions/<int:interaction_id>")
@require_token()
def get_interaction(interaction_id: int) -> Response:
    interaction = get_or_404(Interaction, interaction_id, "interaction", options=[
        selectinload(Interaction.contact_links), selectinload(Interaction.staff_links),
        selectinload(Interaction.attachments)])
    return jsonify(ser.interaction(interaction))


@api.get("/attachments/<int:attachment_id>")
@require_token()
def download_attachment(attachment_id: int) -> Response:
    att = get_or_404(Attachment, attachment_id, "attachment")
    # Always a download, never rendered: an attached .html or .svg must not run under our origin.
    response = Response(att.content, mimetype="application/octet-stream")
    response.headers.set("Content-Disposition", "attachment", filename=att.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response

"""Data protection over the API (admins only): a person's data as a zip, and erasing the person."""

from __future__ import annotations

import tempfile

from flask import Response, jsonify, send_file

from crm_inbox.models import Contact
from crm_inbox.privacy import service as privacy
from crm_inbox.privacy.sales import kept_summary
from web.api.blueprint import api
from web.api.errors import get_or_404
from web.auth import actor_id, require_token
from web.requestdb import db, state


@api.get("/contacts/<int:contact_id>/export")
@require_token(admin=True)
def export_contact(contact_id: int) -> Response:
    get_or_404(Contact, contact_id, "contact")
    # Spooled: small archives stay in memory, one with large attachments goes to a temporary file.
    archive = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115  (send_file closes it)
    privacy.write_export(db(), contact_id, archive, actor_id(), settings=state().settings)
    archive.seek(0)
    response = send_file(archive, mimetype="application/zip", as_attachment=True,
                         download_name=f"contact-{contact_id}-export.zip", max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@api.post("/contacts/<int:contact_id>/erase")
@require_token(write=True, admin=True)
def erase_contact(contact_id: int) -> Response:
    get_or_404(Contact, contact_id, "contact")
    counts = privacy.erase_contact(db(), contact_id, actor_id(), settings=state().settings)
    # "kept": the commercial letters (quotes that went out, orders) that had to stay, and why; null for none.
    return jsonify(erased=contact_id, counts=counts, kept=kept_summary(counts))

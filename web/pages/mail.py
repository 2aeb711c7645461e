"""Mail and other interactions: search by subject, one interaction's page, its HTML (sandboxed), attachments."""

from __future__ import annotations

from flask import Response, abort, render_template
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from crm_inbox.contacts.search import subject_matches
from crm_inbox.errors import ValidationError
from crm_inbox.models import Attachment, Interaction, InteractionContact, InteractionStaff
from crm_inbox.privacy.service import audit_mail_view
from web.auth import editor_or_reader_id
from web.downloads import attachment_response
from web.pages.blueprint import pages
from web.pages.contacts import search_query, too_long_text
from web.requestdb import db, state

# Mail HTML is shown in <iframe sandbox>; this policy also holds if the URL is opened directly.
MAIL_HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


@pages.get("/search/mail")
def search_mail() -> str | tuple[str, int]:
    """Mail and other interactions by subject. Apart from the main search because it reads every subject
    (no index helps a "contains" search): asked for on purpose, newest first, at most 50."""
    try:
        q = search_query()
    except ValidationError:
        return render_template("search_mail.html", q="", items=[], error=too_long_text()), 400
    items = db().execute(select(Interaction).where(subject_matches(q))
                         .order_by(Interaction.occurred_at.desc(), Interaction.id.desc()).limit(50)
                         ).scalars().all() if len(q) >= 3 else []
    return render_template("search_mail.html", q=q, items=items, error=None)


@pages.get("/interactions/<int:interaction_id>")
def interaction(interaction_id: int) -> str:
    item = db().get(Interaction, interaction_id, options=[
        selectinload(Interaction.contact_links).selectinload(InteractionContact.contact),
        selectinload(Interaction.staff_links).selectinload(InteractionStaff.staff),
        selectinload(Interaction.attachments).load_only(
            Attachment.id, Attachment.filename, Attachment.content_type, Attachment.size)])
    if item is None:
        abort(404)
    audit_mail_view(db(), state().settings, item, editor_or_reader_id())
    return render_template("interaction.html", item=item)


@pages.get("/interactions/<int:interaction_id>/html")
def interaction_html(interaction_id: int) -> Response:
    html = db().execute(select(Interaction.html).where(Interaction.id == interaction_id)).scalar_one_or_none()
    if html is None:
        abort(404)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = MAIL_HTML_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@pages.get("/attachments/<int:attachment_id>")
def attachment(attachment_id: int) -> Response:
    att = db().get(Attachment, attachment_id)
    if att is None:
        abort(404)
    return attachment_response(att)

"""Triage: mail no contact could be linked to, and mail that failed to process. Assign to a contact found by
name, address or phone number; retry a failed message."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.campaigns.responses import confirm_unsubscribe, dismiss_unsubscribe, unsubscribe_suggested
from crm_inbox.contacts.inputs import ContactChanges
from crm_inbox.contacts.service import create_contact
from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.models import Contact, InboundMessage, InboundState, Interaction, Opportunity
from crm_inbox.pipeline.runner import retry_now
from crm_inbox.sales.replies import link_by_hand, suggested
from crm_inbox.text import shorten
from crm_inbox.timeline.triage import assign, ignore_failed, unassigned_query
from web.auth import editor_id
from web.pages.blueprint import pages
from web.pages.contacts import contact_search
from web.redirects import safe_next
from web.requestdb import db, row_or_404, state

MAX_CANDIDATES = 10


@pages.get("/triage")
def triage() -> str:
    waiting = db().execute(unassigned_query().limit(50)).scalars().all()
    failed = db().execute(select(InboundMessage).where(InboundMessage.state == InboundState.FAILED)
                          .order_by(InboundMessage.id.desc()).limit(50)).scalars().all()
    deal_suggestions = db().execute(suggested().limit(50)).scalars().all()
    unsubscribe_wishes = db().execute(unsubscribe_suggested().limit(50)).scalars().all()
    return render_template("triage.html", waiting=waiting, failed=failed, deal_suggestions=deal_suggestions,
                           unsubscribe_wishes=unsubscribe_wishes)


@pages.post("/triage/<int:interaction_id>/deal/<int:opportunity_id>")
def triage_link_deal(interaction_id: int, opportunity_id: int) -> BaseResponse:
    """Staff confirm a suggested deal: the mail goes on it (the rule lives in sales.replies)."""
    staff_id = editor_id()
    item = row_or_404(Interaction, interaction_id)
    opp = row_or_404(Opportunity, opportunity_id)
    try:
        link_by_hand(db(), item, opp, by=staff_id)
    except ValidationError as exc:
        flash(_("Not linked: %(why)s", why=exc.message))
        return redirect(url_for("pages.triage"))
    flash(_("“%(subject)s” is now on the deal “%(title)s”.", subject=shorten(item.subject) or _("(no subject)"),
            title=opp.title))
    return redirect(url_for("pages.triage"))


@pages.post("/triage/<int:interaction_id>/unsubscribe")
def triage_unsubscribe(interaction_id: int) -> BaseResponse:
    """Staff confirm or dismiss a campaign reply's wish to be unsubscribed: words in a mail opt nobody out until a
    person decides (the rule lives in campaigns.responses)."""
    staff_id = editor_id()
    row_or_404(Interaction, interaction_id)
    decision = request.form.get("decision")
    if decision not in ("confirm", "dismiss"):  # a missing or mistyped decision changes nothing
        abort(400, description=_("Choose to confirm or to dismiss the wish to unsubscribe."))
    try:
        if decision == "confirm":
            confirm_unsubscribe(db(), interaction_id, actor=staff_id)
            flash(_("Opted out of campaign mail, with the reply as proof."))
        else:
            dismiss_unsubscribe(db(), interaction_id, actor=staff_id)
            flash(_("Kept on the list: the reply is no wish to unsubscribe."))
    except (Conflict, NotFound) as exc:
        flash(_("Nothing changed: %(why)s", why=str(exc)))
    return redirect(url_for("pages.triage"))


@pages.post("/triage/<int:interaction_id>/assign")
def triage_assign(interaction_id: int) -> BaseResponse | str:
    staff_id = editor_id()
    item = row_or_404(Interaction, interaction_id)
    query = request.form.get("contact", "").strip()[:200]
    chosen = request.form.get("contact_id", "")
    if chosen.isdigit():
        candidates = [c for c in [db().get(Contact, int(chosen))] if c is not None]
    elif query:
        candidates = list(db().execute(select(Contact).where(contact_search(query)).order_by(Contact.id)
                                       .limit(MAX_CANDIDATES + 1)).scalars())
    else:
        candidates = []
    if len(candidates) != 1:
        # Never a guess: with none or several matches the person picks.
        return render_template("triage_pick.html", item=item, query=query, back=request.form.get("back", ""),
                               candidates=candidates[:MAX_CANDIDATES], too_many=len(candidates) > MAX_CANDIDATES)
    back = request.form.get("back", "")
    back = safe_next(back, url_for("pages.triage"))
    try:
        assign(db(), item, [candidates[0].id], staff_id, remember_address=request.form.get("remember") == "1")
    except ValidationError as exc:
        flash(_("Not assigned: %(why)s", why=exc.message))
        return redirect(back)
    flash(_("“%(subject)s” is now on %(name)s's timeline.", subject=shorten(item.subject) or _("(no subject)"),
            name=candidates[0].display_name))
    return redirect(back)


@pages.post("/triage/<int:interaction_id>/new-contact")
def triage_new_contact(interaction_id: int) -> BaseResponse:
    """Nobody in the CRM yet: make the contact from what the mail says (name, address) and assign it."""
    staff_id = editor_id()
    item = row_or_404(Interaction, interaction_id)
    name = " ".join(request.form.get("name", "").split())[:300] or None
    email = request.form.get("email", "").strip().lower()[:320]
    try:
        if not name and not email:
            raise ValidationError("name", _("a name or an e-mail address is needed"))
        contact = create_contact(db(), ContactChanges(name=name, emails=(email,) if email else (), role="lead"),
                                 state().settings.phone.default_region, staff_id, origin="triage",
                                 origin_detail=f"made from interaction {item.id}")
        assign(db(), item, [contact.id], staff_id)
    except ValidationError as exc:
        db().rollback()
        flash(_("No contact made: %(why)s", why=exc.message))
        return redirect(url_for("pages.triage"))
    flash(_("“%(subject)s” is now on %(name)s's timeline.", subject=shorten(item.subject) or _("(no subject)"),
            name=contact.display_name))
    return redirect(url_for("pages.triage"))


@pages.post("/triage/inbound/<int:inbound_id>/retry")
def triage_retry(inbound_id: int) -> BaseResponse:
    staff_id = editor_id()
    db().rollback()  # the retry runs in units of work of its own
    app = state()
    outcomes = retry_now(app.factory, app.settings, [inbound_id], staff_id)
    if not outcomes:
        flash(_("Message %(id)s is not waiting for a retry.", id=inbound_id))
        return redirect(url_for("pages.triage"))
    outcome = outcomes[0]
    if outcome.state != InboundState.FAILED:
        flash(_("Message %(id)s: processed.", id=inbound_id))
    else:
        flash(_("Message %(id)s: failed again: %(error)s", id=inbound_id, error=outcome.error))
    return redirect(url_for("pages.triage"))


@pages.post("/triage/inbound/<int:inbound_id>/ignore")
def triage_ignore(inbound_id: int) -> BaseResponse:
    if ignore_failed(db(), inbound_id, editor_id()):
        flash(_("Message %(id)s is marked as ignored (it stays stored).", id=inbound_id))
    return redirect(url_for("pages.triage"))

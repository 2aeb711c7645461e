"""Campaigns: the list, the form (name, segment, channel, sender, subject and text with placeholders), and a
campaign's page: who it reaches and who is left out why, the rendered mail for any recipient, a test mail to
oneself, start / approve / pause / resume / cancel, the figures, the responders (one click makes an
opportunity), and for letters the mail-merge PDF and data.

The page only translates: every decision (who may receive, what a recipient sees, what a state allows) is the
campaign services'. Recipients are picked for the preview from the segment's first page or by name
(campaign_preview.js asks /campaigns/<id>/recipients and swaps in /campaigns/<id>/preview); without
JavaScript the picker is a plain GET form."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.campaigns import audience, letters, placeholders, responses, stats
from crm_inbox.campaigns import service as campaigns
from crm_inbox.errors import Conflict, Forbidden, NotFound, ValidationError
from crm_inbox.ids import MAX_ID
from crm_inbox.models import Campaign, CampaignState, Channel, Contact, Segment, StaffRole
from crm_inbox.segments import service as segments
from web.auth import current_user, editor_id
from web.downloads import export_response, pdf_response
from web.i18n import N_
from web.pages.blueprint import pages
from web.pages.consent_labels import reason_label, reason_short
from web.pages.sales_forms import error_text, id_arg, language, text
from web.requestdb import after_commit, db, row_or_404, state

FIELDS = ("name", "segment_id", "channel", "sender_name", "subject", "body")
PICK_SIZE = 50  # recipients offered in the preview's list; the others are found by name
FIND_SIZE = 20
MAX_QUERY = 100
RESPONDERS_PAGE = 50
CHANNELS = (Channel.EMAIL, Channel.LETTER)

STATE_LABELS = {"draft": N_("draft"), "awaiting_approval": N_("awaiting approval"), "sending": N_("sending"),
                "paused": N_("paused"), "done": N_("done"), "cancelled": N_("cancelled")}
CHANNEL_LABELS = {"email": N_("e-mail"), "letter": N_("letter"), "phone": N_("phone")}


def state_label(value: str) -> str:
    return _(STATE_LABELS[value]) if value in STATE_LABELS else value


@pages.context_processor
def campaign_helpers() -> dict[str, Any]:
    # Who was left out: a few words for the summary line, the sentence as its title (one table: consent_labels).
    return {"campaign_state_label": state_label, "reason_short": reason_short, "reason_label": reason_label,
            "channel_label": lambda c: _(CHANNEL_LABELS[c]) if c in CHANNEL_LABELS else c}


@pages.app_template_global()
def campaign_name(campaign_id: int) -> str:
    """A campaign's name for a timeline entry that does not carry it (a reply), read once per request."""
    names: dict[int, str] = g.setdefault("campaign_names", {})
    if campaign_id not in names:
        found = db().execute(select(Campaign.name).where(Campaign.id == campaign_id)).scalar_one_or_none() \
            if 0 < campaign_id <= MAX_ID else None
        names[campaign_id] = found or f"#{campaign_id}"
    return names[campaign_id]


def _is_admin() -> bool:
    user = current_user()
    return user is not None and user.role == StaffRole.ADMIN


def _back(campaign_id: int, anchor: str | None = None) -> BaseResponse:
    return redirect(url_for("pages.campaign", campaign_id=campaign_id, _anchor=anchor))


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return error_text(exc)
    return str(exc) or _("not possible in this state")


def _failed(what: str, exc: Exception) -> None:
    db().rollback()
    flash(_("%(what)s: %(why)s", what=what, why=_why(exc)))


def _segments() -> list[Segment]:
    return segments.list_segments(db())


def form_values(form: Any) -> dict[str, Any]:
    """The form as the service takes it: the values as typed (a segment id as a number when it is one); the
    service checks them and names the field that is wrong."""
    raw_segment = (form.get("segment_id") or "").strip()
    return {"name": text(form, "name") or "", "segment_id": id_arg(raw_segment) or raw_segment,
            "channel": (form.get("channel") or "").strip(), "sender_name": text(form, "sender_name"),
            "subject": (form.get("subject") or "").strip(), "body": (form.get("body") or "").replace("\r\n", "\n")}


def placeholder_help() -> list[tuple[str, str]]:
    """(name, description) for the editor; the descriptions are "German / English": the reader's half."""
    german = language() == "de"
    return [(name, (text.rsplit(" / ", 1)[0 if german else 1] if " / " in text else text).strip())
            for name, text in placeholders.PLACEHOLDERS.items()]


def _form_page(campaign: Campaign | None, values: dict[str, Any], error: ValidationError | None = None,
               status: int = 200) -> tuple[str, int]:
    return render_template("campaign_form.html", campaign=campaign, values=values, error=error,
                           error_field=error.field if error else None, segments=_segments(),
                           channels=[c.value for c in CHANNELS], placeholders=placeholder_help()), status


# --- the list and the form ---------------------------------------------------------------------------------

@pages.get("/campaigns")
def campaigns_list() -> str:
    rows = campaigns.list_campaigns(db())
    counts = {c.id: stats.summary(db(), c.id) for c in rows if c.state != CampaignState.DRAFT}
    names = dict(db().execute(select(Segment.id, Segment.name)).all())
    return render_template("campaigns.html", campaigns=rows, counts=counts, segment_names=names)


@pages.get("/campaigns/new")
def campaign_new() -> tuple[str, int]:
    editor_id()
    chosen = id_arg(request.args.get("segment_id"))
    return _form_page(None, {"channel": "email", "segment_id": chosen})


@pages.post("/campaigns/new")
def campaign_create() -> BaseResponse | tuple[str, int]:
    by = editor_id()
    try:
        values = form_values(request.form)
        made = campaigns.create(db(), state().settings, actor=by, **values)
    except ValidationError as exc:
        db().rollback()
        return _form_page(None, request.form.to_dict(), exc, 400)
    except Conflict as exc:  # the name is taken
        db().rollback()
        return _form_page(None, request.form.to_dict(), ValidationError("name", str(exc)), 400)
    db().flush()
    flash(_("Campaign saved as a draft."))
    return _back(made.id)


@pages.get("/campaigns/<int:campaign_id>/edit")
def campaign_edit(campaign_id: int) -> BaseResponse | tuple[str, int]:
    editor_id()
    item = row_or_404(Campaign, campaign_id)
    if "edit" not in campaigns.actions(item):
        flash(_("Only a draft can be changed."))
        return _back(campaign_id)
    values = {name: getattr(item, name) for name in FIELDS}
    values["channel"] = item.channel.value
    return _form_page(item, values)


@pages.post("/campaigns/<int:campaign_id>/edit")
def campaign_save(campaign_id: int) -> BaseResponse | tuple[str, int]:
    by = editor_id()
    item = row_or_404(Campaign, campaign_id)
    try:
        values = form_values(request.form)
        campaigns.update(db(), state().settings, campaign_id, actor=by, **values)
    except ValidationError as exc:
        db().rollback()
        return _form_page(item, request.form.to_dict(), exc, 400)
    except Conflict as exc:
        db().rollback()
        if "edit" in campaigns.actions(item):  # a clash of names, not of states
            return _form_page(item, request.form.to_dict(), ValidationError("name", str(exc)), 400)
        flash(_("Not saved: %(why)s", why=_why(exc)))
        return _back(campaign_id)
    flash(_("Saved."))
    return _back(campaign_id)


@pages.post("/campaigns/<int:campaign_id>/delete")
def campaign_delete(campaign_id: int) -> BaseResponse:
    by = editor_id()
    row_or_404(Campaign, campaign_id)
    if request.form.get("confirm") != "yes":
        flash(_("Not deleted: confirm it first."))
        return _back(campaign_id)
    try:
        campaigns.delete(db(), campaign_id, actor=by)
    except (ValidationError, Conflict) as exc:
        _failed(_("Not deleted"), exc)
        return _back(campaign_id)
    flash(_("Campaign deleted."))
    return redirect(url_for("pages.campaigns_list"))


# --- the campaign's page -----------------------------------------------------------------------------------

def _picks(item: Campaign) -> list[tuple[int, str]]:
    """The segment's first people (id, name) for the preview's list."""
    if item.segment_id is None or db().get(Segment, item.segment_id) is None:
        return []
    segment = segments.get(db(), item.segment_id)
    ids, _more = segments.contact_ids(db(), segment, page=1, size=PICK_SIZE)
    names = dict(db().execute(select(Contact.id, Contact.name).where(Contact.id.in_(ids))).all())
    return [(i, names.get(i) or f"#{i}") for i in ids]


def _preview(item: Campaign, contact_id: int | None) -> dict[str, Any]:
    """The rendered mail for one recipient (None: the first), or why there is none."""
    try:
        rendered = campaigns.preview_for(db(), state().settings, item.id, contact_id)
    except (ValidationError, NotFound, Conflict) as exc:
        db().rollback()
        return {"error": _why(exc), "contact_id": contact_id}
    person = db().get(Contact, contact_id) if contact_id else None
    return {"rendered": rendered, "contact_id": contact_id, "contact_name": person.display_name if person else None}


def _audience(item: Campaign) -> dict[str, Any] | None:
    """Who the campaign reaches: decided now for a draft, as decided at the start afterwards."""
    if item.state in (CampaignState.DRAFT, CampaignState.AWAITING_APPROVAL):
        if item.segment_id is None:
            return None
        try:
            found = audience.preview(db(), state().settings, item.segment_id, item.channel)
        except (ValidationError, NotFound) as exc:
            db().rollback()
            return {"error": _why(exc)}
        return {"included": found.included, "left_out": dict(found.left_out), "live": True}
    return {"included": item.recipient_count, "left_out": dict(item.left_out or {}), "live": False}


@pages.get("/campaigns/<int:campaign_id>")
def campaign(campaign_id: int) -> str:
    item = row_or_404(Campaign, campaign_id)
    contact_id = id_arg(request.args.get("contact_id"))
    page = id_arg(request.args.get("page")) or 1
    started = item.state not in (CampaignState.DRAFT, CampaignState.AWAITING_APPROVAL)
    summary = stats.summary(db(), item.id) if started else None
    people, more = stats.responders(db(), item.id, page=page, size=RESPONDERS_PAGE) if started else ([], False)
    segment = db().get(Segment, item.segment_id) if item.segment_id else None
    allowed = campaigns.actions(item)
    return render_template(
        "campaign.html", campaign=item, segment=segment, audience=_audience(item), picks=_picks(item),
        preview=_preview(item, contact_id), summary=summary,
        uncertain=stats.uncertain(db(), item.id) if summary and summary.uncertain else [],
        responders=people, more_responders=more, page=page, is_admin=_is_admin(),
        threshold=state().settings.campaigns.approval_threshold, rate=state().settings.campaigns.per_minute,
        can={name: name in allowed for name in campaigns.ACTIONS})


@pages.get("/campaigns/<int:campaign_id>/preview")
def campaign_preview(campaign_id: int) -> str:
    """The preview box alone, for the recipient picker's script."""
    item = row_or_404(Campaign, campaign_id)
    return render_template("_campaign_preview.html", campaign=item,
                           preview=_preview(item, id_arg(request.args.get("contact_id"))))


@pages.get("/campaigns/<int:campaign_id>/recipients")
def campaign_recipients(campaign_id: int) -> BaseResponse:
    """Segment members whose name contains ``q`` (for the preview's search), at most FIND_SIZE."""
    item = row_or_404(Campaign, campaign_id)
    q = " ".join((request.args.get("q") or "").split())[:MAX_QUERY]
    if item.segment_id is None or db().get(Segment, item.segment_id) is None or not q:
        return jsonify(items=[])
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    segment = segments.get(db(), item.segment_id)
    rows = db().execute(select(Contact.id, Contact.name).where(
        segments.matches(db(), segment), Contact.name.ilike(pattern, escape="\\"))
        .order_by(Contact.name, Contact.id).limit(FIND_SIZE)).all()
    return jsonify(items=[{"id": i, "name": n} for i, n in rows])


# --- actions -----------------------------------------------------------------------------------------------

@pages.post("/campaigns/<int:campaign_id>/test")
def campaign_test(campaign_id: int) -> BaseResponse:
    by = editor_id()
    row_or_404(Campaign, campaign_id)
    try:
        mail = campaigns.send_test(db(), state().settings, campaign_id, actor=by)
    except (ValidationError, Conflict, NotFound) as exc:
        _failed(_("No test mail"), exc)
        return _back(campaign_id, "preview")
    after_commit(state().mail_queued)
    flash(_("Test mail sent to %(address)s.", address=mail.to_address))
    return _back(campaign_id, "preview")


@pages.post("/campaigns/<int:campaign_id>/start")
def campaign_start(campaign_id: int) -> BaseResponse:
    by = editor_id()
    row_or_404(Campaign, campaign_id)
    if request.form.get("confirm") != "yes":
        flash(_("Not started: confirm it first."))
        return _back(campaign_id)
    try:
        done = campaigns.start(db(), state().settings, campaign_id, actor=by)
    except (ValidationError, Conflict, NotFound) as exc:
        _failed(_("Not started"), exc)
        return _back(campaign_id)
    if done.state == CampaignState.AWAITING_APPROVAL:
        flash(_("More than %(count)d recipients: the campaign awaits approval by an admin.",
                count=state().settings.campaigns.approval_threshold))
    else:
        after_commit(state().mail_queued)
        flash(_("Campaign started."))
    return _back(campaign_id)


@pages.post("/campaigns/<int:campaign_id>/approve")
def campaign_approve(campaign_id: int) -> BaseResponse:
    by = editor_id()
    if not _is_admin():
        abort(403)
    row_or_404(Campaign, campaign_id)
    try:
        campaigns.approve(db(), state().settings, campaign_id, actor=by)
    except (ValidationError, Conflict, NotFound) as exc:
        _failed(_("Not approved"), exc)
        return _back(campaign_id)
    except Forbidden:
        db().rollback()
        abort(403)
    after_commit(state().mail_queued)
    flash(_("Approved: the campaign is being sent."))
    return _back(campaign_id)


def _change(campaign_id: int, action: str) -> BaseResponse:
    by = editor_id()
    row_or_404(Campaign, campaign_id)
    labels = {"pause": (_("Not paused"), _("Paused.")), "resume": (_("Not resumed"), _("Resumed.")),
              "cancel": (_("Not cancelled"), _("Cancelled: nothing more is sent."))}
    failed, done = labels[action]
    if action == "cancel" and request.form.get("confirm") != "yes":
        flash(_("Not cancelled: confirm it first."))
        return _back(campaign_id)
    try:
        getattr(campaigns, action)(db(), campaign_id, actor=by)
    except (ValidationError, Conflict, NotFound) as exc:
        _failed(failed, exc)
        return _back(campaign_id)
    if action == "resume":
        after_commit(state().mail_queued)  # the releaser looks at once, not at its next poll
    flash(done)
    return _back(campaign_id)


@pages.post("/campaigns/<int:campaign_id>/pause")
def campaign_pause(campaign_id: int) -> BaseResponse:
    return _change(campaign_id, "pause")


@pages.post("/campaigns/<int:campaign_id>/resume")
def campaign_resume(campaign_id: int) -> BaseResponse:
    return _change(campaign_id, "resume")


@pages.post("/campaigns/<int:campaign_id>/cancel")
def campaign_cancel(campaign_id: int) -> BaseResponse:
    return _change(campaign_id, "cancel")


@pages.post("/campaigns/<int:campaign_id>/responders/<int:recipient_id>/qualify")
def campaign_qualify(campaign_id: int, recipient_id: int) -> BaseResponse:
    by = editor_id()
    row_or_404(Campaign, campaign_id)
    try:
        opp = responses.qualify(db(), state().settings, recipient_id, actor=by, campaign_id=campaign_id)
    except (ValidationError, Conflict, NotFound) as exc:
        _failed(_("No opportunity"), exc)
        return _back(campaign_id, "responders")
    db().flush()
    flash(_("Opportunity opened: %(title)s", title=opp.title))
    return redirect(url_for("pages.opportunity", opportunity_id=opp.id))


@pages.post("/campaigns/<int:campaign_id>/letters.pdf")
def campaign_letters(campaign_id: int) -> BaseResponse:
    """The mail-merge PDF (a POST: the first print marks the letters printed and records them)."""
    by = editor_id()
    item = row_or_404(Campaign, campaign_id)
    try:
        content = letters.print_letters(db(), state().settings, campaign_id, actor=by)
    except (ValidationError, Conflict, NotFound) as exc:
        _failed(_("No letters"), exc)
        return _back(campaign_id)
    return pdf_response(content, f"{_('Letters')}-{item.name}.pdf")


@pages.get("/campaigns/<int:campaign_id>/merge")
def campaign_merge(campaign_id: int) -> BaseResponse:
    """The recipients' data for a word processor's mail merge (CSV or XLSX); not for read-only users. Letters
    printed from it are not recorded on the timelines (the page says so)."""
    by = editor_id()
    row_or_404(Campaign, campaign_id)
    try:
        done = letters.merge_data(db(), state().settings, campaign_id, request.args.get("format") or "csv",
                                  actor=by)
    except (ValidationError, Conflict, NotFound) as exc:
        _failed(_("No data"), exc)
        return _back(campaign_id)
    return export_response(done.content, done.mimetype, done.filename)

"""Campaigns over the API: create, read, change (a draft), delete (a draft or a cancelled one); the rendered mail
for any recipient; a test mail to the caller; start / approve (admins) / pause / resume / cancel; the figures, the
responders and qualifying one into an opportunity; for letters the mail-merge PDF and data.

Only translation: the campaign services validate, decide and audit; their errors become 4xx here."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from crm_inbox.campaigns import letters, responses, stats
from crm_inbox.campaigns import service as campaigns
from crm_inbox.campaigns.placeholders import Rendered
from crm_inbox.errors import ValidationError
from crm_inbox.ids import MAX_ID
from crm_inbox.models import Campaign, CampaignState
from web.api.blueprint import api
from web.api.errors import get_or_404, int_arg, json_body
from web.api.products import created
from web.api.sales_json import API
from web.api.serialize import when
from web.auth import actor_id, require_token
from web.downloads import export_response, pdf_response
from web.json_errors import fail
from web.requestdb import after_commit, db, state

FIELDS = ("name", "segment_id", "channel", "sender_name", "subject", "body")
REQUIRED = ("name", "segment_id", "channel")


def campaign_json(c: Campaign) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "segment_id": c.segment_id, "channel": c.channel.value,
            "state": c.state.value, "sender_name": c.sender_name, "subject": c.subject, "body": c.body,
            "recipient_count": c.recipient_count, "left_out": dict(c.left_out or {}),
            "created_by_id": c.created_by_id, "approved_by_id": c.approved_by_id, "approved_at": when(c.approved_at),
            "started_at": when(c.started_at), "finished_at": when(c.finished_at), "created_at": when(c.created_at),
            "updated_at": when(c.updated_at), "actions": sorted(campaigns.actions(c)),
            "url": f"{API}/campaigns/{c.id}"}


def rendered_json(r: Rendered) -> dict[str, Any]:
    return {"subject": r.subject, "text": r.text, "html": r.html}


def _get(campaign_id: int) -> Campaign:
    return get_or_404(Campaign, campaign_id, "campaign")


def _actor() -> int:
    by = actor_id()
    if by is None:  # require_token let no request without a user through
        fail(401, "unauthorized", "a valid bearer token is required")
    return by


def _id(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise ValidationError(field, "must be an id (a whole number from 1)")
    return value


def _fields(data: dict[str, Any], *, required: tuple[str, ...]) -> dict[str, Any]:
    """The body's fields as given: unknown keys and missing required ones are 400 here, the values are the
    service's to check (a wrong channel, segment or type is its ValidationError, a 400)."""
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    for key in required:
        if data.get(key) is None:
            raise ValidationError(key, "is required")
    return {key: data[key] for key in FIELDS if key in data}


@api.get("/campaigns")
@require_token()
def list_campaigns() -> Response:
    """Newest first; ``state`` filters."""
    rows = campaigns.list_campaigns(db())
    if wanted := request.args.get("state"):
        if wanted not in {s.value for s in CampaignState}:
            raise ValidationError("state", "must be one of " + ", ".join(s.value for s in CampaignState))
        rows = [c for c in rows if c.state.value == wanted]
    return jsonify(items=[campaign_json(c) for c in rows])


@api.post("/campaigns")
@require_token(write=True)
def create_campaign() -> Response:
    values = _fields(json_body(), required=REQUIRED)
    values.setdefault("subject", "")
    values.setdefault("body", "")
    values.setdefault("sender_name", None)
    made = campaigns.create(db(), state().settings, actor=_actor(), **values)
    return created(campaign_json(made), f"{API}/campaigns/{made.id}")


@api.get("/campaigns/<int:campaign_id>")
@require_token()
def get_campaign(campaign_id: int) -> Response:
    return jsonify(campaign_json(_get(campaign_id)))


@api.patch("/campaigns/<int:campaign_id>")
@require_token(write=True)
def patch_campaign(campaign_id: int) -> Response:
    """A draft only (else 409); the fields sent change."""
    _get(campaign_id)
    values = _fields(json_body(), required=())
    changed = campaigns.update(db(), state().settings, campaign_id, actor=_actor(), **values)
    return jsonify(campaign_json(changed))


@api.delete("/campaigns/<int:campaign_id>")
@require_token(write=True)
def delete_campaign(campaign_id: int) -> Response:
    """A draft or a cancelled campaign only (else 409)."""
    _get(campaign_id)
    campaigns.delete(db(), campaign_id, actor=_actor())
    return Response(status=204)


@api.post("/campaigns/<int:campaign_id>/preview")
@require_token()
def preview_campaign(campaign_id: int) -> Response:
    """The mail as ``contact_id`` gets it (subject, text, HTML); without one, as the first recipient does."""
    _get(campaign_id)
    data = request.get_json(silent=True) if request.content_length else {}
    if not isinstance(data, dict):
        fail(400, "invalid", "the request body must be a JSON object", field="body")
    unknown = sorted(set(data) - {"contact_id"})
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    contact_id = _id("contact_id", data["contact_id"]) if data.get("contact_id") is not None else None
    return jsonify(rendered_json(campaigns.preview_for(db(), state().settings, campaign_id, contact_id)))


@api.post("/campaigns/<int:campaign_id>/test")
@require_token(write=True)
def test_campaign(campaign_id: int) -> Response:
    """A test mail to the caller's own address, subject marked "[Test]"; on nobody's timeline."""
    _get(campaign_id)
    mail = campaigns.send_test(db(), state().settings, campaign_id, actor=_actor())
    after_commit(state().mail_queued)
    return jsonify(to=mail.to_address, subject=mail.subject, message_id=mail.message_id)


def _act(campaign_id: int, action: str) -> Response:
    _get(campaign_id)
    by = _actor()
    if action in ("start", "approve"):
        done = getattr(campaigns, action)(db(), state().settings, campaign_id, actor=by)
    else:
        done = getattr(campaigns, action)(db(), campaign_id, actor=by)
    if action in ("start", "approve", "resume"):
        after_commit(state().mail_queued)  # the releaser looks at once, not at its next poll
    return jsonify(campaign_json(done))


@api.post("/campaigns/<int:campaign_id>/start")
@require_token(write=True)
def start_campaign(campaign_id: int) -> Response:
    """Writes the send ledger and starts sending; above [campaigns] approval_threshold recipients the campaign
    waits for an admin (state awaiting_approval)."""
    return _act(campaign_id, "start")


@api.post("/campaigns/<int:campaign_id>/approve")
@require_token(write=True, admin=True)
def approve_campaign(campaign_id: int) -> Response:
    """Admins only (403 for others): a campaign awaiting approval starts."""
    return _act(campaign_id, "approve")


@api.post("/campaigns/<int:campaign_id>/pause")
@require_token(write=True)
def pause_campaign(campaign_id: int) -> Response:
    return _act(campaign_id, "pause")


@api.post("/campaigns/<int:campaign_id>/resume")
@require_token(write=True)
def resume_campaign(campaign_id: int) -> Response:
    return _act(campaign_id, "resume")


@api.post("/campaigns/<int:campaign_id>/cancel")
@require_token(write=True)
def cancel_campaign(campaign_id: int) -> Response:
    """What was not released yet never will be."""
    return _act(campaign_id, "cancel")


@api.get("/campaigns/<int:campaign_id>/summary")
@require_token()
def campaign_summary(campaign_id: int) -> Response:
    _get(campaign_id)
    s = stats.summary(db(), campaign_id)
    body = {name: getattr(s, name) for name in ("recipients", "queued", "released", "sent", "failed", "uncertain",
                                                "bounced", "replied", "opted_out", "opportunities")}
    body["printed"] = s.printed
    body["left_out"] = dict(s.left_out)
    body["uncertain_recipients"] = [{"contact_id": cid, "address": address}
                                    for cid, address in stats.uncertain(db(), campaign_id)] if s.uncertain else []
    return jsonify(body)


@api.get("/campaigns/<int:campaign_id>/responders")
@require_token()
def campaign_responders(campaign_id: int) -> Response:
    """Who replied, newest first: ``page`` (from 1), ``size`` (1–200)."""
    _get(campaign_id)
    page = int_arg("page", 1, 1, 1_000_000)
    size = int_arg("size", 50, 1, 200)
    people, more = stats.responders(db(), campaign_id, page=page, size=size)
    return jsonify(items=[{
        "recipient_id": p.recipient_id, "contact_id": p.contact_id, "contact_name": p.contact_name,
        "replied_at": when(p.replied_at), "reply_interaction_id": p.reply_interaction_id,
        "reply_subject": p.reply_subject, "reply_excerpt": p.reply_excerpt, "opportunity_id": p.opportunity_id,
        "asks_to_unsubscribe": p.asks_to_unsubscribe} for p in people], more=more, page=page)


@api.post("/campaigns/<int:campaign_id>/qualify")
@require_token(write=True)
def qualify_responder(campaign_id: int) -> Response:
    """An opportunity for one responder, ``{"recipient_id": …}`` as GET …/responders lists it (409 when one
    exists or the person did not reply). (The recipient is in the body: the API's paths carry one id.)"""
    _get(campaign_id)
    data = json_body()
    unknown = sorted(set(data) - {"recipient_id"})
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    if data.get("recipient_id") is None:
        raise ValidationError("recipient_id", "is required")
    recipient_id = _id("recipient_id", data["recipient_id"])
    opp = responses.qualify(db(), state().settings, recipient_id, actor=_actor(), campaign_id=campaign_id)
    return created({"opportunity_id": opp.id, "title": opp.title, "url": f"{API}/opportunities/{opp.id}"},
                   f"{API}/opportunities/{opp.id}")


@api.post("/campaigns/<int:campaign_id>/letters.pdf")
@require_token(write=True)
def campaign_letters(campaign_id: int) -> Response:
    """One PDF, one DIN 5008 letter per recipient; the first print marks them printed and records each on its
    timeline (so it needs write access, and is a POST: a prefetching client must not print)."""
    item = _get(campaign_id)
    content = letters.print_letters(db(), state().settings, campaign_id, actor=_actor())
    return pdf_response(content, f"letters-{item.id}.pdf")


@api.get("/campaigns/<int:campaign_id>/merge")
@require_token(write=True)
def campaign_merge(campaign_id: int) -> Response:
    """The recipients' data for a word processor's mail merge: ``format`` csv (default) or xlsx."""
    _get(campaign_id)
    wanted = request.args.get("format") or "csv"
    if wanted not in ("csv", "xlsx"):
        raise ValidationError("format", "must be csv or xlsx")
    done = letters.merge_data(db(), state().settings, campaign_id, wanted, actor=_actor())
    return export_response(done.content, done.mimetype, done.filename)

"""Opportunities (Verkaufschancen): list with filters, create, read (with quotes and follow-ups), change, their
own timeline; the pipeline by stage with the weighted forecast; the configured stages."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Any

from flask import Response, jsonify, request
from sqlalchemy import select

from crm_inbox.errors import BadCursor
from crm_inbox.ids import MAX_ID
from crm_inbox.models import Opportunity, Reminder
from crm_inbox.sales import opportunities as service
from crm_inbox.sales import queries
from crm_inbox.sales.totals import money
from crm_inbox.timeline.service import decode_cursor
from web.api import sales_json as out
from web.api import sales_shapes as shapes
from web.api import serialize as ser
from web.api.blueprint import api
from web.api.errors import fail, get_or_404, int_arg, json_body
from web.api.products import created, flag
from web.api.reminders import reminder_json
from web.auth import actor_id, require_token
from web.requestdb import db, state


def _detail(opp: Opportunity) -> dict[str, Any]:
    """The opportunity with its quotes (every version) and its reminders (the quote follow-ups)."""
    reminders = db().execute(select(Reminder).where(Reminder.opportunity_id == opp.id)
                             .order_by(Reminder.due_at, Reminder.id)).scalars()
    return {**out.opportunity(opp),
            "quotes": [out.quote_summary(q) for q in queries.quotes_for_opportunity(db(), opp.id)],
            "reminders": [reminder_json(r) for r in reminders]}


def _stage_arg() -> str | None:
    stage = request.args.get("stage") or None
    keys = [s.key for s in service.stages(state().settings)]
    if stage is not None and stage not in keys:
        fail(400, "invalid", "stage must be one of " + ", ".join(keys), field="stage")
    return stage


def _owner_arg() -> int | None:
    """``owner_id``: a staff id, or ``me`` (the caller)."""
    if request.args.get("owner_id") == "me":
        return actor_id()
    return int_arg("owner_id", 0, 1, MAX_ID) or None


@api.get("/opportunities")
@require_token()
def list_opportunities() -> Response:
    """Filters: ``owner_id`` (or ``me``), ``stage``, ``contact_id``, ``company_id``, ``open=1``; newest first."""
    query = select(Opportunity)
    if (owner := _owner_arg()) is not None:
        query = query.where(Opportunity.owner_id == owner)
    if (stage := _stage_arg()) is not None:
        query = query.where(Opportunity.stage == stage)
    if contact_id := int_arg("contact_id", 0, 1, MAX_ID):
        query = query.where(Opportunity.contact_id == contact_id)
    if company_id := int_arg("company_id", 0, 1, MAX_ID):
        query = query.where(Opportunity.company_id == company_id)
    if flag("open"):
        query = query.where(Opportunity.stage.not_in(("won", "lost")))
    limit = int_arg("limit", 50, 1, 500)
    offset = int_arg("offset", 0, 0, 10_000_000)
    rows = db().execute(query.order_by(Opportunity.id.desc()).limit(limit).offset(offset)).scalars()
    return jsonify(items=[out.opportunity(o) for o in rows])


@api.post("/opportunities")
@require_token(write=True)
def create_opportunity() -> Response:
    opp = service.create_opportunity(db(), state().settings, shapes.opportunity_fields(json_body()),
                                     by=actor_id())
    return created(_detail(opp), f"{out.API}/opportunities/{opp.id}")


@api.get("/opportunities/<int:opp_id>")
@require_token()
def get_opportunity(opp_id: int) -> Response:
    return jsonify(_detail(get_or_404(Opportunity, opp_id, "opportunity")))


@api.patch("/opportunities/<int:opp_id>")
@require_token(write=True)
def patch_opportunity(opp_id: int) -> Response:
    opp = get_or_404(Opportunity, opp_id, "opportunity")
    service.update_opportunity(db(), state().settings, opp, shapes.opportunity_changes(json_body()),
                               by=actor_id())
    return jsonify(_detail(opp))


def _cursor() -> str | None:
    """A cursor the database cannot compare with (no time zone, an id out of range) is bad input, not a 500."""
    cursor = request.args.get("cursor") or None
    if cursor is None:
        return None
    when, ident = decode_cursor(cursor)  # BadCursor → 400
    try:
        when.astimezone(UTC)
    except (OverflowError, ValueError):
        raise BadCursor("cursor is not valid") from None
    if when.tzinfo is None or not 0 < ident <= MAX_ID:
        raise BadCursor("cursor is not valid")
    return cursor


@api.get("/opportunities/<int:opp_id>/timeline")
@require_token()
def opportunity_timeline(opp_id: int) -> Response:
    """The mail, calls, quotes and notes of this deal, newest first (``next_cursor`` pages on)."""
    get_or_404(Opportunity, opp_id, "opportunity")
    page = service.opportunity_timeline(db(), opp_id, limit=int_arg("limit", 50, 1, 200), cursor=_cursor())
    return jsonify(items=[ser.timeline_item(i) for i in page.items], next_cursor=page.next_cursor)


@api.get("/opportunities/pipeline")
@require_token()
def pipeline() -> Response:
    """Open opportunities by stage (at most ``limit`` cards a stage, with each stage's count and sum) and the
    weighted forecast per month of the expected close date."""
    settings = state().settings
    owner = _owner_arg()
    limit = int_arg("limit", 50, 1, 1000)
    months = int_arg("months", 6, 1, 24)
    by_stage = queries.pipeline(db(), settings, owner_id=owner, per_stage=limit)
    totals = queries.stage_totals(db(), settings, owner_id=owner)
    columns = []
    for stage in service.stages(settings):
        if not stage.is_open:
            continue
        total = totals.get(stage.key, queries.StageTotal(0, Decimal(0)))
        columns.append({
            "key": stage.key, "probability": stage.probability, "count": total.count,
            "amount": money(total.amount),
            "cards": [{"id": c.id, "title": c.title, "customer": c.customer, "contact_id": c.contact_id,
                       "company_id": c.company_id, "amount": out.amount(c.amount), "probability": c.probability,
                       "close_date": c.close_date.isoformat() if c.close_date else None, "owner": c.owner,
                       "days_since_contact": c.days_since_contact} for c in by_stage.get(stage.key, [])]})
    forecast = [{"month": month.isoformat(), "amount": money(value)}
                for month, value in queries.forecast(db(), owner_id=owner, months=months)]
    return jsonify(stages=columns, forecast=forecast)


@api.get("/sales/stages")
@require_token()
def sales_stages() -> Response:
    """The stages in pipeline order with their default probability; won and lost end a deal."""
    return jsonify(items=[{"key": s.key, "probability": s.probability, "is_open": s.is_open}
                          for s in service.stages(state().settings)])

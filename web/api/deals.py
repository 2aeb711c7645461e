"""Deal suggestions for triage: mail that names another customer's deal (or comes from an unknown sender, or
may be spoofed) is not put on that deal by itself (``sales.replies``: precision first); it waits here with its
suggestions until staff put it on a deal (``sales.replies.link_by_hand``), as the triage page does."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from crm_inbox.errors import ValidationError
from crm_inbox.ids import is_id
from crm_inbox.models import Interaction, Opportunity
from crm_inbox.sales.replies import link_by_hand, suggested
from web.api import sales_json as out
from web.api import serialize as ser
from web.api.blueprint import api
from web.api.errors import get_or_404, int_arg, json_body
from web.auth import actor_id, require_token
from web.requestdb import db


def _suggestions(item: Interaction, deals: dict[int, Opportunity]) -> list[dict[str, Any]]:
    """The mail's suggestions with what staff need to choose: the deal's title, stage and customer. A deal
    deleted since is left out (nothing to put the mail on)."""
    found = []
    for entry in item.details.get("deal_suggestions", []):
        ident: Any = entry.get("opportunity_id") if isinstance(entry, dict) else None
        opp = deals.get(ident) if is_id(ident) else None
        if opp is not None:
            found.append({"opportunity_id": opp.id, "text": entry.get("text"), "title": opp.title,
                          "stage": opp.stage, "is_open": opp.is_open, "contact_id": opp.contact_id,
                          "company_id": opp.company_id, "url": f"{out.API}/opportunities/{opp.id}"})
    return found


def _mail(item: Interaction, deals: dict[int, Opportunity]) -> dict[str, Any]:
    return {**ser.timeline_item(item), "attribution_reason": item.attribution_reason,
            "suggestions": _suggestions(item, deals)}


def _deals(items: list[Interaction]) -> dict[int, Opportunity]:
    """The suggested deals of all listed mail in one query."""
    ids = {entry.get("opportunity_id") for item in items for entry in item.details.get("deal_suggestions", [])
           if isinstance(entry, dict)}
    wanted = [i for i in ids if is_id(i)]
    if not wanted:
        return {}
    return {o.id: o for o in db().execute(select(Opportunity).where(Opportunity.id.in_(wanted))).scalars()}


@api.get("/deal-suggestions")
@require_token()
def list_deal_suggestions() -> Response:
    """Incoming mail of the last ``days`` (default 30) with a deal suggested and on no deal yet, newest first."""
    query = suggested(int_arg("days", 30, 1, 365)).options(
        selectinload(Interaction.contact_links), selectinload(Interaction.attachments))
    rows = list(db().execute(query.limit(int_arg("limit", 50, 1, 200))
                             .offset(int_arg("offset", 0, 0, 10_000_000))).scalars())
    deals = _deals(rows)
    return jsonify(items=[_mail(item, deals) for item in rows])


@api.post("/interactions/<int:interaction_id>/deal")
@require_token(write=True)
def link_interaction_to_deal(interaction_id: int) -> Response:
    """Put the mail (or call, note …) on the deal ``opportunity_id``: linked with staff as the reason, the
    suggestion dropped, a customer's mail completes the deal's follow-ups. ``linked`` is false when it was on
    the deal already (a repeated request changes nothing)."""
    data = json_body()
    unknown = sorted(set(data) - {"opportunity_id"})
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    item = get_or_404(Interaction, interaction_id, "interaction", options=[
        selectinload(Interaction.contact_links), selectinload(Interaction.attachments)])
    opp_id = data.get("opportunity_id")
    if not is_id(opp_id):
        raise ValidationError("opportunity_id", "give the id of an opportunity")
    opp = db().get(Opportunity, opp_id)
    if opp is None:
        raise ValidationError("opportunity_id", "no such opportunity")
    linked = link_by_hand(db(), item, opp, by=actor_id())
    return jsonify({**_mail(item, _deals([item])), "opportunity_id": opp.id, "linked": linked})

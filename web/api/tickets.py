"""Support tickets: list, read, change, internal notes, merge."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from sqlalchemy import select

from crm_inbox.ids import MAX_ID, is_id, ref_id
from crm_inbox.models import Interaction, Ticket, TicketEvent, TicketState
from crm_inbox.tickets import queries, service
from crm_inbox.tickets.inputs import TicketChanges
from web.api import serialize as ser
from web.api.blueprint import api
from web.api.errors import fail, get_or_404, int_arg, json_body
from web.api.shapes import Parser, changes, string
from web.auth import actor_id, require_token
from web.requestdb import db


def _ticket_json(ticket: Ticket, *, full: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": ticket.id, "number": ticket.number, "label": ticket.label, "subject": ticket.subject,
        "state": ticket.state.value, "priority": ticket.priority.value, "contact_id": ticket.contact_id,
        "company_id": ticket.company_id, "assignee_id": ticket.assignee_id, "opened_at": ser.when(ticket.opened_at),
        "updated_at": ser.when(ticket.updated_at), "last_customer_reply_at": ser.when(ticket.last_customer_reply_at),
        "last_staff_reply_at": ser.when(ticket.last_staff_reply_at), "closed_at": ser.when(ticket.closed_at),
        "merged_into_id": ticket.merged_into_id, "previous_ticket_id": ticket.previous_ticket_id,
    }
    if full:
        thread = db().execute(select(Interaction).where(Interaction.ticket_id == ticket.id)
                              .order_by(Interaction.occurred_at, Interaction.id)).scalars().all()
        events = db().execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                              .order_by(TicketEvent.at, TicketEvent.id)).scalars().all()
        data["thread"] = [ser.timeline_item(i) for i in thread]
        data["events"] = [{"id": e.id, "at": ser.when(e.at), "kind": e.kind, "staff_id": e.staff_id,
                           "interaction_id": e.interaction_id, "details": e.details} for e in events]
    return data



@api.get("/tickets")
@require_token()
def list_tickets() -> Response:
    query = select(Ticket).where(Ticket.merged_into_id.is_(None))
    if state := request.args.get("state"):
        if state not in {s.value for s in TicketState}:
            fail(400, "invalid", "state must be one of " + ", ".join(s.value for s in TicketState), field="state")
        query = query.where(Ticket.state == TicketState(state))
    if (wanted_open := request.args.get("open", "0")) not in {"0", "1"}:
        fail(400, "invalid", "open must be 1 or 0", field="open")
    if wanted_open == "1":  # new, open or pending: what the pages list as open
        query = query.where(queries.is_open())
    if assignee := request.args.get("assignee"):
        if assignee == "me":
            query = query.where(Ticket.assignee_id == actor_id())
        elif assignee == "none":
            query = query.where(Ticket.assignee_id.is_(None))
        else:
            query = query.where(Ticket.assignee_id == int_arg("assignee", 0, 1, MAX_ID))
    if request.args.get("contact_id"):
        query = query.where(Ticket.contact_id == int_arg("contact_id", 0, 1, MAX_ID))
    limit = int_arg("limit", 50, 1, 500)
    offset = int_arg("offset", 0, 0, 10_000_000)
    rows = db().execute(queries.newest_first(query).limit(limit).offset(offset))
    return jsonify(items=[_ticket_json(t) for t in rows.scalars()])


@api.get("/tickets/<int:ticket_id>")
@require_token()
def get_ticket(ticket_id: int) -> Response:
    return jsonify(_ticket_json(get_or_404(Ticket, ticket_id, "ticket"), full=True))


_TICKET_JSON: dict[str, Parser] = {"state": string, "priority": string, "assignee_id": ref_id, "subject": string}


@api.patch("/tickets/<int:ticket_id>")
@require_token(write=True)
def patch_ticket(ticket_id: int) -> Response:
    ticket = get_or_404(Ticket, ticket_id, "ticket")
    service.change(db(), ticket, actor_id(), changes(TicketChanges, _TICKET_JSON, json_body()))
    return jsonify(_ticket_json(ticket, full=True))


@api.post("/tickets/<int:ticket_id>/notes")
@require_token(write=True)
def add_ticket_note(ticket_id: int) -> Response:
    ticket = get_or_404(Ticket, ticket_id, "ticket")
    data = json_body()
    event = service.add_note(db(), ticket, actor_id(), data.get("text"))
    response = jsonify(id=event.id, kind=event.kind, at=ser.when(event.at), text=event.details["text"])
    response.status_code = 201
    return response


@api.post("/tickets/<int:ticket_id>/merge")
@require_token(write=True)
def merge_ticket(ticket_id: int) -> Response:
    """Merge this ticket into ``target_id`` (its messages move there; this one is closed)."""
    source = get_or_404(Ticket, ticket_id, "ticket")
    target_id = json_body().get("target_id")
    if not is_id(target_id):
        fail(400, "invalid", "target_id must be a ticket id", field="target_id")
    target = db().get(Ticket, target_id)
    if target is None:
        fail(400, "invalid", "no such ticket", field="target_id")
    service.merge(db(), source, target, actor_id())
    return jsonify(_ticket_json(target, full=True))

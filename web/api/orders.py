"""Orders (Aufträge): the list (JSON, or CSV for a spreadsheet or the ERP; ``state=open``: not taken yet), one
order as the ERP takes it (``sales.orders.order_for_erp``: every amount a decimal string), as CSV, and its
confirmation PDF; the ERP's word that it has taken an order (PATCH state "handed_off") or that it is cancelled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, jsonify, request
from sqlalchemy.orm import selectinload

from crm_inbox.errors import ValidationError
from crm_inbox.ids import MAX_ID
from crm_inbox.models import Order, OrderState
from crm_inbox.sales import orders as service
from crm_inbox.sales import queries
from crm_inbox.sales.totals import money
from crm_inbox.time_range import EARLIEST, LATEST, in_range
from web.api import sales_json as out
from web.api import serialize as ser
from web.api.blueprint import api
from web.api.errors import fail, get_or_404, int_arg, json_body
from web.auth import actor_id, require_token
from web.downloads import csv_response, pdf_response
from web.requestdb import db, state


def order_json(order: Order) -> dict[str, Any]:
    """The ERP handoff of one order, with its id and where its documents are."""
    return {**service.order_for_erp(db(), order), "pdf_url": f"{out.API}/orders/{order.id}/pdf",
            "csv_url": f"{out.API}/orders/{order.id}.csv"}


def _summary(order: Order) -> dict[str, Any]:
    return {"id": order.id, "number": order.number, "state": order.state.value,
            "order_date": order.order_date.isoformat(), "quote_id": order.quote_id,
            "opportunity_id": order.opportunity_id, "contact_id": order.contact_id, "company_id": order.company_id,
            "net_total": money(order.net_total), "vat_total": money(order.vat_total),
            "gross_total": money(order.gross_total), "created_at": ser.when(order.created_at),
            "url": f"{out.API}/orders/{order.id}"}


def _format() -> str:
    wanted = request.args.get("format", "json")
    if wanted not in {"json", "csv"}:
        fail(400, "invalid", "format must be json or csv", field="format")
    return wanted


def _get(order_id: int) -> Order:
    return get_or_404(Order, order_id, "order", options=[selectinload(Order.lines)])


def _state_arg() -> OrderState | None:
    raw = request.args.get("state") or None
    if raw is None:
        return None
    try:
        return OrderState(raw)
    except ValueError:
        fail(400, "invalid", "state must be one of: " + ", ".join(s.value for s in OrderState), field="state")


@api.get("/orders")
@require_token()
def list_orders() -> Response:
    """Newest first; ``contact_id``, ``company_id``, ``state``; ``format=csv``: one row per line of the orders
    listed. With ``since`` (and ``since_id``): the ERP's poll, see ``_poll``."""
    if "since" in request.args:
        return _poll()
    rows = queries.list_orders(db(), limit=int_arg("limit", 50, 1, 500), offset=int_arg("offset", 0, 0, 10_000_000),
                               contact_id=int_arg("contact_id", 0, 1, MAX_ID) or None,
                               company_id=int_arg("company_id", 0, 1, MAX_ID) or None, state=_state_arg())
    if _format() == "csv":
        return csv_response(service.export_orders_csv(db(), rows, actor_id(), dict(request.args)), "orders.csv")
    return jsonify(items=[_summary(o) for o in rows])


def _poll() -> Response:
    """Orders created or changed after the cursor, oldest first, and the cursor to ask with next
    (``next_since``, ``next_since_id``): each order once per change, also one committed late with an earlier
    timestamp (they are listed once ``queries.ORDERS_SETTLE`` old). ``since`` may be "" for the beginning."""
    raw = request.args.get("since", "")
    since = EARLIEST
    if raw:
        try:
            since = datetime.fromisoformat(raw.replace(" ", "+"))  # "+" arrives as a space if unescaped
        except ValueError:
            fail(400, "invalid", "since must be an ISO 8601 time such as 2026-12-01T10:00:00Z", field="since")
        if since.tzinfo is None:
            fail(400, "invalid", "since needs a time zone (Z or +01:00)", field="since")
        if not in_range(since):
            fail(400, "invalid", f"since must lie between {EARLIEST.year} and {LATEST.year}", field="since")
    since_id = int_arg("since_id", 0, 0, MAX_ID)
    rows = queries.orders_since(db(), since, since_id, limit=int_arg("limit", 100, 1, 500))
    last = rows[-1] if rows else None
    return jsonify(items=[{**_summary(o), "updated_at": ser.when(o.updated_at)} for o in rows],
                   next_since=(last.updated_at if last else since).isoformat(),
                   next_since_id=last.id if last else since_id)


@api.get("/orders/<int:order_id>")
@require_token()
def get_order(order_id: int) -> Response:
    """The order for the ERP (JSON), or with ``format=csv`` its lines as CSV."""
    order = _get(order_id)
    if _format() == "csv":
        return _one_csv(order)
    return jsonify(order_json(order))


@api.patch("/orders/<int:order_id>")
@require_token(write=True)
def patch_order(order_id: int) -> Response:
    """``{"state": "handed_off"}`` when the ERP has taken the order, ``"cancelled"``; 409 for a move the order
    cannot make (a cancelled order handed off). The same state again is no change (a retry is safe)."""
    data = json_body()
    unknown = sorted(set(data) - {"state"})
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    wanted = data.get("state")
    if not isinstance(wanted, str):
        raise ValidationError("state", "give the state as a string")
    order = _get(order_id)
    service.set_state(db(), order, wanted, by=actor_id())
    return jsonify(order_json(order))


@api.get("/orders/<int:order_id>.csv")
@require_token()
def get_order_csv(order_id: int) -> Response:
    order = _get(order_id)
    return _one_csv(order)


def _one_csv(order: Order) -> Response:
    text = service.export_orders_csv(db(), [order], actor_id(), {"order_id": order.id})
    return csv_response(text, f"{order.number}.csv")


@api.get("/orders/<int:order_id>/pdf")
@require_token()
def order_pdf(order_id: int) -> Response:
    """The order confirmation (Auftragsbestätigung) as a download."""
    order = _get(order_id)
    return pdf_response(service.order_pdf(db(), state().settings, order), service.filename(order))


"""Quotes (Angebote): list, create, read, change (a sent quote gets a new version), delete a draft, the PDF,
finalise, send by mail, accept (→ the order), decline, versions; and the quote editor's live totals, summed on
the server by ``sales.totals.compute`` so that no JavaScript does money."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from crm_inbox.correspondence.service import MailDraft
from crm_inbox.errors import ValidationError
from crm_inbox.ids import MAX_ID, ref_id
from crm_inbox.models import Quote, QuoteState
from crm_inbox.sales import quotes as service
from crm_inbox.sales.quote_lines import preview
from crm_inbox.sales.totals import format_money
from web.api import sales_json as out
from web.api import sales_shapes as shapes
from web.api import serialize as ser
from web.api.blueprint import api
from web.api.errors import fail, get_or_404, int_arg, json_body
from web.api.orders import order_json
from web.api.products import created
from web.api.shapes import Parser, changes, string, text
from web.auth import actor_id, require_token
from web.downloads import pdf_response
from web.requestdb import after_commit, db, state

log = logging.getLogger(__name__)


def _get(quote_id: int) -> Quote:
    return get_or_404(Quote, quote_id, "quote", options=[selectinload(Quote.lines)])


def _json(quote: Quote) -> dict[str, Any]:
    return out.quote(quote, service.quote_versions(db(), quote))


@api.get("/quotes")
@require_token()
def list_quotes() -> Response:
    """Filters: ``opportunity_id``, ``contact_id``, ``company_id``, ``state``, ``number`` (every version of
    it); newest first."""
    query = select(Quote)
    for name, column in (("opportunity_id", Quote.opportunity_id), ("contact_id", Quote.contact_id),
                         ("company_id", Quote.company_id)):
        if ident := int_arg(name, 0, 1, MAX_ID):
            query = query.where(column == ident)
    if wanted := request.args.get("state"):
        if wanted not in {s.value for s in QuoteState}:
            fail(400, "invalid", "state must be one of " + ", ".join(s.value for s in QuoteState), field="state")
        query = query.where(Quote.state == QuoteState(wanted))
    if number := request.args.get("number"):
        query = query.where(Quote.number == number[:60])
    limit = int_arg("limit", 50, 1, 500)
    offset = int_arg("offset", 0, 0, 10_000_000)
    rows = db().execute(query.order_by(Quote.id.desc()).limit(limit).offset(offset)).scalars()
    return jsonify(items=[out.quote_summary(q) for q in rows])


@api.post("/quotes")
@require_token(write=True)
def create_quote() -> Response:
    quote = service.create_quote(db(), state().settings, shapes.quote_fields(json_body()), by=actor_id())
    return created(_json(quote), f"{out.API}/quotes/{quote.id}")


@api.get("/quotes/<int:quote_id>")
@require_token()
def get_quote(quote_id: int) -> Response:
    return jsonify(_json(_get(quote_id)))


@api.patch("/quotes/<int:quote_id>")
@require_token(write=True)
def patch_quote(quote_id: int) -> Response:
    """A draft changes in place. A final or sent quote is frozen: the change makes a new draft version, whose
    id the answer carries (``new_version: true``, ``previous_id``, and a Location header to it)."""
    quote = _get(quote_id)
    result = service.update_quote(db(), state().settings, quote, shapes.quote_changes(json_body()), by=actor_id())
    response = jsonify({**_json(result), "new_version": result.id != quote.id})
    if result.id != quote.id:
        response.headers["Location"] = f"{out.API}/quotes/{result.id}"
    return response


@api.delete("/quotes/<int:quote_id>")
@require_token(write=True)
def delete_quote(quote_id: int) -> Response:
    """Only a draft (a numbered quote is a business letter and stays: 409)."""
    service.delete_draft(db(), _get(quote_id), by=actor_id())
    return Response(status=204)


@api.get("/quotes/<int:quote_id>/pdf")
@require_token()
def quote_pdf(quote_id: int) -> Response:
    """The stored PDF of a finalised quote, or a draft's rendered now (marked as a draft); always a download."""
    quote = _get(quote_id)
    content = service.quote_pdf(db(), state().settings, quote)
    return pdf_response(content, service.filename(quote))


@api.post("/quotes/<int:quote_id>/finalise")
@require_token(write=True)
def finalise_quote(quote_id: int) -> Response:
    """Number (if none), date, validity; frozen; the PDF on the customer's timeline."""
    quote = service.finalise_quote(db(), state().settings, _get(quote_id), by=actor_id())
    return jsonify(_json(quote))


_SEND_JSON: dict[str, Parser] = {"to": text, "subject": string, "text": string, "in_reply_to": ref_id}


@api.post("/quotes/<int:quote_id>/send")
@require_token(write=True)
def send_quote(quote_id: int) -> Response:
    """Mail the quote with its PDF (finalised first if need be): ``subject``, ``text``, and ``to`` (empty:
    the contact's address). Files other than the PDF cannot be attached over JSON (use the quote page)."""
    quote = _get(quote_id)
    data = json_body()
    if "attachments" in data:
        raise ValidationError("attachments", "cannot be sent over the JSON API; the quote's PDF is attached")
    for key in ("subject", "text"):
        if key not in data:
            raise ValidationError(key, "is required")
    given: dict[str, Any] = changes(dict, _SEND_JSON, data)
    draft = MailDraft(to=given.get("to") or "", subject=given["subject"], text=given["text"],
                      contact_id=quote.contact_id, company_id=quote.company_id,
                      in_reply_to=given.get("in_reply_to"))
    by = actor_id()
    if by is None:  # require_token let no request without a user through
        fail(401, "unauthorized", "a valid bearer token is required")
    mail = service.send_quote(db(), state().settings, quote, draft, by=by)
    after_commit(state().mail_queued)
    return jsonify({**_json(quote), "mail": ser.timeline_item(mail)})


@api.post("/quotes/<int:quote_id>/accept")
@require_token(write=True)
def accept_quote(quote_id: int) -> Response:
    """The quote becomes an order (same lines, confirmation PDF); the opportunity is won."""
    order = service.accept_quote(db(), state().settings, _get(quote_id), by=actor_id())
    return created(order_json(order), f"{out.API}/orders/{order.id}")


@api.post("/quotes/<int:quote_id>/decline")
@require_token(write=True)
def decline_quote(quote_id: int) -> Response:
    """The customer declined: ``reason`` is required; the opportunity is lost with it."""
    quote = _get(quote_id)
    data = json_body()
    unknown = sorted(set(data) - {"reason"})
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("reason", "is required: why did the customer decline?")
    service.decline_quote(db(), state().settings, quote, reason, by=actor_id())
    return jsonify(_json(quote))


@api.get("/quotes/<int:quote_id>/versions")
@require_token()
def quote_versions(quote_id: int) -> Response:
    return jsonify(items=[out.quote_summary(q) for q in service.quote_versions(db(), _get(quote_id))])


@api.post("/quotes/totals")
@require_token()
def quote_totals() -> Response:
    """The editor's live totals: ``lines`` in (as a quote's lines; a line may leave out its text, and a
    product fills in its price and rate), the totals out, as decimal strings and as printed in ``language``."""
    data = json_body()
    unknown = sorted(set(data) - {"lines", "language"})
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    language = data.get("language", state().settings.company.language)
    if language not in {"de", "en"}:
        raise ValidationError("language", "must be de or en")
    # The checks saving makes (products, limits, places): what saving would refuse is refused here alike.
    result = preview(db(), state().settings, shapes.lines("lines", data.get("lines")))
    shown = {"net": format_money(result.net, language), "vat": format_money(result.vat, language),
             "gross": format_money(result.gross, language),
             "line_nets": [format_money(n, language) for n in result.line_nets],
             "rates": [{"rate": out.number(r.rate), "net": format_money(r.net, language),
                        "vat": format_money(r.vat, language)} for r in result.rates]}
    return jsonify({**out.totals(result), "formatted": shown})

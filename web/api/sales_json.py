"""Sales models → JSON-ready dicts (the shapes documented in openapi_sales.py).

Every amount is a decimal string: money with two places ("1234.50"), unit prices with two to four places
("0.0049"), quantities and percentages as written ("2.5", "19"). The totals come from ``sales.totals.compute``
over the lines, the one sum the PDF, the order and the ERP export use as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from crm_inbox.models import Opportunity, Product, Quote
from crm_inbox.sales.totals import Totals, compute, money
from web.api import serialize as ser

API = "/api/v1"


def number(value: Decimal | None) -> str | None:
    """A quantity or percentage without trailing zeros and never in exponent form: "1", "2.5", "19"."""
    if value is None:
        return None
    text = f"{Decimal(value).normalize():f}"
    return "0" if text in {"-0", "0"} else text


def price(value: Decimal | None) -> str | None:
    """A unit price: at least two places, up to the four the column keeps ("12.50", "0.0049")."""
    if value is None:
        return None
    value = Decimal(value)
    exponent = value.normalize().as_tuple().exponent
    places = min(4, max(2, -exponent)) if isinstance(exponent, int) else 2
    return f"{value.quantize(Decimal(1).scaleb(-places)):f}"


def amount(value: Decimal | None) -> str | None:
    return None if value is None else money(value)


def totals(result: Totals) -> dict[str, Any]:
    return {"net": money(result.net), "vat": money(result.vat), "gross": money(result.gross),
            "rates": [{"rate": number(r.rate), "net": money(r.net), "vat": money(r.vat)} for r in result.rates],
            "line_nets": [money(n) for n in result.line_nets]}


def product(p: Product) -> dict[str, Any]:
    return {"id": p.id, "number": p.number, "name": p.name, "description": p.description, "unit": p.unit,
            "net_price": price(p.net_price), "vat_rate": number(p.vat_rate), "active": p.active,
            "created_at": ser.when(p.created_at), "updated_at": ser.when(p.updated_at)}


def opportunity(o: Opportunity) -> dict[str, Any]:
    return {
        "id": o.id, "title": o.title, "contact_id": o.contact_id, "company_id": o.company_id,
        "owner_id": o.owner_id, "amount": amount(o.amount), "amount_from_quote": o.amount_from_quote,
        "close_date": o.close_date.isoformat() if o.close_date else None, "stage": o.stage,
        "probability": o.probability, "source": o.source.value, "lost_reason": o.lost_reason,
        "is_open": o.is_open, "created_at": ser.when(o.created_at), "created_by_id": o.created_by_id,
        "updated_at": ser.when(o.updated_at), "closed_at": ser.when(o.closed_at),
        "last_contact_at": ser.when(o.last_contact_at),
    }


def quote_summary(q: Quote) -> dict[str, Any]:
    """A quote in a list: no lines, the totals as stored with it."""
    return {
        "id": q.id, "opportunity_id": q.opportunity_id, "number": q.number, "version": q.version,
        "label": q.label, "state": q.state.value, "previous_id": q.previous_id, "contact_id": q.contact_id,
        "company_id": q.company_id, "language": q.language,
        "quote_date": q.quote_date.isoformat() if q.quote_date else None,
        "valid_until": q.valid_until.isoformat() if q.valid_until else None,
        "net_total": money(q.net_total), "vat_total": money(q.vat_total), "gross_total": money(q.gross_total),
        "sent_at": ser.when(q.sent_at), "decided_at": ser.when(q.decided_at), "created_at": ser.when(q.created_at),
        "updated_at": ser.when(q.updated_at), "url": f"{API}/quotes/{q.id}",
    }


def quote(q: Quote, versions: Sequence[Quote] = ()) -> dict[str, Any]:
    """One quote with its lines, totals by VAT rate, texts and the versions of its number."""
    result = compute(q.lines)
    return {
        **quote_summary(q),
        "intro": q.intro, "terms": q.terms, "address": list(q.address or []),
        "decline_reason": q.decline_reason, "document_id": q.document_id, "created_by_id": q.created_by_id,
        "sent_message_id": q.sent_message_id,
        "lines": [{"id": line.id, "position": line.position, "product_id": line.product_id, "text": line.text,
                   "description": line.description, "quantity": number(line.quantity), "unit": line.unit,
                   "unit_price": price(line.unit_price), "discount_percent": number(line.discount_percent),
                   "vat_rate": number(line.vat_rate), "net": money(net)}
                  for line, net in zip(q.lines, result.line_nets, strict=True)],
        "totals": totals(result),
        "versions": [{"id": v.id, "version": v.version, "label": v.label, "state": v.state.value}
                     for v in versions],
        "pdf_url": f"{API}/quotes/{q.id}/pdf",
    }

"""Orders (Aufträge): made from an accepted quote with the same lines and the same totals (one function,
``totals.compute``, sums both), numbered when created (``AB-2026-0001``), confirmed with a PDF
(Auftragsbestätigung) on the timeline, and handed to the ERP: as JSON (``order_for_erp``, also the payload of
the ``order.created`` event written in the same transaction) and as CSV (``orders_csv``). The ERP says when it
has taken an order (``set_state``: handed_off), or that it is cancelled.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_inbox import audit, events
from crm_inbox.config import Settings
from crm_inbox.contacts.csv_export import neutralise
from crm_inbox.db import affected
from crm_inbox.errors import Conflict, ValidationError
from crm_inbox.models import Company, Contact, Opportunity, Order, OrderLine, OrderState, Product, Quote
from crm_inbox.sales import letters, pdf
from crm_inbox.sales.numbers import ORDER, next_number
from crm_inbox.sales.records import on_timeline, parties, store_document, stored_pdf, today
from crm_inbox.sales.totals import compute, money

CURRENCY = "EUR"
ADDRESS_FIELDS = ("street", "postcode", "city", "country")
ORDER_CREATED = "order.created"
# Where an order may go from each state: the ERP takes an open order; an open or taken one can be cancelled;
# a cancelled order stays cancelled (a new order is a new number).
NEXT_STATES: dict[OrderState, frozenset[OrderState]] = {
    OrderState.OPEN: frozenset({OrderState.HANDED_OFF, OrderState.CANCELLED}),
    OrderState.HANDED_OFF: frozenset({OrderState.CANCELLED}),
    OrderState.CANCELLED: frozenset(),
}


def title(order: Order) -> str:
    """"Auftragsbestätigung AB-2026-0001" / "Order confirmation AB-2026-0001"."""
    return f"{'Auftragsbestätigung' if order.language == 'de' else 'Order confirmation'} {order.number}"


def filename(order: Order) -> str:
    return f"{'Auftragsbestätigung' if order.language == 'de' else 'Order_confirmation'}_{order.number}.pdf"


def _render(session: Session, settings: Settings, order: Order) -> bytes:
    contact, company = parties(session, order.contact_id, order.company_id)
    return pdf.render(pdf.document_from_order(order, contact, company, settings), settings.company,
                      settings.instance_path)


def order_from_quote(session: Session, settings: Settings, quote: Quote, *, by: int | None) -> Order:
    """The order of a quote (``quotes.accept_quote`` calls this): its lines with each line's net and the
    product's number as it is now, the quote's frozen address, a new order number, the confirmation PDF as a
    document, and the ``order.created`` event. One order per quote, over all its versions."""
    versions = [quote.id] if quote.number is None else list(
        session.scalars(select(Quote.id).where(Quote.number == quote.number)))
    existing = session.scalars(select(Order).where(Order.quote_id.in_(versions)).limit(1)).first()
    if existing is not None:
        raise Conflict(f"quote {quote.label} has its order already: {existing.number}")
    contact, company = parties(session, quote.contact_id, quote.company_id)
    totals = compute(quote.lines)
    day = today(settings)
    order = Order(
        number=next_number(session, ORDER, settings.sales.order_number_format, day), quote_id=quote.id,
        opportunity_id=quote.opportunity_id, contact_id=quote.contact_id, company_id=quote.company_id,
        language=quote.language, order_date=day,
        address=list(quote.address) or letters.recipient_address(contact, company, settings.company.country,
                                                                 quote.language),
        net_total=totals.net, vat_total=totals.vat, gross_total=totals.gross, created_by_id=by)
    for line, net in zip(quote.lines, totals.line_nets, strict=True):
        product = session.get(Product, line.product_id) if line.product_id is not None else None
        order.lines.append(OrderLine(
            position=line.position, product_id=line.product_id, product_number=product.number if product else None,
            text=line.text, description=line.description, quantity=line.quantity, unit=line.unit,
            unit_price=line.unit_price, discount_percent=line.discount_percent, vat_rate=line.vat_rate, net=net))
    session.add(order)
    session.flush()
    opp = session.get(Opportunity, order.opportunity_id) if order.opportunity_id is not None else None
    document = store_document(
        session, opp, contact_id=order.contact_id, company_id=order.company_id, subject=title(order),
        filename=filename(order), content=_render(session, settings, order), by=by, reason="order confirmation",
        details={"event": "order.document", "order_id": order.id, "quote_id": quote.id, "number": order.number,
                 "gross": money(order.gross_total)})
    order.document_id = document.id
    events.record(session, ORDER_CREATED, "order", order.id, order_for_erp(session, order))
    audit.record(session, by, "order.create", "order", order.id,
                 {"number": order.number, "quote_id": quote.id, "quote_number": quote.label,
                  "gross": money(order.gross_total)})
    return order


def set_state(session: Session, order: Order, state: str, *, by: int | None) -> bool:
    """Move the order to ``state`` ("handed_off": the ERP has taken it; "cancelled"): audited, a deal entry on
    the customer's and the deal's timeline, and the event ``order.handed_off`` / ``order.cancelled`` with the
    order as the ERP reads it. Setting the state it has already is no change (an ERP retrying its call gets
    no second event): False. Unknown state: ValidationError; a move the order cannot make (a cancelled order
    handed off, a taken one reopened): Conflict. The move is one conditional UPDATE, so of two requests at
    once only one makes the change and its event."""
    try:
        target = OrderState(state)
    except ValueError:
        raise ValidationError("state", "state must be one of: " + ", ".join(s.value for s in OrderState)) from None
    before = order.state
    if target == before:
        return False
    if target not in NEXT_STATES[before]:
        raise Conflict(f"order {order.number} is {before.value}: it cannot become {target.value}")
    moved = affected(session.execute(
        update(Order).where(Order.id == order.id, Order.state == before).values(state=target)
        .execution_options(synchronize_session=False)))
    if not moved:  # a colleague or the ERP was quicker: judge their state instead
        session.refresh(order)
        if order.state == target:
            return False
        raise Conflict(f"order {order.number} is {order.state.value} now")
    order.state = target
    session.flush()
    event = f"order.{target.value}"
    opp = session.get(Opportunity, order.opportunity_id) if order.opportunity_id is not None else None
    subject = (f"Order {order.number} handed off to the ERP" if target == OrderState.HANDED_OFF
               else f"Order {order.number} cancelled")
    on_timeline(session, opp, contact_id=order.contact_id, company_id=order.company_id, subject=subject, text=None,
                by=by, details={"event": event, "order_id": order.id, "number": order.number,
                                "from": before.value, "to": target.value, "opportunity_id": order.opportunity_id})
    events.record(session, event, "order", order.id, order_for_erp(session, order))
    audit.record(session, by, "order.state", "order", order.id,
                 {"number": order.number, "from": before.value, "to": target.value})
    return True


def order_pdf(session: Session, settings: Settings, order: Order) -> bytes:
    """The stored confirmation, or rendered now if its document is gone (an erased contact)."""
    return stored_pdf(session, order.document_id) or _render(session, settings, order)


def _decimal(value: Decimal, least: int = 0) -> str:
    """A quantity, price or rate without trailing zeros but at least ``least`` places (``"2.5"``, ``"19"``,
    ``"12.34"``, ``"0.1249"``): the same string whether the row was just written or read back from either
    database; plain notation, never ``1E+2``."""
    plain = value.normalize()
    exponent = plain.as_tuple().exponent
    if isinstance(exponent, int) and -exponent < least:
        plain = plain.quantize(Decimal(1).scaleb(-least))
    return f"{plain:f}"


def _email(contact: Contact | None) -> str | None:
    if contact is None:
        return None
    usable = [e.email for e in contact.emails if not e.bouncing] or [e.email for e in contact.emails]
    return usable[0] if usable else None


def _address(holder: Contact | Company | None, prefix: str = "") -> dict[str, str | None] | None:
    if holder is None:
        return None
    fields = {name: getattr(holder, prefix + name) for name in ADDRESS_FIELDS}
    return fields if any(fields.values()) else None


def order_for_erp(session: Session, order: Order) -> dict[str, Any]:
    """The order as the ERP takes it, JSON-ready: every amount a decimal string, totals from the same function
    as the quote's and the confirmation's."""
    contact, company = parties(session, order.contact_id, order.company_id)
    quote = session.get(Quote, order.quote_id) if order.quote_id is not None else None
    totals = compute(order.lines)
    billing = _address(company) or _address(contact)
    return {
        "id": order.id,
        "number": order.number,
        "date": order.order_date.isoformat(),
        "state": order.state.value,
        "currency": CURRENCY,
        "language": order.language,
        "quote_id": order.quote_id,
        "quote_number": quote.label if quote is not None and quote.number else None,
        "opportunity_id": order.opportunity_id,
        "customer": {
            "contact_id": order.contact_id,
            "company_id": order.company_id,
            "contact_name": contact.name if contact else None,
            "company_name": company.name if company else None,
            # The ERP's Kundennummer: the company's (it is invoiced), else the person's.
            "customer_number": (company.customer_number if company else None)
            or (contact.customer_number if contact else None),
            "email": _email(contact),
            "address_lines": list(order.address),
            "address": billing,
            "delivery_address": _address(company, "delivery_"),
        },
        "lines": [{
            "position": line.position,
            "product_number": line.product_number,
            "text": line.text,
            "description": line.description,
            "quantity": _decimal(line.quantity),
            "unit": line.unit,
            "unit_price": _decimal(line.unit_price, 2),
            "discount_percent": _decimal(line.discount_percent),
            "vat_rate": _decimal(line.vat_rate),
            "net": money(net),
        } for line, net in zip(order.lines, totals.line_nets, strict=True)],
        "totals": {
            "net": money(totals.net), "vat": money(totals.vat), "gross": money(totals.gross),
            "rates": [{"rate": _decimal(r.rate), "net": money(r.net), "vat": money(r.vat)} for r in totals.rates],
        },
    }


CSV_COLUMNS = ("order_number", "order_date", "state", "currency", "quote_number", "customer_number",
               "company", "contact", "street", "postcode", "city", "country", "delivery_street",
               "delivery_postcode", "delivery_city", "delivery_country", "position", "product_number",
               "text", "quantity", "unit", "unit_price", "discount_percent", "vat_rate", "line_net",
               "order_net", "order_vat", "order_gross")


def orders_csv(session: Session, orders: Sequence[Order]) -> str:
    """One row per order line, ``;``-separated (what German spreadsheets and ERP imports expect), UTF-8 with a
    byte-order mark, amounts with a decimal point. Text that came from people (names, addresses, line texts)
    has spreadsheet formulas neutralised as in the contacts export; our own numbers are written as they are
    (a credit line's ``-1.000`` must stay a number)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for order in orders:
        data = order_for_erp(session, order)
        customer, totals = data["customer"], data["totals"]
        address, delivery = customer["address"] or {}, customer["delivery_address"] or {}
        head = [neutralise(order.number), data["date"], data["state"], data["currency"],
                neutralise(data["quote_number"]), neutralise(customer["customer_number"]),
                neutralise(customer["company_name"]), neutralise(customer["contact_name"])]
        head += [neutralise(address.get(name)) for name in ADDRESS_FIELDS]
        head += [neutralise(delivery.get(name)) for name in ADDRESS_FIELDS]  # the JSON's delivery_address
        for line in data["lines"]:
            writer.writerow([*head, line["position"], neutralise(line["product_number"]), neutralise(line["text"]),
                             line["quantity"], neutralise(line["unit"]), line["unit_price"],
                             line["discount_percent"], line["vat_rate"], line["net"], totals["net"],
                             totals["vat"], totals["gross"]])
    return out.getvalue()


def export_orders_csv(session: Session, orders: Sequence[Order], actor: int | None, query: Any = None) -> str:
    """``orders_csv``, audited as exported by ``actor`` with the filter as the caller has it (as the contacts
    export is): customer data leaving the CRM is on record, whichever page or API asks."""
    audit.record(session, actor, "export", "order", None,
                 {"format": "csv", "query": query, "count": len(orders), "orders": [o.number for o in orders][:100]})
    return orders_csv(session, orders)

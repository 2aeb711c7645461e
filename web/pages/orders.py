"""Orders (Aufträge): the list (newest first, by customer) and one order with its lines, totals, confirmation
PDF and the ERP handoff as JSON and CSV (the same shapes as /api/v1/orders, for staff in the browser)."""

from __future__ import annotations

from flask import Response, jsonify, render_template, request
from sqlalchemy import select

from crm_inbox.models import Company, Contact, Opportunity, Order, Quote
from crm_inbox.sales import queries
from crm_inbox.sales.orders import export_orders_csv, filename, order_for_erp, order_pdf
from crm_inbox.sales.totals import compute
from web.auth import editor_or_reader_id
from web.downloads import content_disposition, csv_response, pdf_response
from web.pages.blueprint import pages
from web.pages.contacts import page_number
from web.pages.sales_forms import id_arg
from web.requestdb import db, row_or_404, state

PAGE_SIZE = 50


def _id(name: str) -> int | None:
    return id_arg(request.args.get(name))


@pages.get("/orders")
def orders() -> str:
    page = page_number()
    contact_id, company_id = _id("contact_id"), _id("company_id")
    rows = queries.list_orders(db(), limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE, contact_id=contact_id,
                               company_id=company_id)
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    contact_ids = {o.contact_id for o in rows if o.contact_id} | ({contact_id} if contact_id else set())
    company_ids = {o.company_id for o in rows if o.company_id} | ({company_id} if company_id else set())
    people = {c.id: c.display_name for c in db().execute(select(Contact).where(Contact.id.in_(contact_ids))).scalars()}
    firms = {c.id: c.name for c in db().execute(select(Company).where(Company.id.in_(company_ids))).scalars()}
    customer = people.get(contact_id) if contact_id else firms.get(company_id) if company_id else None
    return render_template("orders.html", orders=rows, page=page, has_next=has_next, people=people, firms=firms,
                           contact_id=contact_id, company_id=company_id, customer=customer)


@pages.get("/orders/<int:order_id>")
def order(order_id: int) -> str:
    item = row_or_404(Order, order_id)
    contact = db().get(Contact, item.contact_id) if item.contact_id else None
    company = db().get(Company, item.company_id) if item.company_id else None
    quote = db().get(Quote, item.quote_id) if item.quote_id else None
    opp = db().get(Opportunity, item.opportunity_id) if item.opportunity_id else None
    return render_template("order.html", order=item, contact=contact, company=company, quote=quote, opp=opp,
                           totals=compute(item.lines))


@pages.get("/orders/<int:order_id>/pdf")
def order_document(order_id: int) -> Response:
    item = row_or_404(Order, order_id)
    return pdf_response(order_pdf(db(), state().settings, item), filename(item))


@pages.get("/orders/<int:order_id>/erp.json")
def order_json(order_id: int) -> Response:
    item = row_or_404(Order, order_id)
    response = jsonify(order_for_erp(db(), item))
    response.headers["Content-Disposition"] = content_disposition(f"{item.number}.json")
    return response


@pages.get("/orders/<int:order_id>/erp.csv")
def order_csv(order_id: int) -> Response:
    item = row_or_404(Order, order_id)
    # An export of customer data: audited by who took it, as the API's (sales.orders.export_orders_csv).
    text = export_orders_csv(db(), [item], editor_or_reader_id(), {"order_id": item.id})
    return csv_response(text, f"{item.number}.csv")

"""The price list: products with number, name, unit, net price and VAT rate; add, edit, deactivate; and the
search the quote editor asks as staff type (the page session's JSON, as /contacts/suggest)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.errors import Conflict, ValidationError
from crm_inbox.inputs import NOT_GIVEN
from crm_inbox.models import Product
from crm_inbox.sales.inputs import ProductChanges, ProductFields
from crm_inbox.sales.products import create_product, search_products, update_product
from web.auth import editor_id
from web.pages.blueprint import pages
from web.pages.contacts import page_number
from web.pages.sales_forms import decimal_value, error_text, format_money_filter, format_plain, text
from web.requestdb import db, row_or_404, state

PAGE_SIZE = 100
MAX_QUERY = 200


@pages.get("/products")
def products() -> str:
    show_inactive = request.args.get("inactive") == "1"
    q = (request.args.get("q") or "").strip()[:MAX_QUERY]
    page = page_number()
    if q:
        rows = search_products(db(), q, include_inactive=show_inactive, limit=PAGE_SIZE)
        has_next = False
    else:
        query = select(Product).order_by(Product.number).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)
        if not show_inactive:
            query = query.where(Product.active)
        rows = list(db().execute(query).scalars())
        has_next = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
    count = db().execute(select(func.count()).select_from(Product).where(Product.active)).scalar_one()
    return render_template("products.html", products=rows, q=q, page=page, has_next=has_next,
                           show_inactive=show_inactive, count=count, rates=state().settings.sales.rates)


def _fields(form: Any) -> dict[str, Any]:
    return {"number": text(form, "number") or "", "name": text(form, "name") or "",
            "net_price": decimal_value(form.get("net_price"), "net_price"),
            "vat_rate": decimal_value(form.get("vat_rate"), "vat_rate"),
            "unit": text(form, "unit"), "description": text(form, "description")}


@pages.post("/products")
def product_add() -> BaseResponse:
    by = editor_id()
    try:
        values = _fields(request.form)
        if values["net_price"] is None:
            raise ValidationError("net_price", _("is needed"))
        fields = ProductFields(number=values["number"], name=values["name"], net_price=values["net_price"],
                               vat_rate=values["vat_rate"], unit=values["unit"] or "Stück",
                               description=values["description"])
        product = create_product(db(), state().settings, fields, by=by)
    except (ValidationError, Conflict) as exc:
        db().rollback()
        flash(_("Not added: %(why)s", why=error_text(exc) if isinstance(exc, ValidationError) else str(exc)))
        return redirect(url_for("pages.products"))
    flash(_("Added: %(number)s %(name)s", number=product.number, name=product.name))
    return redirect(url_for("pages.products"))


@pages.post("/products/<int:product_id>")
def product_edit(product_id: int) -> BaseResponse:
    by = editor_id()
    product = row_or_404(Product, product_id)
    form = request.form
    try:
        if "active" in form and len(form) <= 2:  # the (de)activate button alone
            changes = ProductChanges(active=form.get("active") == "1")
        else:
            values = _fields(form)
            given = {k: v for k, v in values.items() if k in form and v is not None}
            if "description" in form:
                given["description"] = values["description"]
            changes = ProductChanges(**{k: given.get(k, NOT_GIVEN) for k in (
                "number", "name", "net_price", "vat_rate", "unit", "description")})
        update_product(db(), state().settings, product, changes, by=by)
    except (ValidationError, Conflict) as exc:
        db().rollback()
        flash(_("Not saved: %(why)s", why=error_text(exc) if isinstance(exc, ValidationError) else str(exc)))
        return redirect(url_for("pages.products"))
    flash(_("Saved: %(number)s %(name)s", number=product.number, name=product.name))
    return redirect(url_for("pages.products", inactive="1" if not product.active else None))


@pages.get("/products/search")
def product_search() -> BaseResponse:
    """Active products matching ``q`` for the quote editor; prices as decimal strings and as shown."""
    q = (request.args.get("q") or "").strip()[:MAX_QUERY]
    rows = search_products(db(), q, limit=10) if q else []
    return jsonify(items=[{
        "id": p.id, "number": p.number, "name": p.name, "description": p.description, "unit": p.unit,
        "net_price": format_plain(p.net_price), "vat_rate": format_plain(p.vat_rate),
        "price_label": format_money_filter(Decimal(p.net_price))} for p in rows])

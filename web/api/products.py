"""The price list: find (the quote editor's search as you type), create, read and change products."""

from __future__ import annotations

from flask import Response, jsonify, request

from crm_inbox.models import Product
from crm_inbox.sales import products as service
from web.api import sales_json as out
from web.api import sales_shapes as shapes
from web.api.blueprint import api
from web.api.errors import fail, get_or_404, int_arg, json_body
from web.auth import actor_id, require_token
from web.requestdb import db, state


def flag(name: str) -> bool:
    """A yes/no query argument: 1/true or 0/false (absent: no)."""
    raw = request.args.get(name, "0").lower()
    if raw not in {"0", "1", "true", "false"}:
        fail(400, "invalid", f"{name} must be 1 or 0", field=name)
    return raw in {"1", "true"}


def created(body: dict[str, object], location: str) -> Response:
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = location
    return response


@api.get("/products")
@require_token()
def list_products() -> Response:
    """``q``: part of the number or name (those starting with it first); ``include_inactive=1``."""
    query = request.args.get("q", "")
    if len(query) > 200:
        fail(400, "invalid", "q must be at most 200 characters", field="q")
    rows = service.search_products(db(), query, include_inactive=flag("include_inactive"),
                                   limit=int_arg("limit", 50, 1, 200))
    return jsonify(items=[out.product(p) for p in rows])


@api.post("/products")
@require_token(write=True)
def create_product() -> Response:
    product = service.create_product(db(), state().settings, shapes.product_fields(json_body()), by=actor_id())
    return created(out.product(product), f"{out.API}/products/{product.id}")


@api.get("/products/<int:product_id>")
@require_token()
def get_product(product_id: int) -> Response:
    return jsonify(out.product(get_or_404(Product, product_id, "product")))


@api.patch("/products/<int:product_id>")
@require_token(write=True)
def patch_product(product_id: int) -> Response:
    product = get_or_404(Product, product_id, "product")
    service.update_product(db(), state().settings, product, shapes.product_changes(json_body()), by=actor_id())
    return jsonify(out.product(product))

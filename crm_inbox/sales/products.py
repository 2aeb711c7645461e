"""The price list: products and services with number, name, unit, net price and VAT rate; created and changed
by staff (audited here), found by number or name as you type."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from crm_inbox import audit
from crm_inbox.config import Settings
from crm_inbox.contacts.search import like_contains
from crm_inbox.errors import Conflict, ValidationError
from crm_inbox.inputs import NOT_GIVEN
from crm_inbox.models import Product
from crm_inbox.models.contacts import search_key
from crm_inbox.sales import values
from crm_inbox.sales.inputs import ProductChanges, ProductFields

MAX_PRICE = Decimal(10) ** 12  # the column holds 16 digits with 4 places


def vat_rate(settings: Settings, value: Any, field: str = "vat_rate") -> Decimal:
    """One of ``[sales] vat_rates`` (None: the first, the default)."""
    rates = settings.sales.rates
    if value is None:
        return rates[0]
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)) or Decimal(value) not in rates:
        raise ValidationError(field, "must be one of " + ", ".join(str(r) for r in rates))
    return next(rate for rate in rates if rate == Decimal(value))


def _values(settings: Settings, data: ProductFields | ProductChanges) -> dict[str, Any]:
    """The given fields, checked; {column: value}."""
    out: dict[str, Any] = {}
    if data.number is not NOT_GIVEN:
        out["number"] = values.line("number", data.number, max_len=50)
    if data.name is not NOT_GIVEN:
        out["name"] = values.line("name", data.name, max_len=300)
    if data.net_price is not NOT_GIVEN:
        out["net_price"] = values.amount("net_price", data.net_price, places=4, maximum=MAX_PRICE)
    if data.vat_rate is not NOT_GIVEN:
        out["vat_rate"] = vat_rate(settings, data.vat_rate)
    if data.unit is not NOT_GIVEN:
        out["unit"] = values.line("unit", data.unit, max_len=30)
    if data.description is not NOT_GIVEN:
        out["description"] = values.long_text("description", data.description)
    if data.active is not NOT_GIVEN:
        if not isinstance(data.active, bool):
            raise ValidationError("active", "must be true or false")
        out["active"] = data.active
    return out


def _free_number(session: Session, number: str, product_id: int | None) -> None:
    taken = session.execute(select(Product.id).where(Product.number == number)).scalar_one_or_none()
    if taken is not None and taken != product_id:
        raise Conflict(f"product number {number} is taken by another product")


def _audit_values(changed: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in changed.items()}


def create_product(session: Session, settings: Settings, fields: ProductFields, *, by: int | None) -> Product:
    """A new product; its number must be free (Conflict otherwise)."""
    checked = _values(settings, fields)
    _free_number(session, checked["number"], None)
    product = Product(**checked, search_name=search_key(f"{checked['number']} {checked['name']}") or "")
    session.add(product)
    session.flush()
    audit.record(session, by, "product.create", "product", product.id, _audit_values(checked))
    return product


def update_product(session: Session, settings: Settings, product: Product, changes: ProductChanges, *,
                   by: int | None) -> None:
    """Change the given fields (audited; nothing changed, no entry). Quotes keep their lines as written."""
    checked = _values(settings, changes)
    if "number" in checked:
        _free_number(session, checked["number"], product.id)
    changed = {key: value for key, value in checked.items() if getattr(product, key) != value}
    if not changed:
        return
    for key, value in changed.items():
        setattr(product, key, value)
    product.search_name = search_key(f"{product.number} {product.name}") or ""
    session.flush()
    audit.record(session, by, "product.update", "product", product.id, _audit_values(changed))


def search_products(session: Session, query: str, *, include_inactive: bool = False,
                    limit: int = 20) -> list[Product]:
    """Products whose number or name contains ``query`` (case and spacing aside), those whose number or name
    starts with it first, then by number; empty: the list by number."""
    key = search_key(query) or ""
    stmt = select(Product)
    if not include_inactive:
        stmt = stmt.where(Product.active)
    if key:
        # search_name is "number name": a prefix of either is the start of it or follows the first space.
        starts = Product.search_name.like(like_contains(key)[1:], escape="\\") | \
            Product.search_name.like("% " + like_contains(key)[1:], escape="\\")
        stmt = stmt.where(Product.search_name.like(like_contains(key), escape="\\")).order_by(
            case((starts, 0), else_=1))
    return list(session.execute(stmt.order_by(Product.number, Product.id).limit(max(1, min(limit, 200))))
                .scalars())

"""The price list: a product's number is unique, prices and rates are checked, changes are audited, and the
search finds a product by number or name however it is typed."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.errors import Conflict, ValidationError
from crm_inbox.models import AuditEntry, Product
from crm_inbox.sales.inputs import ProductChanges, ProductFields
from crm_inbox.sales.products import create_product, search_products, update_product


def add(session: Session, settings: Settings, number: str, name: str, price: str = "10.00", **more: object
        ) -> Product:
    return create_product(session, settings, ProductFields(number=number, name=name, net_price=Decimal(price),
                                                           **more), by=None)  # type: ignore[arg-type]


def test_create_defaults_and_audit(factory: sessionmaker[Session], settings: Settings) -> None:
    with unit_of_work(factory) as session:
        product = create_product(session, settings, ProductFields(
            number=" FZ-400 ", name="Fräsmaschine  FZ 400", net_price=Decimal("48000.0049")), by=None)
        assert (product.number, product.name, product.unit, product.vat_rate) == (
            "FZ-400", "Fräsmaschine FZ 400", "Stück", Decimal("19"))
        assert product.search_name == "fz-400 fräsmaschine fz 400"
        product_id = product.id
    with unit_of_work(factory) as session:
        assert session.get_one(Product, product_id).net_price == Decimal("48000.0049")
        entry = session.execute(select(AuditEntry)).scalar_one()
        assert (entry.action, entry.object_id, entry.details["net_price"]) == ("product.create", product_id,
                                                                               "48000.0049")


@pytest.mark.parametrize(("fields", "field"), [
    (ProductFields(number="", name="X", net_price=Decimal(1)), "number"),
    (ProductFields(number="A", name=" ", net_price=Decimal(1)), "name"),
    (ProductFields(number="A", name="X", net_price=Decimal("-0.01")), "net_price"),
    (ProductFields(number="A", name="X", net_price=Decimal("1.00001")), "net_price"),
    (ProductFields(number="A", name="X", net_price=Decimal("NaN")), "net_price"),
    (ProductFields(number="A", name="X", net_price=0.1), "net_price"),  # type: ignore[arg-type]
    (ProductFields(number="A", name="X", net_price=Decimal(1), vat_rate=Decimal("16")), "vat_rate"),
    (ProductFields(number="A", name="X", net_price=Decimal(1), unit=""), "unit"),
])
def test_bad_values_name_the_field(factory: sessionmaker[Session], settings: Settings, fields: ProductFields,
                                   field: str) -> None:
    with unit_of_work(factory) as session, pytest.raises(ValidationError) as error:
        create_product(session, settings, fields, by=None)
    assert error.value.field == field


def test_numbers_are_unique_and_changes_audited(factory: sessionmaker[Session], settings: Settings) -> None:
    with unit_of_work(factory) as session:
        first = add(session, settings, "S-100", "Servicestunde", unit="Stunde", vat_rate=Decimal("7.00"))
        assert first.vat_rate == Decimal("7")
        second = add(session, settings, "S-200", "Anfahrt", unit="pauschal")
        with pytest.raises(Conflict):
            add(session, settings, "S-100", "Doppelt")
        with pytest.raises(Conflict):
            update_product(session, settings, second, ProductChanges(number="S-100"), by=None)
        update_product(session, settings, second, ProductChanges(name="Anfahrtspauschale",
                                                                 net_price=Decimal("45.5")), by=None)
        assert second.search_name == "s-200 anfahrtspauschale"
        update_product(session, settings, second, ProductChanges(net_price=Decimal("45.50")), by=None)  # same
        updates = session.execute(select(AuditEntry.details).where(AuditEntry.action == "product.update")
                                  ).scalars().all()
        assert updates == [{"name": "Anfahrtspauschale", "net_price": "45.5"}]


def test_search_by_number_or_name_any_case_prefix_first_active_only(
        factory: sessionmaker[Session], settings: Settings) -> None:
    with unit_of_work(factory) as session:
        add(session, settings, "Z-9", "Zubehör Fräskopf")
        add(session, settings, "FK-1", "Fräskopf 50 mm")
        add(session, settings, "FK-2", "Fräskopf 80 mm", active=False)
        add(session, settings, "ÖL-1", "Öl 100%ig")
        names = lambda q, **kw: [p.number for p in search_products(session, q, **kw)]  # noqa: E731
        assert names("fräskopf") == ["FK-1", "Z-9"]  # the name starts with it: first
        assert names("FRÄSKOPF", include_inactive=True) == ["FK-1", "FK-2", "Z-9"]
        assert names("fk-") == ["FK-1"]
        assert names("öl") == ["ÖL-1"]
        assert names("100%") == ["ÖL-1"] and names("%") == ["ÖL-1"]  # LIKE's wildcards are literal
        assert sorted(names("")) == ["FK-1", "Z-9", "ÖL-1"]  # by number (the order is the collation's)
        assert names("mm", include_inactive=True, limit=1) == ["FK-1"]

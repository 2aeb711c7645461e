"""A small sales world for the quote and order tests, built through the services: a staff user, a company with
its billing address and customer number, a lead at it, an opportunity and two products."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

from crm_inbox.config import Settings, replace
from crm_inbox.contacts.inputs import CompanyChanges, ContactChanges
from crm_inbox.contacts.service import create_company, create_contact
from crm_inbox.models import Company, Contact, Opportunity, Product, StaffUser
from crm_inbox.sales.inputs import LineFields, OpportunityFields, ProductFields
from crm_inbox.sales.opportunities import create_opportunity
from crm_inbox.sales.products import create_product
from crm_inbox.staff.service import add_staff

D = Decimal


def sales_settings(settings: Settings) -> Settings:
    return replace(settings, company={"name": "Beispiel Firma GmbH", "street": "Hauptstraße 1", "postcode": "80331",
                                      "city": "München", "seat": "München", "register_court": "Amtsgericht München",
                                      "register_number": "HRB 123456", "managing_directors": "Anna Schmidt"})


@dataclass
class World:
    staff: StaffUser
    company: Company
    contact: Contact
    opp: Opportunity
    service: Product  # 19 %
    book: Product  # 7 %


def world(session: Session, settings: Settings, *, language: str | None = None) -> World:
    staff = add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt", "staff")
    company = create_company(session, CompanyChanges(
        name="Kunde AG", customer_number="K-10042", street="Industriestr. 5", postcode="70173", city="Stuttgart",
        country="DE", delivery_street="Lagerweg 2", delivery_postcode="70174", delivery_city="Stuttgart",
        delivery_country="DE"), "DE", staff.id)
    contact = create_contact(session, ContactChanges(
        name="Eva Müller", company_id=company.id, emails=("eva.mueller@kunde-ag.de",), salutation="frau",
        title="Dr.", language=language), "DE", staff.id)
    session.flush()
    return World(staff=staff, company=company, contact=contact, opp=opportunity(session, settings, staff, contact),
                 service=create_product(session, settings, ProductFields(
                     number="W-100", name="Wartung", net_price=D("120.00"), unit="Stunde",
                     description="Wartung vor Ort"), by=staff.id),
                 book=create_product(session, settings, ProductFields(
                     number="B-7", name="Handbuch", net_price=D("24.90"), vat_rate=D("7")), by=staff.id))


def opportunity(session: Session, settings: Settings, staff: StaffUser, contact: Contact,
                title: str = "Wartungsvertrag") -> Opportunity:
    return create_opportunity(session, settings, OpportunityFields(
        title=title, contact_id=contact.id, company_id=contact.company_id, owner_id=staff.id), by=staff.id)


def lines(w: World) -> tuple[LineFields, ...]:
    """A product line, a product line at 7 %, a free line with a discount and an odd quantity."""
    return (LineFields(product_id=w.service.id, quantity=D("3")),
            LineFields(product_id=w.book.id, quantity=D("2")),
            LineFields(text="Anfahrt", quantity=D("1.5"), unit="pauschal", unit_price=D("33.3333"),
                       discount_percent=D("10")))

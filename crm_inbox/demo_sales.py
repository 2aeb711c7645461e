"""The demo's sales path: a price list, postal addresses and salutations for the demo's people and companies,
opportunities in every stage, quotes (a draft, numbered ones, a second version) and an order, made through the
real services so the pipeline, the quote editor and the PDFs show something on first start. Nothing is mailed:
the quotes are finalised, not sent (demo addresses are made up)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_inbox.config import Settings, replace
from crm_inbox.models import Company, Contact, Role, Salutation
from crm_inbox.sales import opportunities, products, quotes
from crm_inbox.sales.inputs import (
    LineFields,
    OpportunityChanges,
    OpportunityFields,
    ProductFields,
    QuoteChanges,
    QuoteFields,
)

# number, German name, English name, unit (de, en), net price, VAT rate
PRICE_LIST = (
    ("FM-200", "Fräsmaschine FM-200", "Milling machine FM-200", ("Stück", "piece"), "12500.00", "19"),
    ("FM-400", "Fräsmaschine FM-400 CNC", "CNC milling machine FM-400", ("Stück", "piece"), "28900.00", "19"),
    ("WZ-10", "Werkzeugsatz Standard (10-teilig)", "Standard tool set (10 pieces)", ("Satz", "set"), "489.00", "19"),
    ("SV-H", "Servicetechniker vor Ort", "Service engineer on site", ("Stunde", "hour"), "95.00", "19"),
    ("SV-AN", "Anfahrtspauschale", "Call-out charge", ("pauschal", "flat"), "120.00", "19"),
    ("WV-1J", "Wartungsvertrag 12 Monate", "Maintenance contract, 12 months", ("pauschal", "flat"), "2400.00", "19"),
    ("SCH-1", "Schulung Bedienpersonal (Tag)", "Operator training (day)", ("Tag", "day"), "850.00", "19"),
    ("HB-DE", "Handbuch gedruckt", "Printed manual", ("Stück", "piece"), "39.00", "7"),
)
STREETS = ("Industriestraße", "Hauptstraße", "Gewerbering", "Am Hafen", "Bahnhofstraße", "Lindenweg", "Ringstraße")
CITIES = (("70565", "Stuttgart"), ("80331", "München"), ("20095", "Hamburg"), ("50667", "Köln"),
          ("60311", "Frankfurt am Main"), ("01067", "Dresden"), ("90402", "Nürnberg"), ("28195", "Bremen"))
CITIES_EN = (("EC1A 1BB", "London"), ("M1 1AE", "Manchester"), ("B1 1AA", "Birmingham"), ("LS1 1UR", "Leeds"))
DEALS_DE = ("Fräsmaschine für die Serienfertigung", "Wartungsvertrag Maschinenpark", "Ersatz der Altanlage",
            "Schulung neue Mitarbeiter", "Erweiterung Halle 2", "Werkzeugausstattung", "Zweitmaschine CNC",
            "Servicepaket 2027", "Modernisierung Fertigungslinie", "Rahmenvertrag Verschleißteile")
DEALS_EN = ("Milling machine for series production", "Maintenance contract", "Replacing the old line",
            "Training for new staff", "Hall 2 extension", "Tool equipment", "Second CNC machine",
            "Service package 2027", "Production line upgrade", "Wear parts framework agreement")


def _addresses(session: Session, rng: random.Random, english: bool) -> None:
    cities = CITIES_EN if english else CITIES
    country = "GB" if english else "DE"
    for company in session.execute(select(Company).order_by(Company.id)).scalars():
        postcode, city = rng.choice(cities)
        company.street = f"{rng.randint(1, 120)} {rng.choice(STREETS)}" if english else \
            f"{rng.choice(STREETS)} {rng.randint(1, 120)}"
        company.postcode, company.city, company.country = postcode, city, country
        company.customer_number = f"K-{10000 + company.id}"


def _salutations(people: Sequence[Any]) -> None:
    """The demo's people are addressed as letters would: Frau/Herr from what the demo knows of them."""
    for index, person in enumerate(people):
        contact = person.contact
        contact.salutation = Salutation.FRAU if person.female else Salutation.HERR
        if index % 7 == 3:
            contact.title = "Dr."


def create_sales(session: Session, settings: Settings, rng: random.Random, people: Sequence[Any],
                 staff_ids: Sequence[int], today: date, language: str) -> None:
    english = language == "en"
    settings = replace(settings, company={"language": language})
    _addresses(session, rng, english)
    _salutations(people)
    session.flush()
    made = [products.create_product(session, settings, ProductFields(
        number=number, name=en if english else de, unit=units[1 if english else 0], net_price=Decimal(price),
        vat_rate=Decimal(rate)), by=staff_ids[0]) for number, de, en, units, price, rate in PRICE_LIST]
    stage_keys = [stage.key for stage in opportunities.stages(settings) if stage.is_open]
    titles = DEALS_EN if english else DEALS_DE
    buyers = [p for p in people if p.contact.role in (Role.LEAD, Role.PROSPECT, Role.CUSTOMER)][:len(titles)]
    for index, person in enumerate(buyers):
        contact: Contact = person.contact
        owner = staff_ids[index % min(2, len(staff_ids))]
        opp = opportunities.create_opportunity(session, settings, OpportunityFields(
            title=titles[index], contact_id=contact.id, company_id=contact.company_id, owner_id=owner,
            close_date=today + timedelta(days=rng.randint(10, 150)), stage=stage_keys[index % len(stage_keys)],
            source=("mail", "call", "web_form", "manual")[index % 4]), by=owner)
        if index % 5 == 4:
            continue  # early deals without a quote yet
        machine = made[index % 2]
        lines = (LineFields(product_id=machine.id, quantity=Decimal(1 + index % 2)),
                 LineFields(product_id=made[3].id, quantity=Decimal(8), discount_percent=Decimal(10)),
                 LineFields(product_id=made[4].id),
                 LineFields(product_id=made[7].id, quantity=Decimal(2)))
        quote = quotes.create_quote(session, settings, QuoteFields(opportunity_id=opp.id, lines=lines), by=owner)
        if index % 5 == 0:
            continue  # a draft the owner is still working on
        quote = quotes.finalise_quote(session, settings, quote, by=owner)
        if index % 5 == 2:  # the customer asked for training too: version 2
            quote = quotes.update_quote(session, settings, quote, QuoteChanges(
                lines=(*lines, LineFields(product_id=made[6].id, quantity=Decimal(2)))), by=owner)
            quote = quotes.finalise_quote(session, settings, quote, by=owner)
        if index % 5 == 3:
            quotes.accept_quote(session, settings, quote, by=owner)
        elif index == 1:
            opportunities.update_opportunity(session, settings, opp, OpportunityChanges(stage="negotiation"),
                                             by=owner)

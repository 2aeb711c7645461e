"""The pipeline: open opportunities by stage in columns (each capped, with its count and sum in the header), an
owner filter and the weighted forecast per month as a bar chart drawn here as SVG (no chart library, no script);
and the deals panel of the customer and company pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from flask import render_template, request, url_for
from flask_babel import format_date
from sqlalchemy import select

from crm_inbox.models import Opportunity, Quote, StaffUser
from crm_inbox.sales import queries
from crm_inbox.sales.opportunities import stages
from web.pages.blueprint import pages
from web.pages.sales_forms import format_money_filter, id_arg
from web.requestdb import db, state

CARDS_PER_COLUMN = 50  # a column shows this many; its header counts and sums all of them


@dataclass(frozen=True)
class Column:
    key: str
    cards: list[Any]  # queries.PipelineCard, at most CARDS_PER_COLUMN
    count: int
    total: Decimal


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    month: str
    value: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    base: int  # the y of the axis
    bars: list[Bar]
    total: str


def columns(by_stage: dict[str, list[Any]], totals: dict[str, Any], keys: list[str]) -> list[Column]:
    """The open stages in order; the cards are cut in the database, the header counts all of the stage."""
    out = []
    for key in keys:
        total = totals.get(key)
        out.append(Column(key, by_stage.get(key, [])[:CARDS_PER_COLUMN], total.count if total else 0,
                          total.amount if total else Decimal(0)))
    return out


def forecast_chart(months: list[tuple[date, Decimal]], *, width: int = 720, height: int = 180) -> Chart:
    """Bars scaled to the largest month; room below for the month and above for the amount."""
    top, bottom = 22, 24
    base = height - bottom
    slot = width // max(len(months), 1)
    largest = max((value for _, value in months), default=Decimal(0))
    bars = []
    for i, (month, value) in enumerate(months):
        bar_height = int((value / largest) * (base - top)) if largest > 0 else 0
        bars.append(Bar(x=i * slot + slot // 6, y=base - bar_height, width=slot * 2 // 3, height=bar_height,
                        month=format_date(month, "MMM yy"), value=format_money_filter(value)))
    return Chart(width, height, base, bars, format_money_filter(sum((v for _, v in months), Decimal(0))))


@dataclass(frozen=True)
class Links:
    """The cards' link prefixes, built once: url_for for each of hundreds of cards costs more than the rest."""

    opportunity: str
    contact: str
    company: str


def links() -> Links:
    def prefix(endpoint: str, arg: str) -> str:
        values: dict[str, Any] = {arg: 1}
        return url_for(endpoint, **values)[:-1]

    return Links(prefix("pages.opportunity", "opportunity_id"), prefix("pages.contact", "contact_id"),
                 prefix("pages.company", "company_id"))


@pages.get("/pipeline")
def pipeline() -> str:
    settings = state().settings
    owner_id = id_arg(request.args.get("owner"))
    by_stage = queries.pipeline(db(), settings, owner_id=owner_id, per_stage=CARDS_PER_COLUMN)
    totals = queries.stage_totals(db(), settings, owner_id=owner_id)
    keys = [s.key for s in stages(settings) if s.is_open]
    chart = forecast_chart(queries.forecast(db(), owner_id=owner_id))
    staff = db().execute(select(StaffUser).where(StaffUser.active).order_by(StaffUser.name)).scalars().all()
    return render_template("pipeline.html", columns=columns(by_stage, totals, keys), chart=chart, staff=staff,
                           owner_id=owner_id, cap=CARDS_PER_COLUMN, links=links())


@dataclass(frozen=True)
class Deals:
    """A customer's open opportunities, each with its quotes, for _deals.html."""

    contact_id: int | None
    company_id: int | None
    items: list[tuple[Opportunity, list[Quote]]]


def open_deals(contact_id: int | None = None, company_id: int | None = None) -> Deals:
    """The open deals of a contact or of a company (the company's when both are given)."""
    if company_id is not None:
        opps = queries.open_for_company(db(), company_id)
    elif contact_id is not None:
        opps = queries.open_for_contact(db(), contact_id)
    else:
        opps = []
    return Deals(contact_id, company_id, [(o, queries.quotes_for_opportunity(db(), o.id)) for o in opps])


@pages.context_processor
def deals_helper() -> dict[str, Any]:
    return {"open_deals": open_deals}

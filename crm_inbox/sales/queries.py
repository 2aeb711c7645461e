"""What the pages and the API read about deals (read-only): the pipeline by stage, the weighted forecast per
month, a customer's open opportunities, a deal's quotes, the orders list.

The pipeline is one query with outer joins (no query per card): 10,000 open opportunities stay one round
trip; "days since last contact" is the newer of ``Opportunity.last_contact_at`` (kept by ``link_interaction``)
and the person's newest mail, call or meeting (an index range per card shown, so a customer who wrote about
anything counts as in contact).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, CompoundSelect, cast, func, select, union_all
from sqlalchemy.orm import Session

from crm_inbox.config import Settings
from crm_inbox.models import (
    Company,
    Contact,
    Interaction,
    InteractionContact,
    InteractionKind,
    Opportunity,
    Order,
    OrderState,
    Quote,
    StaffUser,
    utcnow,
)
from crm_inbox.sales.opportunities import LOST, WON, stages

CENT = Decimal("0.01")


@dataclass(frozen=True)
class PipelineCard:
    id: int
    title: str
    customer: str  # "Klara Müller (Müller GmbH)", the person or the company alone
    contact_id: int | None
    company_id: int | None
    amount: Decimal | None
    probability: int
    close_date: date | None
    owner: str | None  # the owner's name
    days_since_contact: int | None  # None: nobody has written or called about it yet


def _customer(contact_name: str | None, contact_id: int | None, company_name: str | None) -> str:
    person = contact_name or (f"Contact {contact_id}" if contact_id is not None else None)
    if person and company_name:
        return f"{person} ({company_name})"
    return person or company_name or ""


def _first_of_each_stage(settings: Settings, order: tuple[Any, ...], owned: list[ColumnElement[bool]],
                         limit: int) -> CompoundSelect:
    """The ids of each open stage's first ``limit`` cards: one LIMIT per configured stage (the stage index
    finds its rows, a top-N sort cuts them: a third of the time of numbering all 10,000 open deals with
    row_number), and row_number only over deals in a stage no longer configured (normally none)."""
    keys = [s.key for s in stages(settings) if s.is_open]
    parts = [select(Opportunity.id).where(Opportunity.stage == key, *owned).order_by(*order).limit(limit)
             .subquery().select() for key in keys]
    rank = func.row_number().over(partition_by=Opportunity.stage, order_by=order).label("rank")
    others = select(Opportunity.id, rank).where(Opportunity.stage.not_in((*keys, WON, LOST)), *owned).subquery()
    return union_all(*parts, select(others.c.id).where(others.c.rank <= limit))


def pipeline(session: Session, settings: Settings, *, owner_id: int | None = None,
             per_stage: int | None = None) -> dict[str, list[PipelineCard]]:
    """Open opportunities by stage key, in pipeline order (every open stage, empty ones too), soonest close
    date first; a stage no longer configured keeps its cards under its own key at the end. ``per_stage``:
    at most that many cards a stage, cut in the database (a board of 10,000 deals reads only what it shows;
    ``stage_totals`` gives each stage's count and sum)."""
    order = (Opportunity.close_date.is_(None), Opportunity.close_date, Opportunity.id)
    where: list[ColumnElement[bool]] = [Opportunity.stage.not_in((WON, LOST))]
    owned: list[ColumnElement[bool]] = [] if owner_id is None else [Opportunity.owner_id == owner_id]
    where += owned
    if per_stage is not None:
        where = [Opportunity.id.in_(_first_of_each_stage(settings, order, owned, max(per_stage, 0)))]
    query = (select(Opportunity.id, Opportunity.title, Opportunity.stage, Opportunity.contact_id,
                    Opportunity.company_id, Opportunity.amount, Opportunity.probability, Opportunity.close_date,
                    Opportunity.last_contact_at, _latest_contact(), Contact.name, Company.name, StaffUser.name)
             .outerjoin(Contact, Contact.id == Opportunity.contact_id)
             .outerjoin(Company, Company.id == Opportunity.company_id)
             .outerjoin(StaffUser, StaffUser.id == Opportunity.owner_id)
             .where(*where).order_by(*order))
    today = utcnow().date()
    out: dict[str, list[PipelineCard]] = {s.key: [] for s in stages(settings) if s.is_open}
    for (ident, title, stage, contact_id, company_id, amount, probability, close_date, on_deal, with_person,
         contact_name, company_name, owner_name) in session.execute(query).all():
        last_contact = max((t for t in (on_deal, with_person) if t is not None), default=None)
        out.setdefault(stage, []).append(PipelineCard(
            id=ident, title=title, customer=_customer(contact_name, contact_id, company_name),
            contact_id=contact_id, company_id=company_id, amount=amount, probability=probability,
            close_date=close_date, owner=owner_name,
            days_since_contact=(today - last_contact.date()).days if last_contact is not None else None))
    return out


CONTACT_KINDS = (InteractionKind.EMAIL, InteractionKind.CALL, InteractionKind.MEETING)


def _latest_contact() -> Any:
    """The deal's person's newest mail, call or meeting (their timeline index, newest first)."""
    return (select(InteractionContact.occurred_at)
            .join(Interaction, Interaction.id == InteractionContact.interaction_id)
            .where(InteractionContact.contact_id == Opportunity.contact_id, Interaction.kind.in_(CONTACT_KINDS))
            .order_by(InteractionContact.occurred_at.desc()).limit(1).scalar_subquery())


def _cents(column: Any) -> ColumnElement[int]:
    """A money column as whole cents, an integer on both databases: SQLite keeps NUMERIC as floats (333.33 ×
    100 is 33332.999…), so round before the cast; integer sums are exact where float sums are not."""
    return cast(func.round(column * 100), BigInteger)


@dataclass(frozen=True)
class StageTotal:
    count: int  # open deals in the stage
    amount: Decimal  # their expected amounts summed (deals without one count as nothing)


def stage_totals(session: Session, settings: Settings, *, owner_id: int | None = None) -> dict[str, StageTotal]:
    """Each open stage's count and sum, in pipeline order (the column headers of a capped board)."""
    query = select(Opportunity.stage, func.count(), func.sum(_cents(Opportunity.amount))).where(
        Opportunity.stage.not_in((WON, LOST))).group_by(Opportunity.stage)
    if owner_id is not None:
        query = query.where(Opportunity.owner_id == owner_id)
    out = {s.key: StageTotal(0, Decimal("0.00")) for s in stages(settings) if s.is_open}
    for stage, count, cents in session.execute(query).all():
        out[stage] = StageTotal(count, (Decimal(int(cents or 0)) / 100).quantize(CENT))
    return out


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def forecast(session: Session, *, owner_id: int | None = None, months: int = 6) -> list[tuple[date, Decimal]]:
    """The weighted forecast: per month of the expected close date, from this month on (the first of each
    month), Σ amount × probability / 100 of the open opportunities, rounded to cents. Deals without a close
    date or amount, or with a close date before this month, are not in it.

    Summed in the database (10,000 open deals are at most a row per close day here): Σ cents × probability
    per day, exact integers on SQLite too (it keeps NUMERIC as floats), the days folded into their months
    and each month rounded once, half-up. By day, not by a month expression: strftime on every row costs
    SQLite twice the time of the grouping itself, and a plain column groups alike on both databases. (The
    integer sum would overflow on SQLite only past 92 trillion euros weighted on one day.)"""
    first = utcnow().date().replace(day=1)
    months = max(1, min(months, 120))
    end = _add_months(first, months)
    query = (select(Opportunity.close_date, func.sum(_cents(Opportunity.amount) * Opportunity.probability))
             .where(Opportunity.stage.not_in((WON, LOST)), Opportunity.amount.is_not(None),
                    Opportunity.close_date >= first, Opportunity.close_date < end)
             .group_by(Opportunity.close_date))
    if owner_id is not None:
        query = query.where(Opportunity.owner_id == owner_id)
    weighted = {_add_months(first, i): 0 for i in range(months)}  # cents × percent
    for day, total in session.execute(query).all():
        if day is not None and total is not None:
            weighted[day.replace(day=1)] += int(total)
    return [(month, (Decimal(total) / 10000).quantize(CENT, rounding=ROUND_HALF_UP))
            for month, total in weighted.items()]


def open_for_contact(session: Session, contact_id: int) -> list[Opportunity]:
    return list(session.execute(select(Opportunity).where(
        Opportunity.contact_id == contact_id, Opportunity.stage.not_in((WON, LOST)))
        .order_by(Opportunity.close_date.is_(None), Opportunity.close_date, Opportunity.id)).scalars())


def open_for_company(session: Session, company_id: int) -> list[Opportunity]:
    """The company's own deals and those of its people."""
    people = select(Contact.id).where(Contact.company_id == company_id)
    return list(session.execute(select(Opportunity).where(
        (Opportunity.company_id == company_id) | Opportunity.contact_id.in_(people),
        Opportunity.stage.not_in((WON, LOST)))
        .order_by(Opportunity.close_date.is_(None), Opportunity.close_date, Opportunity.id)).scalars())


def quotes_for_opportunity(session: Session, opp_id: int) -> list[Quote]:
    """Every quote of the deal, every version, newest first."""
    return list(session.execute(select(Quote).where(Quote.opportunity_id == opp_id)
                                .order_by(Quote.created_at.desc(), Quote.id.desc())).scalars())


def list_orders(session: Session, *, limit: int = 50, offset: int = 0, contact_id: int | None = None,
                company_id: int | None = None, state: OrderState | None = None) -> list[Order]:
    """Orders newest first, optionally of one contact or company, or in one state (the ERP asks for the
    open ones it has not taken yet)."""
    query = select(Order)
    if state is not None:
        query = query.where(Order.state == state)
    if contact_id is not None:
        query = query.where(Order.contact_id == contact_id)
    if company_id is not None:
        query = query.where(Order.company_id == company_id)
    return list(session.execute(query.order_by(Order.created_at.desc(), Order.id.desc())
                                .limit(max(1, min(limit, 500))).offset(max(0, offset))).scalars())



# An order's timestamp is taken before its transaction commits: a poll must not move past a moment that a
# transaction still in flight may yet commit an order with. Orders show up in ``orders_since`` once they are
# this old (creating an order takes well under a second; SQLite waits at most its 30 s busy timeout).
ORDERS_SETTLE = timedelta(seconds=60)


def orders_since(session: Session, since: datetime, since_id: int = 0, *, limit: int = 100,
                 now: datetime | None = None) -> list[Order]:
    """Orders created or changed (``updated_at``: a new state) after the cursor (``since``, ``since_id``),
    oldest first, the id breaking ties; only those older than ``ORDERS_SETTLE``, so that an order committed
    late with an earlier timestamp is still ahead of any cursor handed out (each order once per change)."""
    settled = (now or utcnow()) - ORDERS_SETTLE
    after = (Order.updated_at > since) | ((Order.updated_at == since) & (Order.id > since_id))
    return list(session.execute(select(Order).where(after, Order.updated_at <= settled)
                                .order_by(Order.updated_at, Order.id).limit(max(1, min(limit, 500)))).scalars())

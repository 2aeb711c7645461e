"""The pipeline by stage (one query, whatever the number of deals), the weighted forecast per month, and the
lists of a customer's open deals."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.models import Company, Contact, Opportunity, Role, utcnow
from crm_inbox.sales.inputs import OpportunityChanges, OpportunityFields
from crm_inbox.sales.opportunities import create_opportunity, update_opportunity
from crm_inbox.sales.queries import (
    StageTotal,
    forecast,
    open_for_company,
    open_for_contact,
    pipeline,
    stage_totals,
)
from crm_inbox.staff.service import add_staff


def month(offset: int, day: int = 15) -> date:
    first = utcnow().date().replace(day=1)
    index = first.year * 12 + first.month - 1 + offset
    return date(index // 12, index % 12 + 1, day)


def test_pipeline_and_forecast(factory: sessionmaker[Session], settings: Settings) -> None:
    with unit_of_work(factory) as session:
        anna = add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt").id
        jonas = add_staff(session, "jonas.becker@beispiel-firma.de", "Jonas Becker").id
        company = Company(name="Muster GmbH", tags=[], fields={})
        session.add(company)
        session.flush()
        klaus = Contact(name="Klaus Müller", role=Role.CUSTOMER, company_id=company.id, tags=[], fields={})
        private = Contact(name=None, role=Role.CUSTOMER, tags=[], fields={})
        session.add_all([klaus, private])
        session.flush()

        def deal(title: str, by: int, **kw: Any) -> Opportunity:
            return create_opportunity(session, settings, OpportunityFields(title=title, **kw), by=by)

        a = deal("A", anna, contact_id=klaus.id, amount=Decimal("1000.00"), close_date=month(0))
        deal("B", anna, company_id=company.id, amount=Decimal("333.33"), close_date=month(0, 1),
                 stage="quote_sent")  # 50 %
        c = deal("C", jonas, contact_id=private.id, amount=Decimal("100.01"), close_date=month(2),
                 stage="negotiation", probability=33)
        deal("no amount", jonas, company_id=company.id, close_date=month(1))
        deal("overdue", jonas, company_id=company.id, amount=Decimal("5000"), close_date=month(-1))
        deal("too late", jonas, company_id=company.id, amount=Decimal("5000"), close_date=month(6))
        won = deal("won", anna, company_id=company.id, amount=Decimal("7000"), close_date=month(0))
        update_opportunity(session, settings, won, OpportunityChanges(stage="won"), by=anna)
        a.last_contact_at = utcnow() - timedelta(days=4)
        session.flush()

        statements: list[str] = []
        listen = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(session.get_bind(), "before_cursor_execute", listen)
        try:
            board = pipeline(session, settings)
        finally:
            event.remove(session.get_bind(), "before_cursor_execute", listen)
        assert len(statements) == 1  # one query with joins: no query per card
        assert list(board) == ["qualified", "needs_analysis", "quote_sent", "negotiation"]
        assert [card.title for card in board["qualified"]] == ["overdue", "A", "no amount", "too late"]
        card_a = board["qualified"][1]
        assert (card_a.customer, card_a.owner, card_a.amount, card_a.probability, card_a.days_since_contact) == (
            "Klaus Müller (Muster GmbH)", "Anna Schmidt", Decimal("1000.00"), 10, 4)
        assert board["needs_analysis"] == []
        assert (board["quote_sent"][0].customer, board["quote_sent"][0].days_since_contact) == ("Muster GmbH", None)
        assert board["negotiation"][0].customer == f"Contact {private.id}"
        assert [c.title for cards in pipeline(session, settings, owner_id=anna).values() for c in cards] == \
            ["A", "B"]
        # A capped board: the first cards of each stage, cut in the database; the headers count them all.
        capped = pipeline(session, settings, per_stage=2)
        assert [c.title for c in capped["qualified"]] == ["overdue", "A"]
        assert [c.title for c in capped["quote_sent"]] == ["B"]
        assert stage_totals(session, settings) == {
            "qualified": StageTotal(4, Decimal("11000.00")), "needs_analysis": StageTotal(0, Decimal("0.00")),
            "quote_sent": StageTotal(1, Decimal("333.33")), "negotiation": StageTotal(1, Decimal("100.01"))}
        assert stage_totals(session, settings, owner_id=anna)["qualified"] == StageTotal(1, Decimal("1000.00"))

        # 1000 × 10 % + 333.33 × 50 % = 266.665 → 266.67; 100.01 × 33 % = 33.0033 → 33.00.
        assert forecast(session) == [(month(0, 1), Decimal("266.67")), (month(1, 1), Decimal("0.00")),
                                     (month(2, 1), Decimal("33.00")), (month(3, 1), Decimal("0.00")),
                                     (month(4, 1), Decimal("0.00")), (month(5, 1), Decimal("0.00"))]
        assert forecast(session, owner_id=jonas, months=3)[2] == (month(2, 1), Decimal("33.00"))
        assert forecast(session, months=7)[6] == (month(6, 1), Decimal("500.00"))

        assert [o.title for o in open_for_contact(session, klaus.id)] == ["A"]
        assert {o.title for o in open_for_company(session, company.id)} == {"A", "B", "no amount", "overdue",
                                                                            "too late"}
        assert c.id not in {o.id for o in open_for_company(session, company.id)}


def test_forecast_sums_in_the_database_to_the_exact_cent(factory: sessionmaker[Session], settings: Settings) -> None:
    """Summed per month in one query; half a cent rounds up however many deals make it (no float drift)."""
    with unit_of_work(factory) as session:
        anna = add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt").id
        company = Company(name="Muster GmbH", tags=[], fields={})
        session.add(company)
        session.flush()
        for _ in range(10):  # 10 × 0.10 € × 25 % = 0.25 €, a float sum gives 0.2499…
            create_opportunity(session, settings, OpportunityFields(
                title="Kleinkram", company_id=company.id, amount=Decimal("0.10"), close_date=month(1),
                probability=25), by=anna)
        for amount in ("1234.45", "0.01"):  # 617.225 + 0.005 = 617.23 half-up
            create_opportunity(session, settings, OpportunityFields(
                title="Halbe Cents", company_id=company.id, amount=Decimal(amount), close_date=month(3, 28),
                probability=50), by=anna)
        statements: list[str] = []
        listen = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(session.get_bind(), "before_cursor_execute", listen)
        try:
            result = forecast(session, months=4)
        finally:
            event.remove(session.get_bind(), "before_cursor_execute", listen)
        assert len(statements) == 1
        assert result == [(month(0, 1), Decimal("0.00")), (month(1, 1), Decimal("0.25")),
                          (month(2, 1), Decimal("0.00")), (month(3, 1), Decimal("617.23"))]
        assert stage_totals(session, settings)["qualified"] == StageTotal(12, Decimal("1235.46"))

        # A capped board also shows a stage taken out of the configuration since (under its own key, last).
        old = create_opportunity(session, settings, OpportunityFields(title="Alt", company_id=company.id), by=anna)
        old.stage = "angebot_alt"
        session.flush()
        capped = pipeline(session, settings, per_stage=1)
        assert list(capped)[-1] == "angebot_alt" and [c.title for c in capped["angebot_alt"]] == ["Alt"]
        assert [c.title for c in capped["qualified"]] == ["Kleinkram"]
        assert all(cards == [] for cards in pipeline(session, settings, per_stage=5, owner_id=anna + 1).values())


def test_days_since_contact_count_any_mail_or_call_with_the_person(factory: sessionmaker[Session],
                                                                   settings: Settings) -> None:
    """A customer who wrote about anything is in contact, linked to the deal or not; the deal's own notes and
    entries are not contact."""
    from crm_inbox.models import Direction, InteractionKind
    from crm_inbox.timeline.service import record_interaction

    with unit_of_work(factory) as session:
        anna = add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt").id
        klaus = Contact(name="Klaus Müller", role=Role.PROSPECT, tags=[], fields={})
        quiet = Contact(name="Petra Still", role=Role.PROSPECT, tags=[], fields={})
        session.add_all([klaus, quiet])
        session.flush()
        for kind, days in ((InteractionKind.EMAIL, 9), (InteractionKind.CALL, 2), (InteractionKind.NOTE, 0)):
            record_interaction(session, kind=kind, direction=Direction.IN, occurred_at=utcnow() - timedelta(days=days),
                               subject="Frage", text=None, contacts=[(klaus, "from")])
        create_opportunity(session, settings, OpportunityFields(title="Anlage", contact_id=klaus.id), by=anna)
        create_opportunity(session, settings, OpportunityFields(title="Ruhig", contact_id=quiet.id), by=anna)
    with factory() as session:
        cards = {c.title: c for c in pipeline(session, settings, per_stage=50)["qualified"]}
    assert cards["Anlage"].days_since_contact == 2  # the call two days ago, not today's note
    assert cards["Ruhig"].days_since_contact is None

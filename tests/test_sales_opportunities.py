"""Opportunities through their stages: a lead becomes a prospect, stage probabilities, lost needs a reason,
every change audited and on the timeline (the contact's and the deal's own), the helpers quotes and orders
use, and the quote follow-up that completes itself."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.errors import ValidationError
from crm_inbox.models import (
    AuditEntry,
    Company,
    Contact,
    Direction,
    Event,
    InteractionKind,
    Opportunity,
    Quote,
    QuoteState,
    Reminder,
    ReminderState,
    Role,
    utcnow,
)
from crm_inbox.sales import follow_up
from crm_inbox.sales.inputs import OpportunityChanges, OpportunityFields
from crm_inbox.sales.opportunities import (
    advance_to,
    create_opportunity,
    link_interaction,
    make_customer,
    mark_lost,
    mark_won,
    opportunity_timeline,
    set_amount_from_quote,
    stages,
    update_opportunity,
)
from crm_inbox.staff.service import add_staff
from crm_inbox.timeline.service import contact_timeline, record_interaction


@pytest.fixture
def world(factory: sessionmaker[Session]) -> dict[str, int]:
    with unit_of_work(factory) as session:
        anna = add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt")
        gone = add_staff(session, "old@beispiel-firma.de", "Old Hand")
        gone.active = False
        company = Company(name="Muster Maschinenbau GmbH", tags=[], fields={})
        session.add(company)
        session.flush()
        lead = Contact(name="Klaus Müller", role=Role.LEAD, company_id=company.id, tags=[], fields={})
        session.add(lead)
        session.flush()
        return {"anna": anna.id, "gone": gone.id, "company": company.id, "lead": lead.id}


def deal_entries(session: Session, contact_id: int) -> list[dict[str, object]]:
    page = contact_timeline(session, contact_id, kind=InteractionKind.DEAL)
    return [item.details for item in reversed(page.items)]


def test_stages_come_from_settings_with_won_and_lost_last(settings: Settings) -> None:
    got = [(s.key, s.probability, s.is_open) for s in stages(settings)]
    assert got == [("qualified", 10, True), ("needs_analysis", 25, True), ("quote_sent", 50, True),
                   ("negotiation", 75, True), ("won", 100, False), ("lost", 0, False)]


def test_a_lead_with_an_opportunity_becomes_a_prospect_on_the_timeline_and_audited(
        factory: sessionmaker[Session], settings: Settings, world: dict[str, int]) -> None:
    with unit_of_work(factory) as session:
        opp = create_opportunity(session, settings, OpportunityFields(
            title="Fräsmaschine FZ-400", contact_id=world["lead"], amount=Decimal("48000.00"),
            close_date=date(2027, 1, 31)), by=world["anna"])
        opp_id = opp.id
    with unit_of_work(factory) as session:
        opp = session.get_one(Opportunity, opp_id)
        assert (opp.stage, opp.probability, opp.owner_id) == ("qualified", 10, world["anna"])
        assert opp.company_id == world["company"]  # the person's company
        assert not opp.amount_from_quote  # typed
        assert session.get_one(Contact, world["lead"]).role == Role.PROSPECT
        entries = deal_entries(session, world["lead"])
        assert [e["event"] for e in entries] == ["opportunity.created", "role"]
        assert entries[1] == {"event": "role", "from": "lead", "to": "prospect",
                              "reason": f"opportunity {opp_id} opened", "opportunity_id": opp_id}
        assert entries[0]["changes"]["amount"] == "48000.00"  # type: ignore[index]
        actions = session.execute(select(AuditEntry.action, AuditEntry.object_type, AuditEntry.staff_id)
                                  .order_by(AuditEntry.id)).all()
        assert [tuple(a) for a in actions] == [("opportunity.create", "opportunity", world["anna"]),
                                               ("update", "contact", world["anna"])]
        # Both entries are on the deal's own timeline too, newest first.
        assert [i.details["event"] for i in opportunity_timeline(session, opp_id).items] == \
            ["role", "opportunity.created"]
        # A second opportunity changes no role again.
        create_opportunity(session, settings, OpportunityFields(title="Wartung", contact_id=world["lead"]),
                           by=world["anna"])
        assert len(deal_entries(session, world["lead"])) == 3


def test_stage_change_sets_its_probability_unless_given_and_lost_needs_a_reason(
        factory: sessionmaker[Session], settings: Settings, world: dict[str, int]) -> None:
    with unit_of_work(factory) as session:
        opp = create_opportunity(session, settings, OpportunityFields(
            title="Ersatzteile", company_id=world["company"], stage="needs_analysis", probability=30),
            by=world["anna"])
        assert (opp.probability, opp.contact_id, opp.amount_from_quote) == (30, None, True)
        update_opportunity(session, settings, opp, OpportunityChanges(stage="negotiation"), by=world["anna"])
        assert opp.probability == 75
        update_opportunity(session, settings, opp, OpportunityChanges(stage="quote_sent", probability=60),
                           by=world["anna"])
        assert opp.probability == 60
        with pytest.raises(ValidationError) as lost:
            update_opportunity(session, settings, opp, OpportunityChanges(stage="lost"), by=world["anna"])
        assert lost.value.field == "lost_reason"
        assert opp.stage == "quote_sent"  # checked before any change
        with pytest.raises(ValidationError) as unknown:
            update_opportunity(session, settings, opp, OpportunityChanges(stage="maybe"), by=world["anna"])
        assert unknown.value.field == "stage" and "negotiation" in unknown.value.message
        update_opportunity(session, settings, opp, OpportunityChanges(stage="lost", lost_reason="zu teuer"),
                           by=world["anna"])
        assert (opp.stage, opp.probability, opp.lost_reason) == ("lost", 0, "zu teuer")
        assert opp.closed_at is not None and not opp.is_open
        assert session.execute(select(Event.type).where(Event.subject_type == "opportunity",
                                                        Event.subject_id == opp.id)
                               .order_by(Event.id)).scalars().all() == \
            ["opportunity.created", "opportunity.lost"]
        updates = session.execute(select(AuditEntry.details).where(
            AuditEntry.action == "opportunity.update").order_by(AuditEntry.id)).scalars().all()
        assert updates[0]["stage"] == {"from": "needs_analysis", "to": "negotiation"}
        assert updates[-1]["lost_reason"] == {"from": None, "to": "zu teuer"}
        # Nothing changed: no entry.
        update_opportunity(session, settings, opp, OpportunityChanges(stage="lost"), by=world["anna"])
        assert len(session.execute(select(AuditEntry.id).where(
            AuditEntry.action == "opportunity.update")).all()) == len(updates)


@pytest.mark.parametrize(("fields", "field"), [
    (OpportunityFields(title=""), "title"),
    (OpportunityFields(title="x" * 301, company_id=1), "title"),
    (OpportunityFields(title="Deal"), "contact_id"),
    (OpportunityFields(title="Deal", contact_id=999), "contact_id"),
    (OpportunityFields(title="Deal", company_id=999), "company_id"),
    (OpportunityFields(title="Deal", company_id=1, owner_id=2), "owner_id"),  # inactive
    (OpportunityFields(title="Deal", company_id=1, amount=Decimal("-1")), "amount"),
    (OpportunityFields(title="Deal", company_id=1, amount=Decimal("1.005")), "amount"),
    (OpportunityFields(title="Deal", company_id=1, amount=1.5), "amount"),  # type: ignore[arg-type]
    (OpportunityFields(title="Deal", company_id=1, probability=101), "probability"),
    (OpportunityFields(title="Deal", company_id=1, stage="won"), "stage"),
    (OpportunityFields(title="Deal", company_id=1, source="fax"), "source"),
])
def test_bad_fields_name_the_field(factory: sessionmaker[Session], settings: Settings, world: dict[str, int],
                                   fields: OpportunityFields, field: str) -> None:
    assert (world["anna"], world["gone"], world["company"]) == (1, 2, 1)  # the ids the cases use
    with unit_of_work(factory) as session, pytest.raises(ValidationError) as error:
        create_opportunity(session, settings, fields, by=world["anna"])
    assert error.value.field == field


def test_quote_and_order_helpers(factory: sessionmaker[Session], settings: Settings, world: dict[str, int]) -> None:
    with unit_of_work(factory) as session:
        opp = create_opportunity(session, settings, OpportunityFields(title="Anlage", contact_id=world["lead"]),
                                 by=world["anna"])
        set_amount_from_quote(session, opp, Decimal("1234.50"))
        assert (opp.amount, opp.amount_from_quote) == (Decimal("1234.50"), True)
        advance_to(session, settings, opp, "quote_sent", by=world["anna"])
        assert (opp.stage, opp.probability) == ("quote_sent", 50)
        advance_to(session, settings, opp, "needs_analysis", by=world["anna"])  # never back
        assert opp.stage == "quote_sent"
        update_opportunity(session, settings, opp, OpportunityChanges(amount=Decimal("2000")), by=world["anna"])
        set_amount_from_quote(session, opp, Decimal("999.00"))  # typed amounts stay
        assert opp.amount == Decimal("2000")
        mark_won(session, settings, opp, by=world["anna"])
        assert (opp.stage, opp.probability) == ("won", 100)
        advance_to(session, settings, opp, "negotiation", by=world["anna"])  # a closed deal stays closed
        assert opp.stage == "won"
        make_customer(session, world["lead"], world["company"], by=world["anna"])
        assert session.get_one(Contact, world["lead"]).role == Role.CUSTOMER
        roles = [e for e in deal_entries(session, world["lead"]) if e["event"] == "role"]
        assert [(r["from"], r["to"]) for r in roles] == [("lead", "prospect"), ("prospect", "customer")]
        other = create_opportunity(session, settings, OpportunityFields(title="B", company_id=world["company"]),
                                   by=world["anna"])
        with pytest.raises(ValidationError):
            mark_lost(session, settings, other, " ", by=world["anna"])
        mark_lost(session, settings, other, "Budget gestrichen", by=world["anna"])
        assert other.lost_reason == "Budget gestrichen"


def test_linked_mail_is_on_the_deal_once_and_counts_as_contact(
        factory: sessionmaker[Session], settings: Settings, world: dict[str, int]) -> None:
    with unit_of_work(factory) as session:
        contact = session.get_one(Contact, world["lead"])
        opp = create_opportunity(session, settings, OpportunityFields(title="Anlage", contact_id=contact.id),
                                 by=world["anna"])
        assert opp.last_contact_at is None
        when = utcnow() - timedelta(days=3)
        mail = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.IN, occurred_at=when,
                                  subject="Re: Angebot", contacts=[(contact, "from")])
        assert link_interaction(session, opp, mail, "reply to the quote mail")
        assert not link_interaction(session, opp, mail, "again")
        assert opp.last_contact_at == when
        first = opportunity_timeline(session, opp.id, limit=2)
        assert first.items[-1].id != mail.id and first.next_cursor
        rest = opportunity_timeline(session, opp.id, limit=2, cursor=first.next_cursor)
        assert [i.id for i in rest.items] == [mail.id] and rest.next_cursor is None


def test_follow_up_appears_for_the_owner_and_completes_itself(
        factory: sessionmaker[Session], settings: Settings, world: dict[str, int]) -> None:
    sent = utcnow().replace(microsecond=0)
    with unit_of_work(factory) as session:
        opp = create_opportunity(session, settings, OpportunityFields(title="Anlage", contact_id=world["lead"]),
                                 by=None)
        opp.owner_id = world["anna"]
        quotes = [Quote(opportunity_id=opp.id, number="AN-2026-0042", version=v, state=QuoteState.SENT,
                        contact_id=world["lead"], sent_at=sent, address=[]) for v in (1, 2)]
        session.add_all(quotes)
        session.flush()
        follow_up.start(session, settings, quotes[0])
        follow_up.start(session, settings, quotes[0])  # the same quote again: still one reminder
        reminder = session.execute(select(Reminder)).scalar_one()
        assert reminder.title == "Angebot nachfassen: AN-2026-0042"
        assert reminder.due_at == sent + timedelta(days=7)
        assert (reminder.assignee_id, reminder.opportunity_id, reminder.contact_id, reminder.reason) == (
            world["anna"], opp.id, world["lead"], "quote_follow_up")
        follow_up.settle(session, [quotes[0].id], "version 2 sent", by=world["anna"])
        assert (reminder.state, reminder.completion) == (ReminderState.DONE, "version 2 sent")
        follow_up.start(session, settings, quotes[1])
        second = session.execute(select(Reminder).where(Reminder.id != reminder.id)).scalar_one()
        assert second.title == "Angebot nachfassen: AN-2026-0042-2" and second.active
        follow_up.customer_replied(session, opp.id)
        assert (second.state, second.completion) == (ReminderState.DONE, "the customer replied")

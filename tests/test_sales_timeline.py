"""A deal's entries on the timeline read in the reader's language: written from the facts the entry keeps (stage
keys shown by their label, roles by their name), not from the English subject stored for API clients and search.
The deal's amount following its quote is audited and on the timeline, once per saved change."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.models import AuditEntry, Contact, Direction, InteractionKind, Opportunity, Role, utcnow
from crm_inbox.sales.inputs import LineFields, OpportunityChanges, OpportunityFields, QuoteChanges, QuoteFields
from crm_inbox.sales.opportunities import create_opportunity, update_opportunity
from crm_inbox.sales.quotes import create_quote, update_quote
from crm_inbox.staff.service import add_staff
from crm_inbox.timeline.service import record_interaction
from tests.test_pages import PASSWORD, STAFF, log_in


@pytest.fixture
def deal(factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """Klara Müller, a lead, whose first deal makes her a prospect and then moves to needs analysis."""
    with unit_of_work(factory) as session:
        jonas = add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        klara = Contact(name="Klara Müller", role=Role.LEAD)
        session.add(klara)
        session.flush()
        opp = create_opportunity(session, settings, OpportunityFields(
            title="Fräsmaschine für Halle 3", contact_id=klara.id, stage="qualified"), by=jonas.id)
        update_opportunity(session, settings, opp, OpportunityChanges(stage="needs_analysis"), by=jonas.id)
        return {"staff": jonas.id, "contact": klara.id, "opp": opp.id}


def test_stage_and_role_changes_read_in_english(client: Any, deal: dict[str, int]) -> None:
    log_in(client)
    html = client.get(f"/contacts/{deal['contact']}?lang=en").get_data(as_text=True)
    assert "Opportunity moved to needs analysis: Fräsmaschine für Halle 3" in html
    assert "Role: lead → prospect" in html
    assert "Opportunity opened: Fräsmaschine für Halle 3" in html
    assert "needs_analysis" not in html  # never the raw stage key


def test_stage_and_role_changes_read_in_german(client: Any, deal: dict[str, int]) -> None:
    log_in(client)
    for url in (f"/contacts/{deal['contact']}?lang=de", f"/opportunities/{deal['opp']}?lang=de"):
        html = client.get(url).get_data(as_text=True)
        assert "Verkaufschance verschoben nach Bedarfsanalyse: Fräsmaschine für Halle 3" in html, url
        assert "Verkaufschance eröffnet: Fräsmaschine für Halle 3" in html, url
        assert "Rolle: Lead → Interessent" in html, url
        assert "Opportunity moved" not in html and "Role: lead" not in html, url


def test_an_entry_without_its_facts_shows_its_subject(client: Any, deal: dict[str, int],
                                                     factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        klara = session.get_one(Contact, deal["contact"])
        record_interaction(session, kind=InteractionKind.DEAL, direction=Direction.INTERNAL, occurred_at=utcnow(),
                           subject="Imported: deal closed in the old CRM", contacts=[(klara, "about")])
    log_in(client)
    html = client.get(f"/contacts/{deal['contact']}?lang=de").get_data(as_text=True)
    assert "Imported: deal closed in the old CRM" in html


def _amount_audits(factory: sessionmaker[Session], opp_id: int) -> list[dict[str, Any]]:
    with unit_of_work(factory) as session:
        rows = session.execute(select(AuditEntry).where(
            AuditEntry.action == "opportunity.update", AuditEntry.object_type == "opportunity",
            AuditEntry.object_id == opp_id).order_by(AuditEntry.id)).scalars().all()
        return [row.details for row in rows if "amount" in row.details]


def test_the_amount_following_the_quote_is_audited_once_per_saved_change(
        client: Any, deal: dict[str, int], factory: sessionmaker[Session], settings: Settings) -> None:
    line = LineFields(text="Beratung", quantity=Decimal("2"), unit_price=Decimal("617.25"))
    with unit_of_work(factory) as session:
        quote = create_quote(session, settings, QuoteFields(opportunity_id=deal["opp"], lines=(line,)),
                             by=deal["staff"])
        label = quote.label
        update_quote(session, settings, quote, QuoteChanges(lines=(line,)), by=deal["staff"])  # same total
    assert _amount_audits(factory, deal["opp"]) == [
        {"amount": {"from": None, "to": "1234.50"}, "reason": f"quote {label}"}]

    with unit_of_work(factory) as session:
        opp = session.get_one(Opportunity, deal["opp"])
        update_opportunity(session, settings, opp, OpportunityChanges(amount=Decimal("5000")), by=deal["staff"])
        create_quote(session, settings, QuoteFields(
            opportunity_id=deal["opp"], lines=(LineFields(text="Schulung", unit_price=Decimal("10")),)), by=None)
        assert opp.amount == Decimal("5000")  # typed by staff: it no longer follows the quote
    audits = _amount_audits(factory, deal["opp"])
    assert [a.get("reason") for a in audits] == [f"quote {label}", None]  # the second is staff's own change

    log_in(client)
    english = client.get(f"/opportunities/{deal['opp']}?lang=en").get_data(as_text=True)
    assert f"Amount follows quote {label}: €1,234.50" in english
    german = client.get(f"/opportunities/{deal['opp']}?lang=de").get_data(as_text=True)
    assert f"Betrag folgt Angebot {label}: 1.234,50 €" in german

"""A person's sales data under data protection: the export holds their opportunities, quotes and orders with
lines and the PDFs; erasure deletes their opportunities and draft quotes, and keeps the commercial letters
(quotes that went out, orders, their PDFs) detached from them, with their line of the address blanked."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.contacts.inputs import CompanyChanges, ContactChanges
from crm_inbox.contacts.service import create_company, create_contact
from crm_inbox.db import unit_of_work
from crm_inbox.models import (
    Attachment,
    AuditEntry,
    Contact,
    Direction,
    Event,
    Interaction,
    InteractionContact,
    InteractionKind,
    Opportunity,
    Order,
    OrderLine,
    Quote,
    QuoteLine,
    QuoteState,
    Reminder,
    utcnow,
)
from crm_inbox.privacy import sales
from crm_inbox.privacy.redaction import Redactor
from crm_inbox.privacy.service import erase_contact, write_export
from crm_inbox.timeline.service import record_interaction
from crm_inbox.timeline.triage import unassigned_query

PETRA = "petra.mueller@privat-mail.example"
ADDRESS = ["Frau Dr. Petra Müller", "Hauptstraße 1", "10115 Berlin"]
PDF = b"%PDF-1.4 Angebot AN-2026-0001"


def _line(model: Any, position: int, **extra: Any) -> Any:
    return model(position=position, text="Wartung", quantity=Decimal("2.000"), unit="Stunde",
                 unit_price=Decimal("95.5000"), discount_percent=Decimal("0"), vat_rate=Decimal("19"), **extra)


def _document(session: Session, contact: Contact | None, subject: str, content: bytes) -> int:
    """A PDF on the timeline as the sales services store it: an outgoing document with an attachment."""
    item = record_interaction(session, kind=InteractionKind.DOCUMENT, direction=Direction.OUT, occurred_at=utcnow(),
                              subject=subject, contacts=[(contact, "to")] if contact else [],
                              attachments=[("angebot.pdf", "application/pdf", content)])
    return item.id


@pytest.fixture
def deals(factory: sessionmaker[Session]) -> dict[str, int]:
    """Petra Müller, a private customer, with every kind of sales row; a colleague's deal beside hers."""
    with unit_of_work(factory) as session:
        petra = create_contact(session, ContactChanges(
            name="Petra Müller", emails=(PETRA,), salutation="frau", title="Dr.", street="Hauptstraße 1",
            postcode="10115", city="Berlin", country="DE", customer_number="K-4711"), "DE", None)
        firm = create_company(session, CompanyChanges(name="Beispiel AG", city="Hamburg"), "DE", None)
        draft_only = Opportunity(title="Wartungsvertrag", contact_id=petra.id, stage="qualified", probability=10)
        won = Opportunity(title="Heizung Petra Müller", contact_id=petra.id, stage="won", probability=100)
        company_deal = Opportunity(title="Anlage für Petra Müller", contact_id=petra.id, company_id=firm.id,
                                   stage="qualified", probability=10)
        session.add_all([draft_only, won, company_deal])
        session.flush()
        draft = Quote(opportunity_id=draft_only.id, contact_id=petra.id, address=ADDRESS, lines=[_line(QuoteLine, 1)])
        quote_pdf = _document(session, petra, "Angebot AN-2026-0001", PDF)
        sent = Quote(opportunity_id=won.id, contact_id=petra.id, number="AN-2026-0001", state=QuoteState.ACCEPTED,
                     address=ADDRESS, quote_date=date(2026, 3, 2), net_total=Decimal("191.00"),
                     vat_total=Decimal("36.29"), gross_total=Decimal("227.29"), document_id=quote_pdf,
                     lines=[_line(QuoteLine, 1)])
        draft_v2 = Quote(opportunity_id=won.id, contact_id=petra.id, number="AN-2026-0001", version=2,
                         address=ADDRESS, lines=[_line(QuoteLine, 1)])
        session.add_all([draft, sent, draft_v2])
        session.flush()
        # An order confirmation that the sales services did not link to her timeline: the export finds it anyway.
        order_pdf = _document(session, None, "Auftragsbestätigung AB-2026-0001", b"%PDF-1.4 AB")
        order = Order(number="AB-2026-0001", quote_id=sent.id, opportunity_id=won.id, contact_id=petra.id,
                      order_date=date(2026, 3, 5), address=ADDRESS, net_total=Decimal("191.00"),
                      vat_total=Decimal("36.29"), gross_total=Decimal("227.29"), document_id=order_pdf,
                      lines=[_line(OrderLine, 1, net=Decimal("191.00"), product_number="W-1")])
        follow_up = Reminder(title="Angebot nachfassen", due_at=utcnow(), reason="quote_follow_up",
                             opportunity_id=draft_only.id)
        session.add_all([order, follow_up])
        session.flush()
        session.add(Event(type="order.created", subject_type="order", subject_id=order.id,
                          payload={"customer": {"name": "Petra Müller", "email": PETRA}, "number": "AB-2026-0001"}))
        return {"petra": petra.id, "draft_only": draft_only.id, "won": won.id, "company_deal": company_deal.id,
                "draft": draft.id, "sent": sent.id, "draft_v2": draft_v2.id, "order": order.id,
                "quote_pdf": quote_pdf, "order_pdf": order_pdf, "follow_up": follow_up.id}


def test_the_export_holds_the_master_data_deals_quotes_orders_and_their_pdfs(factory, deals):
    target = io.BytesIO()
    with unit_of_work(factory) as session:
        counts = write_export(session, deals["petra"], target, None)
    assert (counts["opportunities"], counts["quotes"], counts["orders"]) == (3, 3, 1)
    archive = zipfile.ZipFile(target)
    data = json.loads(archive.read("contact.json"))
    person = data["contact"]
    assert (person["salutation"], person["title"], person["street"], person["postcode"], person["city"],
            person["country"], person["customer_number"]) == ("frau", "Dr.", "Hauptstraße 1", "10115", "Berlin",
                                                              "DE", "K-4711")
    assert {o["title"] for o in data["opportunities"]} == {"Wartungsvertrag", "Heizung Petra Müller",
                                                            "Anlage für Petra Müller"}
    sent = next(q for q in data["quotes"] if q["id"] == deals["sent"])
    assert (sent["number"], sent["state"], sent["gross_total"], sent["quote_date"]) == \
        ("AN-2026-0001", "accepted", "227.29", "2026-03-02")
    assert sent["lines"][0]["unit_price"] == "95.5000" and sent["address"] == ADDRESS
    [order] = data["orders"]
    assert order["number"] == "AB-2026-0001" and order["lines"][0]["net"] == "191.00"
    documents = {i["id"]: i for i in data["interactions"] if i["kind"] == "document"}
    assert set(documents) == {deals["quote_pdf"], deals["order_pdf"]}
    assert archive.read(documents[deals["quote_pdf"]]["attachments"][0]["file"]) == PDF


def test_erasure_deletes_deals_and_drafts_and_keeps_the_commercial_letters_without_her(factory, deals):
    with unit_of_work(factory) as session:
        counts = erase_contact(session, deals["petra"], None)
    assert {k: counts[k] for k in ("opportunities", "draft_quotes", "opportunities_kept", "quotes_kept",
                                   "orders_kept", "documents_kept")} == {
        "opportunities": 1, "draft_quotes": 2, "opportunities_kept": 2, "quotes_kept": 1, "orders_kept": 1,
        "documents_kept": 2}
    summary = sales.kept_summary(counts)
    assert summary is not None and "1 quotes, 1 orders, 2 documents" in summary and "§ 257 HGB" in summary
    with factory() as session:
        assert session.get(Opportunity, deals["draft_only"]) is None
        assert session.get(Reminder, deals["follow_up"]) is None
        assert session.get(Quote, deals["draft"]) is None and session.get(Quote, deals["draft_v2"]) is None
        # The accepted quote and the order stay, as sent, without her.
        for model, key in ((Quote, "sent"), (Order, "order")):
            row = session.get_one(model, deals[key])
            assert row.contact_id is None
            assert row.address == ["[erased]", "Hauptstraße 1", "10115 Berlin"]
            assert len(row.lines) == 1 and row.gross_total == Decimal("227.29")
        won = session.get_one(Opportunity, deals["won"])  # the accepted quote needs its opportunity
        assert won.contact_id is None and won.title == "Heizung [erased]"
        company_deal = session.get_one(Opportunity, deals["company_deal"])
        assert company_deal.contact_id is None and company_deal.company_id is not None
        assert company_deal.title == "Anlage für [erased]"
        # The PDFs stay as sent, on nobody's timeline and not offered for triage.
        for key in ("quote_pdf", "order_pdf"):
            document = session.get_one(Interaction, deals[key])
            assert document.direction == Direction.INTERNAL
        assert session.execute(select(Attachment.content).where(
            Attachment.interaction_id == deals["quote_pdf"])).scalar_one() == PDF
        assert not session.execute(select(InteractionContact)).all()
        assert not session.execute(unassigned_query()).all()
        event = session.execute(select(Event).where(Event.type == "order.created")).scalar_one()
        assert event.payload == {"customer": {"name": "[erased]", "email": "[erased]"}, "number": "AB-2026-0001"}
        erase_entry = session.execute(select(AuditEntry).where(AuditEntry.action == "erase")).scalar_one()
        assert erase_entry.details["quotes_kept"] == 1


def test_a_person_line_is_blanked_but_a_company_line_with_the_name_stays():
    redact = Redactor(names=["Petra Müller"], emails=[PETRA])
    lines = ["Petra Müller Consulting GmbH", "z. Hd. Frau Dr. Petra Müller", "Hafenstraße 2", "20457 Hamburg"]
    assert sales.blank_person(lines, redact, has_company=True) == [
        "Petra Müller Consulting GmbH", "[erased]", "Hafenstraße 2", "20457 Hamburg"]
    assert sales.blank_person(ADDRESS, redact, has_company=False) == ["[erased]", "Hauptstraße 1", "10115 Berlin"]
    assert sales.kept_summary({"quotes_kept": 0, "orders_kept": 0}) is None


def test_the_api_says_what_the_erasure_kept_and_why(client, auth, deals):
    response = client.post(f"/api/v1/contacts/{deals['petra']}/erase", headers=auth)
    assert response.status_code == 200
    assert response.json["counts"]["orders_kept"] == 1
    assert "§ 147 AO" in response.json["kept"]

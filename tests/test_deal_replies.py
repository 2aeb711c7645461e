"""Replies find their deal: by our Message-ID in In-Reply-To/References, or by a quote or order number in the
subject or text; another customer's number is only suggested (precision first). The decision is a pure function
(a table); the rest runs real mail through the real pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import SalesSettings, Settings
from crm_inbox.contacts.inputs import CompanyChanges, ContactChanges
from crm_inbox.contacts.service import create_company, create_contact
from crm_inbox.correspondence.service import MailDraft, send_mail
from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, store
from crm_inbox.models import (
    Campaign,
    CampaignRecipient,
    CampaignState,
    Channel,
    Direction,
    Interaction,
    InteractionKind,
    InteractionOpportunity,
    Opportunity,
    Order,
    Quote,
    QuoteState,
    RecipientState,
    Reminder,
    ReminderState,
    StaffUser,
    utcnow,
)
from crm_inbox.pipeline.runner import process
from crm_inbox.sales import follow_up
from crm_inbox.sales.inputs import OpportunityFields
from crm_inbox.sales.opportunities import create_opportunity
from crm_inbox.sales.replies import (
    Deal,
    Decision,
    Link,
    Pointer,
    ReplyFacts,
    Suggestion,
    decide,
    named_numbers,
    suggested,
)
from crm_inbox.staff.service import add_staff, hash_password
from crm_inbox.timeline.service import record_interaction
from tests.conftest import CRM, SUPPORT
from tests.mailfactory import make_mail

# --- the decision, as a table ---

OURS = Deal(1, "Regale", contact_id=10, company_id=100)
COLLEAGUES = Deal(2, "Stapler", contact_id=11, company_id=100)  # another person at the same company
THEIRS = Deal(3, "Lager", contact_id=20, company_id=200)
BY_COMPANY = Deal(4, "Rahmenvertrag", contact_id=None, company_id=100)
REPLY = "answers our mail of 2026-03-02"


def facts(*pointers: Pointer, direction: Direction = Direction.IN, automatic: bool = False, spoof: bool = False,
          contacts: frozenset[int] = frozenset({10}), companies: frozenset[int] = frozenset({100})) -> ReplyFacts:
    return ReplyFacts(direction, automatic, spoof, contacts, companies, pointers)


@pytest.mark.parametrize(("given", "expected"), [
    # nothing points at a deal
    (facts(), Decision()),
    # a reply to our mail, a number, both: one link with both reasons
    (facts(Pointer(OURS, REPLY)), Decision((Link(1, REPLY),))),
    (facts(Pointer(OURS, "names AN-2026-0042")), Decision((Link(1, "names AN-2026-0042"),))),
    (facts(Pointer(OURS, REPLY), Pointer(OURS, "names AN-2026-0042-2")),
     Decision((Link(1, f"{REPLY}; names AN-2026-0042-2"),))),
    # the deal is the sender's company's (a colleague's deal, or one on the company alone)
    (facts(Pointer(COLLEAGUES, "names AB-2026-0007")), Decision((Link(2, "names AB-2026-0007"),))),
    (facts(Pointer(BY_COMPANY, REPLY)), Decision((Link(4, REPLY),))),
    # another customer's number: suggested, not linked; the sender's own deal next to it is linked
    (facts(Pointer(THEIRS, "names AN-2026-0043")),
     Decision((), (Suggestion(3, "names AN-2026-0043: deal 3 “Lager” belongs to another customer, not linked"),))),
    (facts(Pointer(OURS, "names AN-2026-0042"), Pointer(THEIRS, "names AN-2026-0043")),
     Decision((Link(1, "names AN-2026-0042"),),
              (Suggestion(3, "names AN-2026-0043: deal 3 “Lager” belongs to another customer, not linked"),))),
    # a sender nobody knows, a suspected spoof: only suggested
    (facts(Pointer(OURS, REPLY), contacts=frozenset(), companies=frozenset()),
     Decision((), (Suggestion(1, f"{REPLY}: deal 1 “Regale” (the sender is unknown)"),))),
    (facts(Pointer(OURS, REPLY), spoof=True),
     Decision((), (Suggestion(1, f"{REPLY}: deal 1 “Regale”, not linked: the mail may be spoofed"),))),
    # automatic mail and mail we send never link
    (facts(Pointer(OURS, REPLY), automatic=True), Decision()),
    (facts(Pointer(OURS, "names AN-2026-0042"), direction=Direction.OUT), Decision()),
    (facts(Pointer(OURS, "names AN-2026-0042"), direction=Direction.INTERNAL), Decision()),
])
def test_which_deal_a_mail_lands_on(given: ReplyFacts, expected: Decision) -> None:
    assert decide(given) == expected


@pytest.mark.parametrize(("text", "found"), [
    ("Re: Ihr Angebot AN-2026-0042", [("quote", "AN-2026-0042", "AN-2026-0042")]),
    ("zu AN-2026-0042-2 noch eine Frage", [("quote", "AN-2026-0042", "AN-2026-0042-2")]),
    ("Auftrag AB-2026-0007.", [("order", "AB-2026-0007", "AB-2026-0007")]),
    ("an-2026-42 und AN-2026-0042", [("quote", "AN-2026-0042", "an-2026-42")]),
    ("Datei Angebot_AN-2026-0042.pdf", [("quote", "AN-2026-0042", "AN-2026-0042")]),
    ("(AN-2026-0042), AB-2026-0007", [("quote", "AN-2026-0042", "AN-2026-0042"),
                                      ("order", "AB-2026-0007", "AB-2026-0007")]),
    ("XAN-2026-0042 AN-2026-00421X PLAN-2026-0042 AN-26-0042 AN2026-0042", []),
    ("Lieferung 4711 vom 2026-03-02", []),
])
def test_quote_and_order_numbers_in_text(text: str, found: list[tuple[str, str, str]]) -> None:
    assert [(n.kind, n.number, n.written) for n in named_numbers(text, SalesSettings())] == found


def test_numbers_follow_the_configured_formats() -> None:
    sales = SalesSettings(quote_number_format="Q{seq:05d}/{year}", order_number_format="{year}-O-{seq}")
    assert [(n.kind, n.number) for n in named_numbers("Q00012/2026 und 2026-O-3", sales)] == [
        ("quote", "Q00012/2026"), ("order", "2026-O-3")]


# --- real mail through the real pipeline ---

PETRA = "petra@weber-logistik.de"


@dataclass
class Deals:
    anna: int
    petra: int
    ours: int  # Petra's deal, quote AN-2026-0042 sent by mail
    theirs: int  # Hans Huber's deal, quote AN-2026-0043
    quote_mail: str  # the Message-ID of our quote mail
    quote_mail_day: str  # … and when we sent it


def sent_quote(session: Session, settings: Settings, opp: Opportunity, number: str, message_id: str | None) -> Quote:
    quote = Quote(opportunity_id=opp.id, number=number, version=1, state=QuoteState.SENT, contact_id=opp.contact_id,
                  company_id=opp.company_id, sent_at=utcnow() - timedelta(days=3), sent_message_id=message_id,
                  address=[])
    session.add(quote)
    session.flush()
    follow_up.start(session, settings, quote)
    return quote


@pytest.fixture
def deals(factory: sessionmaker[Session], settings: Settings) -> Deals:
    with unit_of_work(factory) as session:
        anna = add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt")
        weber = create_company(session, CompanyChanges(name="Weber Logistik GmbH", domains=("weber-logistik.de",)),
                               "DE", None)
        huber = create_company(session, CompanyChanges(name="Huber Bau GmbH", domains=("huber-bau.de",)), "DE", None)
        petra = create_contact(session, ContactChanges(name="Petra Weber", company_id=weber.id, emails=(PETRA,)),
                               "DE", None)
        hans = create_contact(session, ContactChanges(name="Hans Huber", company_id=huber.id,
                                                      emails=("hans@huber-bau.de",)), "DE", None)
        ours = create_opportunity(session, settings, OpportunityFields("Regale", contact_id=petra.id), by=anna.id)
        theirs = create_opportunity(session, settings, OpportunityFields("Lager", contact_id=hans.id), by=anna.id)
        mail = send_mail(session, settings, MailDraft(to="", subject="Ihr Angebot AN-2026-0042",
                                                      text="Anbei unser Angebot.", contact_id=petra.id),
                         by=anna.id, opportunity_id=ours.id, purpose="quote")
        assert mail.source_ref is not None
        quote = sent_quote(session, settings, ours, "AN-2026-0042", mail.source_ref)
        session.add(Order(number="AB-2026-0007", quote_id=quote.id, opportunity_id=ours.id, contact_id=petra.id,
                          order_date=utcnow().date(), net_total=0, vat_total=0, gross_total=0))
        sent_quote(session, settings, theirs, "AN-2026-0043", None)
        return Deals(anna.id, petra.id, ours.id, theirs.id, mail.source_ref, f"{mail.occurred_at:%Y-%m-%d}")


def feed(factory: sessionmaker[Session], settings: Settings, raw: bytes, sender: str = PETRA) -> int:
    """Store the mail as SMTP would and run the pipeline on it; the interaction's id."""
    accepted = store(factory, raw, Envelope(mail_from=sender, rcpt_to=(CRM,), peer="203.0.113.9"))
    outcome = process(factory, settings, accepted.inbound_id)
    assert outcome.error is None and outcome.interaction_id is not None, outcome
    return outcome.interaction_id


def deal_links(factory: sessionmaker[Session], interaction_id: int) -> list[tuple[int, str]]:
    with factory() as session:
        return [tuple(r) for r in session.execute(  # type: ignore[misc]
            select(InteractionOpportunity.opportunity_id, InteractionOpportunity.reason)
            .where(InteractionOpportunity.interaction_id == interaction_id))]


def follow_ups(factory: sessionmaker[Session], opp_id: int) -> list[ReminderState]:
    with factory() as session:
        return list(session.execute(select(Reminder.state).where(Reminder.opportunity_id == opp_id)).scalars())


@pytest.mark.parametrize("how", ["in_reply_to", "number_only", "order_number_in_text"])
def test_the_customers_reply_lands_on_the_deal_and_completes_the_follow_up(factory, settings, deals, how):
    later = utcnow() + timedelta(minutes=1)  # the reply's Date: after our mail, not within its second
    if how == "in_reply_to":  # a normal reply to our quote mail
        raw = make_mail(f"Petra Weber <{PETRA}>", CRM, "AW: Ihr Angebot", "Passt so, bitte liefern.", date=later,
                        headers={"In-Reply-To": deals.quote_mail, "References": deals.quote_mail})
        reason = f"answers our mail of {deals.quote_mail_day}"
    elif how == "number_only":  # a relay dropped In-Reply-To/References: the number in the subject suffices
        raw = make_mail(f"Petra Weber <{PETRA}>", CRM, "AW: Ihr Angebot AN-2026-0042-2", "Passt so.",
                        date=later)
        reason = "names AN-2026-0042-2"
    else:
        raw = make_mail(f"Petra Weber <{PETRA}>", CRM, "Lieferung", "Wann kommt Auftrag AB-2026-0007?",
                        date=later)
        reason = "names AB-2026-0007"
    assert follow_ups(factory, deals.ours) == [ReminderState.OPEN]
    interaction_id = feed(factory, settings, raw)
    assert deal_links(factory, interaction_id) == [(deals.ours, reason)]
    assert follow_ups(factory, deals.ours) == [ReminderState.DONE]
    assert follow_ups(factory, deals.theirs) == [ReminderState.OPEN]
    with factory() as session:
        item = session.get_one(Interaction, interaction_id)
        assert item.contact_ids == [deals.petra]  # on her timeline as well
        assert f"on deal {deals.ours} “Regale”: {reason}" in (item.attribution_reason or "")
        opp = session.get_one(Opportunity, deals.ours)
        assert opp.last_contact_at == item.occurred_at


def test_another_customers_number_is_not_linked_but_suggested_for_triage(factory, settings, deals):
    raw = make_mail(f"Petra Weber <{PETRA}>", CRM, "Frage zu AN-2026-0043", "Ist das auch für uns?")
    interaction_id = feed(factory, settings, raw)
    assert deal_links(factory, interaction_id) == []
    assert follow_ups(factory, deals.theirs) == [ReminderState.OPEN]
    with factory() as session:
        item = session.get_one(Interaction, interaction_id)
        text = f"names AN-2026-0043: deal {deals.theirs} “Lager” belongs to another customer, not linked"
        assert item.details["deal_suggestions"] == [{"opportunity_id": deals.theirs, "text": text}]
        assert f"deal suggested, not linked: {text}" in (item.attribution_reason or "")
        assert [i.id for i in session.execute(suggested()).scalars()] == [interaction_id]


def test_an_auto_reply_to_the_quote_mail_lands_on_no_deal(factory, settings, deals):
    raw = make_mail(f"Petra Weber <{PETRA}>", CRM, "Abwesenheitsnotiz: Ihr Angebot AN-2026-0042",
                    "Ich bin bis Montag nicht im Büro.",
                    headers={"In-Reply-To": deals.quote_mail, "Auto-Submitted": "auto-replied"})
    interaction_id = feed(factory, settings, raw)
    assert deal_links(factory, interaction_id) == []
    assert follow_ups(factory, deals.ours) == [ReminderState.OPEN]
    with factory() as session:
        assert session.execute(suggested()).first() is None


def test_staff_put_a_suggested_mail_on_the_deal_from_the_triage_page(factory, settings, deals, client):
    from tests.test_pages import csrf_token, log_in

    raw = make_mail(f"Petra Weber <{PETRA}>", CRM, "Frage zu AN-2026-0043", "Ist das auch für uns?")
    interaction_id = feed(factory, settings, raw)
    with unit_of_work(factory) as session:
        session.get_one(StaffUser, deals.anna).password_hash = hash_password("richtig-geheim-42")
    assert log_in(client, "anna.schmidt@beispiel-firma.de", "richtig-geheim-42").status_code == 302
    page = client.get("/triage").get_data(as_text=True)
    assert "Frage zu AN-2026-0043" in page and "belongs to another customer" in page
    action = f"/triage/{interaction_id}/deal/{deals.theirs}"
    assert action in page
    assert client.post(action, data={"csrf_token": csrf_token(page)}).status_code == 302
    assert deal_links(factory, interaction_id) == [(deals.theirs, f"linked by staff user {deals.anna}")]
    assert follow_ups(factory, deals.theirs) == [ReminderState.DONE]
    with factory() as session:
        assert "deal_suggestions" not in session.get_one(Interaction, interaction_id).details
        assert session.execute(suggested()).first() is None
    assert action not in client.get("/triage").get_data(as_text=True)


def test_one_reply_to_a_ticket_a_quote_mail_and_a_campaign_mail_lands_in_all_three(factory, settings, deals):
    # The pipeline reads what a reply answers in one statement for tickets, deals and campaigns: each still gets
    # exactly its own rows.
    request = feed(factory, settings, make_mail(f"Petra Weber <{PETRA}>", SUPPORT, "Lieferung Regale",
                                                "Wann wird geliefert?", message_id="<anfrage-1@weber-logistik.de>"))
    with unit_of_work(factory) as session:
        ticket_id = session.get_one(Interaction, request).ticket_id
        campaign = Campaign(name="Frühjahrsaktion", channel=Channel.EMAIL, state=CampaignState.SENDING,
                            subject="Frühjahrsaktion", body="{{ greeting }}", recipient_count=1)
        session.add(campaign)
        session.flush()
        mailed = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.OUT,
                                    occurred_at=utcnow() - timedelta(hours=1), subject="Frühjahrsaktion", text="…",
                                    source_ref="<aktion-1@beispiel-firma.de>", contacts=[],
                                    details={"campaign_id": campaign.id})
        recipient = CampaignRecipient(campaign_id=campaign.id, contact_id=deals.petra, address=PETRA,
                                      state=RecipientState.RELEASED, basis="consent",
                                      message_id="<aktion-1@beispiel-firma.de>", interaction_id=mailed.id,
                                      released_at=utcnow() - timedelta(hours=1))
        session.add(recipient)
        session.flush()
        campaign_id, recipient_id = campaign.id, recipient.id
    assert ticket_id is not None
    refs = f"<anfrage-1@weber-logistik.de> {deals.quote_mail} <aktion-1@beispiel-firma.de>"
    reply = feed(factory, settings, make_mail(
        f"Petra Weber <{PETRA}>", SUPPORT, "AW: Lieferung Regale", "Passt so, bitte liefern.",
        date=utcnow() + timedelta(minutes=1), headers={"In-Reply-To": deals.quote_mail, "References": refs}))
    assert deal_links(factory, reply) == [(deals.ours, f"answers our mail of {deals.quote_mail_day}")]
    with factory() as session:
        item = session.get_one(Interaction, reply)
        assert item.ticket_id == ticket_id  # threaded into Petra's ticket
        assert item.details.get("campaign_id") == campaign_id
        assert session.get_one(CampaignRecipient, recipient_id).reply_interaction_id == reply

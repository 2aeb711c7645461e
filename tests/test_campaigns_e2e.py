"""The issue's "Done when", end to end: a segment of customers in Bavaria with category A and no contact for 90 days
gets an e-mail campaign; the opted-out and the bouncing person are left out with the reason; the campaign is
started, released and sent through the outbox to a real SMTP relay (an aiosmtpd sink); the customers' replies come
back through the real mail pipeline and onto the campaign (an out-of-office answer does not count); one reply is
qualified into an opportunity, one that says "abmelden" waits in triage until a person confirms it."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox import outbox
from crm_inbox.campaigns import audience, responses, sending, service, stats
from crm_inbox.config import Settings, replace
from crm_inbox.consent import ledger
from crm_inbox.contacts.inputs import ContactChanges
from crm_inbox.contacts.service import create_contact
from crm_inbox.db import unit_of_work
from crm_inbox.intake.store import Envelope, store
from crm_inbox.models import (
    CampaignRecipient,
    CampaignState,
    Channel,
    ConsentState,
    Contact,
    ContactEmail,
    Direction,
    Interaction,
    InteractionContact,
    InteractionKind,
    LegalBasis,
    Opportunity,
    OpportunitySource,
    RecipientState,
    utcnow,
)
from crm_inbox.pipeline.runner import process
from crm_inbox.segments import service as segments
from crm_inbox.staff.service import add_staff
from crm_inbox.timeline.service import record_interaction
from tests.conftest import CRM
from tests.mailfactory import make_mail
from tests.serveproc import notifications

# Bavaria by postcode: 80000–87999 (Oberbayern, Schwaben …) and 90000–97999 (Franken, Oberpfalz, Niederbayern).
BAVARIA_A_QUIET = {"all": [
    {"field": "role", "op": "is", "value": "customer"},
    {"field": "category", "op": "is", "value": "A"},
    {"any": [{"field": "postcode", "op": "between", "value": ["80000", "87999"]},
             {"field": "postcode", "op": "between", "value": ["90000", "97999"]}]},
    {"field": "last_contact", "op": "older_than_days", "value": 90},  # people never contacted too
]}


@dataclass
class Relay:
    """The company's relay: keeps every message it accepts."""

    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0  # what handlers.smtp.SmtpServer reads when it stops
    closing: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
        return "250 2.0.0 Ok"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if str(m["To"]) == address]


@pytest.fixture
def relay() -> Iterator[tuple[Relay, int]]:
    from handlers.smtp import SmtpServer

    handler = Relay()
    server = SmtpServer(handler, "127.0.0.1", 0, max_message_bytes=1_000_000)  # type: ignore[arg-type]
    port = server.start()
    yield handler, port
    server.stop()


@dataclass
class People:
    anna: int  # staff
    petra: int  # München, opted in: gets it, replies with interest
    hans: int  # Augsburg, opted in: gets it, replies "abmelden"
    klaus: int  # Nürnberg, last contact 200 days ago: gets it, his out-of-office answers
    maria: int  # Regensburg, opted out: left out
    bernd: int  # München, address bouncing: left out


ADDRESS = {"petra": "petra@weber-logistik.de", "hans": "hans@huber-bau.de", "klaus": "klaus@mueller-mb.de",
           "maria": "maria@beispiel-kunde.de", "bernd": "bernd@alt-adresse.de"}


def _customer(session: Session, name: str, key: str | None, postcode: str, city: str, category: str = "A",
              consent: ConsentState | None = ConsentState.OPTED_IN) -> int:
    contact = create_contact(session, ContactChanges(
        name=name, emails=(ADDRESS[key],) if key else (), role="customer", category=category, salutation="frau"
        if name.split()[0] in ("Petra", "Maria", "Erika") else "herr", postcode=postcode, city=city, country="DE"),
        "DE", None)
    if consent is not None:
        ledger.record(session, contact.id, Channel.EMAIL, ConsentState.OPTED_IN, LegalBasis.CONSENT, "web_form",
                      {"form": "newsletter"}, occurred_at=utcnow() - timedelta(days=400))
        if consent == ConsentState.OPTED_OUT:
            ledger.record(session, contact.id, Channel.EMAIL, ConsentState.OPTED_OUT, None, "unsubscribe",
                          occurred_at=utcnow() - timedelta(days=30))
    return contact.id


def _contacted(session: Session, contact_id: int, days_ago: int) -> None:
    record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.IN,
                       occurred_at=utcnow() - timedelta(days=days_ago), subject="Frage", text="…",
                       contacts=[(session.get_one(Contact, contact_id), "from")])


@pytest.fixture
def people(factory: sessionmaker[Session]) -> People:
    with unit_of_work(factory) as session:
        anna = add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt")
        petra = _customer(session, "Petra Weber", "petra", "80331", "München")
        hans = _customer(session, "Hans Huber", "hans", "86150", "Augsburg")
        klaus = _customer(session, "Klaus Müller", "klaus", "90402", "Nürnberg")
        _contacted(session, klaus, 200)
        maria = _customer(session, "Maria Schneider", "maria", "93047", "Regensburg", consent=ConsentState.OPTED_OUT)
        bernd = _customer(session, "Bernd Alt", "bernd", "80999", "München")
        session.execute(ContactEmail.__table__.update().where(ContactEmail.contact_id == bernd).values(bouncing=True))
        # not in the segment: spoken to last week, category B, outside Bavaria, a lead
        recent = _customer(session, "Erika Neu", None, "80331", "München")
        _contacted(session, recent, 7)
        _customer(session, "Bruno Beta", None, "80331", "München", category="B")
        _customer(session, "Berta Berlin", None, "10115", "Berlin")
        create_contact(session, ContactChanges(name="Leo Lead", role="lead", category="A", postcode="80331"), "DE",
                       None)
        return People(anna.id, petra, hans, klaus, maria, bernd)


def feed(factory: sessionmaker[Session], settings: Settings, raw: bytes, sender: str) -> int:
    """The mail as SMTP stores it, then the pipeline on it; the interaction's id."""
    accepted = store(factory, raw, Envelope(mail_from=sender, rcpt_to=(CRM,), peer="203.0.113.9"))
    outcome = process(factory, settings, accepted.inbound_id)
    assert outcome.error is None and outcome.interaction_id is not None, outcome
    return outcome.interaction_id


def reply_to(sent: EmailMessage, sender: str, body: str, **headers: str) -> bytes:
    mid = str(sent["Message-ID"])
    return make_mail(sender, str(sent["From"]), f"AW: {sent['Subject']}", body,
                     headers={"In-Reply-To": mid, "References": mid, **headers},
                     date=utcnow() + timedelta(minutes=1))


def test_a_campaign_to_bavarian_a_customers_from_segment_to_opportunity(factory, settings, people, relay):
    sink, port = relay
    settings = replace(settings, web={"base_url": "https://crm.beispiel-firma.de/", "secret_key": "e2e-geheim"},
                       notifications=notifications(port, timeout_seconds=5),
                       campaigns={"per_minute": 600, "approval_threshold": 100})

    # The segment, and the campaign to it with who is left out and why.
    with unit_of_work(factory) as session:
        segment = segments.create(session, "Bayern, Kategorie A, 90 Tage ohne Kontakt", BAVARIA_A_QUIET,
                                  actor=people.anna)
        members = set(session.execute(segments.member_ids(session, BAVARIA_A_QUIET)).scalars())
        assert members == {people.petra, people.hans, people.klaus, people.maria, people.bernd}
        campaign = service.create(session, settings, name="Frühjahrsaktion Bayern", segment_id=segment.id,
                                  channel="email", subject="Frühjahrsaktion für Sie",
                                  body="{{ greeting }}\n\nunsere Frühjahrsaktion: Regale zum Vorzugspreis.\n\n"
                                       "Mit freundlichen Grüßen\n{{ owner }}",
                                  sender_name="Anna Schmidt", actor=people.anna)
        campaign_id = campaign.id
        preview = audience.preview(session, settings, segment.id, Channel.EMAIL)
        assert (preview.included, preview.left_out) == (3, {"bouncing": 1, "opted_out": 1})
    with unit_of_work(factory) as session:
        assert service.start(session, settings, campaign_id, actor=people.anna).state == CampaignState.SENDING
    with factory() as session:
        left_out = {contact: reason for contact, reason in session.execute(
            select(CampaignRecipient.contact_id, CampaignRecipient.reason).where(
                CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == RecipientState.LEFT_OUT))}
        assert left_out == {people.maria: "opted_out", people.bernd: "bouncing"}
        summary = stats.summary(session, campaign_id)
        assert (summary.recipients, summary.queued, summary.left_out) == (3, 3, {"bouncing": 1, "opted_out": 1})

    # Released at the rate, one by one, then sent by the outbox to the relay.
    now = utcnow()
    for step in range(10):
        sending.release_due(factory, settings, now=now + timedelta(seconds=step))
        with factory() as session:
            if service.get(session, campaign_id).state == CampaignState.DONE:
                break
    assert outbox.send_pending(factory, settings)["sent"] == 3
    assert sorted(str(m["To"]) for m in sink.messages) == sorted(ADDRESS[k] for k in ("petra", "hans", "klaus"))
    to_petra = sink.to(ADDRESS["petra"])[0]
    assert to_petra["List-Unsubscribe"].startswith("<https://crm.beispiel-firma.de/unsubscribe/")
    assert to_petra["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Sehr geehrte Frau Weber" in to_petra.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    with factory() as session:
        summary = stats.summary(session, campaign_id)
        assert (summary.released, summary.sent, summary.failed, summary.uncertain) == (3, 3, 0, 0)

    # The answers come back through the pipeline.
    petra_reply = feed(factory, settings, reply_to(to_petra, f"Petra Weber <{ADDRESS['petra']}>",
                                                   "Interessant! Wir brauchen 20 Regale, rufen Sie mich an."),
                       ADDRESS["petra"])
    hans_reply = feed(factory, settings, reply_to(sink.to(ADDRESS["hans"])[0], f"Hans Huber <{ADDRESS['hans']}>",
                                                  "Bitte abmelden.\n\n> Sehr geehrter Herr Huber,\n> …"),
                      ADDRESS["hans"])
    feed(factory, settings, reply_to(sink.to(ADDRESS["klaus"])[0], f"Klaus Müller <{ADDRESS['klaus']}>",
                                     "Ich bin bis 15.3. nicht im Büro.", **{"Auto-Submitted": "auto-replied"}),
         ADDRESS["klaus"])
    with factory() as session:
        summary = stats.summary(session, campaign_id)
        assert (summary.replied, summary.opted_out, summary.opportunities) == (2, 0, 0)
        responders, more = stats.responders(session, campaign_id)
        assert not more
        by_contact = {r.contact_id: r for r in responders}
        assert set(by_contact) == {people.petra, people.hans}
        assert by_contact[people.petra].reply_interaction_id == petra_reply
        assert by_contact[people.hans].asks_to_unsubscribe and not by_contact[people.petra].asks_to_unsubscribe
        # each reply is on its sender's timeline, linked to the campaign, next to the campaign mail
        petra_items = session.execute(select(Interaction).join(
            InteractionContact, InteractionContact.interaction_id == Interaction.id).where(
            InteractionContact.contact_id == people.petra, Interaction.kind == InteractionKind.EMAIL)).scalars().all()
        assert {(i.direction, i.details.get("campaign_id")) for i in petra_items} == {
            (Direction.OUT, campaign_id), (Direction.IN, campaign_id)}
        # "abmelden" waits in triage; nobody was opted out by the machine
        assert [i.id for i in session.execute(responses.unsubscribe_suggested()).scalars()] == [hans_reply]
        consent = ledger.current(session, [people.hans], Channel.EMAIL)[people.hans]
        assert consent is not None and consent.state == ConsentState.OPTED_IN
        petra_row = by_contact[people.petra].recipient_id

    # Staff qualify Petra's reply into an opportunity, and confirm Hans's wish.
    with unit_of_work(factory) as session:
        opp_id = responses.qualify(session, settings, petra_row, actor=people.anna).id
    with unit_of_work(factory) as session:
        responses.confirm_unsubscribe(session, hans_reply, actor=people.anna)
    with factory() as session:
        opp = session.get_one(Opportunity, opp_id)
        assert (opp.contact_id, opp.source) == (people.petra, OpportunitySource.CAMPAIGN)
        summary = stats.summary(session, campaign_id)
        assert (summary.replied, summary.opted_out, summary.opportunities, summary.bounced) == (2, 1, 1, 0)
        consent = ledger.current(session, [people.hans], Channel.EMAIL)[people.hans]
        assert consent is not None and consent.state == ConsentState.OPTED_OUT

"""What comes back from a campaign mail: a reply lands on the campaign (robots do not count), a wish to be
unsubscribed waits in triage for a person (it opts nobody out by itself), a spam complaint opts the person out, a
bounce is counted; staff qualify a responder into an opportunity; the figures and the responders list; the
person's export and erasure. Real mail through the real pipeline; the send ledger is written directly (as the
campaign service leaves it after sending)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.campaigns import responses, stats
from crm_inbox.config import Settings
from crm_inbox.consent import ledger
from crm_inbox.contacts.inputs import ContactChanges
from crm_inbox.contacts.merge import merge_contacts
from crm_inbox.contacts.service import create_contact
from crm_inbox.db import unit_of_work
from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.intake.store import Envelope, store
from crm_inbox.mail.parse import Limits, parse_mail
from crm_inbox.models import (
    Campaign,
    CampaignRecipient,
    CampaignState,
    Channel,
    ConsentRecord,
    ConsentState,
    Contact,
    ContactEmail,
    Direction,
    Interaction,
    InteractionKind,
    InteractionOpportunity,
    Opportunity,
    OpportunitySource,
    OutboxState,
    OutgoingMail,
    RecipientState,
    StaffUser,
    utcnow,
)
from crm_inbox.pipeline.runner import process
from crm_inbox.privacy.service import erase_contact, write_export
from crm_inbox.staff.service import add_staff, hash_password
from crm_inbox.timeline.service import record_interaction
from tests.conftest import CRM
from tests.mailfactory import make_mail

ROBOTS = Path(__file__).parent / "mail-robots"
PETRA = "petra@weber-logistik.de"
HANS = "hans@huber-bau.de"
OPTOUT_URL = "https://crm.beispiel-firma.de/unsubscribe/eyJjIjoxfQ.abc"


# --- a wish to be unsubscribed, as a table ---

@pytest.mark.parametrize("text", [
    "Bitte abmelden.",
    "Bitte melden Sie mich ab.",
    "Melden Sie mich bitte sofort ab!",
    "Ich möchte abbestellen.",
    "Streichen Sie mich aus der Liste.",
    "Bitte tragen Sie mich aus Ihrem Verteiler aus.",
    "Bitte aus dem Newsletter-Verteiler nehmen",
    "Ich möchte keine weiteren E-Mails von Ihnen.",
    "Keine Werbung mehr bitte!",
    "Bitte nicht mehr anschreiben.",
    "Ich widerspreche der Nutzung meiner Adresse für Werbung.",
    "Löschen Sie meine Daten.",
    "AUSTRAGEN",
    "Please unsubscribe me.",
    "Remove me from your list",
    "stop",
    "Please stop sending these.",
    "I want to opt out.",
    "No more emails, thanks.",
    "Don't email me again.",
])
def test_a_reply_that_asks_to_be_unsubscribed_is_recognised(text):
    assert responses.asks_to_unsubscribe(text)
    assert responses.asks_to_unsubscribe(f"AW: Frühjahrsaktion\n{text}\n\nGruß Petra")


QUOTED_FOOTER = f"""Keine weiteren Mails? Abmelden: {OPTOUT_URL}"""


@pytest.mark.parametrize("text", [
    "Ja, gerne! Rufen Sie mich bitte an.",
    "Interesse an 20 Regalen, bitte ein Angebot.",
    "Ich möchte mich für die Messe anmelden.",
    "Stoppuhr und Stopfen bitte mit anbieten.",
    # our own footer, quoted below the answer in each way mail programs quote
    f"Gerne, schicken Sie ein Angebot.\n\n> Sehr geehrte Frau Weber,\n> {QUOTED_FOOTER}\n",
    f"Gerne.\n\nAm 02.03.2026 um 10:00 schrieb Beispiel GmbH <crm@beispiel-firma.de>:\n{QUOTED_FOOTER}\n",
    f"Gerne.\n\nOn Mon, 2 Mar 2026 at 10:00, Beispiel GmbH <crm@beispiel-firma.de>\nwrote:\n{QUOTED_FOOTER}\n",
    f"Gerne.\n\nVon: Beispiel GmbH <crm@beispiel-firma.de>\nGesendet: Montag, 2. März 2026\n{QUOTED_FOOTER}",
    f"Gerne.\n\n-----Ursprüngliche Nachricht-----\n{QUOTED_FOOTER}",
    f"Gerne.\n________________________________\n{QUOTED_FOOTER}",
    # a link alone is not a wish
    f"Ihr Link {OPTOUT_URL} und https://example.org/unsubscribe-info gehen nicht, aber das Angebot interessiert.",
])
def test_an_ordinary_reply_and_our_quoted_footer_are_no_wish(text):
    assert not responses.asks_to_unsubscribe(text)


def test_reports_in_the_robot_corpus_name_the_original_they_return():
    for path in sorted(ROBOTS.glob("*.eml")):  # none of them trips the helpers
        parsed = parse_mail(path.read_bytes(), Limits())
        responses.original_message_ids(parsed.message, parsed.text)
        responses.feedback_type(parsed.message)
    arf = parse_mail((ROBOTS / "arf-report.eml").read_bytes(), Limits())
    assert responses.original_message_ids(arf.message, arf.text) == ["<angebot-4711.154284097@beispiel-firma.de>"]
    assert responses.feedback_type(arf.message) == "abuse"


# --- a sent campaign, as the send ledger holds it ---

@dataclass
class Sent:
    campaign: int
    anna: int
    petra: int
    hans: int
    petra_row: int
    hans_row: int
    petra_mid: str
    hans_mid: str


def _released(session: Session, campaign: Campaign, contact: Contact, address: str, *,
              mail_state: OutboxState = OutboxState.SENT, uncertain: bool = False) -> CampaignRecipient:
    mid = make_msgid(idstring="campaign", domain="beispiel-firma.de")
    mail = OutgoingMail(purpose="campaign", dedupe_key=f"campaign:{campaign.id}:{contact.id}", to_address=address,
                        subject="Frühjahrsaktion", body="…", message_id=mid, state=mail_state, uncertain=uncertain)
    session.add(mail)
    session.flush()
    released_at = utcnow() - timedelta(hours=1)
    mailed = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.OUT,
                                occurred_at=released_at, subject="Frühjahrsaktion", text="…", source_ref=mid,
                                contacts=[(contact, "to")], details={"campaign_id": campaign.id})
    row = CampaignRecipient(campaign_id=campaign.id, contact_id=contact.id, address=address,
                            state=RecipientState.RELEASED, basis="consent", message_id=mid,
                            outgoing_mail_id=mail.id, interaction_id=mailed.id, released_at=released_at)
    session.add(row)
    session.flush()
    return row


@pytest.fixture
def sent(factory: sessionmaker[Session]) -> Sent:
    with unit_of_work(factory) as session:
        anna = add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt")
        petra = create_contact(session, ContactChanges(name="Petra Weber", emails=(PETRA,)), "DE", None)
        hans = create_contact(session, ContactChanges(name="Hans Huber", emails=(HANS,)), "DE", None)
        campaign = Campaign(name="Frühjahrsaktion Bayern", channel=Channel.EMAIL, state=CampaignState.SENDING,
                            subject="Frühjahrsaktion", body="{{ greeting }}", recipient_count=2)
        session.add(campaign)
        session.flush()
        p = _released(session, campaign, petra, PETRA)
        h = _released(session, campaign, hans, HANS)
        return Sent(campaign.id, anna.id, petra.id, hans.id, p.id, h.id, p.message_id or "", h.message_id or "")


def feed(factory: sessionmaker[Session], settings: Settings, raw: bytes, sender: str = PETRA) -> int:
    """Store the mail as SMTP would and run the pipeline on it; the interaction's id."""
    accepted = store(factory, raw, Envelope(mail_from=sender, rcpt_to=(CRM,), peer="203.0.113.9"))
    outcome = process(factory, settings, accepted.inbound_id)
    assert outcome.error is None and outcome.interaction_id is not None, outcome
    return outcome.interaction_id


def row(factory: sessionmaker[Session], row_id: int) -> CampaignRecipient:
    with factory() as session:
        found = session.get_one(CampaignRecipient, row_id)
        session.expunge(found)
        return found


def email_consent(factory: sessionmaker[Session], contact_id: int) -> list[tuple[str, str]]:
    with factory() as session:
        return [(r.state.value, r.source) for r in ledger.records(session, contact_id, Channel.EMAIL)]


def test_a_reply_lands_on_the_campaign_and_on_the_persons_timeline(factory, settings, sent):
    raw = make_mail(f"Petra Weber <{PETRA}>", CRM, "AW: Frühjahrsaktion", "Klingt gut, rufen Sie mich an.",
                    headers={"In-Reply-To": sent.petra_mid, "References": sent.petra_mid})
    interaction_id = feed(factory, settings, raw)
    recipient = row(factory, sent.petra_row)
    assert recipient.reply_interaction_id == interaction_id and recipient.replied_at is not None
    with factory() as session:
        item = session.get_one(Interaction, interaction_id)
        assert item.contact_ids == [sent.petra]
        assert item.details["campaign_id"] == sent.campaign
        assert item.details["campaign"] == "Frühjahrsaktion Bayern"
        assert f"reply to campaign {sent.campaign} “Frühjahrsaktion Bayern”" in (item.attribution_reason or "")
        assert "unsubscribe_suggestion" not in item.details
        summary = stats.summary(session, sent.campaign)
        assert (summary.recipients, summary.replied, summary.opted_out) == (2, 1, 0)
        people, more = stats.responders(session, sent.campaign)
        assert not more
        assert [(p.contact_id, p.contact_name, p.reply_subject, p.reply_excerpt, p.asks_to_unsubscribe)
                for p in people] == [(sent.petra, "Petra Weber", "AW: Frühjahrsaktion",
                                      "Klingt gut, rufen Sie mich an.", False)]

    # a second mail of hers in the thread is on the campaign too, but the first reply stays the response
    again = feed(factory, settings, make_mail(f"Petra Weber <{PETRA}>", CRM, "AW: AW: Frühjahrsaktion", "Noch was.",
                                              headers={"In-Reply-To": "<other@weber-logistik.de>",
                                                       "References": f"{sent.petra_mid} <other@weber-logistik.de>"}))
    assert row(factory, sent.petra_row).reply_interaction_id == interaction_id
    with factory() as session:
        assert session.get_one(Interaction, again).details["campaign_id"] == sent.campaign
        assert stats.summary(session, sent.campaign).replied == 1


def test_a_reply_without_brackets_in_in_reply_to_is_recognised(factory, settings, sent):
    feed(factory, settings, make_mail(f"Hans Huber <{HANS}>", CRM, "AW: Frühjahrsaktion", "Ja.",
                                      headers={"In-Reply-To": sent.hans_mid.strip("<>")}), sender=HANS)
    assert row(factory, sent.hans_row).replied_at is not None


def test_an_out_of_office_answer_is_no_reply_and_makes_no_lead(factory, settings, sent):
    stranger = "vertretung@weber-logistik.de"
    raw = make_mail(f"Petra Weber <{PETRA}>", CRM, "Abwesenheitsnotiz: Frühjahrsaktion",
                    f"Ich bin bis Montag nicht im Büro. Vertretung: {stranger}",
                    headers={"In-Reply-To": sent.petra_mid, "Auto-Submitted": "auto-replied"})
    interaction_id = feed(factory, settings, raw)
    assert row(factory, sent.petra_row).replied_at is None
    with factory() as session:
        item = session.get_one(Interaction, interaction_id)
        assert "campaign_id" not in item.details
        assert "not counted as a reply" in (item.attribution_reason or "")
        assert stats.summary(session, sent.campaign).replied == 0
        assert stats.responders(session, sent.campaign) == ([], False)
        assert session.execute(select(ContactEmail).where(ContactEmail.email == stranger)).first() is None


def test_a_wish_to_unsubscribe_goes_to_triage_and_a_person_confirms_it(factory, settings, sent):
    raw = make_mail(f"Petra Weber <{PETRA}>", CRM, "AW: Frühjahrsaktion",
                    f"Bitte melden Sie mich ab.\n\n> Keine weiteren Mails? Abmelden: {OPTOUT_URL}\n",
                    headers={"In-Reply-To": sent.petra_mid})
    interaction_id = feed(factory, settings, raw)
    # Recorded on her timeline and counted as a reply, but nobody is opted out by the machine.
    assert email_consent(factory, sent.petra) == []
    recipient = row(factory, sent.petra_row)
    assert recipient.replied_at is not None and recipient.opted_out_at is None
    with factory() as session:
        item = session.get_one(Interaction, interaction_id)
        assert item.contact_ids == [sent.petra]
        suggestion = item.details["unsubscribe_suggestion"]
        assert suggestion["contact_id"] == sent.petra and suggestion["campaign_id"] == sent.campaign
        assert "asks to be unsubscribed (“melden Sie mich ab”)" in suggestion["text"]
        assert "left for staff to confirm in triage" in (item.attribution_reason or "")
        assert [i.id for i in session.execute(responses.unsubscribe_suggested()).scalars()] == [interaction_id]
        assert [p.asks_to_unsubscribe for p in stats.responders(session, sent.campaign)[0]] == [True]

    with unit_of_work(factory) as session:
        record = responses.confirm_unsubscribe(session, interaction_id, actor=sent.anna)
        assert record is not None and record.proof["interaction_id"] == interaction_id
    assert email_consent(factory, sent.petra) == [("opted_out", "reply")]
    assert row(factory, sent.petra_row).opted_out_at is not None
    with factory() as session:
        assert session.execute(responses.unsubscribe_suggested()).first() is None
        item = session.get_one(Interaction, interaction_id)
        assert item.details["unsubscribe_decided"]["outcome"] == "opted_out"
        assert item.details["unsubscribe_decided"]["by"] == sent.anna
        assert stats.summary(session, sent.campaign).opted_out == 1
    with unit_of_work(factory) as session, pytest.raises(Conflict):  # decided: a second click changes nothing
        responses.confirm_unsubscribe(session, interaction_id, actor=sent.anna)


def test_staff_may_dismiss_a_wish_that_is_none(factory, settings, sent):
    raw = make_mail(f"Hans Huber <{HANS}>", CRM, "AW: Frühjahrsaktion",
                    "Wie kann ich meinen Kollegen abmelden? Ich selbst will das Angebot.",
                    headers={"In-Reply-To": sent.hans_mid})
    interaction_id = feed(factory, settings, raw, sender=HANS)
    with unit_of_work(factory) as session:
        responses.dismiss_unsubscribe(session, interaction_id, actor=sent.anna)
    assert email_consent(factory, sent.hans) == []
    with factory() as session:
        assert session.execute(responses.unsubscribe_suggested()).first() is None
        assert session.get_one(Interaction, interaction_id).details["unsubscribe_decided"]["outcome"] == "dismissed"
    with unit_of_work(factory) as session, pytest.raises(NotFound):
        responses.dismiss_unsubscribe(session, 999_999, actor=sent.anna)


ARF = """From: Feedback Loop <fbl@mail.example.net>
To: abuse@beispiel-firma.de
Subject: Complaint about message from 192.0.2.1
Date: {date}
Message-ID: <arf-{n}@mail.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain; charset=utf-8

This is an email abuse report for an email message received from IP 192.0.2.1.

--ARF
Content-Type: message/feedback-report

Feedback-Type: {ftype}
User-Agent: SomeGenerator/1.0
Version: 1
Original-Rcpt-To: <{rcpt}>

--ARF
Content-Type: message/rfc822

From: Beispiel GmbH <crm@beispiel-firma.de>
To: {rcpt}
Subject: Frühjahrsaktion
Message-ID: {mid}
Content-Type: text/plain; charset=utf-8

Sehr geehrte Frau Weber, …

--ARF--
"""


def arf(mid: str, rcpt: str, ftype: str = "abuse", n: int = 1) -> bytes:
    from email.utils import format_datetime
    text = ARF.format(date=format_datetime(utcnow() - timedelta(minutes=5)), n=n, ftype=ftype, rcpt=rcpt, mid=mid)
    return text.replace("\n", "\r\n").encode()


def test_a_spam_complaint_opts_the_person_out(factory, settings, sent):
    feed(factory, settings, arf(sent.petra_mid, PETRA), sender="fbl@mail.example.net")
    with factory() as session:
        records = ledger.records(session, sent.petra, Channel.EMAIL)
        assert [(r.state, r.source) for r in records] == [(ConsentState.OPTED_OUT, "complaint")]
        proof = records[0].proof
        assert proof["report_message_id"] == "<arf-1@mail.example.net>"
        assert proof["original_message_id"] == sent.petra_mid and proof["feedback_type"] == "abuse"
        assert proof["campaign_id"] == sent.campaign and proof["report_date"]
        assert stats.summary(session, sent.campaign).opted_out == 1
        # the report's sender is nobody's lead
        assert session.execute(select(func.count()).select_from(Contact)).scalar_one() == 2
    assert row(factory, sent.petra_row).opted_out_at is not None
    assert row(factory, sent.hans_row).opted_out_at is None

    # a second report about the same mail records nothing new
    feed(factory, settings, arf(sent.petra_mid, PETRA, n=2), sender="fbl@mail.example.net")
    assert email_consent(factory, sent.petra) == [("opted_out", "complaint")]


def test_a_not_spam_report_opts_nobody_out(factory, settings, sent):
    feed(factory, settings, arf(sent.hans_mid, HANS, ftype="not-spam"), sender="fbl@mail.example.net")
    assert email_consent(factory, sent.hans) == []
    assert row(factory, sent.hans_row).opted_out_at is None


DSN = """From: Mail Delivery System <MAILER-DAEMON@mx.beispiel-firma.de>
To: crm@beispiel-firma.de
Subject: Undelivered Mail Returned to Sender
Date: {date}
Message-ID: <dsn-1@mx.beispiel-firma.de>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="DSN"

--DSN
Content-Type: text/plain; charset=utf-8

I'm sorry to have to inform you that your message could not be delivered.

--DSN
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.beispiel-firma.de

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--DSN
Content-Type: text/rfc822-headers

From: Beispiel GmbH <crm@beispiel-firma.de>
To: {rcpt}
Subject: Frühjahrsaktion
Message-ID: {mid}

--DSN--
"""


def dsn(mid: str, rcpt: str) -> bytes:
    from email.utils import format_datetime
    return DSN.format(date=format_datetime(utcnow()), rcpt=rcpt, mid=mid).replace("\n", "\r\n").encode()


def test_a_bounce_of_a_campaign_mail_is_counted_and_the_address_flagged(factory, settings, sent):
    feed(factory, settings, dsn(sent.hans_mid, HANS), sender="")
    assert row(factory, sent.hans_row).bounced_at is not None
    assert row(factory, sent.petra_row).bounced_at is None
    with factory() as session:
        assert session.execute(select(ContactEmail.bouncing).where(ContactEmail.email == HANS)).scalar_one()
        summary = stats.summary(session, sent.campaign)
        assert (summary.bounced, summary.replied) == (1, 0)


def test_staff_qualify_a_responder_into_an_opportunity(factory, settings, sent):
    reply = feed(factory, settings, make_mail(f"Petra Weber <{PETRA}>", CRM, "AW: Frühjahrsaktion",
                                              "Wir brauchen 20 Regale.", headers={"In-Reply-To": sent.petra_mid}))
    with unit_of_work(factory) as session:
        opp = responses.qualify(session, settings, sent.petra_row, actor=sent.anna)
        opp_id = opp.id
    with factory() as session:
        opp = session.get_one(Opportunity, opp_id)
        assert (opp.contact_id, opp.source, opp.owner_id) == (sent.petra, OpportunitySource.CAMPAIGN, sent.anna)
        assert opp.title == "Frühjahrsaktion Bayern: Petra Weber"
        assert session.execute(select(InteractionOpportunity.reason).where(
            InteractionOpportunity.interaction_id == reply,
            InteractionOpportunity.opportunity_id == opp_id)).scalar_one() == \
            "reply to campaign “Frühjahrsaktion Bayern”"
        assert stats.summary(session, sent.campaign).opportunities == 1
        assert [p.opportunity_id for p in stats.responders(session, sent.campaign)[0]] == [opp_id]
    assert row(factory, sent.petra_row).opportunity_id == opp_id
    # her next answer to the campaign mail lands on the deal by itself
    later = feed(factory, settings, make_mail(f"Petra Weber <{PETRA}>", CRM, "AW: Frühjahrsaktion", "Und Leitern.",
                                              headers={"In-Reply-To": sent.petra_mid}))
    with factory() as session:
        assert session.execute(select(InteractionOpportunity.opportunity_id).where(
            InteractionOpportunity.interaction_id == later)).scalars().all() == [opp_id]
    with unit_of_work(factory) as session, pytest.raises(Conflict, match="exists already"):
        responses.qualify(session, settings, sent.petra_row, actor=sent.anna)
    with unit_of_work(factory) as session, pytest.raises(Conflict, match="only a reply"):
        responses.qualify(session, settings, sent.hans_row, actor=sent.anna)  # Hans did not reply
    with unit_of_work(factory) as session, pytest.raises(NotFound):
        responses.qualify(session, settings, 999_999, actor=sent.anna)
    with factory() as session:
        assert session.execute(select(func.count()).select_from(Opportunity)).scalar_one() == 1


def test_the_figures_come_from_the_ledger_and_the_outbox(factory, sent):
    with unit_of_work(factory) as session:
        campaign = session.get_one(Campaign, sent.campaign)
        for n, (state, uncertain) in enumerate([(OutboxState.FAILED, False), (OutboxState.SENT, True),
                                                (OutboxState.PENDING, False)]):
            person = create_contact(session, ContactChanges(name=f"Kunde {n}", emails=(f"k{n}@example.org",)),
                                    "DE", None)
            _released(session, campaign, person, f"k{n}@example.org", mail_state=state, uncertain=uncertain)
            if uncertain:
                uncertain_id = person.id
        for n, reason in enumerate(["opted_out", "opted_out", "bouncing", "no_basis"]):
            person = create_contact(session, ContactChanges(name=f"Weg {n}"), "DE", None)
            session.add(CampaignRecipient(campaign_id=campaign.id, contact_id=person.id,
                                          state=RecipientState.LEFT_OUT, reason=reason))
        person = create_contact(session, ContactChanges(name="Wartet", emails=("w@example.org",)), "DE", None)
        session.add(CampaignRecipient(campaign_id=campaign.id, contact_id=person.id, address="w@example.org",
                                      state=RecipientState.QUEUED, basis="consent"))
    with factory() as session:
        statements: list[str] = []

        def count(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
            statements.append(statement)

        event.listen(session.get_bind(), "before_cursor_execute", count)
        try:
            summary = stats.summary(session, sent.campaign)
        finally:
            event.remove(session.get_bind(), "before_cursor_execute", count)
        assert summary == stats.Summary(recipients=6, left_out={"opted_out": 2, "bouncing": 1, "no_basis": 1},
                                        queued=1, released=5, sent=3, failed=1, uncertain=1)
        assert len(statements) <= 3  # the campaign, the ledger grouped, the outbox grouped: whatever its size
        assert stats.uncertain(session, sent.campaign) == [(uncertain_id, "k1@example.org")]
        with pytest.raises(NotFound):
            stats.summary(session, 999_999)
        with pytest.raises(ValidationError):
            stats.responders(session, sent.campaign, page=0)
        with pytest.raises(ValidationError):
            stats.responders(session, sent.campaign, size=1000)


def test_responders_are_paged(factory, settings, sent):
    feed(factory, settings, make_mail(f"Petra Weber <{PETRA}>", CRM, "AW: 1", "Ja.",
                                      headers={"In-Reply-To": sent.petra_mid}))
    feed(factory, settings, make_mail(f"Hans Huber <{HANS}>", CRM, "AW: 2", "Auch ja.",
                                      date=utcnow() + timedelta(minutes=1),
                                      headers={"In-Reply-To": sent.hans_mid}), sender=HANS)
    with factory() as session:
        first, more = stats.responders(session, sent.campaign, size=1)
        second, last = stats.responders(session, sent.campaign, page=2, size=1)
        assert ([p.contact_id for p in first], more) == ([sent.hans], True)
        assert ([p.contact_id for p in second], last) == ([sent.petra], False)


def test_record_opt_out_marks_released_mail_once(factory, sent):
    at = utcnow()
    with unit_of_work(factory) as session:
        assert responses.record_opt_out(session, sent.petra, at=at) == 1
        assert responses.record_opt_out(session, sent.petra, at=at + timedelta(days=1)) == 0
    assert row(factory, sent.petra_row).opted_out_at == at
    assert row(factory, sent.hans_row).opted_out_at is None


def test_an_opt_out_counts_for_the_campaign_that_caused_it(factory, sent):
    """Petra got a second campaign's mail too: her link (or complaint) about the first marks only the first."""
    with unit_of_work(factory) as session:
        summer = Campaign(name="Sommeraktion", channel=Channel.EMAIL, state=CampaignState.SENDING,
                          subject="Sommer", body="{{ greeting }}", recipient_count=1)
        session.add(summer)
        session.flush()
        second = _released(session, summer, session.get_one(Contact, sent.petra), PETRA).id
    at = utcnow()
    with unit_of_work(factory) as session:
        assert responses.record_opt_out(session, sent.petra, at=at, campaign_id=sent.campaign) == 1
        assert responses.record_opt_out(session, sent.petra, at=at, campaign_id=sent.campaign) == 0
    assert row(factory, sent.petra_row).opted_out_at == at and row(factory, second).opted_out_at is None


def test_a_responder_is_qualified_only_under_its_own_campaign(factory, settings, sent):
    feed(factory, settings, make_mail(f"Petra Weber <{PETRA}>", CRM, "AW: Frühjahrsaktion", "Angebot bitte.",
                                      headers={"In-Reply-To": sent.petra_mid}))
    with pytest.raises(NotFound, match="has no recipient"), unit_of_work(factory) as session:
        responses.qualify(session, settings, sent.petra_row, actor=sent.anna, campaign_id=sent.campaign + 1)
    with unit_of_work(factory) as session:
        assert responses.qualify(session, settings, sent.petra_row, actor=sent.anna, campaign_id=sent.campaign).id


def test_the_persons_campaigns_are_in_the_export_and_anonymous_after_erasure(factory, settings, sent, tmp_path):
    import io
    import json
    import zipfile

    feed(factory, settings, make_mail(f"Petra Weber <{PETRA}>", CRM, "AW: Frühjahrsaktion", "Gern.",
                                      headers={"In-Reply-To": sent.petra_mid}))
    with unit_of_work(factory) as session:
        target = io.BytesIO()
        counts = write_export(session, sent.petra, target, sent.anna, settings=settings)
    assert counts["campaigns"] == 1
    data = json.loads(zipfile.ZipFile(io.BytesIO(target.getvalue())).read("contact.json"))
    [entry] = data["campaigns"]
    assert (entry["campaign"], entry["address"], entry["message_id"], entry["state"]) == (
        "Frühjahrsaktion Bayern", PETRA, sent.petra_mid, "released")
    assert entry["replied_at"] is not None

    with unit_of_work(factory) as session:
        counts = erase_contact(session, sent.petra, sent.anna, settings=settings)
    assert counts["campaign_recipients_anonymised"] == 1
    gone = row(factory, sent.petra_row)
    assert (gone.contact_id, gone.address, gone.message_id, gone.outgoing_mail_id, gone.reply_interaction_id) == (
        None, None, None, None, None)
    with factory() as session:
        summary = stats.summary(session, sent.campaign)
        assert (summary.recipients, summary.replied) == (2, 1)  # still counted, nobody named
        people, _ = stats.responders(session, sent.campaign)
        assert [(p.contact_id, p.contact_name) for p in people] == [(None, None)]
        found = session.execute(select(CampaignRecipient).where(CampaignRecipient.address == PETRA)).first()
        assert found is None
        assert session.execute(select(ConsentRecord).where(ConsentRecord.contact_id == sent.petra)).first() is None


def test_a_wish_in_the_subject_counts_unless_our_subject_says_it(factory, settings, sent):
    plain = feed(factory, settings, make_mail(f"Petra Weber <{PETRA}>", CRM, "Abmelden", "",
                                              headers={"In-Reply-To": sent.petra_mid}))
    with unit_of_work(factory) as session:  # our mail to Hans was called "Newsletter abbestellen?"
        mailed = session.get_one(Interaction, session.get_one(CampaignRecipient, sent.hans_row).interaction_id)
        mailed.subject = "Newsletter abbestellen? Nein, bleiben Sie dabei!"
    kept = feed(factory, settings, make_mail(f"Hans Huber <{HANS}>", CRM,
                                             "AW: Newsletter abbestellen? Nein, bleiben Sie dabei!",
                                             "Ja, ich bleibe dabei.", headers={"In-Reply-To": sent.hans_mid}),
                sender=HANS)
    with factory() as session:
        assert [i.id for i in session.execute(responses.unsubscribe_suggested()).scalars()] == [plain]
        assert "unsubscribe_suggestion" not in session.get_one(Interaction, kept).details


def text_bounce(address: str) -> bytes:
    domain = address.partition("@")[2]
    return make_mail(f"Mail Delivery System <MAILER-DAEMON@mx.{domain}>", CRM, "Undelivered Mail Returned to Sender",
                     f"This is the mail system.\n\n<{address}>: host mx.{domain} said: 550 5.1.1 no such user\n",
                     headers={"X-Failed-Recipients": address})


def test_a_bounce_without_the_original_counts_for_the_addresses_recent_campaign_mail(factory, settings, sent):
    feed(factory, settings, text_bounce(HANS), sender="")
    assert row(factory, sent.hans_row).bounced_at is not None
    assert row(factory, sent.petra_row).bounced_at is None
    with unit_of_work(factory) as session:  # a campaign mail of long ago is not what bounced today
        session.get_one(CampaignRecipient, sent.petra_row).released_at = utcnow() - timedelta(days=30)
    feed(factory, settings, text_bounce(PETRA), sender="")
    assert row(factory, sent.petra_row).bounced_at is None


def test_staff_confirm_a_wish_to_unsubscribe_on_the_triage_page(factory, settings, sent, client):
    from tests.test_pages import csrf_token, log_in

    wish = feed(factory, settings, make_mail(f"Petra Weber <{PETRA}>", CRM, "AW: Frühjahrsaktion",
                                             "Bitte austragen.", headers={"In-Reply-To": sent.petra_mid}))
    other = feed(factory, settings, make_mail(f"Hans Huber <{HANS}>", CRM, "AW: Frühjahrsaktion",
                                              "Wie kann ich meinen Kollegen abmelden?",
                                              headers={"In-Reply-To": sent.hans_mid}), sender=HANS)
    with unit_of_work(factory) as session:
        session.get_one(StaffUser, sent.anna).password_hash = hash_password("richtig-geheim-42")
    assert log_in(client, "anna.schmidt@beispiel-firma.de", "richtig-geheim-42").status_code == 302
    page = client.get("/triage").get_data(as_text=True)
    assert "Wants to unsubscribe" in page and "Asks to be unsubscribed: “austragen”" in page
    assert f"/triage/{other}/unsubscribe" in page  # a question about someone else: staff will dismiss it
    assert email_consent(factory, sent.petra) == []  # shown, not acted on
    response = client.post(f"/triage/{wish}/unsubscribe", data={"csrf_token": csrf_token(page), "decision": "confirm"})
    assert response.status_code == 302
    assert email_consent(factory, sent.petra) == [("opted_out", "reply")]
    page = client.get("/triage").get_data(as_text=True)
    assert "Opted out of campaign mail" in page and f"/triage/{wish}/unsubscribe" not in page
    client.post(f"/triage/{other}/unsubscribe", data={"csrf_token": csrf_token(page), "decision": "dismiss"})
    assert email_consent(factory, sent.hans) == []
    page = client.get("/triage").get_data(as_text=True)
    assert "Wants to unsubscribe" not in page
    # decided already: a second click changes nothing and says so
    client.post(f"/triage/{wish}/unsubscribe", data={"csrf_token": csrf_token(page), "decision": "confirm"})
    assert "Nothing changed" in client.get("/triage").get_data(as_text=True)


def test_merging_contacts_moves_their_campaign_rows(factory, sent):
    with unit_of_work(factory) as session:
        other = Campaign(name="Herbst", channel=Channel.EMAIL, state=CampaignState.DONE, subject="s", body="b")
        session.add(other)
        session.flush()
        hans = session.get_one(Contact, sent.hans)
        herbst_row = _released(session, other, hans, HANS).id
        merge_contacts(session, session.get_one(Contact, sent.petra), hans, sent.anna)
    # both got the spring campaign: Hans's row stays counted without a person; his autumn row is Petra's now
    assert row(factory, sent.petra_row).contact_id == sent.petra
    assert row(factory, sent.hans_row).contact_id is None
    assert row(factory, herbst_row).contact_id == sent.petra
    with factory() as session:
        assert stats.summary(session, sent.campaign).recipients == 2

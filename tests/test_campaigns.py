"""Campaigns: the templates (placeholders, the sandbox, the greeting with title, the HTML part), who a campaign
reaches and who it leaves out for which reason, and the service: validation, the send ledger with its held,
rendered outbox mails (one-click opt-out headers, a Message-ID each), approval above the threshold, pause,
resume, cancel, and the test mail to oneself."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, update

from crm_inbox import outbox
from crm_inbox.campaigns import audience, placeholders, service
from crm_inbox.config import replace
from crm_inbox.consent import double_opt_in as doi
from crm_inbox.consent import ledger
from crm_inbox.db import unit_of_work
from crm_inbox.errors import Conflict, Forbidden, NotFound, ValidationError
from crm_inbox.models import (
    AuditEntry,
    Campaign,
    CampaignRecipient,
    CampaignState,
    Channel,
    Company,
    ConsentRecord,
    ConsentState,
    Contact,
    ContactEmail,
    Interaction,
    LegalBasis,
    Order,
    OutboxState,
    OutgoingMail,
    RecipientState,
    Segment,
    utcnow,
)
from crm_inbox.staff.service import add_staff
from tests.test_tickets import sink  # noqa: F401  (sink is a fixture)

BASE = "https://crm.beispiel-firma.de"
SECRET = "campaign-test-secret"
BODY = "{{ greeting }}\n\nunsere Neuheiten für {{ company }}: https://beispiel-firma.de/neu?a=1&b=2.\n\n" \
       "Viele Grüße\n{{ owner }}"


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    return replace(settings, web={"base_url": BASE + "/", "secret_key": SECRET},
                   notifications={"from_address": "crm@beispiel-firma.de"})


def _consent(session, contact_id: int, state: ConsentState, basis: LegalBasis | None) -> None:  # type: ignore[no-untyped-def]
    session.add(ConsentRecord(contact_id=contact_id, channel=Channel.EMAIL, state=state, legal_basis=basis,
                              source="staff", proof={}))
    session.flush()


@pytest.fixture
def world(factory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Staff, a segment (tag "kampagne") and one member per way of being included or left out."""
    with unit_of_work(factory) as session:
        admin = add_staff(session, "chefin@beispiel-firma.de", "Clara Chefin", "admin")
        staff = add_staff(session, "max@beispiel-firma.de", "Max Vertrieb", "staff")
        reader = add_staff(session, "lesen@beispiel-firma.de", "Lea Lesend", "readonly")
        company = Company(name="Beispiel Bau GmbH", street="Hauptstr. 1", postcode="80331", city="München")
        session.add(company)
        session.flush()
        ids: dict[str, int] = {}

        def person(key: str, name: str, emails: list[tuple[str, bool]], tagged: bool = True, **kw: Any) -> int:
            contact = Contact(name=name, tags=["kampagne"] if tagged else [], owner_id=staff.id, **kw)
            contact.emails = [ContactEmail(email=e, bouncing=b) for e, b in emails]
            session.add(contact)
            session.flush()
            ids[key] = contact.id
            return contact.id

        anna = person("anna", "Anna Müller", [("anna@kunde.de", False)], salutation="frau", title="Dr.",
                      company_id=company.id, fields={"Branche": "Hochbau"})
        _consent(session, anna, ConsentState.OPTED_IN, LegalBasis.CONSENT)
        bert = person("bert", "Bert Braun", [("bert@kunde.de", False)])
        _consent(session, bert, ConsentState.OPTED_IN, LegalBasis.CONSENT)
        _consent(session, bert, ConsentState.OPTED_OUT, None)
        carla = person("carla", "Carla Christ", [("carla@kunde.de", True)])
        _consent(session, carla, ConsentState.OPTED_IN, LegalBasis.CONSENT)
        person("dora", "Dora Dietz", [("dora@kunde.de", False)])  # nothing recorded
        emil = person("emil", "Emil Ernst", [("emil@kunde.de", False)], salutation="herr", language="en",
                      city="Augsburg", street="Maxstr. 2", postcode="86150")
        _consent(session, emil, ConsentState.OPTED_IN, LegalBasis.EXISTING_CUSTOMER)
        session.add(Order(number="AB-2026-0001", contact_id=emil, order_date=date(2026, 1, 5), address=[],
                          net_total=Decimal("100.00"), vat_total=Decimal("19.00"), gross_total=Decimal("119.00")))
        fritz = person("fritz", "Fritz Fuchs", [("fritz@kunde.de", False)])
        _consent(session, fritz, ConsentState.OPTED_IN, LegalBasis.EXISTING_CUSTOMER)  # but never bought
        gina = person("gina", "Gina Graf", [("gina@kunde.de", False)])
        _consent(session, gina, ConsentState.OPTED_IN, LegalBasis.CONSENT)
        ledger.suppress(session, Channel.EMAIL, "GINA@kunde.de", "erased")  # an erased person's address
        hans = person("hans", "Hans Huber", [("alt@kunde.de", True), ("hans@kunde.de", False)])
        _consent(session, hans, ConsentState.OPTED_IN, LegalBasis.CONSENT)
        ida = person("ida", "Ida Igel", [])
        _consent(session, ida, ConsentState.OPTED_IN, LegalBasis.CONSENT)
        jan = person("jan", "Jan Jung", [("jan@kunde.de", False)], tagged=False)
        _consent(session, jan, ConsentState.OPTED_IN, LegalBasis.CONSENT)
        segment = Segment(name="Kampagne", definition={"field": "tags", "op": "has", "value": "kampagne"})
        session.add(segment)
        session.flush()
        return {"ids": ids, "admin": admin.id, "staff": staff.id, "reader": reader.id, "segment": segment.id}


LEFT_OUT = {"opted_out": 1, "bouncing": 1, "no_consent": 1, "no_purchase": 1, "erased": 1, "no_address": 1}


def _create(factory, settings, world, **kw: Any) -> int:  # type: ignore[no-untyped-def]
    values = {"name": "Frühjahr", "segment_id": world["segment"], "channel": "email",
              "subject": "Neuheiten für {{ name }}", "body": BODY, "sender_name": "Beispiel Vertrieb",
              "actor": world["staff"], **kw}
    with unit_of_work(factory) as session:
        return service.create(session, settings, **values).id


# --- templates ---

@pytest.mark.parametrize(("subject", "body", "field", "words"), [
    ("Hallo", "{{ ''.__class__ }}", "body", "parts"),
    ("Hallo", "{{ fields.__class__ }}", "body", "unsafe"),
    ("Hallo", "{{ fields.__class__.__mro__ }}", "body", "parts"),
    ("Hallo", "{{ ''|attr('__class__') }}", "body", "filter"),
    ("Hallo", "{% for x in range(10) %}{% endfor %}", "body", "not for"),
    ("Hallo", "{{ name * 100000000 }}", "body", "not mul"),
    ("Hallo {{ frist_name }}", "Text", "subject", "unknown placeholder 'frist_name'"),
    ("Hallo", "{% if title %}{{ titel }}{% endif %}", "body", "unknown placeholder 'titel'"),
    ("Hallo", "{{ name ", "body", "line 1"),
    ("Hallo", "{{ fields.items }}", "body", 'fields["items"]'),
])
def test_the_sandbox_refuses_what_a_mail_text_never_needs(subject, body, field, words):
    with pytest.raises(ValidationError) as caught:
        placeholders.check(subject, body)
    assert caught.value.field == field
    assert words in caught.value.message


def test_placeholders_render_text_and_html():
    placeholders.check("Hallo {{ first_name }}", "{% if title %}{{ title }} {% endif %}{{ fields.Größe|default('-') }}"
                       "{{ fields['items'] }}")
    rendered = placeholders.render("Neu\r\nfür {{ name }}", "{{ greeting }}\n\nSiehe https://x.de/a?b=1&c=<2>.\n"
                                   "Zeile 2 <b>\n\n{{ fields.fehlt }}Ende", {**placeholders.sample(), "fields": {}},
                                   opt_out_url=f"{BASE}/unsubscribe/t.k", footer="Hinweis")
    assert rendered.subject == "Neu für Anna Müller"  # one line
    assert rendered.text.startswith("Sehr geehrte Frau Dr. Müller,\n")
    assert rendered.text.endswith(f"\n-- \nHinweis\nKeine weiteren Mails? Abmelden: {BASE}/unsubscribe/t.k\n")
    assert "\nEnde\n" in rendered.text  # a missing free field is empty
    html = rendered.html
    assert '<a href="https://x.de/a?b=1&amp;c=">https://x.de/a?b=1&amp;c=</a>&lt;2&gt;.' in html
    assert "Zeile 2 &lt;b&gt;</p>" in html and "<br>" in html
    assert f'Abmelden: <a href="{BASE}/unsubscribe/t.k">' in html
    assert "<img" not in html  # no tracking pixel
    english = placeholders.render("x", "y", placeholders.sample("en"), opt_out_url="https://u", language="en")
    assert "No more mails? Unsubscribe: https://u" in english.text


def test_the_greeting_has_the_title_and_the_persons_language(factory, settings, world):
    with factory() as session:
        facts = placeholders.facts(session, settings, [world["ids"]["anna"], world["ids"]["emil"],
                                                       world["ids"]["hans"]])
    anna, emil, hans = (facts[world["ids"][k]] for k in ("anna", "emil", "hans"))
    assert anna["greeting"] == "Sehr geehrte Frau Dr. Müller,"
    assert (anna["first_name"], anna["last_name"], anna["company"], anna["owner"]) == (
        "Anna", "Müller", "Beispiel Bau GmbH", "Max Vertrieb")
    assert anna["city"] == "München"  # the company's, as she has none
    assert anna["fields"]["Branche"] == "Hochbau"
    assert emil["greeting"] == "Dear Mr Ernst,"  # his language is English
    assert hans["email"] == "hans@kunde.de"  # the first address that does not bounce


# --- audience ---

def test_the_audience_leaves_out_with_the_reason(factory, settings, world):
    ids = world["ids"]
    with factory() as session:
        preview = audience.preview(session, settings, world["segment"], Channel.EMAIL)
        decided = {m.contact_id: m for batch in audience.members(session, settings, world["segment"],
                                                                 Channel.EMAIL, batch=4) for m in batch}
    assert preview.included == 3
    assert preview.left_out == LEFT_OUT
    assert ids["jan"] not in decided  # not in the segment
    assert decided[ids["anna"]] == audience.Member(ids["anna"], "anna@kunde.de", True, "consent", None)
    assert decided[ids["emil"]].basis == "existing_customer"
    assert decided[ids["hans"]].address == "hans@kunde.de"
    assert {k: decided[ids[k]].reason for k in ("bert", "carla", "dora", "fritz", "gina", "ida")} == {
        "bert": "opted_out", "carla": "bouncing", "dora": "no_consent", "fritz": "no_purchase", "gina": "erased",
        "ida": "no_address"}
    assert set(LEFT_OUT) <= set(audience.REASONS)


def test_letters_need_a_postal_address(factory, settings, world):
    with factory() as session:
        decided = {m.contact_id: m for batch in audience.members(session, settings, world["segment"],
                                                                 Channel.LETTER) for m in batch}
    ids = world["ids"]
    assert decided[ids["anna"]].allowed  # the company's address
    assert decided[ids["emil"]].allowed and decided[ids["emil"]].address is None
    assert decided[ids["bert"]].reason == "no_postal_address"  # his objection was to e-mail only
    assert decided[ids["dora"]].reason == "no_postal_address"


# --- the service ---

def test_validation(factory, settings, world):
    def refused(field: str, **kw: Any) -> None:
        with pytest.raises(ValidationError) as caught:
            _create(factory, settings, world, **kw)
        assert caught.value.field == field

    refused("name", name="  ")
    refused("name", name="x" * 201)
    refused("channel", channel="phone")
    refused("channel", channel="fax")
    refused("segment_id", segment_id=99999)
    refused("subject", subject="")
    refused("subject", subject="x" * 201)
    refused("body", body=" \n")
    refused("body", body="x" * 20_001)
    refused("body", body="{{ anrede }}")
    _create(factory, settings, world, name="Brief", channel="letter", subject="")  # a letter needs no subject
    refused("name", name="brief")  # taken, in any case
    with pytest.raises(Forbidden):
        _create(factory, settings, world, name="Lesend", actor=world["reader"])
    campaign_id = _create(factory, settings, world)
    with unit_of_work(factory) as session:
        campaign = service.update(session, settings, campaign_id, actor=world["staff"], name="Frühjahr 2026",
                                  body="{{ greeting }}\nNeu.")
        assert (campaign.name, campaign.body) == ("Frühjahr 2026", "{{ greeting }}\nNeu.")
        with pytest.raises(ValidationError):
            service.update(session, settings, campaign_id, actor=world["staff"], channel="phone")
    with factory() as session:
        actions = session.execute(select(AuditEntry.action, AuditEntry.details).where(
            AuditEntry.object_type == "campaign", AuditEntry.object_id == campaign_id)
            .order_by(AuditEntry.id)).all()
        assert [a for a, _ in actions] == ["create", "update"]
        assert actions[1][1] == {"name": ["Frühjahr", "Frühjahr 2026"], "body": True}
        with pytest.raises(NotFound):
            service.get(session, 99999)


def test_start_writes_the_ledger_and_held_mails(factory, settings, world, monkeypatch):
    monkeypatch.setattr(service, "BATCH", 2)  # several batches, and one of only left-out people
    ids = world["ids"]
    campaign_id = _create(factory, settings, world)
    with unit_of_work(factory) as session:
        campaign = service.start(session, settings, campaign_id, actor=world["staff"])
        assert campaign.state == CampaignState.SENDING
        assert (campaign.recipient_count, campaign.left_out) == (3, LEFT_OUT)
        assert campaign.started_at is not None and campaign.next_send_at is not None
    with unit_of_work(factory) as session, pytest.raises(Conflict):
        service.start(session, settings, campaign_id, actor=world["staff"])  # twice: never a second ledger
    with factory() as session:
        rows = session.scalars(select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign_id)).all()
        by_contact = {r.contact_id: r for r in rows}
        assert len(rows) == 9
        assert {k for k in ids if ids[k] in by_contact and by_contact[ids[k]].state == RecipientState.QUEUED} == {
            "anna", "emil", "hans"}
        assert {by_contact[ids[k]].reason for k in ("bert", "carla", "dora", "fritz", "gina", "ida")} == set(LEFT_OUT)
        assert all(r.address is None and r.outgoing_mail_id is None for r in rows if r.state == RecipientState.LEFT_OUT)
        mails = {m.id: m for m in session.scalars(select(OutgoingMail))}
        assert len(mails) == 3 and all(m.state == OutboxState.HELD for m in mails.values())
        message_ids = set()
        for key in ("anna", "emil", "hans"):
            recipient = by_contact[ids[key]]
            mail = mails[recipient.outgoing_mail_id]
            assert mail.to_address == recipient.address == f"{key}@kunde.de"
            assert mail.message_id == recipient.message_id
            message_ids.add(mail.message_id)
            assert mail.from_name == "Beispiel Vertrieb"
            url = mail.headers["List-Unsubscribe"][1:-1]
            assert url.startswith(f"{BASE}/unsubscribe/") and mail.headers["List-Unsubscribe"][0] == "<"
            assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert "Auto-Submitted" not in mail.headers  # replies are wanted
            # the opt-out line in the person's language, as the greeting (Emil reads English)
            line = f"Unsubscribe: {url}\n" if key == "emil" else f"Abmelden: {url}\n"
            assert line in mail.body and f'href="{url}"' in mail.html
            message = outbox.build_message(settings, mail, attachments=[])
            assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert message["Message-ID"] == recipient.message_id
        assert len(message_ids) == 3
        anna = mails[by_contact[ids["anna"]].outgoing_mail_id]
        assert anna.subject == "Neuheiten für Anna Müller"
        assert anna.body.startswith("Sehr geehrte Frau Dr. Müller,\n\nunsere Neuheiten für Beispiel Bau GmbH")
        emil = mails[by_contact[ids["emil"]].outgoing_mail_id]
        # the existing customer's notice (§ 7(3) Nr. 4 UWG), in his language
        notice = "You may object to the use of your e-mail address for advertising at any time"
        assert notice in emil.body and notice in emil.html and "widersprechen" not in emil.body
        assert notice not in anna.body and "widersprechen" not in anna.body
        assert session.scalar(select(func.count()).select_from(Interaction)) == 0  # the sender records those
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "start", AuditEntry.object_id == campaign_id)) == 1
        anna_url = anna.headers["List-Unsubscribe"][1:-1]
    # the link opts exactly her out
    with unit_of_work(factory) as session:
        done = doi.unsubscribe(session, SECRET, anna_url.rsplit("/", 1)[1])
        assert done.record is not None and done.record.contact_id == ids["anna"]


def test_approval_above_the_threshold(factory, settings, world):
    settings = replace(settings, campaigns={"approval_threshold": 2})
    campaign_id = _create(factory, settings, world)
    with unit_of_work(factory) as session:
        campaign = service.start(session, settings, campaign_id, actor=world["staff"])
        assert campaign.state == CampaignState.AWAITING_APPROVAL
        assert campaign.recipient_count == 3
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(CampaignRecipient)) == 0
        assert session.scalar(select(func.count()).select_from(OutgoingMail)) == 0
    with unit_of_work(factory) as session:
        with pytest.raises(Forbidden):
            service.approve(session, settings, campaign_id, actor=world["staff"])
        with pytest.raises(Conflict):
            service.update(session, settings, campaign_id, actor=world["staff"], name="Anders")
    with unit_of_work(factory) as session:
        campaign = service.approve(session, settings, campaign_id, actor=world["admin"])
        assert campaign.state == CampaignState.SENDING
        assert campaign.approved_by_id == world["admin"] and campaign.approved_at is not None
    with unit_of_work(factory) as session, pytest.raises(Conflict):
        service.approve(session, settings, campaign_id, actor=world["admin"])
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(OutgoingMail)) == 3
    # an admin's own start is the approval
    second = _create(factory, settings, world, name="Zweite")
    with unit_of_work(factory) as session:
        campaign = service.start(session, settings, second, actor=world["admin"])
        assert campaign.state == CampaignState.SENDING and campaign.approved_by_id == world["admin"]


def test_pause_resume_cancel_and_delete(factory, settings, world):
    campaign_id = _create(factory, settings, world)
    with unit_of_work(factory) as session:
        service.start(session, settings, campaign_id, actor=world["staff"])
    with unit_of_work(factory) as session:
        assert service.pause(session, campaign_id, actor=world["staff"]).state == CampaignState.PAUSED
        with pytest.raises(Conflict):
            service.pause(session, campaign_id, actor=world["staff"])
        assert service.resume(session, campaign_id, actor=world["staff"]).state == CampaignState.SENDING
        # what the sender does for one recipient: release its mail
        first = session.scalars(select(CampaignRecipient).where(
            CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == RecipientState.QUEUED)
            .order_by(CampaignRecipient.id)).first()
        assert first is not None
        first.state, first.released_at = RecipientState.RELEASED, utcnow()
        assert first.outgoing_mail_id is not None
        outbox.release(session, first.outgoing_mail_id)
        released_mail = first.outgoing_mail_id
    with unit_of_work(factory) as session:
        campaign = service.cancel(session, campaign_id, actor=world["staff"])
        assert campaign.state == CampaignState.CANCELLED and campaign.finished_at is not None
    with factory() as session:
        states = dict(session.execute(select(CampaignRecipient.state, func.count()).where(
            CampaignRecipient.campaign_id == campaign_id).group_by(CampaignRecipient.state)).all())
        assert states == {RecipientState.RELEASED: 1, RecipientState.CANCELLED: 2, RecipientState.LEFT_OUT: 6}
        assert [m.id for m in session.scalars(select(OutgoingMail))] == [released_mail]  # held ones deleted
    with unit_of_work(factory) as session:
        with pytest.raises(Conflict):
            service.cancel(session, campaign_id, actor=world["staff"])
        with pytest.raises(Conflict):
            service.resume(session, campaign_id, actor=world["staff"])
        with pytest.raises(Conflict):  # it reached somebody: it stays as the record
            service.delete(session, campaign_id, actor=world["staff"])
    draft = _create(factory, settings, world, name="Entwurf")
    with unit_of_work(factory) as session:
        service.delete(session, draft, actor=world["staff"])
    with factory() as session:
        assert session.get(Campaign, draft) is None


def test_preview_for_a_person_and_the_first_member(factory, settings, world):
    campaign_id = _create(factory, settings, world)
    with factory() as session:
        first = service.preview_for(session, settings, campaign_id)
        emil = service.preview_for(session, settings, campaign_id, world["ids"]["emil"])
        with pytest.raises(NotFound):
            service.preview_for(session, settings, campaign_id, 99999)
    assert first.subject == "Neuheiten für Anna Müller"
    assert "Abmelden: " + BASE + "/unsubscribe/" in first.text
    assert emil.text.startswith("Dear Mr Ernst,") and "transmission costs at the basic rates" in emil.text
    assert "No more mails? Unsubscribe: " + BASE + "/unsubscribe/" in emil.text  # his language, to the end


def test_a_test_mail_goes_to_oneself_only(factory, settings, world, sink):  # noqa: F811
    handler, port = sink
    settings = replace(settings, notifications={"smtp_host": "127.0.0.1", "smtp_port": port, "timeout_seconds": 5,
                                                "from_address": "crm@beispiel-firma.de"})
    campaign_id = _create(factory, settings, world)
    with unit_of_work(factory) as session:
        mail = service.send_test(session, settings, campaign_id, actor=world["staff"])
        assert mail.state == OutboxState.PENDING
    assert outbox.send_pending(factory, settings) == {"sent": 1, "failed": 0}
    (received,) = handler.received
    assert received.rcpt_tos == ["max@beispiel-firma.de"]
    assert received.message["Subject"] == "[Test] Neuheiten für Anna Müller"
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(CampaignRecipient)) == 0
        assert session.scalar(select(func.count()).select_from(Interaction)) == 0
        assert session.get_one(Campaign, campaign_id).state == CampaignState.DRAFT
    # its opt-out link names nobody: clicking it opts nobody out
    token = received.message["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1]
    with unit_of_work(factory) as session:
        doi.unsubscribe(session, SECRET, token)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(ConsentRecord).where(
            ConsentRecord.state == ConsentState.OPTED_OUT)) == 1  # Bert's, from the world


def test_a_letter_campaign_queues_without_mail(factory, settings, world):
    campaign_id = _create(factory, settings, world, channel="letter", subject="Unsere Neuheiten")
    with unit_of_work(factory) as session:
        campaign = service.start(session, settings, campaign_id, actor=world["staff"])
        assert campaign.state == CampaignState.SENDING
        with pytest.raises(Conflict):
            service.pause(session, campaign_id, actor=world["staff"])
        with pytest.raises(Conflict):
            service.send_test(session, settings, campaign_id, actor=world["staff"])
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(OutgoingMail)) == 0
        queued = session.scalars(select(CampaignRecipient).where(
            CampaignRecipient.state == RecipientState.QUEUED)).all()
        assert queued and all(r.address is None and r.basis in ("legitimate_interest", "consent") for r in queued)


def test_starting_needs_the_base_url_and_somebody_to_reach(factory, settings, world):
    campaign_id = _create(factory, settings, world)
    with unit_of_work(factory) as session, pytest.raises(Conflict, match="base_url"):
        service.start(session, replace(settings, web={"base_url": ""}), campaign_id, actor=world["staff"])
    with unit_of_work(factory) as session:
        session.execute(update(Contact).values(tags=[]))
    with unit_of_work(factory) as session, pytest.raises(Conflict, match="nobody"):
        service.start(session, settings, campaign_id, actor=world["staff"])
    with factory() as session:
        assert session.get_one(Campaign, campaign_id).state == CampaignState.DRAFT


# --- review fixes: values only real people have, per-campaign opt-outs, Reply-To, https links, actions ---

def test_a_template_that_only_real_values_break_is_a_clear_error(factory, settings, world):
    """check() renders an example person (whose free fields all have a value); a real person without the field
    makes ``"" < 1`` a TypeError: the preview and the start answer a ValidationError naming the person."""
    body = "{% if not fields.rabatt %}{{ fields.rabatt < 1 }}{% endif %}"
    placeholders.check("Hallo", body)  # the example person passes
    campaign_id = _create(factory, settings, world, body=body)
    with factory() as session, pytest.raises(ValidationError, match="template error"):
        service.preview_for(session, settings, campaign_id)
    with pytest.raises(ValidationError, match=r"contact \d+ \(Anna Müller\)"), unit_of_work(factory) as session:
        service.start(session, settings, campaign_id, actor=world["staff"])
    with factory() as session:  # nothing was queued (the unit of work rolled back)
        assert session.get_one(Campaign, campaign_id).state == CampaignState.DRAFT
        assert session.scalar(select(func.count()).select_from(OutgoingMail)) == 0


def _release_all(factory, campaign_id: int) -> None:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        session.execute(update(CampaignRecipient).where(
            CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == RecipientState.QUEUED)
            .values(state=RecipientState.RELEASED, released_at=utcnow()))


def test_the_opt_out_link_counts_for_its_own_campaign_only(factory, settings, world):
    from crm_inbox.campaigns import responses

    first = _create(factory, settings, world, name="Frühjahr")
    second = _create(factory, settings, world, name="Sommer")
    for campaign_id in (first, second):
        with unit_of_work(factory) as session:
            service.start(session, settings, campaign_id, actor=world["staff"])
        _release_all(factory, campaign_id)
    anna = world["ids"]["anna"]
    with factory() as session:
        mail = session.execute(select(OutgoingMail).where(
            OutgoingMail.dedupe_key == f"campaign:{second}:{anna}")).scalar_one()
        token = mail.headers["List-Unsubscribe"][1:-1].rsplit("/", 1)[1]
    with unit_of_work(factory) as session:
        done = doi.unsubscribe(session, SECRET, token)
        assert done.campaign_id == second
        assert responses.record_opt_out(session, anna, at=utcnow(), campaign_id=done.campaign_id) == 1
    with factory() as session:
        marked = dict(session.execute(select(CampaignRecipient.campaign_id, CampaignRecipient.opted_out_at).where(
            CampaignRecipient.contact_id == anna)).all())
        assert marked[second] is not None and marked[first] is None  # the summer mail made her opt out
    with unit_of_work(factory) as session:  # an old link without a campaign: every mail of hers as before
        assert responses.record_opt_out(session, anna, at=utcnow()) == 1


def test_replies_reach_the_crm_when_campaign_mail_comes_from_another_address(factory, settings, world, tmp_path):
    from crm_inbox.config import ConfigError, load_settings

    crm = replace(settings, mail={"crm_addresses": ("crm@beispiel-firma.de",),
                                  "support_addresses": ("hilfe@beispiel-firma.de",)})
    news = replace(crm, campaigns={"from_address": "news@beispiel-firma.de"})
    assert service.reply_to(news) == "crm@beispiel-firma.de"
    assert service.reply_to(crm) is None  # [notifications] from_address is the CRM's own
    assert service.reply_to(replace(crm, campaigns={"from_address": "HILFE@beispiel-firma.de"})) is None
    campaign_id = _create(factory, news, world)
    with unit_of_work(factory) as session:
        service.start(session, news, campaign_id, actor=world["staff"])
    with factory() as session:
        mails = session.scalars(select(OutgoingMail)).all()
        assert mails and all(m.headers["Reply-To"] == "crm@beispiel-firma.de" for m in mails)
        assert all(m.from_address == "news@beispiel-firma.de" for m in mails)
        message = outbox.build_message(news, mails[0], attachments=[])
        assert message["Reply-To"] == "crm@beispiel-firma.de"
    for wrong in ("Newsletter <news@beispiel-firma.de>", "a@b.de, c@d.de", "news", "news@beispiel firma.de"):
        path = tmp_path / "bad.toml"
        path.write_text(f'[campaigns]\nfrom_address = "{wrong}"\n', encoding="utf-8")
        with pytest.raises(ConfigError, match=r"\[campaigns\] from_address"):
            load_settings(path, environ={})
    path.write_text('[campaigns]\nfrom_address = "news@beispiel-firma.de"\n', encoding="utf-8")
    assert load_settings(path, environ={}).campaigns.from_address == "news@beispiel-firma.de"


@pytest.mark.parametrize(("base", "ok"), [
    ("http://crm.beispiel-firma.de", False), ("ftp://crm.beispiel-firma.de", False),
    ("http://localhost.beispiel-firma.de", False), ("http://localhost:8000", True), ("http://127.0.0.1:5000/", True),
    ("http://[::1]:8080", True), ("https://crm.beispiel-firma.de/crm/", True)])
def test_opt_out_links_travel_over_https_only(factory, settings, world, base, ok):
    campaign_id = _create(factory, settings, world)
    chosen = replace(settings, web={"base_url": base, "secret_key": SECRET})
    with unit_of_work(factory) as session:
        if ok:
            assert service.start(session, chosen, campaign_id, actor=world["staff"]).state == CampaignState.SENDING
        else:
            with pytest.raises(Conflict, match="https"):
                service.start(session, chosen, campaign_id, actor=world["staff"])


def test_actions_say_what_each_state_allows(factory, settings, world):
    email = Campaign(name="x", channel=Channel.EMAIL, state=CampaignState.DRAFT, subject="s", body="b")
    letter = Campaign(name="y", channel=Channel.LETTER, state=CampaignState.DRAFT, subject="s", body="b")
    expected = {
        (Channel.EMAIL, CampaignState.DRAFT): {"edit", "delete", "start", "test"},
        (Channel.EMAIL, CampaignState.AWAITING_APPROVAL): {"approve", "cancel", "test"},
        (Channel.EMAIL, CampaignState.SENDING): {"pause", "cancel", "test"},
        (Channel.EMAIL, CampaignState.PAUSED): {"resume", "cancel", "test"},
        (Channel.EMAIL, CampaignState.DONE): {"test"},
        (Channel.EMAIL, CampaignState.CANCELLED): {"delete", "test"},
        (Channel.LETTER, CampaignState.DRAFT): {"edit", "delete", "start"},
        (Channel.LETTER, CampaignState.SENDING): {"cancel", "print"},
        (Channel.LETTER, CampaignState.DONE): {"print"},
    }
    for (channel, state), allowed in expected.items():
        campaign = email if channel == Channel.EMAIL else letter
        campaign.state = state
        assert service.actions(campaign) == allowed, (channel, state)
        assert allowed <= set(service.ACTIONS)
    # the services agree: a draft is deleted, not cancelled
    campaign_id = _create(factory, settings, world)
    with unit_of_work(factory) as session, pytest.raises(Conflict):
        service.cancel(session, campaign_id, actor=world["staff"])


def test_suppressed_addresses_are_left_out_for_their_reason(factory, settings, world):
    from crm_inbox.campaigns import sending

    with unit_of_work(factory) as session:
        olga = Contact(name="Olga Ohm", tags=["kampagne"])
        olga.emails = [ContactEmail(email="olga@kunde.de")]
        session.add(olga)
        session.flush()
        _consent(session, olga.id, ConsentState.OPTED_IN, LegalBasis.CONSENT)
        ledger.suppress(session, Channel.EMAIL, "olga@kunde.de", "unsubscribed")  # her link, as she left
        olga_id = olga.id
    with factory() as session:
        decided = {m.contact_id: m.reason for m in audience.decide(
            session, [olga_id, world["ids"]["gina"]], Channel.EMAIL)}
    assert decided == {olga_id: "opted_out", world["ids"]["gina"]: "erased"}
    # the release decides the same way
    assert sending.withdrawn(None, bouncing=False, suppression="unsubscribed") == "opted_out"
    assert sending.withdrawn(None, bouncing=False, suppression="erased") == "erased"


def test_the_timeline_keeps_the_mail_without_its_opt_out_link(factory, settings, world):
    from crm_inbox.campaigns import sending

    campaign_id = _create(factory, settings, world)
    with unit_of_work(factory) as session:
        service.start(session, settings, campaign_id, actor=world["staff"])
    assert sending.release_due(factory, settings, limit=1) == 1
    with factory() as session:
        item = session.scalars(select(Interaction)).one()
        mail = session.scalars(select(OutgoingMail).where(OutgoingMail.interaction_id == item.id)).one()
        assert "/unsubscribe/" in mail.body  # the mail itself carries the link
        assert "/unsubscribe/" not in (item.text or "") and "/unsubscribe/" not in (item.excerpt or "")
        assert item.text and item.text.startswith("Sehr geehrte Frau Dr. Müller,")


def test_read_only_users_neither_qualify_nor_print_nor_take_merge_data(factory, settings, world):
    from crm_inbox.campaigns import letters, responses

    campaign_id = _create(factory, settings, world, name="Brief", channel="letter", subject="Neuheiten")
    with unit_of_work(factory) as session:
        service.start(session, settings, campaign_id, actor=world["staff"])
    for call in (lambda s: letters.print_letters(s, settings, campaign_id, actor=world["reader"]),
                 lambda s: letters.merge_data(s, settings, campaign_id, "csv", actor=world["reader"]),
                 lambda s: responses.qualify(s, settings, 1, actor=world["reader"])):
        with unit_of_work(factory) as session, pytest.raises(Forbidden):
            call(session)
    with unit_of_work(factory) as session:
        assert letters.merge_data(session, settings, campaign_id, "csv", actor=world["staff"]).count >= 1

"""Mail staff write in the CRM: on the timeline as outgoing mail by its writer, in the outbox with our Message-ID,
threading headers, the writer's name in From and the attachments; a ticket reply makes the ticket pending."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox import outbox
from crm_inbox.config import Settings, replace
from crm_inbox.contacts.inputs import CompanyChanges, ContactChanges
from crm_inbox.contacts.service import create_company, create_contact
from crm_inbox.correspondence.service import FileUpload, MailDraft, send_mail
from crm_inbox.db import unit_of_work
from crm_inbox.errors import ValidationError
from crm_inbox.models import (
    AuditEntry,
    Contact,
    ContactEmail,
    Direction,
    Interaction,
    InteractionContact,
    InteractionKind,
    InteractionStaff,
    OutgoingMail,
    Ticket,
    TicketEvent,
    TicketState,
    utcnow,
)
from crm_inbox.staff.service import add_staff
from crm_inbox.tickets import service as tickets
from crm_inbox.timeline.service import record_interaction
from tests.conftest import CRM
from tests.test_pages import PASSWORD, STAFF, csrf_token, log_in
from tests.test_tickets import sink  # noqa: F401  (a fixture)
from web.pages import compose  # noqa: F401  (its routes; until web/pages/__init__.py imports it)

PDF = b"%PDF-1.4\n% a small test document\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"
COMPANY = {"name": "Beispiel Firma GmbH", "seat": "München", "register_court": "Amtsgericht München",
           "register_number": "HRB 123456", "managing_directors": "Max Muster", "vat_id": "DE123456789"}


@dataclass
class World:
    anna: int
    petra: int
    company: int


@pytest.fixture
def mail_settings(settings: Settings) -> Settings:
    return replace(settings, company=COMPANY, notifications={"from_address": CRM})


@pytest.fixture
def world(factory: sessionmaker[Session]) -> World:
    with unit_of_work(factory) as session:
        anna = add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt")
        company = create_company(session, CompanyChanges(name="Weber Logistik GmbH"), "DE", None)
        petra = create_contact(session, ContactChanges(name="Petra Weber", company_id=company.id,
                                                       emails=("petra@weber-logistik.de", "p.weber@weber-logistik.de")),
                               "DE", None)
        return World(anna.id, petra.id, company.id)


def customer_mail(session: Session, world: World, **details: object) -> Interaction:
    petra = session.get_one(Contact, world.petra)
    return record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.IN,
                              occurred_at=utcnow(),
                              subject="Lieferung", text="Wo bleibt die Lieferung?",
                              source_ref="<q1@weber-logistik.de>", contacts=[(petra, "from")], details=details)


def test_a_mail_to_a_contact_is_on_the_timeline_by_its_writer_and_queued_with_signature_and_attachment(
        factory, mail_settings, world):
    with unit_of_work(factory) as session:
        asked = customer_mail(session, world, references=["<q0@weber-logistik.de>"])
        item = send_mail(session, mail_settings, MailDraft(
            to="", subject="Re: Lieferung", text="Guten Tag Frau Weber,\n\ndie Lieferung kommt morgen.\n",
            attachments=(FileUpload("../../Lieferschein\u202eFDP.pdf", "application/pdf", PDF),),
            contact_id=world.petra, in_reply_to=asked.id), by=world.anna)
        item_id, asked_id = item.id, asked.id
    with factory() as session:
        item = session.get_one(Interaction, item_id)
        assert (item.kind, item.direction, item.created_by_id) == (InteractionKind.EMAIL, Direction.OUT, world.anna)
        assert item.company_id == world.company and item.subject == "Re: Lieferung"
        assert item.excerpt == "Guten Tag Frau Weber, die Lieferung kommt morgen."
        links = session.execute(select(InteractionContact.contact_id, InteractionContact.role).where(
            InteractionContact.interaction_id == item_id)).all()
        assert [tuple(r) for r in links] == [(world.petra, "to")]
        assert session.execute(select(InteractionStaff.staff_id).where(
            InteractionStaff.interaction_id == item_id)).scalars().all() == [world.anna]
        (attachment,) = item.attachments
        assert attachment.filename == "Lieferschein_FDP.pdf" and attachment.content == PDF
        mail = session.execute(select(OutgoingMail)).scalar_one()
        assert mail.interaction_id == item_id and item.source_ref == mail.message_id
        assert mail.to_address == "petra@weber-logistik.de"  # the contact's first address
        assert mail.from_name == "Anna Schmidt" and mail.purpose == "staff_mail"
        assert mail.headers == {"In-Reply-To": "<q1@weber-logistik.de>",
                                "References": "<q0@weber-logistik.de> <q1@weber-logistik.de>"}
        assert item.details["in_reply_to"] == asked_id
        assert item.details["references"] == ["<q0@weber-logistik.de>", "<q1@weber-logistik.de>"]
        signature = mail.body.split("\n-- \n", 1)[1]
        assert signature.splitlines() == [
            "Anna Schmidt", "Beispiel Firma GmbH", "Sitz der Gesellschaft: München",
            "Registergericht: Amtsgericht München, HRB 123456", "Geschäftsführer: Max Muster",
            "USt-IdNr.: DE123456789"]
        assert item.text == mail.body
        (entry,) = session.execute(select(AuditEntry).where(AuditEntry.action == "mail.send")).scalars()
        assert entry.staff_id == world.anna and entry.object_id == item_id
        assert entry.details["attachments"] == ["Lieferschein_FDP.pdf"]

        message = outbox.build_message(mail_settings, mail)
    assert message["From"].addresses[0].display_name == "Anna Schmidt"
    assert message["From"].addresses[0].addr_spec == CRM  # replies come back into the CRM
    assert message["Message-ID"] == mail.message_id and message["In-Reply-To"] == "<q1@weber-logistik.de>"
    (part,) = message.iter_attachments()
    assert part.get_filename() == "Lieferschein_FDP.pdf" and part.get_content() == PDF


def test_the_mail_really_sent_carries_the_pdf(factory, mail_settings, world, sink):  # noqa: F811
    handler, port = sink
    settings = replace(mail_settings, notifications={"smtp_host": "127.0.0.1", "smtp_port": port,
                                                     "from_address": CRM, "timeout_seconds": 10})
    with unit_of_work(factory) as session:
        send_mail(session, settings, MailDraft(
            to="p.weber@weber-logistik.de", subject="Ihr Angebot", text="Anbei das Angebot.",
            attachments=(FileUpload("Angebot_AN-2026-0001.pdf", "application/pdf", PDF),), contact_id=world.petra),
            by=world.anna)
    assert outbox.send_pending(factory, settings) == {"sent": 1, "failed": 0}
    (sent,) = handler.received
    assert sent.rcpt_tos == ["p.weber@weber-logistik.de"]
    message = sent.message
    assert message["From"] == f"Anna Schmidt <{CRM}>"
    (part,) = message.iter_attachments()
    assert part.get_content_type() == "application/pdf" and part.get_filename() == "Angebot_AN-2026-0001.pdf"
    assert part.get_content() == PDF
    assert "Anbei das Angebot." in message.get_body(("plain",)).get_content()


@pytest.mark.parametrize(("draft", "field"), [
    (dict(to="a@x.de, b@x.de"), "to"),
    (dict(to="Petra <petra@weber-logistik.de>"), "to"),
    (dict(to=CRM), "to"),
    (dict(to="", contact_id=None), "to"),
    (dict(subject=" \r\n "), "subject"),
    (dict(text="\n \n"), "text"),
    (dict(attachments=(FileUpload("big.bin", "application/octet-stream", b"x" * 1100),)), "attachments"),
    (dict(in_reply_to=999_999), "in_reply_to"),
    (dict(contact_id=999_999), "contact_id"),
])
def test_a_bad_draft_names_the_field_and_writes_nothing(factory, mail_settings, world, draft, field):
    settings = replace(mail_settings, smtp={"max_message_bytes": 1024})
    fields = dict(to="", subject="Hallo", text="Text", contact_id=world.petra) | draft
    with unit_of_work(factory) as session, pytest.raises(ValidationError) as caught:
        send_mail(session, settings, MailDraft(**fields), by=world.anna)  # type: ignore[arg-type]
    assert caught.value.field == field
    with factory() as session:
        assert session.execute(select(OutgoingMail)).first() is None
        assert session.execute(select(Interaction)).first() is None


def test_a_bouncing_address_is_skipped_and_refused_when_typed(factory, mail_settings, world):
    with unit_of_work(factory) as session:
        session.execute(ContactEmail.__table__.update().where(ContactEmail.email == "petra@weber-logistik.de")
                        .values(bouncing=True))
        with pytest.raises(ValidationError, match="bounces"):
            send_mail(session, mail_settings, MailDraft(to="petra@weber-logistik.de", subject="x", text="y",
                                                        contact_id=world.petra), by=world.anna)
        send_mail(session, mail_settings, MailDraft(to="", subject="x", text="y", contact_id=world.petra),
                  by=world.anna)
        assert session.execute(select(OutgoingMail.to_address)).scalar_one() == "p.weber@weber-logistik.de"


def test_a_reply_from_the_ticket_answers_the_customers_last_mail_and_makes_the_ticket_pending(
        factory, mail_settings, world):
    with unit_of_work(factory) as session:
        asked = customer_mail(session, world)
        petra = session.get_one(Contact, world.petra)
        ticket = tickets.open_ticket(session, mail_settings, subject="Lieferung", contact=petra, interaction=asked,
                                     opened_by="petra@weber-logistik.de")
        ticket_id, label = ticket.id, ticket.label
        assert ticket.state == TicketState.NEW
        item = tickets.reply_by_mail(session, mail_settings, ticket, MailDraft(
            to="", subject="Re: Lieferung", text="Kommt morgen."), by=world.anna)
        item_id = item.id
    with factory() as session:
        ticket = session.get_one(Ticket, ticket_id)
        assert ticket.state == TicketState.PENDING and ticket.assignee_id == world.anna
        assert ticket.last_staff_reply_at is not None
        item = session.get_one(Interaction, item_id)
        assert item.ticket_id == ticket_id and item.contact_ids == [world.petra]
        mail = session.execute(select(OutgoingMail)).scalar_one()
        assert mail.subject == f"Re: Lieferung [{label}]" and mail.purpose == "ticket_reply"
        assert mail.headers["In-Reply-To"] == "<q1@weber-logistik.de>"
        kinds = [e.kind for e in ticket_events(session, ticket_id)]
        assert kinds == ["opened", "staff_reply"]


def ticket_events(session: Session, ticket_id: int) -> list[TicketEvent]:
    return list(session.execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
                                .order_by(TicketEvent.id)).scalars())


# --- the compose form on the pages ---

def test_staff_write_a_mail_with_an_attachment_on_the_customer_page(factory, mail_settings, world, client):
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
    log_in(client, STAFF)
    page = client.get(f"/contacts/{world.petra}").get_data(as_text=True)
    assert f'action="/contacts/{world.petra}/mail"' in page  # the form, to her first address
    assert 'name="to" value="petra@weber-logistik.de"' in page
    token = csrf_token(page)
    form = {"csrf_token": token, "to": "", "subject": "Unterlagen", "text": "Anbei die Unterlagen.",
            "attachments": (io.BytesIO(PDF), "Unterlagen.pdf", "application/pdf")}
    sent = client.post(f"/contacts/{world.petra}/mail", data=form, content_type="multipart/form-data")
    assert sent.status_code == 302 and sent.headers["Location"].endswith(f"/contacts/{world.petra}#timeline")
    with factory() as session:
        mail = session.execute(select(OutgoingMail)).scalar_one()
        assert (mail.to_address, mail.subject, mail.from_name) == ("petra@weber-logistik.de", "Unterlagen",
                                                                  "Jonas Becker")
        item = session.get_one(Interaction, mail.interaction_id)
        assert [a.filename for a in item.attachments] == ["Unterlagen.pdf"] and item.contact_ids == [world.petra]

    refused = client.post(f"/contacts/{world.petra}/mail", content_type="multipart/form-data", data={
        "csrf_token": token, "to": "a@x.de, b@x.de", "subject": "Noch etwas", "text": "Mein langer Text"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Not sent: to must be exactly one e-mail address" in page
    assert "Mein langer Text" in page and 'value="Noch etwas"' in page  # nothing typed is lost
    with factory() as session:
        assert len(session.execute(select(OutgoingMail)).all()) == 1


def test_a_reply_from_the_ticket_page_makes_the_ticket_pending(factory, mail_settings, world, client):
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        asked = customer_mail(session, world)
        ticket = tickets.open_ticket(session, mail_settings, subject="Lieferung", contact=session.get_one(
            Contact, world.petra), interaction=asked, opened_by="petra@weber-logistik.de")
        ticket_id = ticket.id
    log_in(client, STAFF)
    token = csrf_token(client.get(f"/tickets/{ticket_id}").get_data(as_text=True))
    refused = client.post(f"/tickets/{ticket_id}/mail", content_type="multipart/form-data", data={
        "csrf_token": token, "subject": "Re: Lieferung", "text": " ", "to": ""})
    assert refused.status_code == 422 and "Not sent: text is required" in refused.get_data(as_text=True)
    sent = client.post(f"/tickets/{ticket_id}/mail", content_type="multipart/form-data", data={
        "csrf_token": token, "subject": "Re: Lieferung", "text": "Kommt morgen.", "to": ""})
    assert sent.status_code == 302 and sent.headers["Location"].endswith(f"/tickets/{ticket_id}")
    with factory() as session:
        assert session.get_one(Ticket, ticket_id).state == TicketState.PENDING
        assert session.execute(select(OutgoingMail.headers)).scalar_one()["In-Reply-To"] == "<q1@weber-logistik.de>"

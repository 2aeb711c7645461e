"""Quotes through their life: a draft without a number, finalised with a number and its PDF on the timeline,
changed into version 2, sent by mail with the PDF, accepted into an order with identical totals, or declined
with a reason; lines checked before anything changes."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.correspondence.service import FileUpload, MailDraft
from crm_inbox.db import unit_of_work
from crm_inbox.errors import Conflict, ValidationError
from crm_inbox.models import (
    AuditEntry,
    Event,
    Interaction,
    InteractionKind,
    InteractionOpportunity,
    OutgoingMail,
    Quote,
    QuoteState,
    Reminder,
    ReminderState,
    Role,
)
from crm_inbox.sales import quotes
from crm_inbox.sales.follow_up import rule_key
from crm_inbox.sales.inputs import LineFields, ProductChanges, QuoteChanges, QuoteFields
from crm_inbox.sales.products import update_product
from crm_inbox.sales.records import today
from crm_inbox.sales.totals import compute
from tests.sales_data import D, lines, sales_settings, world

YEAR = date.today().year


@pytest.fixture
def sales(settings: Settings) -> Settings:
    return sales_settings(settings)


def _mail(text: str = "Guten Tag Frau Dr. Müller,\n\nanbei unser Angebot.") -> MailDraft:
    return MailDraft(to="", subject="Ihr Angebot", text=text)


def _audits(session: Session, action: str) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_draft_final_version_sent_accepted(sales: Settings, factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        w = world(session, sales)
        by = w.staff.id
        draft = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)), by=by)
        # A draft: no number, its totals from the one function; the deal's amount follows it.
        assert (draft.number, draft.state, draft.version) == (None, QuoteState.DRAFT, 1)
        assert quotes.filename(draft) == f"Angebot_Entwurf_{draft.id}.pdf"
        assert quotes.quote_pdf(session, sales, draft).startswith(b"%PDF")  # rendered now, marked a draft
        assert [line.position for line in draft.lines] == [1, 2, 3]
        assert [line.text for line in draft.lines] == ["Wartung", "Handbuch", "Anfahrt"]
        assert (draft.lines[0].unit, draft.lines[0].vat_rate, draft.lines[1].vat_rate) == ("Stunde", 19, 7)
        assert (draft.net_total, draft.vat_total, draft.gross_total) == (D("454.80"), D("80.44"), D("535.24"))
        assert w.opp.amount == D("454.80")

        final = quotes.finalise_quote(session, sales, draft, by=by)
        assert final is draft and final.state is QuoteState.FINAL
        assert final.number == final.label == f"AN-{YEAR}-0001"
        assert final.quote_date == today(sales)
        assert final.valid_until == final.quote_date + timedelta(days=sales.company.quote_valid_days)
        assert final.address[:2] == ["Kunde AG", "z. Hd. Frau Dr. Eva Müller"]
        document = session.get_one(Interaction, final.document_id)
        assert (document.kind, document.subject) == (InteractionKind.DOCUMENT, f"Angebot AN-{YEAR}-0001")
        [pdf] = document.attachments
        assert (pdf.filename, pdf.content_type) == (f"Angebot_AN-{YEAR}-0001.pdf", "application/pdf")
        assert pdf.content.startswith(b"%PDF") and pdf.size == len(pdf.content)
        assert pdf.sha256 == hashlib.sha256(pdf.content).hexdigest()
        assert quotes.quote_pdf(session, sales, final) == pdf.content
        assert [link.contact_id for link in document.contact_links] == [w.contact.id]
        assert session.get(InteractionOpportunity, (document.id, w.opp.id)) is not None
        assert quotes.finalise_quote(session, sales, final, by=by) is final  # nothing twice

        # A final quote is frozen: a change makes version 2 with the same number.
        second = quotes.update_quote(session, sales, final, QuoteChanges(
            lines=(*lines(w)[:2], LineFields(text="Anfahrt", quantity=D("1"), unit_price=D("40")))), by=by)
        assert second is not final
        assert (second.number, second.version, second.state) == (final.number, 2, QuoteState.DRAFT)
        assert second.label == f"AN-{YEAR}-0001-2"
        assert [line.unit_price for line in final.lines][-1] == D("33.3333")  # the letter stays as it was
        assert second.net_total == D("449.80")
        with pytest.raises(Conflict):  # version 1 has a newer version: that one changes
            quotes.update_quote(session, sales, final, QuoteChanges(intro="Hallo"), by=by)

        mail = quotes.send_quote(session, sales, second, _mail(), by=by)
        assert (second.state, final.state) == (QuoteState.SENT, QuoteState.SUPERSEDED)
        assert second.number == f"AN-{YEAR}-0001"  # no new number for a new version
        assert second.sent_message_id == mail.source_ref and second.sent_at is not None
        assert [a.filename for a in mail.attachments] == [f"Angebot_AN-{YEAR}-0001-2.pdf"]
        assert session.scalars(select(OutgoingMail)).one().to_address == "eva.mueller@kunde-ag.de"
        assert w.opp.stage == "quote_sent" and w.opp.amount == D("449.80")
        follow_up = session.scalars(select(Reminder).where(Reminder.rule_key == rule_key(second.id))).one()
        assert follow_up.state is ReminderState.OPEN and follow_up.opportunity_id == w.opp.id
        assert [v.label for v in quotes.quote_versions(session, final)] == [final.label, second.label]

        with pytest.raises(Conflict):
            quotes.accept_quote(session, sales, final, by=by)  # superseded
        order = quotes.accept_quote(session, sales, second, by=by)
        assert second.state is QuoteState.ACCEPTED and second.decided_at is not None
        assert order.number == f"AB-{YEAR}-0001"
        assert [(ol.position, ol.product_number, ol.text, ol.quantity, ol.unit_price, ol.net)
                for ol in order.lines] == [
            (1, "W-100", "Wartung", 3, D("120"), D("360.00")), (2, "B-7", "Handbuch", 2, D("24.90"), D("49.80")),
            (3, None, "Anfahrt", 1, 40, D("40.00"))]
        assert (order.net_total, order.vat_total, order.gross_total) == (
            second.net_total, second.vat_total, second.gross_total)
        assert compute(order.lines) == compute(second.lines)
        assert w.opp.stage == "won" and w.contact.role is Role.CUSTOMER
        session.refresh(follow_up)
        assert follow_up.state is ReminderState.DONE and follow_up.completion == "the quote was accepted"
        event = session.scalars(select(Event).where(Event.type == "order.created")).one()
        assert (event.type, event.subject_id, event.payload["totals"]["gross"]) == (
            "order.created", order.id, str(order.gross_total))
        confirmation = session.get_one(Interaction, order.document_id)
        assert confirmation.subject == f"Auftragsbestätigung AB-{YEAR}-0001"

        # Decided: nothing changes any more, nothing is decided twice.
        for attempt in (lambda: quotes.update_quote(session, sales, second, QuoteChanges(intro="x"), by=by),
                        lambda: quotes.accept_quote(session, sales, second, by=by),
                        lambda: quotes.decline_quote(session, sales, second, "zu teuer", by=by),
                        lambda: quotes.delete_draft(session, second, by=by),
                        lambda: quotes.send_quote(session, sales, second, _mail(), by=by)):
            with pytest.raises(Conflict):
                attempt()
        assert [len(_audits(session, a)) for a in ("quote.create", "quote.new_version", "quote.finalise",
                                                   "quote.send", "quote.accept", "order.create")] == [1, 1, 2, 1, 1, 1]


def test_decline_needs_a_reason_and_loses_the_deal(sales: Settings, factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        w = world(session, sales)
        by = w.staff.id
        quote = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)), by=by)
        with pytest.raises(Conflict):  # a draft was never offered
            quotes.decline_quote(session, sales, quote, "zu teuer", by=by)
        quotes.send_quote(session, sales, quote, _mail(), by=by)
        for reason in ("", "   "):
            with pytest.raises(ValidationError) as err:
                quotes.decline_quote(session, sales, quote, reason, by=by)
            assert err.value.field == "reason"
        assert quote.state is QuoteState.SENT
        quotes.decline_quote(session, sales, quote, "Budget gestrichen", by=by)
        assert (quote.state, quote.decline_reason) == (QuoteState.DECLINED, "Budget gestrichen")
        assert (w.opp.stage, w.opp.lost_reason) == ("lost", "Budget gestrichen")
        follow_up = session.scalars(select(Reminder).where(Reminder.rule_key == rule_key(quote.id))).one()
        assert follow_up.state is ReminderState.DONE
        with pytest.raises(Conflict):
            quotes.decline_quote(session, sales, quote, "Budget gestrichen", by=by)
        with pytest.raises(Conflict):
            quotes.accept_quote(session, sales, quote, by=by)
        with pytest.raises(Conflict):  # a numbered quote is a business letter
            quotes.delete_draft(session, quote, by=by)


def test_only_drafts_are_deleted_and_never_spend_a_number(sales: Settings, factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        w = world(session, sales)
        by = w.staff.id
        gone = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)), by=by)
        quotes.delete_draft(session, gone, by=by)
        first = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)), by=by)
        other = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)), by=by)
        quotes.finalise_quote(session, sales, other, by=by)
        quotes.finalise_quote(session, sales, first, by=by)
        assert (other.number, first.number) == (f"AN-{YEAR}-0001", f"AN-{YEAR}-0002")
        draft_two = quotes.update_quote(session, sales, first, QuoteChanges(intro="Neu"), by=by)
        quotes.delete_draft(session, draft_two, by=by)  # version 2's draft goes; version 1 stays as it was
        assert first.state is QuoteState.FINAL
        assert [v.version for v in quotes.quote_versions(session, first)] == [1]
        assert quotes.update_quote(session, sales, first, QuoteChanges(intro="Neu"), by=by).version == 2


def test_language_of_the_customer_and_its_default(sales: Settings, factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        w = world(session, sales, language="en")
        quote = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)),
                                    by=w.staff.id)
        assert quote.language == "en"
        assert quote.lines[2].unit == "pauschal"
        quotes.finalise_quote(session, sales, quote, by=w.staff.id)
        assert quotes.title(quote) == f"Quote AN-{YEAR}-0001"
        assert quotes.filename(quote) == f"Quote_AN-{YEAR}-0001.pdf"
        german = quotes.create_quote(session, sales, QuoteFields(
            opportunity_id=w.opp.id, language="de", lines=(LineFields(text="Beratung", unit_price=D("90")),)),
            by=w.staff.id)
        assert (german.language, german.lines[0].unit, german.lines[0].vat_rate) == ("de", "Stück", 19)
        with pytest.raises(ValidationError) as err:
            quotes.update_quote(session, sales, german, QuoteChanges(language="fr"), by=w.staff.id)
        assert err.value.field == "language"
        quotes.update_quote(session, sales, german, QuoteChanges(valid_until=date(2000, 1, 1)), by=w.staff.id)
        with pytest.raises(ValidationError) as err:
            quotes.finalise_quote(session, sales, german, by=w.staff.id)
        assert err.value.field == "valid_until"


BAD_LINES = [
    (LineFields(text="x", unit_price=D("1"), quantity=D("0")), "lines[1].quantity"),
    (LineFields(text="x", unit_price=D("1"), quantity=D("1.0001")), "lines[1].quantity"),
    (LineFields(text="x", unit_price=D("-1")), "lines[1].unit_price"),
    (LineFields(text="x", unit_price=D("1.00001")), "lines[1].unit_price"),
    (LineFields(text="x"), "lines[1].unit_price"),
    (LineFields(text="x", unit_price=D("1"), discount_percent=D("100.5")), "lines[1].discount_percent"),
    (LineFields(text="x", unit_price=D("1"), discount_percent=D("-1")), "lines[1].discount_percent"),
    (LineFields(text="x", unit_price=D("1"), vat_rate=D("16")), "lines[1].vat_rate"),
    (LineFields(text=" ", unit_price=D("1")), "lines[1].text"),
    (LineFields(product_id=999999), "lines[1].product_id"),
    (LineFields(text="Gutschrift", quantity=D("-100"), unit_price=D("10")), "lines"),  # below zero in total
]


def test_bad_lines_change_nothing(sales: Settings, factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        w = world(session, sales)
        quote = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)[:1]),
                                    by=w.staff.id)
        for line, field in BAD_LINES:
            with pytest.raises(ValidationError) as err:
                quotes.update_quote(session, sales, quote, QuoteChanges(lines=(lines(w)[0], line)), by=w.staff.id)
            assert err.value.field == field, line
            assert [ln.text for ln in quote.lines] == ["Wartung"] and quote.net_total == D("360.00")


def test_lines_reorder_credit_and_retired_products(sales: Settings, factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        w = world(session, sales)
        by = w.staff.id
        service, book, _ = lines(w)
        credit = LineFields(text="Gutschrift Vorjahr", quantity=D("-1"), unit_price=D("50"))
        quote = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id,
                                                                lines=(service, book, credit)), by=by)
        assert quote.net_total == D("359.80")  # 360.00 + 49.80 - 50.00
        quotes.update_quote(session, sales, quote, QuoteChanges(lines=(credit, book, service)), by=by)
        assert [(line.position, line.text) for line in quote.lines] == [
            (1, "Gutschrift Vorjahr"), (2, "Handbuch"), (3, "Wartung")]
        update_product(session, sales, w.book, ProductChanges(active=False), by=by)
        # The quote's own line keeps its retired product; a new line may not take it.
        quotes.update_quote(session, sales, quote, QuoteChanges(lines=(book, service)), by=by)
        other = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id), by=by)
        with pytest.raises(ValidationError) as err:
            quotes.update_quote(session, sales, other, QuoteChanges(lines=(book,)), by=by)
        assert err.value.field == "lines[0].product_id"
        with pytest.raises(ValidationError) as err:  # an empty quote is never a letter
            quotes.finalise_quote(session, sales, other, by=by)
        assert err.value.field == "lines"


def test_the_pdf_is_not_attached_twice(sales: Settings, factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        w = world(session, sales)
        quote = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)),
                                    by=w.staff.id)
        quotes.finalise_quote(session, sales, quote, by=w.staff.id)
        content = quotes.quote_pdf(session, sales, quote)
        mail = quotes.send_quote(session, sales, quote, MailDraft(
            to="einkauf@kunde-ag.de", subject="Angebot", text="Anbei.",
            attachments=(FileUpload("Angebot.pdf", "application/pdf", content),)), by=w.staff.id)
        assert [a.filename for a in mail.attachments] == ["Angebot.pdf"]
        with pytest.raises(ValidationError):  # the system sends no quotes
            quotes.send_quote(session, sales, quote, _mail(), by=None)


def test_a_bad_mail_leaves_the_draft_unnumbered(sales: Settings, factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        w = world(session, sales)
        quote = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)),
                                    by=w.staff.id)
        with pytest.raises(ValidationError) as err:
            quotes.send_quote(session, sales, quote, MailDraft(to="", subject=" ", text="Anbei."), by=w.staff.id)
        assert err.value.field == "subject"
        assert (quote.state, quote.number) == (QuoteState.DRAFT, None)
        assert session.scalars(select(Quote.number)).all() == [None]


def test_a_draft_finalised_meanwhile_is_not_changed(sales: Settings, factory: sessionmaker[Session]) -> None:
    """Two browser tabs: one finalises the draft, the other (still showing the draft) saves a change: the
    letter that went out stays as it was."""
    with unit_of_work(factory) as session:
        w = world(session, sales)
        quote_id = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)),
                                       by=w.staff.id).id
        staff_id = w.staff.id
    with factory() as stale:
        draft = stale.get_one(Quote, quote_id)
        assert draft.state is QuoteState.DRAFT
        with unit_of_work(factory) as session:
            quotes.finalise_quote(session, sales, session.get_one(Quote, quote_id), by=staff_id)
        with pytest.raises(Conflict):
            quotes.update_quote(stale, sales, draft, QuoteChanges(lines=lines(w)[:1]), by=staff_id)
        stale.rollback()
    with factory() as session:
        assert len(session.get_one(Quote, quote_id).lines) == 3

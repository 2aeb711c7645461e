"""The letter campaign (Serienbrief): one PDF with a DIN 5008 letter per recipient (read back with PDFium and
pdfplumber: one letter per recipient with its name, greeting and umlauts, its own page count, the address in
the window), nobody who objected, the printed letters on each timeline, a reprint that records nothing, and the
recipients as semicolon CSV and XLSX for a word processor's mail merge."""

from __future__ import annotations

import csv
import io
from typing import Any

import pdfplumber
import pypdfium2
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.campaigns import letters
from crm_inbox.campaigns import service as campaigns
from crm_inbox.config import Settings, replace
from crm_inbox.consent import ledger
from crm_inbox.db import unit_of_work
from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.models import (
    AuditEntry,
    Campaign,
    CampaignRecipient,
    CampaignState,
    Channel,
    Company,
    Contact,
    Interaction,
    InteractionContact,
    InteractionKind,
    RecipientState,
)
from crm_inbox.models.contacts import Salutation
from crm_inbox.segments import service as segments
from crm_inbox.staff.service import add_staff

MM = 72 / 25.4
LONG = " ".join(["Unsere neue Hydraulikpumpe fördert 40 l/min, läuft leiser und braucht weniger Wartung."] * 60)
BODY = ("{{ greeting }}\n\n"
        "wir laden Sie herzlich zu unserem Frühjahrsempfang in München ein.\n\n"
        "{{ fields.extra }}\n\n"
        "{% if customer_number %}Ihre Kundennummer: {{ customer_number }}{% endif %}")


@pytest.fixture
def letter_settings(settings: Settings) -> Settings:
    return replace(settings, company={
        "name": "Muster Maschinenbau GmbH", "street": "Industriestr. 7", "postcode": "80331", "city": "München",
        "phone": "+49 89 4711-0", "email": "info@muster.example", "web": "www.muster.example",
        "vat_id": "DE123456789", "register_court": "Amtsgericht München", "register_number": "HRB 123456",
        "managing_directors": "Anna Beispiel"})


def people(session: Session) -> dict[str, int]:
    firma = Company(name="Bäckerei Größl KG", street="Hauptstraße 5", postcode="94032", city="Passau", country="DE")
    session.add(firma)
    session.flush()
    rows = {
        "anna": Contact(name="Anna Müller", salutation=Salutation.FRAU, title="Dr.", street="Königsallee 1",
                        postcode="80331", city="München", country="DE", customer_number="K-10001",
                        fields={"extra": LONG}),  # two pages
        "jörg": Contact(name="Jörg Weiß", salutation=Salutation.HERR, company_id=firma.id),
        "zoë": Contact(name="Zoë Öztürk", salutation=Salutation.FRAU, street="Ringstraße 3", postcode="1010",
                       city="Wien", country="AT"),
        "dora": Contact(name="Dora Schäfer", salutation=Salutation.FRAU, street="Am Hang 2", postcode="80333",
                        city="München"),
        "emil": Contact(name="Emil Ohneort", salutation=Salutation.HERR),  # no postal address
    }
    for contact in rows.values():
        contact.tags = ["Brief"]
    session.add_all(rows.values())
    session.flush()
    return {key: contact.id for key, contact in rows.items()}


def started(factory: sessionmaker[Session], settings: Settings, *, channel: Channel = Channel.LETTER,
            start: bool = True) -> tuple[int, int, dict[str, int]]:
    """(staff id, campaign id, contact ids): a letter campaign to everyone tagged "Brief"; Dora objected to
    letters before it started."""
    with unit_of_work(factory) as session:
        staff = add_staff(session, "anna.schmidt@beispiel-firma.de", "Anna Schmidt", "admin").id
        ids = people(session)
        ledger.record(session, ids["dora"], Channel.LETTER, "opted_out", None, "staff")
        segment = segments.create(session, "Briefempfänger", {"field": "tags", "op": "has", "value": "Brief"},
                                  actor=staff)
        campaign = campaigns.create(session, settings, name="Frühjahrsempfang", segment_id=segment.id,
                                    channel=channel, subject="Einladung für {{ name }}", body=BODY,
                                    sender_name="Max Mustermann", actor=staff).id
    if start:
        with unit_of_work(factory) as session:
            campaigns.start(session, settings, campaign, actor=staff)
    return staff, campaign, ids


def page_texts(data: bytes) -> list[str]:
    pdf = pypdfium2.PdfDocument(data)
    try:
        return [" ".join(page.get_textpage().get_text_bounded().split()) for page in pdf]
    finally:
        pdf.close()


def split_letters(pages: list[str]) -> list[str]:
    """The pages grouped by letter: each letter's first page says "Seite 1 von"."""
    out: list[str] = []
    for text in pages:
        if "Seite 1 von" in text:
            out.append(text)
        else:
            out[-1] += " " + text
    return out


def print_them(factory: sessionmaker[Session], settings: Settings, campaign: int, staff: int) -> bytes:
    with unit_of_work(factory) as session:
        return letters.print_letters(session, settings, campaign, actor=staff)


def letter_entries(session: Session) -> list[tuple[int, Interaction]]:
    return [(contact_id, item) for contact_id, item in session.execute(
        select(InteractionContact.contact_id, Interaction).join(Interaction)
        .where(Interaction.kind == InteractionKind.DOCUMENT).order_by(InteractionContact.contact_id))]


def test_one_letter_per_recipient_with_its_name_greeting_and_own_page_count(
        factory: sessionmaker[Session], letter_settings: Settings) -> None:
    staff, campaign, ids = started(factory, letter_settings)
    data = print_them(factory, letter_settings, campaign, staff)

    pages = page_texts(data)
    assert len(pages) == 4  # Anna's letter has two pages, Jörg's and Zoë's one each
    anna, jorg, zoe = split_letters(pages)
    assert "Sehr geehrte Frau Dr. Müller," in anna and "Frau Dr. Anna Müller" in anna
    assert "Einladung für Anna Müller" in anna and "Kunden-Nr. K-10001" in anna
    assert "Seite 1 von 2" in pages[0] and "Seite 2 von 2" in pages[1]  # her own count …
    assert "Seite 1 von 1" in pages[2] and "Seite 1 von 1" in pages[3]  # … and the next letter starts again
    assert "fördert 40 l/min, läuft leiser" in anna  # umlauts survive
    assert "Sehr geehrter Herr Weiß," in jorg and "Bäckerei Größl KG z. Hd. Herr Jörg Weiß Hauptstraße 5" in jorg
    assert "Sehr geehrte Frau Öztürk," in zoe and "1010 Wien ÖSTERREICH" in zoe
    for letter in (anna, jorg, zoe):
        assert letter.count("Sehr geehrte") == 1  # the text's own greeting is not printed twice
        assert "Muster Maschinenbau GmbH · Industriestr. 7 · 80331 München" in letter  # the return line
        assert "Mit freundlichen Grüßen Max Mustermann" in letter
        assert ("Sie können der Verwendung Ihrer Daten für Werbung jederzeit widersprechen: per E-Mail an "
                "info@muster.example oder telefonisch unter +49 89 4711-0.") in letter
        assert "Registergericht: Amtsgericht München, HRB 123456" in letter
        assert "Abmelden" not in letter and "http" not in letter  # no e-mail opt-out link on paper
    assert all("Dora" not in page and "Schäfer" not in page and "Emil" not in page for page in pages)

    with factory() as session:
        states = dict(session.execute(select(CampaignRecipient.contact_id, CampaignRecipient.state).where(
            CampaignRecipient.campaign_id == campaign)).all())
        assert states == {ids["anna"]: RecipientState.PRINTED, ids["jörg"]: RecipientState.PRINTED,
                          ids["zoë"]: RecipientState.PRINTED, ids["dora"]: RecipientState.LEFT_OUT,
                          ids["emil"]: RecipientState.LEFT_OUT}
        row = session.get_one(Campaign, campaign)
        assert row.state == CampaignState.DONE and row.finished_at is not None
        entries = letter_entries(session)
        assert [contact for contact, _ in entries] == sorted([ids["anna"], ids["jörg"], ids["zoë"]])
        for contact, item in entries:
            assert item.details == {"campaign_id": campaign, "letter": True, "campaign": "Frühjahrsempfang"}
            assert item.subject.startswith("Einladung für ")
            assert item.text.startswith("Sehr geehrte")
            recipient = session.execute(select(CampaignRecipient).where(
                CampaignRecipient.contact_id == contact)).scalar_one()
            assert recipient.interaction_id == item.id
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "print", AuditEntry.object_type == "campaign")) == 1


def test_the_address_lies_in_the_window_and_the_text_below_it(
        factory: sessionmaker[Session], letter_settings: Settings) -> None:
    staff, campaign, _ = started(factory, letter_settings)
    data = print_them(factory, letter_settings, campaign, staff)
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        for number in (0, 2, 3):  # every letter's first page
            words = pdf.pages[number].extract_words()
            window = [w for w in words if w["x0"] >= 20 * MM and w["x1"] <= 105 * MM
                      and w["top"] >= 45 * MM and w["bottom"] <= 90 * MM]
            text = " ".join(w["text"] for w in window)
            assert "Muster Maschinenbau GmbH" in text  # the return line in the window's top zone
            assert ("Müller" in text) or ("Weiß" in text) or ("Öztürk" in text)
            subject = next(w for w in words if w["text"] == "Einladung")
            assert subject["top"] > 90 * MM  # the text begins below the address field
            info = [w for w in words if w["x0"] >= 124 * MM and w["top"] < 90 * MM and w["top"] > 45 * MM]
            assert {"Datum", "Seite"} <= {w["text"] for w in info}
            assert all(w["x1"] <= 105 * MM or w["x0"] >= 124 * MM for w in words if 45 * MM < w["top"] < 90 * MM)


def test_a_reprint_is_the_same_pdf_and_records_nothing(factory: sessionmaker[Session],
                                                       letter_settings: Settings) -> None:
    staff, campaign, _ = started(factory, letter_settings)
    first = print_them(factory, letter_settings, campaign, staff)
    with factory() as session:
        entries = len(letter_entries(session))
    again = print_them(factory, letter_settings, campaign, staff)
    assert again == first
    with factory() as session:
        assert len(letter_entries(session)) == entries == 3
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "campaign")).all()
        assert actions.count("print") == 1 and actions.count("reprint") == 1


def test_an_objection_after_the_start_is_honoured_at_printing(factory: sessionmaker[Session],
                                                              letter_settings: Settings) -> None:
    staff, campaign, ids = started(factory, letter_settings)
    with unit_of_work(factory) as session:
        ledger.record(session, ids["zoë"], Channel.LETTER, "opted_out", None, "letter")
    pages = page_texts(print_them(factory, letter_settings, campaign, staff))
    assert len(split_letters(pages)) == 2 and not any("Öztürk" in page for page in pages)
    with factory() as session:
        zoe = session.execute(select(CampaignRecipient).where(
            CampaignRecipient.contact_id == ids["zoë"])).scalar_one()
        assert (zoe.state, zoe.reason) == (RecipientState.LEFT_OUT, "opted_out")
        row = session.get_one(Campaign, campaign)
        assert row.recipient_count == 2 and row.left_out["opted_out"] == 2
        assert ids["zoë"] not in [contact for contact, _ in letter_entries(session)]


def test_what_cannot_be_printed(factory: sessionmaker[Session], letter_settings: Settings) -> None:
    staff, draft, _ = started(factory, letter_settings, start=False)
    with unit_of_work(factory) as session:
        with pytest.raises(Conflict, match="not been started"):
            letters.print_letters(session, letter_settings, draft, actor=staff)
        with pytest.raises(NotFound):
            letters.print_letters(session, letter_settings, 9999, actor=staff)
        mail = Campaign(name="Mail", channel=Channel.EMAIL, state=CampaignState.SENDING)
        session.add(mail)
        session.flush()
        with pytest.raises(Conflict, match="e-mail campaign"):
            letters.print_letters(session, letter_settings, mail.id, actor=staff)
        with pytest.raises(ValidationError, match="csv or xlsx"):
            letters.merge_data(session, letter_settings, draft, "pdf", actor=staff)


def merge_rows(content: bytes) -> list[dict[str, str]]:
    assert content.startswith(b"\xef\xbb\xbf")  # the byte-order mark Word and Excel need for UTF-8
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"), newline=""), delimiter=";"))


def test_the_mail_merge_data_as_csv_and_xlsx(factory: sessionmaker[Session], letter_settings: Settings) -> None:
    staff, campaign, _ = started(factory, letter_settings)
    with unit_of_work(factory) as session:
        export = letters.merge_data(session, letter_settings, campaign, "csv", actor=staff)
    assert export.count == 3 and export.filename.endswith(".csv") and export.mimetype.startswith("text/csv")
    assert b"\r\n" in export.content
    rows = merge_rows(export.content)
    assert list(rows[0]) == list(letters.MERGE_COLUMNS)
    by_name = {row["Nachname"]: row for row in rows}
    assert set(by_name) == {"Müller", "Weiß", "Öztürk"}  # Dora objected, Emil has no address
    anna = by_name["Müller"]
    assert (anna["Anrede-Zeile"], anna["Anrede"], anna["Titel"], anna["Vorname"]) == (
        "Frau Dr. Anna Müller", "Frau", "Dr.", "Anna")
    assert (anna["Straße"], anna["PLZ"], anna["Ort"], anna["Land"]) == ("Königsallee 1", "80331", "München", "")
    assert (anna["Briefanrede"], anna["Kundennummer"]) == ("Sehr geehrte Frau Dr. Müller,", "K-10001")
    jorg = by_name["Weiß"]
    assert (jorg["Firma"], jorg["Straße"], jorg["Ort"]) == ("Bäckerei Größl KG", "Hauptstraße 5", "Passau")
    assert by_name["Öztürk"]["Land"] == "ÖSTERREICH"

    with unit_of_work(factory) as session:
        export = letters.merge_data(session, letter_settings, campaign, "XLSX", actor=staff)
    sheet = load_workbook(io.BytesIO(export.content)).active
    assert sheet is not None
    values: list[tuple[Any, ...]] = list(sheet.iter_rows(values_only=True))
    assert values[0] == letters.MERGE_COLUMNS and len(values) == 4
    assert {row[4] for row in values[1:]} == {"Müller", "Weiß", "Öztürk"}
    with factory() as session:
        audited = session.scalars(select(AuditEntry.details).where(
            AuditEntry.action == "export", AuditEntry.object_type == "campaign")).all()
        assert [(d["format"], d["count"]) for d in audited] == [("csv", 3), ("xlsx", 3)]


def test_the_merge_data_neutralises_formulas() -> None:
    rows = merge_rows(letters.merge_csv(["Nachname"], [["=HYPERLINK(\"x\")"], ["Müller; Sohn"]]))
    assert [row["Nachname"] for row in rows] == ["'=HYPERLINK(\"x\")", "Müller; Sohn"]


def test_greeting_and_closing_are_printed_once() -> None:
    assert letters.split_greeting("Sehr geehrte Frau Müller,\n\nText", "Sehr geehrte Frau Müller,")[0] == ""
    assert letters.split_greeting("Hallo Anna,\nText", "Sehr geehrte Frau Müller,")[0] == ""
    assert letters.split_greeting("Wir laden Sie ein.", "Sehr geehrte Frau Müller,")[0] == "Sehr geehrte Frau Müller,"
    assert letters.has_closing("Text\n\nViele Grüße\nMax")
    assert letters.has_closing("Text\n\nKind regards,\nMax")
    assert not letters.has_closing("Wir laden Sie ein.")


def test_the_objection_notice_names_how_to_object(letter_settings: Settings) -> None:
    company = letter_settings.company
    assert letters.objection_notice(company, "en") == (
        "You may object to the use of your data for advertising at any time: by e-mail to info@muster.example "
        "or by phone on +49 89 4711-0.")
    by_post = replace(letter_settings, company={"email": "", "phone": ""}).company
    assert letters.objection_notice(by_post, "de") == (
        "Sie können der Verwendung Ihrer Daten für Werbung jederzeit widersprechen: schriftlich an Muster "
        "Maschinenbau GmbH, Industriestr. 7, 80331 München.")


def test_the_logo_from_the_instance_folder_heads_every_letter(factory: sessionmaker[Session],
                                                              letter_settings: Settings) -> None:
    from PIL import Image

    letter_settings.instance_path.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (300, 100), "navy").save(letter_settings.instance_path / "logo.png")
    with_logo = replace(letter_settings, company={"logo_file": "logo.png"})
    staff, campaign, _ = started(factory, with_logo)
    with pdfplumber.open(io.BytesIO(print_them(factory, with_logo, campaign, staff))) as pdf:
        # every letter's first page shows it (one image, drawn from the shared letterhead), later pages do not
        assert [len(page.images) for page in pdf.pages] == [1, 0, 1, 1]


def test_a_sentence_that_greets_is_no_closing() -> None:
    assert not letters.has_closing("Zum Schluss: wir grüßen alle unsere Kunden in Bayern ganz herzlich von hier.")

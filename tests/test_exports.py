"""Exports of the contact and company lists as CSV, XLSX and vCard: exactly what the search finds (every page
of it), umlauts intact, spreadsheet formulas neutralised, identifiers kept as text, every export audited."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest
import vobject
from sqlalchemy import select

from crm_inbox.db import unit_of_work
from crm_inbox.models import AuditEntry, Company, CompanyPhone, Contact, ContactEmail, ContactPhone
from crm_inbox.staff.service import add_staff
from tests.conftest import make_token
from tests.test_pages import PASSWORD, log_in

READER = "leser@beispiel-firma.de"
HOSTILE = '=cmd|" /C calc"!A0'


@pytest.fixture
def people(factory):  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        add_staff(session, READER, "Lea Leser", "readonly", password=PASSWORD)
        bau = Company(name="Müller Bau GmbH", customer_number="00815", postcode="01067", city="Dresden",
                      tags=[], fields={"Branche": "Hochbau"})
        bau.phones = [CompanyPhone(raw="+49 351 4711-0", e164="+493514711")]
        wagner = Company(name="Wagner AG", tags=[], fields={})
        juergen = Contact(name="Jürgen Müller", company=bau, tags=["Bau"], fields={"Geburtstag": "1970-05-01"},
                          postcode="01067", customer_number="0042", title="Dr.")
        juergen.emails = [ContactEmail(email="juergen@mueller-bau.de")]
        juergen.phones = [ContactPhone(raw="0171 2345678", e164="+491712345678", label="Mobil")]
        hostile = Contact(name=HOSTILE, company=bau, tags=[], fields={})
        eva = Contact(name="Eva Wagner", company=wagner, tags=[], fields={})
        eva.emails = [ContactEmail(email="eva@wagner.example")]
        session.add_all([bau, wagner, juergen, hostile, eva])


def exports(factory) -> list[tuple[str, dict]]:  # type: ignore[no-untyped-def,type-arg]
    with factory() as session:
        return [(e.object_type, e.details) for e in session.execute(
            select(AuditEntry).where(AuditEntry.action == "export").order_by(AuditEntry.id)).scalars()]


def test_a_search_result_in_every_format_has_exactly_those_people_and_is_audited(client, factory, people):
    log_in(client, READER)  # read-only staff export too, as they always could the contact CSV
    page = client.get("/contacts?q=müller").get_data(as_text=True)
    assert "/contacts/export?format=xlsx&amp;q=m%C3%BCller" in page

    answer = client.get("/contacts/export?format=csv&q=müller")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "private, no-store"
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    text = answer.data.decode("utf-8")
    assert text.startswith("\ufeff")
    header, *rows = list(csv.reader(io.StringIO(text[1:])))
    cells = [dict(zip(header, row, strict=True)) for row in rows]
    assert sorted(c["name"] for c in cells) == ["'" + HOSTILE, "Jürgen Müller"]
    jurgen = next(c for c in cells if c["name"] == "Jürgen Müller")
    assert (jurgen["company"], jurgen["postcode"], jurgen["field:Geburtstag"]) == ("Müller Bau GmbH", "01067",
                                                                                    "1970-05-01")

    answer = client.get("/contacts/export?format=xlsx&q=müller")
    assert answer.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = openpyxl.load_workbook(io.BytesIO(answer.data)).active
    header, *rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    cells = [dict(zip(header, row, strict=True)) for row in rows]
    assert sorted(c["name"] for c in cells) == ["'" + HOSTILE, "Jürgen Müller"]
    jurgen = next(c for c in cells if c["name"] == "Jürgen Müller")
    # identifiers stay text (leading zeros kept), the id is a number, umlauts intact
    assert (jurgen["postcode"], jurgen["customer_number"], jurgen["phones"]) == ("01067", "0042", "0171 2345678")
    assert isinstance(jurgen["id"], int) and jurgen["company"] == "Müller Bau GmbH"
    assert all(sheet.cell(row=r, column=c).data_type != "f" for r in range(1, 4) for c in range(1, len(header) + 1))

    answer = client.get("/contacts/export?format=vcf&q=müller")
    assert answer.mimetype == "text/vcard"
    cards = list(vobject.readComponents(answer.data.decode("utf-8")))
    assert sorted(c.fn.value for c in cards) == sorted([HOSTILE, "Jürgen Müller"])
    card = next(c for c in cards if c.fn.value == "Jürgen Müller")
    assert (card.n.value.family, card.n.value.given, card.n.value.prefix) == ("Müller", "Jürgen", "Dr.")
    assert card.org.value == ["Müller Bau GmbH"] and card.email.value == "juergen@mueller-bau.de"
    assert card.tel.value == "0171 2345678" and card.tel.params["TYPE"] == ["CELL"]

    everybody = client.get("/contacts/export?format=csv")  # no search: all of them
    names = [row[1] for row in csv.reader(io.StringIO(everybody.data.decode("utf-8")[1:]))][1:]
    assert names == ["'" + HOSTILE, "Eva Wagner", "Jürgen Müller"]  # the list's order
    assert [(kind, d["format"], d["query"], d["count"]) for kind, d in exports(factory)] == [
        ("contact", "csv", "müller", 2), ("contact", "xlsx", "müller", 2), ("contact", "vcf", "müller", 2),
        ("contact", "csv", "", 3)]


def test_companies_over_the_api_and_on_the_page(client, factory, people):
    token = make_token(factory, "anna@beispiel-firma.de", role="staff")
    auth = {"Authorization": f"Bearer {token}"}
    answer = client.get("/api/v1/companies/export?format=xlsx&q=müller", headers=auth)
    assert answer.status_code == 200
    header, *rows = [list(r) for r in openpyxl.load_workbook(io.BytesIO(answer.data)).active.iter_rows(
        values_only=True)]
    [row] = [dict(zip(header, r, strict=True)) for r in rows]
    assert (row["name"], row["customer_number"], row["postcode"], row["people"], row["field:Branche"]) == (
        "Müller Bau GmbH", "00815", "01067", 2, "Hochbau")
    cards = list(vobject.readComponents(client.get("/api/v1/companies/export?format=vcf", headers=auth)
                                        .data.decode("utf-8")))
    assert sorted(c.org.value[0] for c in cards) == ["Müller Bau GmbH", "Wagner AG"]
    assert all(c.n.value.family == "" and c.x_abshowas.value == "COMPANY" for c in cards)
    assert not any("email" in c.contents for c in cards)
    assert client.get("/api/v1/contacts/export?format=xml", headers=auth).json["error"]["field"] == "format"
    assert client.get("/api/v1/contacts/export", headers={}).status_code == 401

    log_in(client, READER)
    page = client.get("/companies?q=wagner").get_data(as_text=True)
    assert "Wagner AG" in page and "Müller Bau GmbH" not in page
    answer = client.get("/companies/export?format=csv&q=wagner")
    assert [r[1] for r in csv.reader(io.StringIO(answer.data.decode("utf-8")[1:]))] == ["name", "Wagner AG"]
    assert client.get("/companies/export?format=pdf").status_code == 400
    assert client.get("/contacts/export?format=csv&q=" + "x" * 201).status_code == 400
    assert [(kind, d["format"], d["count"]) for kind, d in exports(factory)] == [
        ("company", "xlsx", 1), ("company", "vcf", 2), ("company", "csv", 1)]
    assert exports(factory)[0][1]["query"] == {"format": "xlsx", "q": "müller"}


def test_the_export_has_the_contact_csv_columns_and_writes_cards_any_vcard_reader_takes(factory, people):
    from crm_inbox.contacts.csv_export import contacts_csv
    from crm_inbox.exports import tables
    from crm_inbox.vcards import card, escape, structured

    with unit_of_work(factory) as session:
        ids = tables.contact_ids(session, None)
        sheet = tables.contact_sheet(session, ids)
        contacts = [session.get_one(Contact, i) for i in ids]
        legacy = list(csv.reader(io.StringIO(contacts_csv(contacts)[1:])))
    exported = list(csv.reader(io.StringIO(csv_bytes_of(sheet)[1:])))
    assert [row[:len(legacy[0])] for row in exported] == legacy  # the same columns, cell for cell

    name = "Müller-Lüdenscheidt, Dr.; " + "Ä" * 60 + "\nzweite Zeile"
    text = card([("FN", escape(name)), ("N", structured(["Müller; Söhne", "Anna", "", "", ""]))])
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    [parsed] = vobject.readComponents(text)
    assert parsed.fn.value == name and parsed.n.value.family == "Müller; Söhne"


def csv_bytes_of(sheet) -> str:  # type: ignore[no-untyped-def]
    from crm_inbox.exports.formats import csv_bytes

    return csv_bytes(sheet).decode("utf-8")

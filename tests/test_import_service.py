"""Importing address books into the database: the preview is what the import then does, updates name their
fields and never blank one, duplicates are found by customer number, e-mail, phone and company name (several
candidates: skipped, never the wrong customer), a bad row writes nothing, undo restores, re-importing changes
nothing; the command line previews, asks and undoes."""

from __future__ import annotations

import io
import json
import random
import zipfile
from dataclasses import asdict
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_inbox.cli import main
from crm_inbox.contacts.inputs import CompanyChanges, ContactChanges
from crm_inbox.contacts.service import create_company, create_contact
from crm_inbox.db import unit_of_work
from crm_inbox.errors import Conflict, NotFound
from crm_inbox.imports.mapping import suggest_mapping
from crm_inbox.imports.readers import read_table
from crm_inbox.imports.service import list_batches, preview_import, run_import, undo_import
from crm_inbox.models import (
    AuditEntry,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    ContactPhone,
    Event,
    ImportBatch,
    ImportChange,
    Reminder,
)
from crm_inbox.models.base import utcnow
from crm_inbox.privacy.service import erase_contact, write_export
from tests.conftest import CRM

DATA = Path(__file__).parent / "data" / "import"


def load(name: str):  # type: ignore[no-untyped-def]
    table = read_table(name, (DATA / name).read_bytes())
    return table, suggest_mapping(table.headers)


def csv_table(text: str):  # type: ignore[no-untyped-def]
    table = read_table("list.csv", text.encode("cp1252"))
    return table, suggest_mapping(table.headers)


def number_of(factory, model) -> int:  # type: ignore[no-untyped-def]
    with factory() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def outcomes(result) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(o.row, o.action, o.label, tuple(o.changed), o.detail) for o in result.rows]


def test_preview_is_the_import_and_importing_again_changes_nothing(factory, settings):
    table, mapping = load("outlook_de.csv")
    preview = preview_import(factory, settings, table, mapping, filename="outlook_de.csv", actor=None)
    assert number_of(factory, Contact) == 0 and number_of(factory, Company) == 0  # rolled back
    assert preview.batch_id is None and all(o.contact_id is None for o in preview.rows)
    done = run_import(factory, settings, table, mapping, filename="outlook_de.csv", actor=None)
    assert outcomes(done) == outcomes(preview) and done.counts == preview.counts
    assert done.counts == {"new": 5, "update": 0, "unchanged": 0, "duplicate": 1, "error": 1, "companies_new": 3,
                           "companies_update": 0}
    actions = {o.row: (o.action, o.detail) for o in done.rows}
    assert actions[7] == ("duplicate", "row 2 (same e-mail)")  # the same person again, address in capitals
    assert actions[8][0] == "error" and "is not an e-mail address" in actions[8][1]
    assert done.rows[6].label == "Klaus Kaputt"
    with factory() as session:
        juergen = session.get(Contact, done.rows[0].contact_id)
        assert juergen is not None and juergen.name == "Jürgen Groß" and juergen.title == "Dr."
        assert juergen.salutation is not None and juergen.salutation.value == "herr"
        assert juergen.fields["department"] == "Einkauf" and juergen.tags == ["Kunden", "VIP"]
        assert {p.e164 for p in juergen.phones} == {"+4989471199", "+498947110", "+491712345678"}
        company = juergen.company
        assert company is not None and company.name == "Müller Maschinenbau GmbH"
        assert (company.street, company.postcode, company.city, company.country) == (
            "Industriestraße 12", "80331", "München", "DE")
        assert [d.domain for d in company.domains] == ["mueller-maschinenbau.de"]  # gmx.de never
        assert company.fields["website"] == "www.mueller-maschinenbau.de"
        aenne = session.get(Contact, done.rows[1].contact_id)
        assert aenne is not None and aenne.company_id == company.id
        assert [e.email for e in aenne.emails] == ["a.weiss@mueller-maschinenbau.de", "aenne.weiss@gmx.de"]
        soeren = session.get(Contact, done.rows[2].contact_id)
        assert soeren is not None and soeren.company is not None and soeren.company.domains == []  # web.de: free mail
        weber = session.get(Company, done.rows[4].company_id)  # a company-only row is a company
        assert weber is not None and [d.domain for d in weber.domains] == ["weber-elektro.de"]
        assert session.execute(select(Contact).where(Contact.name == "Klaus Kaputt")).first() is None
        audits = session.execute(select(AuditEntry).where(AuditEntry.action == "import")).scalars().all()
        assert [(a.object_type, a.object_id, a.details["counts"]["new"]) for a in audits] == [
            ("import_batch", done.batch_id, 5)]
        event = session.execute(select(Event).where(Event.type == "import.finished")).scalar_one()
        assert event.subject_id == done.batch_id and event.payload["counts"]["new"] == 5
        assert session.execute(select(func.count()).select_from(Event)).scalar_one() == 1  # none per contact
        assert [b.id for b in list_batches(session)] == [done.batch_id]
    again = run_import(factory, settings, table, mapping, filename="outlook_de.csv", actor=None)
    assert again.counts["new"] == again.counts["update"] == 0 and again.counts["unchanged"] == 5
    with factory() as session:
        assert session.execute(select(func.count()).select_from(ImportChange)
                               .where(ImportChange.batch_id == again.batch_id)).scalar_one() == 0


@pytest.fixture
def existing(factory, settings):  # type: ignore[no-untyped-def]
    region = settings.phone.default_region
    with unit_of_work(factory) as session:
        firm = create_company(session, CompanyChanges(name="Schröder Logistik AG", city="Hamburg",
                                                             domains=("schroeder-logistik.de",)), region, None)
        twin_a = create_company(session, CompanyChanges(name="Müller GmbH"), region, None)
        twin_b = create_company(session, CompanyChanges(name="mueller gmbh & co. kg"), region, None)
        anna = create_contact(session, ContactChanges(name="Anna Schmidt", emails=("anna@schroeder-logistik.de",),
                                                      phones=("0171 1111111",), street="Alte Straße 1",
                                                      company_id=firm.id), region, None)
        by_number = create_contact(session, ContactChanges(name="Karl Nummer", customer_number="K-1"), region, None)
        by_phone = create_contact(session, ContactChanges(name="Paula Phon", phones=("+49 30 2222222",),
                                                          emails=("paula@phon.de",)), region, None)
        return {"firm": firm.id, "twins": sorted([twin_a.id, twin_b.id]), "anna": anna.id, "number": by_number.id,
                "phone": by_phone.id}


def test_updates_name_their_fields_never_blank_one_and_undo_restores_the_values_before(factory, settings, existing):
    table, mapping = csv_table(
        "Vorname;Nachname;Titel;E-Mail;Telefon;Straße;Ort;Firma;Kundennummer\r\n"
        "Anna;Schmidt;Dr.;ANNA@schroeder-logistik.de;030 3333333;;Berlin;schroeder logistik;\r\n"
        "Neu;Person;;neu@example.org;;;;Schröder Logistik;\r\n"
        "Karl;Nummer;;;;;;;K-1\r\n")
    preview = preview_import(factory, settings, table, mapping, filename="list.csv", actor=None)
    done = run_import(factory, settings, table, mapping, filename="list.csv", actor=None)
    assert outcomes(done) == outcomes(preview)
    anna_row, new_row, karl_row = done.rows
    assert (anna_row.action, anna_row.contact_id, anna_row.company_id) == ("update", existing["anna"], existing["firm"])
    assert anna_row.changed == ["title", "phone"]  # the city is the company's (it has one); street left empty
    assert anna_row.values == {"title": ("", "Dr."), "phone": ("", "030 3333333")}  # old → new; a number added
    assert preview.rows[0].values == anna_row.values
    assert (new_row.action, new_row.company_id) == ("new", existing["firm"])
    assert (karl_row.action, karl_row.contact_id) == ("unchanged", existing["number"])
    with factory() as session:
        anna = session.get(Contact, existing["anna"])
        assert anna is not None and anna.title == "Dr." and anna.street == "Alte Straße 1"
        assert [p.raw for p in anna.phones] == ["0171 1111111", "030 3333333"]  # added, not replaced
        change = session.execute(select(ImportChange).where(ImportChange.object_id == existing["anna"],
                                                            ImportChange.object_type == "contact")).scalar_one()
        assert change.before == {"title": None, "phones": ["0171 1111111"], "updated_at": change.before["updated_at"]}
    counts = undo_import(factory, done.batch_id, None)
    with factory() as session:
        anna = session.get(Contact, existing["anna"])
        assert anna is not None and anna.title is None and [p.raw for p in anna.phones] == ["0171 1111111"]
        assert session.execute(select(Contact).where(Contact.name == "Neu Person")).first() is None
        assert session.get(ImportBatch, done.batch_id).state.value == "undone"  # type: ignore[union-attr]
        assert session.execute(select(func.count()).select_from(AuditEntry)
                               .where(AuditEntry.action == "undo")).scalar_one() == 1
        assert session.execute(select(Event.type).where(Event.type == "import.undone")).scalar_one()
    assert counts == {"removed": 1, "restored": 2, "kept": 0, "gone": 0, "erased": 0}
    with pytest.raises(Conflict):
        undo_import(factory, done.batch_id, None)
    with pytest.raises(NotFound):
        undo_import(factory, 999, None)


def test_undo_keeps_a_newer_value_and_a_created_contact_that_has_been_used(factory, settings, existing):
    table, mapping = csv_table("Name;E-Mail;Titel\r\nAnna Schmidt;anna@schroeder-logistik.de;Dr.\r\n"
                               "Neu Kunde;n@example.org;\r\n")
    done = run_import(factory, settings, table, mapping, filename="list.csv", actor=None)
    with unit_of_work(factory) as session:
        anna = session.get(Contact, existing["anna"])
        assert anna is not None
        anna.title = "Prof."  # changed again after the import
        new = session.get(Contact, done.rows[1].contact_id)
        assert new is not None
        session.add(Reminder(title="Anrufen", due_at=utcnow(), contact_id=new.id, reason="manual"))
    assert undo_import(factory, done.batch_id, None) == {"removed": 0, "restored": 0, "kept": 2, "gone": 0,
                                                         "erased": 0}
    with factory() as session:
        assert session.get(Contact, existing["anna"]).title == "Prof."  # type: ignore[union-attr]
        assert session.get(Contact, done.rows[1].contact_id) is not None


def test_duplicates_by_each_key_name_the_candidates(factory, settings, existing):
    table, mapping = csv_table(
        "Name;E-Mail;Telefon;Kundennummer;Firma\r\n"
        "Karla Nummer;;;K-1;\r\n"  # customer number → the one contact: an update of its name
        "Zwei Treffer;anna@schroeder-logistik.de;030 2222222;;\r\n"  # e-mail → Anna, phone → Paula: skipped
        "Frida Firma;frida@example.org;;;MÜLLER GmbH\r\n"  # two companies have that name
        "Paula P.;;+49 30 2222222;;\r\n"  # phone in another spelling → Paula
        "Karla Wieder;;;K-1;\r\n"  # repeats the first row's customer number
        ";;;;Mueller GmbH & Co. KG\r\n"  # a company row: two companies match
        "Paula Again;paula@phon.de;;;\r\n")  # Paula again, by another key than on row 5
    done = run_import(factory, settings, table, mapping, filename="list.csv", actor=None)
    got = {o.row: (o.action, o.contact_id or o.company_id, o.detail) for o in done.rows}
    anna, paula, (twin_a, twin_b) = existing["anna"], existing["phone"], existing["twins"]
    assert got[2] == ("update", existing["number"], "")
    assert done.rows[0].values == {"name": ("Karl Nummer", "Karla Nummer")}  # what the update does, old → new
    assert got[3] == ("duplicate", None, f"contacts {anna} (same e-mail), {paula} (same phone)")
    assert got[4] == ("duplicate", None, f"companies {twin_a} (same name), {twin_b} (same name)")
    assert got[5] == ("update", paula, "")
    assert got[6] == ("duplicate", None, "row 2 (same customer number)")
    assert got[7] == ("duplicate", None, f"companies {twin_a} (same name), {twin_b} (same name)")
    assert got[8] == ("duplicate", None, "row 5 (same contact)")
    # What the page translates and links: the reason, the rows and records with the key they share.
    why = {o.row: (o.reason, o.duplicate_of_row, o.duplicate_of, o.key) for o in done.rows if o.action == "duplicate"}
    assert why == {3: ("ambiguous", None, [("contact", anna, "e-mail"), ("contact", paula, "phone")], ""),
                   4: ("ambiguous", None, [("company", twin_a, "company name"), ("company", twin_b, "company name")],
                       ""),
                   6: ("same_row", 2, [], "customer number"),
                   7: ("ambiguous", None, [("company", twin_a, "company name"), ("company", twin_b, "company name")],
                       ""),
                   8: ("same_record", 5, [("contact", paula, "")], "")}
    with factory() as session:
        assert session.get(Contact, anna).name == "Anna Schmidt"  # type: ignore[union-attr]
        assert session.execute(select(Contact).where(Contact.name == "Frida Firma")).first() is None
        # The batch keeps the rows it left out with their reasons (for its page), the values of none of them.
        skipped = session.get_one(ImportBatch, done.batch_id).counts["skipped"]
    assert [(s["row"], s["reason"]) for s in skipped] == [(3, "ambiguous"), (4, "ambiguous"), (6, "same_row"),
                                                          (7, "ambiguous"), (8, "same_record")]
    assert skipped[2] == {"row": 6, "action": "duplicate", "reason": "same_row", "of_row": 2,
                          "key": "customer number", "records": []}
    assert skipped[0]["records"] == [["contact", anna, "e-mail"], ["contact", paula, "phone"]]


def test_a_company_row_updates_the_company_and_a_bad_row_writes_nothing(factory, settings, existing):
    table, mapping = csv_table(
        "Firma;Straße;PLZ;Ort;Land;E-Mail;Telefon;Kategorie\r\n"
        "Schröder Logistik GmbH;Kai 1;20457;Hamburg;Deutschland;info@schroeder-logistik.de;040 123450;B\r\n"
        "Kaputt AG;Weg 1;12345;Berlin;Atlantis;info@kaputt.de;;\r\n")
    done = run_import(factory, settings, table, mapping, filename="list.csv", actor=None)
    row, bad = done.rows
    assert (row.action, row.company_id) == ("update", existing["firm"])
    assert row.changed == ["street", "postcode", "country", "category", "field:email", "phone"]
    assert (bad.action, bad.detail) == ("error", "country 'Atlantis' is unknown")
    assert (bad.reason, bad.params) == ("unknown_country", {"value": "Atlantis"})
    assert row.values["street"] == ("", "Kai 1") and row.values["category"] == ("", "B")
    assert row.values["phone"] == ("", "040 123450")
    with factory() as session:
        assert session.get_one(ImportBatch, done.batch_id).counts["skipped"] == [
            {"row": 3, "action": "error", "reason": "unknown_country", "params": {}}]  # not "Atlantis"
        assert session.execute(select(Company).where(Company.name == "Kaputt AG")).first() is None
        assert session.execute(select(CompanyDomain).where(CompanyDomain.domain == "kaputt.de")).first() is None
    undo_import(factory, done.batch_id, None)
    with factory() as session:
        firm = session.get(Company, existing["firm"])
        assert firm is not None and (firm.street, firm.category, firm.fields) == (None, None, {})
        assert [d.domain for d in firm.domains] == ["schroeder-logistik.de"]
        assert firm.phones == [] and firm.city == "Hamburg" and firm.country is None


def _address_book(n: int) -> tuple[str, str]:
    """An Excel CSV of ``n`` people at a few hundred companies, and a vCard file of some of them and others."""
    rng = random.Random(18)
    firsts = ("Jürgen", "Änne", "Sören", "Heike", "Björn", "Gülay", "André", "Maike")
    lasts = ("Groß", "Weiß", "Köhler", "Schröder", "Jäger", "Müller", "Straßer", "Öztürk")
    lines = ["Firma;Anrede;Vorname;Nachname;E-Mail-Adresse;Telefon geschäftlich;Mobiltelefon;Straße geschäftlich;"
             "Postleitzahl geschäftlich;Ort geschäftlich;Kundennummer"]
    cards = []
    for i in range(n):
        first, last = rng.choice(firsts), rng.choice(lasts)
        # The same company in different spellings of its legal form and case: one company.
        company = f"{lasts[i % 300 % 8]} Bau {i % 300} {rng.choice(('GmbH', 'AG', 'KG', 'GmbH & Co. KG'))}"
        company = company.upper() if i % 5 == 0 else company
        email = f"p{i}@bau{i % 300}.de" if i % 7 else f"p{i}@gmx.de"
        lines.append(f"{company};{rng.choice(('Herr', 'Frau'))};{first};{last};{email};030 {1000000 + i};"
                     f"0171 {2000000 + i};Hauptstraße {i % 99};{10000 + i % 300};Berlin;K{i}")
        if i % 10 == 0:  # the vCard file has every tenth person again (and a new mobile), and people of its own
            cards.append(f"BEGIN:VCARD\r\nVERSION:3.0\r\nN:{last};{first};;;\r\nFN:{first} {last}\r\n"
                         f"EMAIL;TYPE=WORK:{email}\r\nTEL;TYPE=CELL:0172 {3000000 + i}\r\nEND:VCARD\r\n")
            cards.append(f"BEGIN:VCARD\r\nVERSION:3.0\r\nN:Neu;{first};;;\r\nFN:{first} Neu\r\n"
                         f"EMAIL:v{i}@example.org\r\nEND:VCARD\r\n")
    return "\r\n".join(lines) + "\r\n", "".join(cards)


def test_an_address_book_of_thousands_imports_with_its_preview_undoes_and_reimports_unchanged(factory, settings):
    text, cards = _address_book(1500)
    book = read_table("Adressen.csv", text.encode("cp1252"))
    vcards = read_table("Kontakte.vcf", cards.encode("utf-8"))
    for table in (book, vcards):
        mapping = suggest_mapping(table.headers)
        preview = preview_import(factory, settings, table, mapping, filename="x", actor=None)
        done = run_import(factory, settings, table, mapping, filename="x", actor=None)
        assert outcomes(done) == outcomes(preview)
    assert done.counts["update"] == 150 and done.counts["new"] == 150  # the vCards: a new mobile for 150 people
    assert number_of(factory, Contact) == 1650 and number_of(factory, Company) == 300
    again = [run_import(factory, settings, t, suggest_mapping(t.headers), filename="x", actor=None)
             for t in (book, vcards)]
    assert [a.counts["unchanged"] for a in again] == [1500, 300]
    undo_import(factory, done.batch_id, None)  # the vCards' batch: new people gone, the mobiles too
    assert number_of(factory, Contact) == 1500 and number_of(factory, ContactPhone) == 3000


@pytest.fixture
def config_file(settings, tmp_path) -> Path:
    path = tmp_path / "crm.toml"
    path.write_text(f"[service]\ninstance_dir = '{settings.service.instance_dir}'\n"
                    f"[database]\nurl = '{settings.database.url}'\n[mail]\ncrm_addresses = ['{CRM}']\n")
    return path


def test_cli_previews_imports_with_yes_and_undoes(config_file, factory, tmp_path, capsys):
    file = str(DATA / "outlook_21.vcf")
    assert main(["--config", str(config_file), "import", file, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "FN" in out and "-> name" in out and "preview: new 2" in out and "dry run" in out
    assert number_of(factory, Contact) == 0
    assert main(["--config", str(config_file), "import", file, "--yes"]) == 0
    out = capsys.readouterr().out
    with factory() as session:
        batch = session.execute(select(ImportBatch)).scalar_one()
        assert session.execute(select(ContactEmail.email).order_by(ContactEmail.id)).scalars().all() == [
            "juergen.mueller@baeckerei-mueller.de", "andre.weiss@gmx.de"]
    assert f"imported as batch {batch.id}" in out and f"crm-inbox import --undo {batch.id}" in out
    assert main(["--config", str(config_file), "import", "--undo", str(batch.id)]) == 0
    assert "removed 3 records" in capsys.readouterr().out and number_of(factory, Contact) == 0
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 nothing")
    assert main(["--config", str(config_file), "import", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be read" in err[0]


def test_outcome_is_plain_data_for_the_page(factory, settings):
    table, mapping = load("google.csv")
    result = preview_import(factory, settings, table, mapping, filename="google.csv", actor=None)
    assert asdict(result.rows[0]) == {"row": 2, "action": "new", "label": "Lea Hoffmann, Hoffmann Medizintechnik GmbH",
                                      "contact_id": None, "company_id": None, "changed": [], "values": {}, "detail": "",
                                      "reason": "", "params": {}, "duplicate_of_row": None, "duplicate_of": [],
                                      "key": ""}


def test_erasure_takes_the_import_records_of_the_person_and_undo_does_not_bring_them_back(factory, settings,
                                                                                          existing):
    table, mapping = csv_table("Name;E-Mail;Telefon\r\nAnna Schmidt;anna@schroeder-logistik.de;030 4444444\r\n"
                               "Carla Neu;carla@example.org;\r\nBernd Neu;bernd@example.org;030 5555555\r\n")
    done = run_import(factory, settings, table, mapping, filename="list.csv", actor=None)
    anna, bernd = existing["anna"], done.rows[2].contact_id
    archive = io.BytesIO()
    with unit_of_work(factory) as session:
        assert write_export(session, anna, archive, None)["imports"] == 1
        assert erase_contact(session, anna, None)["import_records"] == 1
        assert erase_contact(session, bernd, None)["import_records"] == 1  # type: ignore[arg-type]
    [record] = json.loads(zipfile.ZipFile(archive).read("contact.json"))["imports"]
    assert (record["batch_id"], record["action"], record["before"]["phones"]) == (done.batch_id, "updated",
                                                                                  ["0171 1111111"])
    with factory() as session:
        left = session.execute(select(ImportChange.object_type, ImportChange.object_id)
                               .where(ImportChange.batch_id == done.batch_id)).all()
        assert ("contact", anna) not in left and ("contact", bernd) not in left and len(left) == 1  # Carla's
        assert "030 4444444" not in json.dumps([c.after for c in session.execute(select(ImportChange)).scalars()])
    with unit_of_work(factory) as session:  # on SQLite the next contact may get Bernd's id: undo must not touch it
        somebody = create_contact(session, ContactChanges(name="Dora Danach"), "DE", None)
        reused = somebody.id == bernd  # (SQLite without AUTOINCREMENT)
    counts = undo_import(factory, done.batch_id, None)
    assert counts == {"removed": 1, "restored": 0, "kept": 0, "gone": 0, "erased": 2}  # Carla; Anna and Bernd erased
    with factory() as session:
        assert session.get(Contact, anna) is None and session.get(Contact, somebody.id) is not None
        assert reused or factory.kw["bind"].dialect.name != "sqlite"
        assert session.execute(select(Contact.name).order_by(Contact.id)).scalars().all() == [
            "Karl Nummer", "Paula Phon", "Dora Danach"]
        assert session.get(ImportBatch, done.batch_id).counts["erased"] == 2  # type: ignore[union-attr]

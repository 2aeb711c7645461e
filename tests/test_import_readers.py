"""Reading address books as Outlook, Excel, Google and Apple export them (no database): encodings, delimiters,
vCard versions, the suggested mapping from German and English headers, and the company key."""

from __future__ import annotations

import io
import random
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from crm_inbox.errors import ValidationError
from crm_inbox.imports.mapping import check_mapping, suggest_mapping
from crm_inbox.imports.matching import company_key, phone_key
from crm_inbox.imports.readers import read_table
from crm_inbox.imports.rows import RowError, read_row
from crm_inbox.phone import to_e164

DATA = Path(__file__).parent / "data" / "import"


def table_of(name: str):  # type: ignore[no-untyped-def]
    return read_table(name, (DATA / name).read_bytes())


def record(table, index: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {h: v for h, v in zip(table.headers, table.rows[index], strict=True) if v}


def test_german_outlook_csv_in_cp1252_with_semicolons_and_a_line_break_in_a_note():
    table = table_of("outlook_de.csv")
    assert (table.file_format, table.encoding, table.delimiter) == ("csv", "cp1252", ";")
    assert table.headers[8] == "Straße geschäftlich"
    first = record(table, 0)
    assert first["Nachname"] == "Groß" and first["Firma"] == "Müller Maschinenbau GmbH"
    assert first["Notizen"] == "Rückruf wegen Angebot\nbitte Dienstag"  # a quoted line break stays in its cell
    assert len(table.rows) == 7 and all(len(r) == len(table.headers) for r in table.rows)


def test_excel_unicode_text_utf16_with_tabs_and_utf8_bom_csv_and_google():
    unicode_text = table_of("excel_unicode.txt")
    assert (unicode_text.encoding, unicode_text.delimiter) == ("utf-16", "\t")
    assert record(unicode_text, 0)["Straße"] == "Große Elbstraße 145"
    bom = table_of("utf8_bom.csv")
    assert (bom.encoding, bom.delimiter, bom.headers[0]) == ("utf-8-sig", ",", "Company")
    assert record(bom, 0)["Company"] == "Weiß & Söhne GmbH"
    google = table_of("google.csv")
    assert record(google, 0)["Address 1 - Formatted"] == "Podbielskistraße 1\n30163 Hannover"


def test_utf16_without_bom_and_pipes_are_detected():
    text = "Vorname|Nachname|Ort\r\nJörg|Weiß|Köln\r\n"
    table = read_table("export.csv", text.encode("utf-16-le"))
    assert (table.encoding, table.delimiter, table.rows) == ("utf-16-le", "|", [["Jörg", "Weiß", "Köln"]])
    hinted = read_table("excel.csv", "sep=,\r\nOrt;Name,PLZ\r\nKöln;Weiß,50667\r\n".encode("cp1252"))
    assert (hinted.delimiter, hinted.headers, hinted.rows) == (",", ["Ort;Name", "PLZ"], [["Köln;Weiß", "50667"]])


def test_a_short_cp1252_export_a_detector_took_for_baltic_cp775_reads_as_cp1252():
    table = table_of("adressen_cp1252_short.csv")  # 230 bytes, four umlauts: it was read as "M³ller"
    assert table.encoding == "cp1252" and table.headers[4] == "Telefon geschäftlich"
    assert record(table, 1)["Nachname"] == "Müller" and record(table, 1)["Firma"] == "Müller Maschinenbau GmbH"
    assert suggest_mapping(table.headers)["Telefon geschäftlich"] == "phone"


ONE_UE_IN_200_BYTES = ("Herr;Schmidt;Lieferung nur werktags von 8 bis 16 Uhr an Tor 3, bitte vorher anrufen "
                       "unter 030 1234567 oder per Mail an lager@schmidt-bau.de schreiben, die Ware wird "
                       "dort gepr\u00fcft und quittiert")


@pytest.mark.parametrize("encoding, line", [
    ("cp1252", ONE_UE_IN_200_BYTES), ("cp1252", "Frau;Weber;Straße"), ("cp1252", "Herr;Klein;Köln"),
    ("cp1252", "Öztürk;WEISS & SÖHNE;Ärzte"), ("cp1252", "Mr;O’Brien;„Top“ 5 €"), ("cp1252", "Sr.;José Sánchez;Málaga"),
    ("cp850", "Frau;Müller;Köln"), ("cp850", "Frau;Weber;Straße"), ("cp850", "Herr;Klein;Köln"),
    ("mac_roman", "Frau;Müller;Köln"), ("mac_roman", "Herr;Groß;Äußere Straße"),
])
def test_single_byte_files_read_in_their_western_code_page_even_with_few_umlauts(encoding, line):
    table = read_table("adressen.csv", f"Anrede;Name;Ort\r\n{line}\r\n".encode(encoding))
    assert (table.encoding, table.rows) == (encoding, [line.split(";")])


@pytest.mark.parametrize("data, encoding", [
    ("Name;Ort\r\nWeiß;Köln\r\n".encode(), "utf-8"),
    (b"Name;Ort\r\nWeiss;Koeln\r\n", "utf-8"),  # only ASCII: every candidate reads it alike
    (b"\xff\xfe" + "Name;Ort\r\nWeiß;Köln\r\n".encode("utf-16-le"), "utf-16"),
    (b"\xfe\xff" + "Name;Ort\r\nWeiß;Köln\r\n".encode("utf-16-be"), "utf-16"),
    ("Name;Ort\r\nWeiß;Köln\r\n".encode("utf-16-le"), "utf-16-le"),
    ("Name;Ort\r\nWeiss;Koeln\r\n".encode("utf-16-be"), "utf-16-be"),  # ASCII in UTF-16 is valid UTF-8 too
])
def test_unicode_files_with_and_without_bom(data, encoding):
    table = read_table("adressen.csv", data)
    assert table.encoding == encoding and table.headers == ["Name", "Ort"]
    assert table.rows[0] in (["Weiß", "Köln"], ["Weiss", "Koeln"])


def test_outlook_vcard_21_quoted_printable_umlauts_with_soft_line_breaks():
    table = table_of("outlook_21.vcf")
    juergen, andre = record(table, 0), record(table, 1)
    assert juergen["FN"] == "Jürgen Müller" and juergen["N:family"] == "Müller"
    assert juergen["ORG"] == "Bäckerei Müller GmbH" and juergen["ORG:unit"] == "Vertrieb"
    assert juergen["NOTE"].endswith("Grüße an die Familie und viele weitere Grüße.")  # "=" soft break joined
    assert juergen["ADR:street"] == "Ludwigstraße 4" and juergen["ADR:city"] == "München"
    assert (juergen["TEL:work"], juergen["TEL:cell"], juergen["TEL:fax"]) == (
        "+49 (89) 123456-0", "0171 9988776", "+49 (89) 123456-99")
    assert andre["FN"] == "André Weiß" and andre["TEL:home"] == "030 12345678"


def test_apple_vcard_30_groups_and_vcard_40():
    apple = record(table_of("apple_30.vcf"), 0)
    assert apple["EMAIL:work"] == "maike.koehler@koehler-antrieb.de" and apple["EMAIL:home"] == "maike.k@icloud.com"
    assert apple["TEL:cell"] == "+49 176 11122233" and apple["N:prefix"] == "Dr."
    assert apple["CATEGORIES"] == "Partner, Messe 2026"
    v40 = record(table_of("v40.vcf"), 0)
    assert v40["TEL:work"] == "+43-1-5556677" and v40["ADR:country"] == "Österreich"


def test_xlsx_values_dates_and_numbers_as_text():
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Firma", "Nachname", "PLZ", "Telefon", "Kunde seit"])
    sheet.append(["Jäger Stahlhandel KG", "Jäger", 1067, 4989123456.0, datetime(2024, 3, 1)])
    sheet.append([None, None, None, None, None])
    buffer = io.BytesIO()
    book.save(buffer)
    table = read_table("Adressen.xlsx", buffer.getvalue())
    assert table.file_format == "xlsx" and table.headers == ["Firma", "Nachname", "PLZ", "Telefon", "Kunde seit"]
    assert table.rows == [["Jäger Stahlhandel KG", "Jäger", "1067", "4989123456", date(2024, 3, 1).isoformat()]]


@pytest.mark.parametrize("name, data", [("empty.csv", b""), ("broken.xlsx", b"PK\x03\x04 not a zip"),
                                        ("a.vcf", b"BEGIN:VCARD\r\nVERSION:3.0\r\nN:x\r\n"),
                                        ("old.xls", b"\xd0\xcf\x11\xe0" + b"\0" * 100),
                                        ("renamed.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0\x03\xfe" * 40)])
def test_unreadable_files_are_one_clear_validation_error(name, data):
    with pytest.raises(ValidationError) as caught:
        read_table(name, data)
    assert caught.value.field == "file" and caught.value.message


def test_mapping_suggestions_from_german_english_google_and_outlook_headers():
    headers = ["Firma", "Anrede", "Titel", "Vorname", "Nachname", "E-Mail", "E-Mail-Adresse", "Telefon geschäftlich",
               "Mobil", "Fax", "Straße", "PLZ", "Ort", "Land", "Kundennummer", "Kategorie", "Kategorien", "Webseite",
               "Lieblingsfarbe", "Given Name", "E-mail 1 - Value", "Phone 1 - Value", "Business Phone"]
    suggested = suggest_mapping(headers)
    assert suggested["Firma"] == "company" and suggested["Anrede"] == "salutation" and suggested["Titel"] == "title"
    assert (suggested["E-Mail"], suggested["E-Mail-Adresse"], suggested["E-mail 1 - Value"]) == (
        "email", "email2", "email3")  # each target once: the next address column takes the next slot
    assert suggested["Telefon geschäftlich"] == "phone" and suggested["Phone 1 - Value"] == "phone2"
    assert suggested["Kategorie"] == "category" and suggested["Kategorien"] == "tags"
    assert suggested["Lieblingsfarbe"] == "" and suggested["Given Name"] == ""  # "first_name" went to Vorname
    assert suggested["Business Phone"] == ""  # phone and phone2 taken, and no third work phone
    checked = check_mapping(headers, {**suggested, "Lieblingsfarbe": "field:Lieblingsfarbe"})
    assert checked["Lieblingsfarbe"] == "field:Lieblingsfarbe"
    with pytest.raises(ValidationError):
        check_mapping(headers, {"Firma": "shoe_size"})
    with pytest.raises(ValidationError):
        check_mapping(headers, {"Firma": "company", "Nachname": "company"})
    with pytest.raises(ValidationError):
        check_mapping(headers, {"Nicht da": "company"})


def test_company_key_ignores_case_spacing_umlaut_spelling_and_legal_form():
    assert company_key("Müller GmbH") == company_key("mueller  gmbh") == "mueller"
    same = ["Weber Elektro GmbH & Co. KG", "WEBER ELEKTRO", "Weber Elektro GmbH", "Weber-Elektro AG & Co. KG"]
    assert {company_key(n) for n in same} == {"weber elektro"}
    assert company_key("Bäckerei Öztürk UG (haftungsbeschränkt)") == "baeckerei oeztuerk"
    assert company_key("Krüger Haustechnik e.K.") == company_key("Krueger Haustechnik e. K.") == "krueger haustechnik"
    assert company_key("Acme, Inc.") == company_key("ACME LLC") == company_key("Acme Ltd") == "acme"
    assert company_key("Schmidt OHG") != company_key("Schmitt OHG")
    assert company_key("AG") == "ag"  # a name that is only a legal form keeps it


def test_row_values_salutation_title_country_and_the_reasons_for_errors():
    headers = ["Anrede", "Vorname", "Nachname", "Land", "E-Mail", "Kategorie"]
    mapping = suggest_mapping(headers)
    row = read_row(2, headers, ["Herr Dr.", "Jürgen", "Groß", "Deutschland", "J.Gross@Example.DE", "A"], mapping, "DE")
    assert row is not None and row.name == "Jürgen Groß"
    assert (row.contact["salutation"].value, row.contact["title"], row.contact["country"]) == ("herr", "Dr.", "DE")
    assert row.emails == [("j.gross@example.de", "work")]
    assert read_row(3, headers, ["", "", "", "", "", ""], mapping, "DE") is None  # an empty row is skipped
    for cells, reason in ((["Frau", "Anna", "X", "Atlantis", "", ""], "country"),
                          (["", "Anna", "X", "", "anna(at)example", ""], "e-mail"),
                          (["", "Anna", "X", "", "", "Z"], "category"),
                          (["Herr", "", "", "DE", "", ""], "no name")):
        with pytest.raises(RowError, match=reason):
            read_row(4, headers, cells, mapping, "DE")


def test_the_import_reads_phone_numbers_exactly_as_lookups_do():
    rng = random.Random(18)
    samples = ["030 1234567", "+49 (0)171 2345678", "0049 89 4711-0", "4930123456", "+43 664 1234567", "12", "110",
               "020 7946 0018", "Anonymous", "+4912", "030 12345 ext 12", "0 30 1"]
    samples += [rng.choice(("0", "+49", "+", "00", "", "+43")) + str(rng.randrange(10 ** rng.randint(2, 13)))
                for _ in range(300)]
    for region in ("DE", "AT", "GB"):
        assert [phone_key(s, region) for s in samples] == [to_e164(s, region) for s in samples]

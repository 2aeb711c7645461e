"""Writing an export: a sheet as CSV or XLSX, persons and companies as vCard 3.0.

Spreadsheet cells get the contact CSV's formula rule (``crm_inbox.contacts.csv_export.neutralise``): names and
addresses come from strangers' mail, and openpyxl would even store a text starting with ``=`` as a formula.
The CSV stays what the contact CSV has always been (UTF-8 with a byte-order mark, comma, CRLF); Excel users
who want columns without an import dialogue take the XLSX.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import vobject
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from crm_inbox.contacts.csv_export import csv_text, neutralise
from crm_inbox.exports.tables import NUMBER_COLUMNS, Sheet
from crm_inbox.models import Company, Contact

MIMETYPES = {"csv": "text/csv; charset=utf-8",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
             "vcf": "text/vcard; charset=utf-8"}
FORMATS = tuple(MIMETYPES)


def csv_bytes(sheet: Sheet) -> bytes:
    return csv_text(sheet.header, sheet.rows).encode("utf-8")


def _xlsx_cell(value: Any, number: bool) -> Any:
    if value is None or value == "":
        return None
    if number and isinstance(value, int):
        return value
    # XML cannot carry most control characters; openpyxl refuses them rather than dropping them.
    return ILLEGAL_CHARACTERS_RE.sub("", neutralise(value))


def xlsx_bytes(sheet: Sheet, title: str) -> bytes:
    """One worksheet, header in the first row (frozen); identifiers as text, counts as numbers."""
    book = Workbook(write_only=True)
    ws = book.create_sheet(title)
    ws.freeze_panes = "A2"
    numbers = [name in NUMBER_COLUMNS for name in sheet.header]
    ws.append([_xlsx_cell(h, False) for h in sheet.header])
    for row in sheet.rows:
        ws.append([_xlsx_cell(value, numbers[i]) for i, value in enumerate(row)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


_PHONE_TYPES = (("mobil", "CELL"), ("cell", "CELL"), ("handy", "CELL"), ("fax", "FAX"), ("home", "HOME"),
                ("privat", "HOME"))


def phone_type(label: str | None) -> str:
    """The vCard TEL type for a number's label ("Mobil" → CELL); WORK for everything else (a CRM's numbers)."""
    text = (label or "").casefold()
    return next((kind for word, kind in _PHONE_TYPES if word in text), "WORK")


def split_name(name: str) -> tuple[str, str]:
    """(family, given) from a name as typed: "Müller, Anna" or "Anna Müller" (the last word is the family)."""
    if "," in name:
        family, given = name.split(",", 1)
        return family.strip(), given.strip()
    words = name.split()
    return (words[-1], " ".join(words[:-1])) if words else ("", "")


def _add(card: Any, name: str, value: Any, kind: str | None = None) -> None:
    line = card.add(name)
    line.value = value
    if kind:
        line.type_param = kind


def _address(card: Any, street: str | None, postcode: str | None, city: str | None,
             country: str | None) -> None:
    if street or postcode or city or country:
        _add(card, "adr", vobject.vcard.Address(street=street or "", city=city or "", code=postcode or "",
                                                country=country or ""), "WORK")


def contact_card(contact: Contact) -> str:
    card = vobject.vCard()
    _add(card, "uid", f"crm-inbox-contact-{contact.id}")
    _add(card, "fn", contact.display_name)
    family, given = split_name(contact.name or "")
    _add(card, "n", vobject.vcard.Name(family=family, given=given, prefix=contact.title or ""))
    if contact.company:
        _add(card, "org", [contact.company.name])
    for email in contact.emails:
        _add(card, "email", email.email, "INTERNET")
    for phone in contact.phones:
        _add(card, "tel", phone.raw, phone_type(phone.label))
    _address(card, contact.street, contact.postcode, contact.city, contact.country)
    if contact.tags:
        _add(card, "categories", list(contact.tags))
    return str(card.serialize())


def company_card(company: Company) -> str:
    """A card for the company itself: ORG and no person (N empty; Apple's X-ABShowAs shows it as a company)."""
    card = vobject.vCard()
    _add(card, "uid", f"crm-inbox-company-{company.id}")
    _add(card, "fn", company.name)
    _add(card, "n", vobject.vcard.Name())
    _add(card, "org", [company.name])
    _add(card, "x-abshowas", "COMPANY")
    for phone in company.phones:
        _add(card, "tel", phone.raw, phone_type(phone.label))
    _address(card, company.street, company.postcode, company.city, company.country)
    if company.tags:
        _add(card, "categories", list(company.tags))
    return str(card.serialize())


def vcard_bytes(cards: Iterable[str]) -> bytes:
    return "".join(cards).encode("utf-8")


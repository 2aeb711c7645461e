"""Writing an export: a sheet as CSV or XLSX, persons and companies as vCard 3.0.

Spreadsheet cells get the contact CSV's formula rule (``crm_inbox.contacts.csv_export.neutralise``): names and
addresses come from strangers' mail, and openpyxl would even store a text starting with ``=`` as a formula.
The CSV stays what the contact CSV has always been (UTF-8 with a byte-order mark, comma, CRLF); Excel users
who want columns without an import dialogue take the XLSX.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from typing import Any

from crm_inbox import vcards
from crm_inbox.contacts.csv_export import csv_text, neutralise
from crm_inbox.exports.tables import NUMBER_COLUMNS, Person, Sheet
from crm_inbox.models import Company

MIMETYPES = {"csv": "text/csv; charset=utf-8",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
             "vcf": "text/vcard; charset=utf-8"}
FORMATS = tuple(MIMETYPES)


def csv_bytes(sheet: Sheet) -> bytes:
    return csv_text(sheet.header, sheet.rows).encode("utf-8")


def _xlsx_cell(value: Any, number: bool, illegal: re.Pattern[str]) -> Any:
    if value is None or value == "":
        return None
    if number and isinstance(value, int):
        return value
    # XML cannot carry most control characters; openpyxl refuses them rather than dropping them.
    return illegal.sub("", neutralise(value))


def xlsx_bytes(sheet: Sheet, title: str) -> bytes:
    """One worksheet, header in the first row (frozen); identifiers as text, counts as numbers."""
    # Imported here: every process that processes mail imports this module, few of them write a workbook,
    # and openpyxl costs 70 ms to import.
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE as illegal

    book = Workbook(write_only=True)
    ws = book.create_sheet(title)
    ws.freeze_panes = "A2"
    numbers = [name in NUMBER_COLUMNS for name in sheet.header]
    ws.append([_xlsx_cell(h, False, illegal) for h in sheet.header])
    for row in sheet.rows:
        ws.append([_xlsx_cell(value, numbers[i], illegal) for i, value in enumerate(row)])
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


def _address_line(street: str | None, postcode: str | None, city: str | None,
                  country: str | None) -> list[tuple[str, str]]:
    if not (street or postcode or city or country):
        return []
    # ADR: post office box; extended address; street; locality; region; postal code; country
    return [("ADR;TYPE=WORK", vcards.structured(["", "", street or "", city or "", "", postcode or "",
                                                  country or ""]))]


def _categories(tags: list[str] | None) -> list[tuple[str, str]]:
    return [("CATEGORIES", ",".join(vcards.escape(t) for t in tags))] if tags else []


def contact_card(person: Person) -> str:
    r = person.row
    name = r.name or (person.emails[0] if person.emails else f"Contact {r.id}")  # Contact.display_name
    family, given = split_name(r.name or "")
    lines = [("UID", f"crm-inbox-contact-{r.id}"), ("FN", vcards.escape(name)),
             ("N", vcards.structured([family, given, "", r.title or "", ""]))]
    if r.company:
        lines.append(("ORG", vcards.escape(r.company)))
    lines += [("EMAIL;TYPE=INTERNET", vcards.escape(email)) for email in person.emails]
    lines += [(f"TEL;TYPE={phone_type(label)}", vcards.escape(raw)) for raw, label in person.phones]
    lines += _address_line(r.street, r.postcode, r.city, r.country) + _categories(r.tags)
    return vcards.card(lines)


def company_card(company: Company) -> str:
    """A card for the company itself: ORG and no person (N empty; Apple's X-ABShowAs shows it as a company)."""
    lines = [("UID", f"crm-inbox-company-{company.id}"), ("FN", vcards.escape(company.name)), ("N", ";;;;"),
             ("ORG", vcards.escape(company.name)), ("X-ABShowAs", "COMPANY")]
    lines += [(f"TEL;TYPE={phone_type(p.label)}", vcards.escape(p.raw)) for p in company.phones]
    lines += _address_line(company.street, company.postcode, company.city, company.country)
    return vcards.card(lines + _categories(company.tags))


def vcard_bytes(cards: Iterable[str]) -> bytes:
    return "".join(cards).encode("utf-8")


"""Contacts as CSV for a spreadsheet, with formula injection neutralised.

A cell that a spreadsheet would read as a formula (``=HYPERLINK(…)``, ``+cmd|…``, ``-2+3``, ``@SUM(…)``, or
one hidden behind a tab or line break) gets a leading ``'``, so Excel and LibreOffice show it as text.
Names, subjects and addresses come from strangers' mail, so every cell is treated that way.
An export of contacts is written to the audit log here (who, what filter, how many), whichever page or API asks.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from crm_inbox import audit
from crm_inbox.models import Contact

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
# Columns added later come last: a sheet built on the earlier order keeps reading the same columns.
CONTACT_COLUMNS = ("id", "name", "company", "role", "category", "emails", "phones", "tags", "owner", "origin",
                   "created_at", "salutation", "title", "street", "postcode", "city", "country", "customer_number",
                   "language")


def neutralise(value: Any) -> str:
    """One cell as safe text: ``=1+1`` → ``'=1+1``; numbers and ordinary text unchanged."""
    text = "" if value is None else str(value)
    # Spreadsheets skip leading spaces before deciding a cell is a formula.
    return "'" + text if text.lstrip(" ").startswith(FORMULA_STARTS) else text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV (RFC 4180, CRLF) with a byte-order mark, which Excel needs to read UTF-8 umlauts."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralise(h) for h in header])
    writer.writerows([neutralise(cell) for cell in row] for row in rows)
    return out.getvalue()


def contact_row(contact: Contact) -> tuple[Any, ...]:
    return (contact.id, contact.name or "", contact.company.name if contact.company else "", contact.role.value,
            contact.category.value if contact.category else "", "; ".join(e.email for e in contact.emails),
            "; ".join(p.raw for p in contact.phones), "; ".join(contact.tags or []),
            contact.owner.name if contact.owner else "", contact.origin, contact.created_at.isoformat(),
            contact.salutation.value if contact.salutation else "", contact.title, contact.street, contact.postcode,
            contact.city, contact.country, contact.customer_number, contact.language)


def contacts_csv(contacts: Iterable[Contact]) -> str:
    return csv_text(CONTACT_COLUMNS, (contact_row(c) for c in contacts))


def export_contacts_csv(session: Session, contacts: Sequence[Contact], actor: int | None, query: Any) -> str:
    """The contacts as CSV, audited as exported by ``actor`` with the filter ``query`` as the caller has it."""
    audit.record(session, actor, "export", "contact", None, {"format": "csv", "query": query, "count": len(contacts)})
    return contacts_csv(contacts)

"""One export of persons or companies (all, or those a search matches) in one format, audited: who, which
format, what search, how many. The pages and the API call this; they only say what was asked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from crm_inbox import audit
from crm_inbox.errors import ValidationError
from crm_inbox.exports import formats, tables
from crm_inbox.exports.tables import companies_in_chunks, people_in_chunks

KINDS = {"contacts": "contact", "companies": "company"}  # export → the audit log's object type


@dataclass(frozen=True)
class ExportFile:
    content: bytes
    mimetype: str
    filename: str
    count: int


def check_format(file_format: str | None) -> str:
    """``csv``, ``xlsx`` or ``vcf`` (``vcard`` is taken for ``vcf``); a ValidationError for anything else."""
    value = (file_format or "csv").strip().lower()
    value = "vcf" if value == "vcard" else value
    if value not in formats.FORMATS:
        raise ValidationError("format", "must be csv, xlsx or vcf")
    return value


def export(session: Session, kind: str, file_format: str | None, matches: ColumnElement[bool] | None, *,
           actor: int | None, query: Any) -> ExportFile:
    """``kind`` ("contacts" or "companies") that ``matches`` (all without it) as ``file_format``, audited with
    ``query`` as the caller has it (the search text on a page, the request's parameters over the API)."""
    file_format = check_format(file_format)
    if kind not in KINDS:
        raise ValidationError("kind", "must be contacts or companies")
    people = kind == "contacts"
    ids = tables.contact_ids(session, matches) if people else tables.company_ids(session, matches)
    if file_format == "vcf":
        if people:
            cards = [formats.contact_card(c) for chunk in people_in_chunks(session, ids) for c in chunk]
        else:
            cards = [formats.company_card(c) for chunk in companies_in_chunks(session, ids) for c in chunk]
        content, count = formats.vcard_bytes(cards), len(cards)
    else:
        sheet = tables.contact_sheet(session, ids) if people else tables.company_sheet(session, ids)
        count = len(sheet.rows)
        title = "Contacts" if people else "Companies"
        content = formats.csv_bytes(sheet) if file_format == "csv" else formats.xlsx_bytes(sheet, title)
    audit.record(session, actor, "export", KINDS[kind], None, {"format": file_format, "query": query, "count": count})
    return ExportFile(content, formats.MIMETYPES[file_format], f"{kind}.{file_format}", count)

"""What an update changes, as staff check it in the preview: each changed field's old and new value as short
display text ("Klara Müller" → "Klara Mueller"), keyed like ``write.changed_labels``; what an import only adds
(addresses, numbers, a domain, tags) has no old value: ("", the added values). A misread file (a wrong code page
renaming "Müller" to "M³ller") is seen here before anything is written."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_inbox.imports.index import chunks
from crm_inbox.imports.rows import PERSON_FIELDS
from crm_inbox.models import Company

ADDED = frozenset({"email", "phone", "domain", "tags"})  # keys whose value is only what the import adds
_NAMED_FIELDS = (*PERSON_FIELDS, "website", "industry")  # free fields with a target of their own
MAX_TEXT = 80  # a note may have 10,000 characters: the preview (and its kept copy) shows the start


def text(value: Any) -> str:
    """A value as one short line: enums as their value, lists joined, long text cut with "…"."""
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, list | tuple):
        value = ", ".join(text(v) for v in value)
    shown = " ".join(str(value).split())
    return shown if len(shown) <= MAX_TEXT else shown[:MAX_TEXT - 1] + "…"


def company_names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """The names of these companies, so a changed company is shown by name rather than by number."""
    out: dict[int, str] = {}
    for batch in chunks(i for i in ids if i is not None):
        for ident, name in session.execute(select(Company.id, Company.name).where(Company.id.in_(batch))):
            out[ident] = name
    return out


def differences(changes: Mapping[str, Any], old: Mapping[str, Any], *, old_fields: Mapping[str, Any],
                company_names: Mapping[int, str], emails: Sequence[str] = (), phones: Sequence[str] = (),
                domains: Sequence[str] = ()) -> dict[str, tuple[str, str]]:
    """Old and new display text of each field ``changes`` changes (``old``: the record's current values),
    plus the e-mail addresses, phone numbers and domains added."""
    out: dict[str, tuple[str, str]] = {}
    for column, new in changes.items():
        if column == "fields":
            for key, value in new.items():
                if old_fields.get(key) != value:
                    label = key if key in _NAMED_FIELDS else f"field:{key}"
                    out[label] = (text(old_fields.get(key)), text(value))
        elif column == "tags":
            before = set(old.get("tags") or [])
            out["tags"] = ("", text([t for t in new if t not in before]))
        elif column == "company_id":
            out["company"] = (company_names.get(old.get("company_id") or 0, ""), company_names.get(new or 0, ""))
        elif column != "updated_at":
            out[column] = (text(old.get(column)), text(new))
    for key, added in (("email", emails), ("phone", phones), ("domain", domains)):
        if added:
            out[key] = ("", text(added))
    return out


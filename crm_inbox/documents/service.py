"""The customer file (Kundenakte): staff upload a file (a contract, a letter, a drawing, a scan) to a person or a
company with a title and a note; it is a timeline entry (kind "document") with one attachment. Renaming and
removing are audited; a removed document's file goes with it.

Only uploads are handled here (``details["customer_file"]``): quote and order PDFs are documents too, but
commercial letters that must be kept, and ERP invoices belong to the ERP.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, load_only

from crm_inbox import audit
from crm_inbox.config import Settings
from crm_inbox.documents import storage
from crm_inbox.errors import NotFound, ValidationError
from crm_inbox.ids import MAX_ID
from crm_inbox.mail.attachments import safe_filename
from crm_inbox.models import Attachment, Company, Contact, Direction, Interaction, InteractionKind, utcnow
from crm_inbox.text import single_line
from crm_inbox.timeline.service import record_interaction

MAX_TITLE = 300
MAX_NOTE = 20_000
MARK = "customer_file"  # in ``Interaction.details``: this document was uploaded to the customer file
_TOKEN = r"[a-z0-9!#$&^_.+-]+"
_CONTENT_TYPE = re.compile(f"{_TOKEN}/{_TOKEN}")


def is_document(item: Interaction | None) -> bool:
    return item is not None and item.kind == InteractionKind.DOCUMENT and bool((item.details or {}).get(MARK))


def document_or_404(session: Session, interaction_id: int) -> Interaction:
    item = session.get(Interaction, interaction_id) if interaction_id <= MAX_ID else None
    if not is_document(item):
        raise NotFound(f"no document {interaction_id}")
    assert item is not None
    return item


def document_file(session: Session, item: Interaction) -> Attachment:
    """The document's file without its bytes (a document kept in the database may have 25 MB)."""
    return session.execute(select(Attachment).where(Attachment.interaction_id == item.id).order_by(Attachment.id)
                           .options(load_only(Attachment.id, Attachment.filename, Attachment.content_type,
                                              Attachment.size, Attachment.sha256, Attachment.stored_file))
                           ).scalars().one()


def megabytes(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB" if size >= 1_048_576 else f"{max(1, size // 1024)} KB"


def content_type_of(value: str | None, filename: str) -> str:
    """The sent type when it is one plain type, else guessed from the name. Only shown: downloads are always
    sent as application/octet-stream."""
    value = (value or "").split(";")[0].strip().lower()
    if _CONTENT_TYPE.fullmatch(value) and not value.startswith("multipart/") and len(value) <= 255:
        return value
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _text(field: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(field, "must be text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from JSON: no database stores it
        raise ValidationError(field, "is not valid text") from None
    return value


def _title(value: Any, filename: str) -> str:
    value = _text("title", value)
    title = single_line(value or "") or filename
    if len(title) > MAX_TITLE:
        raise ValidationError("title", f"must be at most {MAX_TITLE} characters")
    return title


def _note(value: Any) -> str | None:
    note = _text("note", value).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").strip()
    if len(note) > MAX_NOTE:
        raise ValidationError("note", f"must be at most {MAX_NOTE} characters")
    return note or None


def check_file(settings: Settings, content: bytes | None) -> bytes:
    if content is None:
        raise ValidationError("file", "is required")
    if not content:
        raise ValidationError("file", "is empty")
    limit = settings.documents.max_bytes
    if len(content) > limit:
        raise ValidationError("file", f"is too large ({megabytes(len(content))}): at most {megabytes(limit)} "
                                      "per document")
    return content


def add_document(session: Session, settings: Settings, *, contact_id: int | None = None,
                 company_id: int | None = None, filename: str | None, content_type: str | None,
                 content: bytes | None, title: Any, note: Any, actor: int | None) -> Interaction:
    """File a document for the person ``contact_id`` or the company ``company_id`` (one of them); audited
    "document.add". Validated before anything is written (NotFound for a missing person or company)."""
    if (contact_id is None) == (company_id is None):
        raise ValidationError("contact_id", "a document belongs to one person or one company")
    contact = session.get(Contact, contact_id) if contact_id is not None else None
    company = session.get(Company, company_id) if company_id is not None else None
    if contact is None and company is None:
        raise NotFound(f"no contact {contact_id}" if contact_id is not None else f"no company {company_id}")
    content = check_file(settings, content)
    safe = safe_filename(_text("filename", filename), content_type or "application/octet-stream")
    kind = content_type_of(content_type, safe)
    subject = _title(title, safe)
    text = _note(note)
    item = record_interaction(
        session, kind=InteractionKind.DOCUMENT, direction=Direction.INTERNAL, occurred_at=utcnow(),
        subject=subject, text=text, contacts=[(contact, "party")] if contact is not None else [],
        staff_ids=[actor] if actor else [], details={MARK: True}, created_by_id=actor)
    # A person's document is also their company's, as their notes are; a company's has no person.
    item.company_id = contact.company_id if contact is not None else company_id
    attachment = storage.store(session, settings, item, safe, kind, content)
    owner = {"contact_id": contact_id} if contact is not None else {"company_id": company_id}
    audit.record(session, actor, "document.add", "interaction", item.id, {
        **owner, "title": subject, "filename": safe, "size": attachment.size, "sha256": attachment.sha256,
        "storage": settings.documents.storage})
    return item


def rename_document(session: Session, item: Interaction, title: Any = None, filename: Any = None, *,
                    actor: int | None) -> dict[str, Any]:
    """A new title and/or file name (None: unchanged; an empty title becomes the file name). Audited
    "document.rename" with both names when something changed; returns what changed."""
    if not is_document(item):
        raise NotFound(f"no document {item.id}")
    attachment = document_file(session, item)
    changes: dict[str, Any] = {}
    if filename is not None:
        if not single_line(_text("filename", filename)):
            raise ValidationError("filename", "must be a file name")
        safe = safe_filename(filename, attachment.content_type)
        if safe != attachment.filename:
            changes["filename"] = {"from": attachment.filename, "to": safe}
            attachment.filename = safe
    if title is not None:
        new_title = _title(title, attachment.filename)
        if new_title != item.subject:
            changes["title"] = {"from": item.subject, "to": new_title}
            item.subject = new_title
    if changes:
        audit.record(session, actor, "document.rename", "interaction", item.id, changes)
    return changes


def remove_document(session: Session, settings: Settings, item: Interaction, actor: int | None) -> None:
    """Delete the document and its attachment; a file in the documents directory goes after the commit.
    Audited "document.remove" with what it was."""
    if not is_document(item):
        raise NotFound(f"no document {item.id}")
    attachment = document_file(session, item)
    storage.delete(session, settings, [attachment])
    audit.record(session, actor, "document.remove", "interaction", item.id, {
        "title": item.subject, "contact_ids": item.contact_ids, "company_id": item.company_id,
        "files": [{"filename": attachment.filename, "size": attachment.size, "sha256": attachment.sha256}]})
    # In SQL, not through the ORM's cascade (which would read the file's bytes first); the database deletes the
    # attachment, the links and the staff links with it (ON DELETE CASCADE).
    session.execute(delete(Interaction).where(Interaction.id == item.id))
    session.expunge(item)
    session.expunge(attachment)

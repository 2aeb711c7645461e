"""Where a customer-file document's bytes live: in the database (``Attachment.content``, the default) or as a
file under ``[documents] directory`` (``Attachment.stored_file``, its path there, ``content`` empty).

Files follow the transaction of their row: an upload's file is written before the commit and removed again if
the transaction rolls back (or the session closes without committing); a removed document's file is deleted
only after the commit, so a rolled-back removal keeps it. Paths are ours alone ("ab/<sha256>-<id>"), never a
part of a name someone sent.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from crm_inbox.config import Settings
from crm_inbox.errors import NotFound
from crm_inbox.models import Attachment, Interaction
from crm_inbox.private_files import open_private

log = logging.getLogger(__name__)

DATABASE = "database"
DIRECTORY = "directory"
# What ``store`` writes; anything else in the column is refused (a tampered row must not reach other files).
_STORED_FILE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{64}-[0-9]+")
_PENDING = "crm_inbox.documents.files"


def directory_of(settings: Settings) -> Path:
    """The documents directory; a relative one lies inside the instance folder."""
    path = Path(settings.documents.directory)
    return path if path.is_absolute() else settings.instance_path / path


def in_directory(settings: Settings) -> bool:
    storage = settings.documents.storage
    if storage not in (DATABASE, DIRECTORY):
        raise ValueError(f'[documents] storage must be "{DATABASE}" or "{DIRECTORY}", got {storage!r}')
    return storage == DIRECTORY


def _path(settings: Settings, stored_file: str) -> Path:
    if not _STORED_FILE.fullmatch(stored_file):
        raise NotFound(f"the stored file name {stored_file[:80]!r} is not one this service writes")
    return directory_of(settings) / stored_file


def content_of(settings: Settings, attachment: Attachment) -> bytes:
    """The attachment's bytes, from the database or the documents directory, whichever holds them. NotFound
    (logged) when the directory has lost the file."""
    if not attachment.stored_file:
        return attachment.content
    path = _path(settings, attachment.stored_file)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        log.error("attachment %s: its file %s is missing from the documents directory", attachment.id, path)
        raise NotFound(f"the file of attachment {attachment.id} is missing from the documents directory") from None


def store(session: Session, settings: Settings, interaction: Interaction, filename: str, content_type: str,
          content: bytes) -> Attachment:
    """A new attachment of ``interaction`` holding ``content``, kept where ``[documents] storage`` says.
    ``filename`` and ``content_type`` are taken as they are (the caller made them safe)."""
    digest = hashlib.sha256(content).hexdigest()
    directory = in_directory(settings)
    attachment = Attachment(interaction=interaction, filename=filename, content_type=content_type,
                            size=len(content), sha256=digest, content=b"" if directory else content)
    session.add(attachment)
    session.flush()  # its id names the file
    if directory:
        relative = f"{digest[:2]}/{digest}-{attachment.id}"
        _write(_pending(session), directory_of(settings) / relative, content)
        attachment.stored_file = relative
    return attachment


def delete(session: Session, settings: Settings, attachments: Iterable[Attachment | str | None]) -> int:
    """Delete these attachments' files (or these ``stored_file`` paths) once the session commits; the rows
    are the caller's to delete. Nothing for attachments kept in the database. Returns how many files."""
    paths = []
    for item in attachments:
        stored = item.stored_file if isinstance(item, Attachment) else item
        if stored:
            paths.append(_path(settings, stored))
    if paths:
        _pending(session)["doomed"].extend(paths)
    return len(paths)


# --- files that follow the transaction --------------------------------------------------------------------

def _pending(session: Session) -> dict[str, list[Path]]:
    """This session's files written in the open transaction and files to delete after its commit."""
    pending: dict[str, list[Path]] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = {"written": [], "doomed": []}
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_transaction_end", _after_transaction_end)
    return pending


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: the outer transaction may still roll back
        return
    pending = session.info[_PENDING]
    pending["written"].clear()
    for path in pending["doomed"]:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # the rows are gone already; the file is an orphan an admin can delete
            log.error("cannot delete the removed document's file %s: %s", path, exc)
    pending["doomed"].clear()


def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is not None:
        return
    # Ended without a commit (a rollback, or closed): the rows never existed, so neither do their files.
    pending = session.info[_PENDING]
    for path in pending["written"]:
        path.unlink(missing_ok=True)
    pending["written"].clear()
    pending["doomed"].clear()


def _write(pending: dict[str, list[Path]], path: Path, content: bytes) -> None:
    """Written whole under a temporary name and renamed (never a half file under the real one), on disk
    before the row is committed."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        with open_private(partial) as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    pending["written"].append(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the new name itself survives a power cut
    finally:
        os.close(fd)

"""An uploaded import file kept on the server between the steps upload → map → preview → confirm.

The file and a small description beside it (who uploaded it, its name, the mapping chosen) lie in the instance
folder's ``imports`` directory, readable by this service's user only, and so does the preview's outcome
(``<token>.preview.json``, kept with the mapping it was made with: the filters of the preview page read it
instead of running the dry run again, which takes a minute and SQLite's write lock for a big file). The random
token names them; only the user who uploaded the file gets it back by its token, anyone else is told it is not
there. A confirmed import removes its upload, and uploads older than a day are removed whenever someone uploads
a new file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from crm_inbox.config import Settings
from crm_inbox.imports.service import ImportResult, RowOutcome
from crm_inbox.private_files import open_private

log = logging.getLogger(__name__)

STALE_SECONDS = 24 * 3600
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")  # what secrets.token_urlsafe(24) gives: never a path


@dataclass
class Upload:
    token: str
    owner: int
    filename: str
    mapping: dict[str, str] | None
    folder: Path

    @property
    def data_path(self) -> Path:
        return self.folder / f"{self.token}.upload"

    @property
    def meta_path(self) -> Path:
        return self.folder / f"{self.token}.json"

    @property
    def preview_path(self) -> Path:
        return self.folder / f"{self.token}.preview.json"

    @property
    def claim_path(self) -> Path:
        return self.folder / f"{self.token}.importing"

    def data(self) -> bytes:
        return self.data_path.read_bytes()


def folder(settings: Settings) -> Path:
    path = settings.instance_path / "imports"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def keep(settings: Settings, owner: int, filename: str, data: bytes) -> Upload:
    """Store a new upload of ``owner``'s (after removing stale ones) and return it with its token."""
    where = folder(settings)
    sweep(where)
    upload = Upload(secrets.token_urlsafe(24), owner, filename, None, where)
    with open_private(upload.data_path) as out:
        out.write(data)
    _write_meta(upload)
    return upload


def find(settings: Settings, token: object, owner: int) -> Upload | None:
    """``owner``'s upload with this token; None for a malformed, unknown, removed or someone else's token."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    where = folder(settings)
    try:
        meta: dict[str, Any] = json.loads((where / f"{token}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("owner") != owner or not (where / f"{token}.upload").exists():
        return None
    mapping = meta.get("mapping")
    return Upload(token, owner, str(meta.get("filename") or ""), mapping if isinstance(mapping, dict) else None,
                  where)


def set_mapping(upload: Upload, mapping: dict[str, str]) -> None:
    if mapping != upload.mapping:
        upload.preview_path.unlink(missing_ok=True)  # made with another mapping
    upload.mapping = dict(mapping)
    _write_meta(upload)


_OUTCOME_FIELDS = tuple(f.name for f in fields(RowOutcome))


def keep_preview(upload: Upload, result: ImportResult) -> None:
    """Keep the preview's outcome for the filters, with the mapping it was made with (a row as a list: 100,000
    rows are some MB)."""
    rows = [[getattr(o, name) for name in _OUTCOME_FIELDS] for o in result.rows]
    kept = {"mapping": upload.mapping, "fields": _OUTCOME_FIELDS, "counts": result.counts, "rows": rows}
    with open_private(upload.preview_path) as out:
        out.write(json.dumps(kept, ensure_ascii=False, separators=(",", ":")).encode())


def kept_preview(upload: Upload) -> ImportResult | None:
    """The preview kept for the upload's current mapping; None when there is none (or it was made with another
    mapping, or by another version of this code)."""
    try:
        kept: dict[str, Any] = json.loads(upload.preview_path.read_bytes())
    except (OSError, ValueError):
        return None
    if kept.get("mapping") != upload.mapping or kept.get("fields") != list(_OUTCOME_FIELDS):
        return None
    rows = []
    for values in kept["rows"]:
        outcome = RowOutcome(**dict(zip(_OUTCOME_FIELDS, values, strict=True)))
        outcome.duplicate_of = [(str(k), int(i), str(key)) for k, i, key in outcome.duplicate_of]
        outcome.values = {str(k): (str(old), str(new)) for k, (old, new) in outcome.values.items()}
        rows.append(outcome)
    return ImportResult(None, kept["counts"], rows)


def claim(upload: Upload) -> bool:
    """Take the upload for the import: True for exactly one of two requests confirming it at once (a double
    click imports once); the other finds it gone."""
    try:
        os.rename(upload.data_path, upload.claim_path)
    except FileNotFoundError:
        return False
    return True


def release(upload: Upload) -> None:
    """Give a claimed upload back (the import failed: the user may change the mapping and try again)."""
    os.rename(upload.claim_path, upload.data_path)


def claimed_data(upload: Upload) -> bytes:
    return upload.claim_path.read_bytes()


def discard(upload: Upload) -> None:
    for path in (upload.data_path, upload.claim_path, upload.meta_path, upload.preview_path):
        path.unlink(missing_ok=True)


def sweep(where: Path, now: float | None = None) -> int:
    """Remove the files of uploads older than a day (never confirmed or abandoned); how many were removed."""
    limit = (now if now is not None else time.time()) - STALE_SECONDS
    removed = 0
    for path in where.iterdir():
        if path.suffix not in {".upload", ".json", ".importing"}:
            continue
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another request removed it just now
            continue
    if removed:
        log.info("removed %d stale import upload files", removed)
    return removed


def _write_meta(upload: Upload) -> None:
    meta = {"owner": upload.owner, "filename": upload.filename, "mapping": upload.mapping}
    with open_private(upload.meta_path) as out:
        out.write(json.dumps(meta, ensure_ascii=False).encode())

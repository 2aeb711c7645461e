"""Importing an address book: upload → map the columns → preview (the real import, rolled back) → confirm;
the list of past imports, each one's page, and undoing one as a whole. Admin and staff; read-only users get 403
on every step.

The file stays on the server between the steps (web.pages.import_uploads), private to the uploader; the pages
only translate between forms and the import service (crm_inbox.imports), which validates, writes and audits.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import select
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.imports.history import change_counts
from crm_inbox.imports.mapping import TARGETS, Mapping, check_mapping, save_mapping, saved_mappings, suggest_mapping
from crm_inbox.imports.readers import Table, read_table
from crm_inbox.imports.service import SKIPPED, list_batches, preview_import, run_import, undo_import
from crm_inbox.models import ImportBatch, ImportMapping, ImportState, StaffRole, StaffUser
from crm_inbox.text import single_line
from web.auth import current_user, editor_id
from web.pages import import_uploads
from web.pages.blueprint import pages
from web.pages.import_labels import labels
from web.pages.too_large import answers
from web.requestdb import db, row_or_404, state

log = logging.getLogger(__name__)

PREVIEW_ROWS = 500  # rows of the chosen filter shown; the counts cover all
SAMPLE_ROWS = 3
ACTIONS = ("new", "update", "unchanged", "duplicate", "error")
FORM_ALLOWANCE = 64 * 1024  # the multipart envelope and the CSRF field around the file


def _message(exc: ValidationError) -> str:
    return exc.message or str(exc)


@pages.context_processor
def _import_labels() -> dict[str, object]:
    return labels()


# --- the upload's size: the import's own limit, with a clear answer instead of a bare 413 ---------------------

@pages.url_value_preprocessor
def _upload_limit(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Runs before every before_request function, also the app's NUL check that reads the body: the import
    # upload may be larger than the app's limit for other requests ([imports] max_upload_bytes).
    if endpoint == "pages.import_upload":
        request.max_content_length = state().settings.imports.max_upload_bytes + FORM_ALLOWANCE


@answers("pages.import_upload")
def _too_large(exc: RequestEntityTooLarge) -> tuple[str, int] | HTTPException:
    user = current_user()
    if request.endpoint != "pages.import_upload" or user is None or user.role == StaffRole.READONLY:
        return exc  # (no abort here: an error raised inside an error handler would become a 500)
    log.info("import upload refused: larger than %d bytes", state().settings.imports.max_upload_bytes)
    return _list_page(_too_large_text()), 413


def _too_large_text() -> str:
    limit = state().settings.imports.max_upload_bytes
    return _("The file is larger than the %(size)s an import may have.", size=_size(limit))


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} B"


# --- the list of imports and the upload --------------------------------------------------------------------

def _list_page(error: str | None = None) -> str:
    batches = list_batches(db())
    names = _staff_names({b.created_by_id for b in batches} | {b.undone_by_id for b in batches})
    return render_template("import_list.html", batches=batches, names=names, error=error,
                           limit=_size(state().settings.imports.max_upload_bytes))


def _staff_names(ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = db().execute(select(StaffUser.id, StaffUser.name).where(StaffUser.id.in_(wanted)))
    return {ident: name for ident, name in rows}


@pages.get("/imports")
def imports() -> str:
    editor_id()
    return _list_page()


@pages.post("/imports")
def import_upload() -> BaseResponse | tuple[str, int]:
    by = editor_id()
    settings = state().settings
    sent = request.files.get("file")
    if sent is None or not sent.filename:
        return _refuse(_("Choose a file to import."))
    limit = settings.imports.max_upload_bytes
    data = sent.stream.read(limit + 1)
    if len(data) > limit:
        log.info("import upload refused: larger than %d bytes", limit)
        return _list_page(_too_large_text()), 413
    # The name as the browser sent it, without a path and control characters (it is stored and shown).
    filename = single_line(sent.filename.replace("\\", "/").rsplit("/", 1)[-1])[:255] or "upload"
    try:
        table = read_table(filename, data)
    except ValidationError as exc:
        return _refuse(_("The file cannot be imported: %(why)s", why=_message(exc)))
    if not table.rows:
        return _refuse(_("The file has no rows to import."))
    upload = import_uploads.keep(settings, by, filename, data)
    return redirect(url_for("pages.import_mapping", upload=upload.token))


def _refuse(message: str) -> tuple[str, int]:
    log.info("import upload refused: %s", message)
    return _list_page(message), 400


# --- mapping the columns -----------------------------------------------------------------------------------

def _upload_or_none(token: object) -> import_uploads.Upload | None:
    return import_uploads.find(state().settings, token, editor_id())


def _gone() -> BaseResponse:
    flash(_("This upload is no longer there (imported, cancelled or older than a day). Please upload the file "
            "again."))
    return redirect(url_for("pages.imports"))


def _table(upload: import_uploads.Upload, data: bytes | None = None) -> Table:
    return read_table(upload.filename, upload.data() if data is None else data)


def _mapping_page(upload: import_uploads.Upload, table: Table, chosen: Mapping, *, applied: int | None = None,
                  error: str | None = None, save_as: str = "") -> str:
    samples = [[row[i] for row in table.rows[:SAMPLE_ROWS]] for i in range(len(table.headers))]
    return render_template("import_mapping.html", upload=upload, table=table, samples=samples, chosen=chosen,
                           targets=TARGETS, saved=saved_mappings(db()), applied=applied, error=error,
                           save_as=save_as)


@pages.get("/imports/mapping")
def import_mapping() -> str | BaseResponse:
    upload = _upload_or_none(request.args.get("upload"))
    if upload is None:
        return _gone()
    table = _table(upload)
    chosen = suggest_mapping(table.headers)
    if upload.mapping is not None:  # back from the preview: what was chosen before
        chosen |= {h: t for h, t in upload.mapping.items() if h in chosen}
    applied = None
    saved_id = request.args.get("saved", "")
    if saved_id.isdigit():
        saved = db().get(ImportMapping, int(saved_id)) if len(saved_id) < 10 else None
        if saved is not None:
            # The saved mapping decides for the columns it knows; the others keep their suggestion unless the
            # saved mapping gives that target to another column.
            known = {h: str(t) for h, t in saved.mapping.items() if h in chosen}
            taken = set(known.values())
            chosen = {h: known.get(h, "" if t in taken else t) for h, t in chosen.items()}
            applied = saved.id
    return _mapping_page(upload, table, chosen, applied=applied)


def _mapping_from_form(table: Table) -> Mapping:
    return {header: (request.form.get(f"col{i}") or "").strip() for i, header in enumerate(table.headers)}


@pages.post("/imports/mapping")
def import_mapping_save() -> BaseResponse | tuple[str, int]:
    by = editor_id()
    upload = _upload_or_none(request.form.get("upload"))
    if upload is None:
        return _gone()
    table = _table(upload)
    mapping = _mapping_from_form(table)
    save_as = (request.form.get("save_as") or "").strip()
    try:
        mapping = check_mapping(table.headers, mapping)
        if save_as:
            save_mapping(db(), save_as, mapping, by)
    except ValidationError as exc:
        db().rollback()
        log.info("import mapping refused: %s", exc)
        return _mapping_page(upload, table, mapping, error=_message(exc), save_as=save_as), 400
    import_uploads.set_mapping(upload, mapping)
    if save_as:
        flash(_("Mapping saved as “%(name)s”.", name=save_as))
    return redirect(url_for("pages.import_preview", upload=upload.token))


@pages.post("/imports/discard")
def import_discard() -> BaseResponse:
    upload = _upload_or_none(request.form.get("upload"))
    if upload is not None:
        import_uploads.discard(upload)
        flash(_("The upload was removed; nothing was imported."))
    return redirect(url_for("pages.imports"))


# --- the preview and the confirmed import -------------------------------------------------------------------

@pages.get("/imports/preview")
def import_preview() -> str | BaseResponse:
    by = editor_id()
    upload = _upload_or_none(request.args.get("upload"))
    if upload is None:
        return _gone()
    if upload.mapping is None:
        return redirect(url_for("pages.import_mapping", upload=upload.token))
    result = import_uploads.kept_preview(upload)
    if result is None:
        s = state()
        try:
            result = preview_import(s.factory, s.settings, _table(upload), upload.mapping,
                                    filename=upload.filename, actor=by)
        except ValidationError as exc:  # more rows than [imports] max_rows, no column mapped to a field
            log.info("import preview refused: %s", exc)
            flash(_("No preview: %(why)s", why=_message(exc)))
            return redirect(url_for("pages.import_mapping", upload=upload.token))
        import_uploads.keep_preview(upload, result)
    show = request.args.get("show", "")
    show = show if show in ACTIONS else ""
    rows = [r for r in result.rows if r.action == show] if show else result.rows
    return render_template("import_preview.html", upload=upload, result=result, rows=rows[:PREVIEW_ROWS],
                           hidden=max(0, len(rows) - PREVIEW_ROWS), show=show, actions=ACTIONS,
                           mapping_json=json.dumps(upload.mapping, sort_keys=True, ensure_ascii=False))


@pages.post("/imports/confirm")
def import_confirm() -> BaseResponse:
    by = editor_id()
    upload = _upload_or_none(request.form.get("upload"))
    if upload is None or upload.mapping is None:
        return _gone()
    try:
        sent = json.loads(request.form.get("mapping") or "null")
    except ValueError:
        sent = None
    if sent != upload.mapping:
        # The mapping was changed in another window since this preview: import only what was previewed.
        log.info("import confirm refused: the mapping differs from the one previewed")
        flash(_("The mapping was changed since this preview. Please check the preview again."))
        return redirect(url_for("pages.import_preview", upload=upload.token))
    if not import_uploads.claim(upload):
        return _gone()
    s = state()
    try:
        table = read_table(upload.filename, import_uploads.claimed_data(upload))
        result = run_import(s.factory, s.settings, table, upload.mapping, filename=upload.filename, actor=by)
    except (ValidationError, Conflict) as exc:
        import_uploads.release(upload)
        log.info("import refused: %s", exc)
        why = _message(exc) if isinstance(exc, ValidationError) else str(exc)
        flash(_("Nothing was imported: %(why)s", why=why))
        return redirect(url_for("pages.import_preview", upload=upload.token))
    except BaseException:
        import_uploads.release(upload)
        raise
    import_uploads.discard(upload)
    flash(_("Imported %(file)s: the counts are below; the import can be undone as a whole.", file=upload.filename))
    if result.batch_id is None:
        return redirect(url_for("pages.imports"))
    return redirect(url_for("pages.import_batch", batch_id=result.batch_id))


# --- one import, and undoing it ------------------------------------------------------------------------------

def _batch_page(template: str, batch_id: int) -> str:
    batch = row_or_404(ImportBatch, batch_id)
    counts = {k: v for k, v in (batch.counts or {}).items() if k != SKIPPED}
    kept = (batch.counts or {}).get(SKIPPED)
    skipped = [s for s in kept if isinstance(s, dict)] if isinstance(kept, list) else []
    left_out = int(counts.get("error", 0)) + int(counts.get("duplicate", 0))
    return render_template(template, batch=batch, changes=change_counts(db(), batch.id), counts=counts,
                           skipped=skipped, unlisted=max(0, left_out - len(skipped)) if skipped else 0,
                           names=_staff_names({batch.created_by_id, batch.undone_by_id}),
                           undoable=batch.state == ImportState.DONE)


@pages.get("/imports/<int:batch_id>")
def import_batch(batch_id: int) -> str:
    editor_id()
    return _batch_page("import_batch.html", batch_id)


@pages.get("/imports/<int:batch_id>/undo")
def import_undo_confirm(batch_id: int) -> str:
    editor_id()
    return _batch_page("import_undo.html", batch_id)


@pages.post("/imports/<int:batch_id>/undo")
def import_undo(batch_id: int) -> BaseResponse:
    by = editor_id()
    try:
        done = undo_import(state().factory, batch_id, by)
    except NotFound:
        abort(404)
    except Conflict as exc:
        log.info("import undo refused: %s", exc)
        flash(_("Not undone: this import was undone already."))
        return redirect(url_for("pages.import_batch", batch_id=batch_id))
    flash(_("Import undone. Removed: %(removed)d; given back their values from before: %(restored)d; kept, as "
            "they were changed or used since: %(kept)d; deleted since by other means: %(gone)d.",
            removed=done.get("removed", 0), restored=done.get("restored", 0), kept=done.get("kept", 0),
            gone=done.get("gone", 0)))
    if done.get("erased"):
        flash(ngettext("%(num)d record of a person erased since could not be restored.",
                       "%(num)d records of people erased since could not be restored.", done["erased"]))
    return redirect(url_for("pages.import_batch", batch_id=batch_id))

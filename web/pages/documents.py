"""The customer file on the pages: the "Add document" form on a person's and a company's page, renaming and
removing a document on its own page (pages.interaction, with the forms of _document_actions.html)."""

from __future__ import annotations

import logging
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.documents.service import (
    add_document,
    document_or_404,
    is_document,
    remove_document,
    rename_document,
)
from crm_inbox.errors import NotFound, ValidationError
from crm_inbox.models import Company, Contact, Interaction
from web.auth import editor_id
from web.pages import companies, customer
from web.pages.blueprint import pages
from web.pages.filters import format_size
from web.pages.too_large import answers
from web.requestdb import db, row_or_404, state

log = logging.getLogger(__name__)
UPLOADS = frozenset({"pages.contact_document_add", "pages.company_document_add"})
FORM_ALLOWANCE = 64 * 1024  # the title, the note, the CSRF token and the multipart framing besides the file


@pages.url_value_preprocessor
def _upload_limit(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Before the app's NUL check reads the body: an upload may be as large as [documents] max_bytes.
    if endpoint in UPLOADS:
        request.max_content_length = state().settings.documents.max_bytes + FORM_ALLOWANCE


@pages.app_template_global()
def document_limit() -> str:
    """The largest document, as the form shows it ("25.0 MB")."""
    return format_size(state().settings.documents.max_bytes)


@pages.app_template_global()
def is_customer_file(item: Interaction) -> bool:
    return is_document(item)


def _why(exc: ValidationError) -> str:
    if exc.field == "file":
        if exc.message == "is required":
            return _("Choose a file.")
        if exc.message == "is empty":
            return _("The file is empty.")
        if exc.message.startswith("is too large"):
            return _too_large_text()
    return f"{exc.field}: {exc.message}"


def _too_large_text() -> str:
    return _("The file is too large: a document may have at most %(size)s.", size=document_limit())


@answers(*UPLOADS)
def _far_too_large(_exc: RequestEntityTooLarge) -> tuple[str, int]:
    """A file far over the limit is refused before it is read (413): the page again with the message a file
    just over the limit gets."""
    editor_id()
    owner: dict[str, int] = request.view_args or {}
    log.info("document upload for %s refused: larger than %d bytes", owner, state().settings.documents.max_bytes)
    flash(_("No document filed: %(why)s", why=_too_large_text()))
    if "contact_id" in owner:
        return customer.contact(owner["contact_id"]), 413
    return companies.company(owner["company_id"]), 413


def _file(*, contact_id: int | None = None, company_id: int | None = None) -> Interaction:
    upload = request.files.get("file")
    has_file = upload is not None and bool(upload.filename)
    limit = state().settings.documents.max_bytes
    return add_document(
        db(), state().settings, contact_id=contact_id, company_id=company_id,
        filename=upload.filename if upload is not None and has_file else None,
        content_type=upload.mimetype if upload is not None and has_file else None,
        content=upload.read(limit + 1) if upload is not None and has_file else None,  # one more: "too large"
        title=request.form.get("title", ""), note=request.form.get("note", ""), actor=editor_id())


@pages.post("/contacts/<int:contact_id>/documents")
def contact_document_add(contact_id: int) -> BaseResponse | tuple[str, int]:
    editor_id()
    row_or_404(Contact, contact_id)
    try:
        item = _file(contact_id=contact_id)
    except ValidationError as exc:
        # The person's page again with the reason (422: nothing was kept).
        log.info("document upload for contact %s refused: %s", contact_id, exc)
        db().rollback()
        flash(_("No document filed: %(why)s", why=_why(exc)))
        return customer.contact(contact_id), 422
    flash(_("“%(title)s” is in the customer file.", title=item.subject))
    return redirect(url_for("pages.contact", contact_id=contact_id) + "#timeline")


@pages.post("/companies/<int:company_id>/documents")
def company_document_add(company_id: int) -> BaseResponse | tuple[str, int]:
    editor_id()
    row_or_404(Company, company_id)
    try:
        item = _file(company_id=company_id)
    except ValidationError as exc:
        log.info("document upload for company %s refused: %s", company_id, exc)
        db().rollback()
        flash(_("No document filed: %(why)s", why=_why(exc)))
        return companies.company(company_id), 422
    flash(_("“%(title)s” is in the customer file.", title=item.subject))
    return redirect(url_for("pages.company", company_id=company_id) + "#timeline")


def _document(interaction_id: int) -> Interaction:
    try:
        return document_or_404(db(), interaction_id)
    except NotFound:
        abort(404)


def _owner_page(item: Interaction) -> str:
    """Where the document was filed: the person's page, else the company's."""
    if item.contact_ids:
        return url_for("pages.contact", contact_id=item.contact_ids[0]) + "#timeline"
    if item.company_id is not None:
        return url_for("pages.company", company_id=item.company_id) + "#timeline"
    return url_for("pages.contacts")


@pages.post("/documents/<int:interaction_id>/rename")
def document_rename(interaction_id: int) -> BaseResponse | tuple[str, int]:
    by = editor_id()
    item = _document(interaction_id)
    back = url_for("pages.interaction", interaction_id=interaction_id)
    try:
        changes = rename_document(db(), item, request.form.get("title", ""), request.form.get("filename") or None,
                                  actor=by)
    except ValidationError as exc:
        log.info("renaming document %s refused: %s", interaction_id, exc)
        db().rollback()
        flash(_("Not renamed: %(why)s", why=f"{exc.field}: {exc.message}"))
        return redirect(back)
    if changes:
        flash(_("Renamed."))
    return redirect(back)


@pages.post("/documents/<int:interaction_id>/remove")
def document_remove(interaction_id: int) -> BaseResponse | str:
    by = editor_id()
    item = _document(interaction_id)
    if request.form.get("confirm") != "1":
        return render_template("document_remove.html", item=item)
    back = _owner_page(item)
    title = item.subject or ""
    remove_document(db(), state().settings, item, by)
    flash(_("“%(title)s” was removed from the customer file.", title=title))
    return redirect(back)

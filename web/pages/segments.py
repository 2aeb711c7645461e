"""Segments: the list of saved segments with their live counts, the editor (a condition builder in
static/segment_editor.js over a JSON textarea that saves without JavaScript too), the live count while editing,
and a segment's page: its people as the contact list shows them, exports, rename and delete.

Every role may look at segments and export them (as the contact list exports); read-only users change none.
The service (crm_inbox.segments.service) checks the definition and audits; here forms and errors are translated.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from crm_inbox.contacts.listing import contacts_page
from crm_inbox.erp.overdue import overdue_of_people
from crm_inbox.erp.overdue import today as erp_today
from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.models import Category, CustomerType, Role, Segment, StaffUser
from crm_inbox.segments import definition as defs
from crm_inbox.segments import service as segments
from web.auth import current_user, editor_id
from web.downloads import export_response
from web.i18n import N_
from web.pages.blueprint import pages
from web.pages.contacts import page_number
from web.pages.filters import CONTACT_ROLE_LABELS
from web.requestdb import db, row_or_404, state

log = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_DEFINITION = 100_000  # characters of the JSON in a form: far more than 100 conditions need
DEFAULT_DEFINITION: dict[str, Any] = {"all": [{"field": "role", "op": "is", "value": "customer"}]}

# --- what the condition builder offers: every field of crm_inbox.segments.definition with its operators ----

FIELD_LABELS = {
    "role": N_("Role"), "category": N_("Category"), "tags": N_("Tags"),
    "company.industry": N_("Company: industry"), "company.size": N_("Company: size"),
    "company.customer_type": N_("Company: B2B or B2C"), "company.category": N_("Company: category"),
    "postcode": N_("Postcode"), "city": N_("City"), "country": N_("Country"), "owner": N_("Owner"),
    "created": N_("Created"), "last_contact": N_("Last contact (mail or call)"),
    "open_ticket": N_("Has an open ticket"), "open_opportunity": N_("Has an open opportunity"),
    "open_quote": N_("Has an open quote"), "bouncing": N_("E-mail address bounces"),
    "consent.email": N_("Consent: e-mail"), "consent.letter": N_("Consent: letter"),
    "consent.phone": N_("Consent: phone"),
}
FIELD_GROUPS = (
    (N_("Person"), ("role", "category", "tags", "owner", "created")),
    (N_("Address"), ("postcode", "city", "country")),
    (N_("Company"), ("company.industry", "company.size", "company.customer_type", "company.category")),
    (N_("Behaviour"), ("last_contact", "open_ticket", "open_opportunity", "open_quote", "bouncing")),
    (N_("Consent"), ("consent.email", "consent.letter", "consent.phone")),
)
OP_LABELS = {
    "is": N_("is"), "in": N_("is one of"), "empty": N_("is empty"), "has": N_("has"),
    "has_any": N_("has any of"), "has_all": N_("has all of"), "between": N_("between"),
    "before": N_("before"), "after": N_("after"), "within_days": N_("within the last … days"),
    "older_than_days": N_("more than … days ago"), "never": N_("never"), "equals": N_("equals"),
    "exists": N_("is filled in"),
}
CONSENT_LABELS = {"unknown": N_("unknown"), "pending": N_("double opt-in pending"), "opted_in": N_("opted in"),
                  "opted_out": N_("opted out")}
LIST_OPS = frozenset({"in", "has_any", "has_all"})
NO_VALUE_OPS = frozenset({"empty", "never", "exists"})
# field → the kind of its value: a choice among fixed values, free text, a date, days, yes/no, a range
CHOICE_FIELDS = frozenset({"role", "category", "company.customer_type", "company.category", "owner",
                           "consent.email", "consent.letter", "consent.phone"})
FLAG_FIELDS = frozenset({"open_ticket", "open_opportunity", "open_quote", "bouncing"})


def _value_kind(field: str, op: str) -> str:
    """How the builder asks for the value of ``field`` with ``op`` (see segment_editor.js)."""
    if op in NO_VALUE_OPS:
        return "none"
    if op == "between":
        return "range"
    if op in {"before", "after"}:
        return "date"
    if op in {"within_days", "older_than_days"}:
        return "days"
    if field in FLAG_FIELDS:
        return "flag"
    if field in CHOICE_FIELDS:
        return "choices" if op in LIST_OPS else "choice"
    return "texts" if op in LIST_OPS else "text"


def _choices(field: str, staff: list[tuple[int, str]]) -> list[list[Any]]:
    if field == "role":
        return [[r.value, _(CONTACT_ROLE_LABELS.get(r.value, r.value))] for r in Role]
    if field in {"category", "company.category"}:
        return [[c.value, c.value] for c in Category]
    if field == "company.customer_type":
        return [[t.value, t.value] for t in CustomerType]
    if field == "owner":
        return [[ident, name] for ident, name in staff]
    if field.startswith("consent."):
        return [[s, _(CONSENT_LABELS[s])] for s in defs.CONSENT_STATES]
    return []


def field_specs() -> list[dict[str, Any]]:
    """The builder's fields: label, group, operators with the kind of value each takes, and the choices."""
    staff = [(ident, name) for ident, name in db().execute(
        select(StaffUser.id, StaffUser.name).order_by(StaffUser.name, StaffUser.id))]
    specs = []
    for group, fields in FIELD_GROUPS:
        for field in fields:
            specs.append({"field": field, "label": _(FIELD_LABELS[field]), "group": _(group),
                          "ops": [{"op": op, "label": _(OP_LABELS[op]), "value": _value_kind(field, op)}
                                  for op in defs.FIELDS[field]],
                          "choices": _choices(field, staff)})
    specs.append({"field": defs.FREE_FIELD_PREFIX, "label": _("Free field …"), "group": _("Free fields"),
                  "ops": [{"op": op, "label": _(OP_LABELS[op]), "value": _value_kind("fields.x", op)}
                          for op in defs.FREE_FIELD_OPS], "choices": []})
    return specs


# --- reading the form ---------------------------------------------------------------------------------

def _definition_from(raw: str | None) -> Any:
    """The JSON of the form's definition field, or a ValidationError naming "definition"."""
    text = (raw or "").strip()
    if not text:
        raise ValidationError("definition", "add at least one condition")
    if len(text) > MAX_DEFINITION:
        raise ValidationError("definition", f"is too long (at most {MAX_DEFINITION} characters)")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ValidationError("definition", "is not valid JSON") from None


def error_text(exc: ValidationError) -> str:
    """The service's message with the path of the bad part ("definition.all[1].value: must be …")."""
    return _("%(field)s: %(why)s", field=exc.field, why=exc.message)


def count_text(count: int) -> str:
    return ngettext("%(num)d person", "%(num)d people", count)


def _pretty(definition: Any) -> str:
    return json.dumps(definition, ensure_ascii=False, indent=2)


def _count(segment: Segment) -> int | None:
    """The segment's count; None when its stored definition no longer reads (a page still shows)."""
    try:
        return segments.count(db(), segment)
    except ValidationError as exc:
        log.warning("segment %s: stored definition refused: %s", segment.id, exc)
        return None


# --- the list ----------------------------------------------------------------------------------------

@pages.get("/segments")
def segments_list() -> str:
    rows = [(segment, _count(segment)) for segment in segments.list_segments(db())]
    return render_template("segments.html", rows=rows)


# --- the editor --------------------------------------------------------------------------------------

def _editor(segment: Segment | None, *, name: str, description: str, definition_text: str,
            error: str | None = None, error_field: str | None = None) -> str:
    return render_template("segment_edit.html", segment=segment, name=name, description=description,
                           definition_text=definition_text, error=error, error_field=error_field,
                           specs=json.dumps(field_specs(), ensure_ascii=False), groups=FIELD_GROUPS,
                           field_labels=FIELD_LABELS)


@pages.get("/segments/new")
def segment_new() -> str:
    editor_id()
    return _editor(None, name="", description="", definition_text=_pretty(DEFAULT_DEFINITION))


@pages.post("/segments")
def segment_create() -> BaseResponse | tuple[str, int]:
    by = editor_id()
    name, description = request.form.get("name", ""), request.form.get("description", "")
    raw = request.form.get("definition", "")
    try:
        segment = segments.create(db(), name, _definition_from(raw), actor=by, description=description or None)
    except (ValidationError, Conflict) as exc:
        db().rollback()
        return _refused(None, name, description, raw, exc)
    flash(_("Segment “%(name)s” saved.", name=segment.name))
    return redirect(url_for("pages.segment", segment_id=segment.id))


def _refused(segment: Segment | None, name: str, description: str, raw: str,
             exc: ValidationError | Conflict) -> tuple[str, int]:
    log.info("segment not saved: %s", exc)
    if isinstance(exc, ValidationError):
        text, field, status = error_text(exc), exc.field, 400
    else:
        text, field, status = _("A segment with this name exists already."), "name", 409
    return _editor(segment, name=name, description=description, definition_text=raw, error=text,
                   error_field=field), status


@pages.get("/segments/<int:segment_id>/edit")
def segment_edit(segment_id: int) -> str:
    editor_id()
    segment = row_or_404(Segment, segment_id)
    return _editor(segment, name=segment.name, description=segment.description or "",
                   definition_text=_pretty(segment.definition))


@pages.post("/segments/<int:segment_id>/edit")
def segment_save(segment_id: int) -> BaseResponse | tuple[str, int]:
    by = editor_id()
    segment = row_or_404(Segment, segment_id)
    name, description = request.form.get("name", ""), request.form.get("description", "")
    raw = request.form.get("definition", "")
    try:
        segments.update(db(), segment.id, actor=by, name=name, definition=_definition_from(raw),
                        description=description)
    except (ValidationError, Conflict) as exc:
        db().rollback()
        return _refused(db().get(Segment, segment_id), name, description, raw, exc)
    flash(_("Segment “%(name)s” saved.", name=segment.name))
    return redirect(url_for("pages.segment", segment_id=segment.id))


@pages.post("/segments/count")
def segment_count() -> Response | tuple[Response, int]:
    """The live count while editing: how many people the definition in the form finds (nothing is saved), or
    the error with the path of the bad part, as saving would refuse it."""
    try:
        found = segments.count(db(), _definition_from(request.form.get("definition")))
    except ValidationError as exc:
        return jsonify(error={"field": exc.field, "message": exc.message, "text": error_text(exc)}), 400
    return jsonify(count=found, text=count_text(found))


# --- one segment: its people, exports, rename, delete -------------------------------------------------

@pages.get("/segments/<int:segment_id>")
def segment(segment_id: int) -> str:
    item = row_or_404(Segment, segment_id)
    page = page_number()
    count = _count(item)
    rows, has_next = contacts_page(db(), segments.matches(db(), item), page, PAGE_SIZE) \
        if count is not None else ([], False)
    owed = overdue_of_people(db(), erp_today(state().settings), [row.contact.id for row in rows])
    user = current_user()
    creator = db().get(StaffUser, item.created_by_id) if item.created_by_id else None
    return render_template("segment.html", segment=item, count=count, contacts=rows,
                           page=page, has_next=has_next, owed=owed, creator=creator,
                           staff_may=user is not None and user.role.value != "readonly")


@pages.get("/segments/<int:segment_id>/export")
def segment_export(segment_id: int) -> Response:
    user = current_user()
    assert user is not None  # the blueprint's guard
    try:
        done = segments.export(db(), segment_id, request.args.get("format"), actor=user.id)
    except NotFound:
        abort(404)
    except ValidationError:
        abort(400, description=_("Export as CSV, Excel (xlsx) or vCard (vcf)."))
    return export_response(done.content, done.mimetype, done.filename)


@pages.post("/segments/<int:segment_id>/rename")
def segment_rename(segment_id: int) -> BaseResponse:
    by = editor_id()
    row_or_404(Segment, segment_id)
    try:
        renamed = segments.rename(db(), segment_id, request.form.get("name", ""), actor=by)
    except ValidationError as exc:
        db().rollback()
        flash(_("Not renamed: %(why)s", why=error_text(exc)))
    except Conflict:
        db().rollback()
        flash(_("Not renamed: a segment with this name exists already."))
    else:
        flash(_("Renamed to “%(name)s”.", name=renamed.name))
    return redirect(url_for("pages.segment", segment_id=segment_id))


@pages.post("/segments/<int:segment_id>/delete")
def segment_delete(segment_id: int) -> BaseResponse | str:
    """Without ``confirm`` the question; with it the segment is gone (audited with its definition)."""
    by = editor_id()
    item = row_or_404(Segment, segment_id)
    if request.form.get("confirm") != "1":
        return render_template("segment_delete.html", segment=item)
    name = item.name
    segments.delete(db(), segment_id, actor=by)
    flash(_("Segment “%(name)s” deleted.", name=name))
    return redirect(url_for("pages.segments_list"))

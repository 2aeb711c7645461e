"""Segments over the API: saved filters (CRUD), the count of any definition, a segment's people page by page and
its export. Bad definitions answer 400 with the path of the bad part in ``field`` (``definition.all[1].value``)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from crm_inbox.erp.overdue import overdue_of_people
from crm_inbox.erp.overdue import today as erp_today
from crm_inbox.errors import ValidationError
from crm_inbox.models import Contact, Segment
from crm_inbox.segments import service as segments
from web.api import serialize as ser
from web.api.blueprint import api
from web.api.errors import fail, get_or_404, int_arg, json_body
from web.auth import actor_id, require_token
from web.downloads import export_response
from web.requestdb import db, state

_INPUT = {"name", "definition", "description"}


def _segment(item: Segment) -> dict[str, Any]:
    out = {"id": item.id, "name": item.name, "description": item.description, "definition": item.definition,
           "created_by_id": item.created_by_id, "created_at": ser.when(item.created_at),
           "updated_at": ser.when(item.updated_at), "url": url_for("api.get_segment", segment_id=item.id)}
    return out


def _counted(item: Segment) -> dict[str, Any]:
    """A segment with how many people it finds now (None when its stored definition no longer reads: it can
    still be read and patched)."""
    try:
        count: int | None = segments.count(db(), item)
    except ValidationError:
        count = None
    return {**_segment(item), "count": count}


def _body(required: tuple[str, ...] = ()) -> dict[str, Any]:
    body = json_body()
    unknown = sorted(set(body) - _INPUT)
    if unknown:
        fail(400, "invalid", f"unknown field {unknown[0]!r}", field=unknown[0])
    for key in required:
        if key not in body:
            fail(400, "invalid", "is required", field=key)
    for key in ("name", "description"):
        if body.get(key) is not None and not isinstance(body[key], str):
            fail(400, "invalid", "must be a text", field=key)
    return body


def _get(segment_id: int) -> Segment:
    return get_or_404(Segment, segment_id, "segment")


@api.get("/segments")
@require_token()
def list_segments() -> Response:
    return jsonify(items=[_segment(s) for s in segments.list_segments(db())])


@api.post("/segments")
@require_token(write=True)
def create_segment() -> Response:
    body = _body(("name", "definition"))
    item = segments.create(db(), body["name"], body["definition"], actor=actor_id(),
                           description=body.get("description"))
    response = jsonify(_counted(item))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_segment", segment_id=item.id)
    return response


@api.post("/segments/count")
@require_token()
def count_segment() -> Response:
    """How many people a definition finds (nothing is saved): the live count of an editor."""
    body = json_body()
    if "definition" not in body:
        fail(400, "invalid", "is required", field="definition")
    return jsonify(count=segments.count(db(), body["definition"]))


@api.get("/segments/<int:segment_id>")
@require_token()
def get_segment(segment_id: int) -> Response:
    item = _get(segment_id)
    return jsonify(_counted(item))


@api.patch("/segments/<int:segment_id>")
@require_token(write=True)
def patch_segment(segment_id: int) -> Response:
    item = _get(segment_id)
    body = _body()
    if "definition" in body and body["definition"] is None:
        raise ValidationError("definition", "must be a condition, not null")
    segments.update(db(), item.id, actor=actor_id(), name=body.get("name"), definition=body.get("definition"),
                    description=body.get("description"))
    return jsonify(_counted(item))


@api.delete("/segments/<int:segment_id>")
@require_token(write=True)
def delete_segment(segment_id: int) -> Response:
    segments.delete(db(), _get(segment_id).id, actor=actor_id())
    return Response(status=204)


@api.get("/segments/<int:segment_id>/contacts")
@require_token()
def segment_contacts(segment_id: int) -> Response:
    """Page ``page`` of the people the segment finds, in the contact list's dictionary order."""
    item = _get(segment_id)
    page = int_arg("page", 1, 1, 100_000)
    size = int_arg("size", 50, 1, segments.MAX_PAGE)
    ids, has_next = segments.contact_ids(db(), item, page=page, size=size)
    loaded = {c.id: c for c in db().execute(select(Contact).where(Contact.id.in_(ids)).options(
        selectinload(Contact.emails), selectinload(Contact.phones))).scalars()} if ids else {}
    owed = overdue_of_people(db(), erp_today(state().settings), ids)
    return jsonify(items=[ser.contact(loaded[i], owed[i]) for i in ids if i in loaded], page=page,
                   has_next=has_next)


@api.get("/segments/<int:segment_id>/export")
@require_token()
def export_segment(segment_id: int) -> Response:
    """The segment's people as CSV, XLSX or vCards (audited by the export)."""
    _get(segment_id)
    file_format = request.args.get("format") or "csv"
    if file_format not in {"csv", "xlsx", "vcf"}:
        fail(400, "invalid", "format must be csv, xlsx or vcf", field="format")
    done = segments.export(db(), segment_id, file_format, actor=actor_id())
    return export_response(done.content, done.mimetype, done.filename)

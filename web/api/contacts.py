"""Contacts, companies and a contact's timeline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any

from flask import Response, jsonify, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from crm_inbox.contacts.csv_export import export_contacts_csv
from crm_inbox.contacts.inputs import CompanyChanges, ContactChanges
from crm_inbox.contacts.merge import merge_contacts
from crm_inbox.contacts.search import company_matches, contact_matches, query_text
from crm_inbox.contacts.service import create_company as new_company
from crm_inbox.contacts.service import create_contact as new_contact
from crm_inbox.contacts.service import update_company, update_contact
from crm_inbox.erp.overdue import overdue_of_companies, overdue_of_people
from crm_inbox.erp.overdue import today as erp_today
from crm_inbox.errors import BadCursor, ValidationError
from crm_inbox.ids import MAX_ID, is_id, ref_id
from crm_inbox.mail.addresses import normalise_email
from crm_inbox.models import (
    Company,
    CompanyDomain,
    CompanyPhone,
    Contact,
    ContactEmail,
    ContactPhone,
    InteractionKind,
)
from crm_inbox.phone import to_e164
from crm_inbox.timeline.service import add_note, contact_timeline, decode_cursor
from web.api import serialize as ser
from web.api.blueprint import api
from web.api.errors import fail, get_or_404, int_arg, json_body
from web.api.shapes import ADDRESS_KEYS, changes, flatten_addresses, free_fields, json_field, list_of, text
from web.auth import actor_id, require_token
from web.downloads import csv_response
from web.requestdb import db, state


def _region() -> str:
    return state().settings.phone.default_region


def _get_contact(contact_id: int) -> Contact:
    return get_or_404(Contact, contact_id, "contact",
                      options=[selectinload(Contact.emails), selectinload(Contact.phones)])


def _get_company(company_id: int) -> Company:
    return get_or_404(Company, company_id, "company")


def _check_cursor(cursor: str) -> None:
    """A cursor the database cannot compare with (no time zone, an id out of range) is bad input, not a 500."""
    when, ident = decode_cursor(cursor)  # BadCursor → 400
    try:
        when.astimezone(UTC)  # a date that leaves the calendar in UTC cannot be bound
    except (OverflowError, ValueError):
        raise BadCursor("cursor is not valid") from None
    if when.tzinfo is None or not 0 < ident <= MAX_ID:
        raise BadCursor("cursor is not valid")


_CONTACT_JSON: dict[str, Callable[[str, Any], Any]] = {
    "name": text, "company_id": ref_id, "emails": list_of("e-mail addresses"), "phones": list_of("phone numbers"),
    "role": text, "category": text, "tags": list_of("strings"), "fields": free_fields, "owner_id": ref_id,
    "salutation": text, "title": text, "language": text, "customer_number": text,
    **dict.fromkeys(ADDRESS_KEYS, text)}
_COMPANY_JSON: dict[str, Callable[[str, Any], Any]] = {
    "name": text, "domains": list_of("domain names"), "phones": list_of("phone numbers"), "industry": text,
    "size": text, "customer_type": text, "category": text, "tags": list_of("strings"), "fields": free_fields,
    "customer_number": text, **dict.fromkeys(ADDRESS_KEYS, text),
    **dict.fromkeys((f"delivery_{key}" for key in ADDRESS_KEYS), text)}
# The JSON nests the postal addresses ({"address": {"city": …}}); the services take flat fields.
_CONTACT_NESTS = {"address": ""}
_COMPANY_NESTS = {"address": "", "delivery_address": "delivery_"}


def _contact_changes() -> ContactChanges:
    return changes(ContactChanges, _CONTACT_JSON, flatten_addresses(json_body(), _CONTACT_NESTS))


def _company_changes() -> CompanyChanges:
    return changes(CompanyChanges, _COMPANY_JSON, flatten_addresses(json_body(), _COMPANY_NESTS))


@contextmanager
def _json_names(nests: dict[str, str]) -> Iterator[None]:
    """A service's error names the field as the JSON has it ("city" → "address.city"); the shapes' errors
    already do."""
    try:
        yield
    except ValidationError as exc:
        raise ValidationError(json_field(exc.field, nests), exc.message) from None


def _created(body: dict[str, Any], location: str) -> Response:
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = location
    return response


@api.post("/contacts")
@require_token(write=True)
def create_contact() -> Response:
    given = _contact_changes()
    with _json_names(_CONTACT_NESTS):
        contact = new_contact(db(), given, _region(), actor_id())
    return _created(ser.contact(contact), url_for("api.get_contact", contact_id=contact.id))


@api.get("/contacts")
@require_token()
def list_contacts() -> Response:
    limit = int_arg("limit", 50, 1, 500)
    offset = int_arg("offset", 0, 0, 10_000_000)
    query = select(Contact).options(selectinload(Contact.emails), selectinload(Contact.phones))
    if email := request.args.get("email"):
        query = query.where(Contact.id.in_(
            select(ContactEmail.contact_id).where(ContactEmail.email == (normalise_email(email) or email.lower()))))
    if phone := request.args.get("phone"):
        e164 = to_e164(phone, _region())
        if e164 is None:
            fail(400, "invalid", "phone is not a phone number", field="phone")
        query = query.where(Contact.id.in_(select(ContactPhone.contact_id).where(ContactPhone.e164 == e164)))
    if q := query_text(request.args.get("q")):  # the pages' search: name, company, address, phone
        query = query.where(contact_matches(q, _region()))
    if company_id := int_arg("company_id", 0, 1, MAX_ID):
        query = query.where(Contact.company_id == company_id)
    if request.args.get("format", "json") not in {"json", "csv"}:
        fail(400, "invalid", "format must be json or csv", field="format")
    if request.args.get("format") == "csv":
        # An export: the same filters and paging (limit up to 500), with the company and owner by name.
        rows = db().execute(query.options(selectinload(Contact.company), selectinload(Contact.owner))
                            .order_by(Contact.id).limit(limit).offset(offset)).scalars().all()
        return csv_response(export_contacts_csv(db(), rows, actor_id(), request.args.to_dict()), "contacts.csv")
    rows = db().execute(query.order_by(Contact.id).limit(limit).offset(offset)).scalars().all()
    owed = overdue_of_people(db(), erp_today(state().settings), [c.id for c in rows])
    return jsonify(items=[ser.contact(c, owed[c.id]) for c in rows])


@api.get("/contacts/<int:contact_id>")
@require_token()
def get_contact(contact_id: int) -> Response:
    return jsonify(ser.contact(_get_contact(contact_id)))


@api.patch("/contacts/<int:contact_id>")
@require_token(write=True)
def patch_contact(contact_id: int) -> Response:
    contact = _get_contact(contact_id)
    given = _contact_changes()
    with _json_names(_CONTACT_NESTS):
        update_contact(db(), contact, given, _region(), actor_id())
    return jsonify(ser.contact(contact))


@api.get("/contacts/<int:contact_id>/timeline")
@require_token()
def timeline(contact_id: int) -> Response:
    _get_contact(contact_id)
    kind = request.args.get("kind") or None
    if kind is not None and kind not in {k.value for k in InteractionKind}:
        fail(400, "invalid", "kind must be one of " + ", ".join(k.value for k in InteractionKind), field="kind")
    cursor = request.args.get("cursor") or None
    if cursor is not None:
        _check_cursor(cursor)
    page = contact_timeline(db(), contact_id, limit=int_arg("limit", 50, 1, 200), cursor=cursor,
                            kind=InteractionKind(kind) if kind else None)
    return jsonify(items=[ser.timeline_item(i) for i in page.items], next_cursor=page.next_cursor)


@api.post("/contacts/<int:contact_id>/notes")
@require_token(write=True)
def add_contact_note(contact_id: int) -> Response:
    note = add_note(db(), _get_contact(contact_id), actor_id(), json_body().get("text"))
    return _created(ser.timeline_item(note), f"/api/v1/interactions/{note.id}")


@api.post("/contacts/<int:contact_id>/merge")
@require_token(write=True)
def merge_contact(contact_id: int) -> Response:
    """Merge the contact ``duplicate_id`` into this one (all links and history move; it is deleted)."""
    survivor = _get_contact(contact_id)
    duplicate_id = json_body().get("duplicate_id")
    if not is_id(duplicate_id):
        fail(400, "invalid", "duplicate_id must be a contact id", field="duplicate_id")
    duplicate = db().get(Contact, duplicate_id)
    if duplicate is None:
        fail(400, "invalid", "no such contact", field="duplicate_id")
    moved = merge_contacts(db(), survivor, duplicate, actor_id())
    return jsonify({**ser.contact(survivor), "merged": moved})


@api.post("/companies")
@require_token(write=True)
def create_company() -> Response:
    given = _company_changes()
    with _json_names(_COMPANY_NESTS):
        company = new_company(db(), given, _region(), actor_id())
    return _created(ser.company(company), url_for("api.get_company", company_id=company.id))


@api.get("/companies")
@require_token()
def list_companies() -> Response:
    limit = int_arg("limit", 50, 1, 500)
    offset = int_arg("offset", 0, 0, 10_000_000)
    query = select(Company).options(selectinload(Company.domains), selectinload(Company.phones))
    if domain := request.args.get("domain", "").strip().lower():
        query = query.where(Company.id.in_(select(CompanyDomain.company_id).where(CompanyDomain.domain == domain)))
    if phone := request.args.get("phone"):
        e164 = to_e164(phone, _region())
        if e164 is None:
            fail(400, "invalid", "phone is not a phone number", field="phone")
        query = query.where(Company.id.in_(select(CompanyPhone.company_id).where(CompanyPhone.e164 == e164)))
    if q := query_text(request.args.get("q")):  # the pages' search: name or mail domain
        query = query.where(company_matches(q))
    rows = db().execute(query.order_by(Company.id).limit(limit).offset(offset)).scalars().all()
    owed = overdue_of_companies(db(), erp_today(state().settings), [c.id for c in rows])
    return jsonify(items=[ser.company(c, owed[c.id]) for c in rows])


@api.get("/companies/<int:company_id>")
@require_token()
def get_company(company_id: int) -> Response:
    return jsonify(ser.company(_get_company(company_id)))


@api.patch("/companies/<int:company_id>")
@require_token(write=True)
def patch_company(company_id: int) -> Response:
    company = _get_company(company_id)
    given = _company_changes()
    with _json_names(_COMPANY_NESTS):
        update_company(db(), company, given, _region(), actor_id())
    return jsonify(ser.company(company))

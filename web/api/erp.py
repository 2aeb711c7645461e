"""The ERP coupling: master data upserted by the ERP's customer number (one record, or a nightly bulk sync),
invoices and payments from the ERP. Orders go out through ``GET /orders?since=`` (web.api.orders) and the
``order.created`` webhook."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, jsonify, request
from sqlalchemy import select

from crm_inbox.contacts.inputs import CompanyChanges, ContactChanges
from crm_inbox.erp import invoices as billing
from crm_inbox.erp import master_data
from crm_inbox.erp.overdue import is_overdue, today
from crm_inbox.errors import Conflict, ValidationError
from crm_inbox.ids import ref_id
from crm_inbox.models import Attachment, Invoice
from web.api import serialize as ser
from web.api.blueprint import api
from web.api.errors import fail, json_body
from web.api.sales_shapes import amount, iso_date
from web.api.shapes import (
    ADDRESS_KEYS,
    Parser,
    changes,
    flatten_addresses,
    free_fields,
    json_field,
    list_of,
    string,
    text,
)
from web.auth import actor_id, require_token
from web.json_errors import ApiError
from web.requestdb import db, state

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

MAX_BULK = 1000  # items per sync request, companies and contacts together
JSON_ALLOWANCE = 64 * 1024  # the invoice's other fields besides the PDF's base64
WHITESPACE = re.compile(r"[ \t\r\n]+")


@api.url_value_preprocessor
def _invoice_limit(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Before the body is read: an invoice may carry a PDF of [documents] max_bytes, a third larger in base64,
    # whatever the limit for other requests (far larger bodies are a 413 before they are read).
    if endpoint == "api.erp_put_invoice":
        encoded = (state().settings.documents.max_bytes + 2) // 3 * 4 + JSON_ALLOWANCE
        request.max_content_length = max(request.max_content_length or 0, encoded)


def _logged(view: F) -> F:
    """One log line for a refused ERP write (the API's error handlers answer it without one)."""
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except (ValidationError, Conflict, ApiError) as exc:
            log.info("ERP %s %s refused: %s", request.method, request.path[:200], exc)
            raise
    return wrapped  # type: ignore[return-value]

# The fields of the contacts API (web.api.contacts) but the customer number, which is the URL's.
CONTACT_JSON: dict[str, Parser] = {
    "name": text, "company_id": ref_id, "emails": list_of("e-mail addresses"), "phones": list_of("phone numbers"),
    "role": text, "category": text, "tags": list_of("strings"), "fields": free_fields, "owner_id": ref_id,
    "salutation": text, "title": text, "language": text, **dict.fromkeys(ADDRESS_KEYS, text)}
COMPANY_JSON: dict[str, Parser] = {
    "name": text, "domains": list_of("domain names"), "phones": list_of("phone numbers"), "industry": text,
    "size": text, "customer_type": text, "category": text, "tags": list_of("strings"), "fields": free_fields,
    **dict.fromkeys(ADDRESS_KEYS, text), **dict.fromkeys((f"delivery_{key}" for key in ADDRESS_KEYS), text)}
CONTACT_NESTS = {"address": ""}
COMPANY_NESTS = {"address": "", "delivery_address": "delivery_"}


def _region() -> str:
    return state().settings.phone.default_region


def _json_name(exc: ValidationError, nests: dict[str, str], prefix: str = "") -> ValidationError:
    return ValidationError(prefix + json_field(exc.field, nests), exc.message)


def _upsert_company(number: str, data: dict[str, Any]) -> master_data.Upserted:
    given = changes(CompanyChanges, COMPANY_JSON, flatten_addresses(data, COMPANY_NESTS))
    try:
        return master_data.upsert_company(db(), number, given, _region(), actor_id())
    except ValidationError as exc:
        raise _json_name(exc, COMPANY_NESTS) from None


def _upsert_contact(number: str, data: dict[str, Any]) -> master_data.Upserted:
    data = dict(data)
    company = data.pop("company", None)  # the company's customer number
    if company is not None and not isinstance(company, str):
        raise ValidationError("company", "must be the company's customer number as a string")
    given = changes(ContactChanges, CONTACT_JSON, flatten_addresses(data, CONTACT_NESTS))
    try:
        return master_data.upsert_contact(db(), number, given, _region(), actor_id(), company_number=company)
    except ValidationError as exc:
        raise _json_name(exc, CONTACT_NESTS) from None


def _answer(body: dict[str, Any], done: master_data.Upserted) -> Response:
    response = jsonify({**body, "created": done.created, "changed": done.changed})
    response.status_code = 201 if done.created else 200
    return response


@api.put("/erp/companies/<external_id>")
@require_token(write=True)
@_logged
def erp_put_company(external_id: str) -> Response:
    """Create or update the company with this customer number (201 when created); unchanged: no write."""
    done = _upsert_company(external_id, json_body())
    return _answer(ser.company(done.record), done)


@api.put("/erp/contacts/<external_id>")
@require_token(write=True)
@_logged
def erp_put_contact(external_id: str) -> Response:
    """Create or update the person with this customer number; ``"company"`` names their company by its
    customer number."""
    done = _upsert_contact(external_id, json_body())
    return _answer(ser.contact(done.record), done)


@api.get("/erp/companies/<external_id>")
@require_token()
def erp_get_company(external_id: str) -> Response:
    company = master_data.company_by_number(db(), external_id.strip())
    if company is None:
        fail(404, "not_found", f"no company has customer number {external_id[:50]}")
    return jsonify(ser.company(company))


@api.get("/erp/contacts/<external_id>")
@require_token()
def erp_get_contact(external_id: str) -> Response:
    contact = master_data.contact_by_number(db(), external_id.strip())
    if contact is None:
        fail(404, "not_found", f"no contact has customer number {external_id[:50]}")
    return jsonify(ser.contact(contact))


def _sync_item(kind: str, index: int, item: Any,
               upsert: Callable[[str, dict[str, Any]], master_data.Upserted]) -> dict[str, Any]:
    """One item of a bulk sync in its own savepoint: an error undoes that item only."""
    where = f"{kind}[{index}]"
    number = item.get("external_id") if isinstance(item, dict) else None
    outcome: dict[str, Any] = {"kind": {"companies": "company", "contacts": "contact"}[kind], "index": index,
                               "external_id": number if isinstance(number, str) else None}
    savepoint = db().begin_nested()
    try:
        if not isinstance(item, dict):
            raise ValidationError(where, "must be an object")
        if not isinstance(number, str):
            raise ValidationError(f"{where}.external_id", "is required (the customer number, a string)")
        done = upsert(number, {key: value for key, value in item.items() if key != "external_id"})
        savepoint.commit()
    except (ValidationError, Conflict) as exc:
        savepoint.rollback()
        message = exc.message if isinstance(exc, ValidationError) else str(exc)
        field = exc.field if isinstance(exc, ValidationError) else None
        log.info("ERP sync: %s refused: %s", where, exc)
        return {**outcome, "outcome": "error", "error": {"field": field, "message": message}}
    result = "created" if done.created else "updated" if done.changed else "unchanged"
    return {**outcome, "outcome": result, "id": done.record.id, "changed": done.changed}


@api.post("/erp/sync")
@require_token(write=True)
@_logged
def erp_sync() -> Response:
    """The nightly sync: ``{"companies": [...], "contacts": [...]}``, each item with its ``external_id``; the
    companies first, so a contact may name a company of the same request. Each item's outcome (created,
    updated, unchanged, error); a bad item does not stop the others and leaves nothing half-written."""
    data = json_body()
    unknown = sorted(set(data) - {"companies", "contacts"})
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    lists = {key: data.get(key) or [] for key in ("companies", "contacts")}
    for key, items in lists.items():
        if not isinstance(items, list):
            raise ValidationError(key, "must be a list")
    if sum(len(items) for items in lists.values()) > MAX_BULK:
        raise ValidationError("body", f"at most {MAX_BULK} items per request")
    master_data.hold_transaction(db())
    results = [_sync_item("companies", i, item, _upsert_company) for i, item in enumerate(lists["companies"])]
    results += [_sync_item("contacts", i, item, _upsert_contact) for i, item in enumerate(lists["contacts"])]
    counts = {key: sum(r["outcome"] == key for r in results) for key in ("created", "updated", "unchanged", "error")}
    return jsonify(counts=counts, items=results)


# --- invoices and payments ---

def _money(field: str, value: Any) -> Any:
    if value is None:
        raise ValidationError(field, "is required")
    return amount(field, value)


def _pdf(value: Any) -> bytes | None:
    """The PDF in base64, also wrapped in lines as MIME has it; refused before decoding when it cannot fit
    [documents] max_bytes."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("pdf", "must be the PDF in base64")
    limit = state().settings.documents.max_bytes
    value = WHITESPACE.sub("", value)
    if len(value) > (limit + 2) // 3 * 4 + 4:
        raise ValidationError("pdf", f"must be at most {limit} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("pdf", "is not valid base64") from None


_INVOICE_KEYS = {"date": "issued_on", "due_date": "due_on", "net": "net", "gross": "gross", "currency": "currency",
                 "status": "status", "customer_number": "customer_number", "order_number": "order_number",
                 "pdf": "pdf"}


def _invoice_input(data: dict[str, Any]) -> billing.InvoiceInput:
    unknown = sorted(set(data) - set(_INVOICE_KEYS))
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    for required in ("date", "net", "gross", "customer_number"):
        if data.get(required) is None:
            raise ValidationError(required, "is required")
    issued_on = iso_date("date", data["date"])
    assert issued_on is not None
    values: dict[str, Any] = {
        "issued_on": issued_on, "due_on": iso_date("due_date", data.get("due_date")),
        "net": _money("net", data["net"]), "gross": _money("gross", data["gross"]),
        "customer_number": string("customer_number", data["customer_number"]),
        "order_number": text("order_number", data.get("order_number")), "pdf": _pdf(data.get("pdf"))}
    for key in ("status", "currency"):
        if data.get(key) is not None:
            values[key] = string(key, data[key])
    return billing.InvoiceInput(**values)


def invoice_json(invoice: Invoice) -> dict[str, Any]:
    """The invoice as the ERP sent it, with what the CRM knows about it: paid so far, overdue, its payments,
    its timeline entry and the PDF's download."""
    pdf = db().execute(select(Attachment.id).where(Attachment.interaction_id == invoice.interaction_id,
                                                   Attachment.content_type == billing.PDF).limit(1)
                       ).scalar_one_or_none() if invoice.interaction_id else None
    return {**billing.payload(invoice),
            "overdue": is_overdue(invoice.status, invoice.due_on, today(state().settings)),
            "interaction_id": invoice.interaction_id, "pdf_url": f"/api/v1/attachments/{pdf}" if pdf else None,
            "payments": [{"id": p.external_id, "amount": f"{p.amount:.2f}", "date": p.paid_on.isoformat()}
                         for p in billing.payments_of(db(), invoice)],
            "created_at": ser.when(invoice.created_at), "updated_at": ser.when(invoice.updated_at)}


@api.put("/erp/invoices/<number>")
@require_token(write=True)
@_logged
def erp_put_invoice(number: str) -> Response:
    """Create or update the invoice with this number (201 when created); unchanged: no write."""
    invoice, created, changed = billing.put_invoice(db(), state().settings, number, _invoice_input(json_body()),
                                                    actor_id())
    response = jsonify({**invoice_json(invoice), "created": created, "changed": changed})
    response.status_code = 201 if created else 200
    return response


@api.get("/erp/invoices/<number>")
@require_token()
def erp_get_invoice(number: str) -> Response:
    invoice = db().execute(select(Invoice).where(Invoice.number == number.strip())).scalar_one_or_none()
    if invoice is None:
        fail(404, "not_found", f"no invoice has number {number[:50]}")
    return jsonify(invoice_json(invoice))


@api.post("/erp/payments")
@require_token(write=True)
@_logged
def erp_post_payment() -> Response:
    """``{"id": the ERP's payment id, "invoice": number, "amount": "119.00", "date": "2026-12-01"}``: 201 when
    recorded, 200 when this id is recorded already with these values, 409 with other values."""
    data = json_body()
    unknown = sorted(set(data) - {"id", "invoice", "amount", "date"})
    if unknown:
        raise ValidationError(unknown[0], "is not a known field")
    for required in ("id", "invoice", "amount", "date"):
        if data.get(required) is None:
            raise ValidationError(required, "is required")
    paid_on = iso_date("date", data["date"])
    assert paid_on is not None
    given = billing.PaymentInput(external_id=string("id", data["id"]),
                                 invoice_number=string("invoice", data["invoice"]),
                                 amount=_money("amount", data["amount"]), paid_on=paid_on)
    payment, created = billing.record_payment(db(), given, actor_id())
    invoice = db().get_one(Invoice, payment.invoice_id)
    response = jsonify({"id": payment.external_id, "amount": f"{payment.amount:.2f}",
                        "date": payment.paid_on.isoformat(), "created": created, "invoice": invoice_json(invoice)})
    response.status_code = 201 if created else 200
    return response

"""The sales path's part of the OpenAPI document: products, opportunities, the pipeline, quotes and orders.

Added to ``openapi.PATHS`` and ``openapi.SCHEMAS`` when the API package imports this module (the document
refers to those dicts, so it serves them whole); apart from openapi.py to keep both modules short."""

from __future__ import annotations

from typing import Any

from crm_inbox.models import OpportunitySource, OrderState, QuoteState
from web.api.openapi import ERRORS, FORBIDDEN, ID, NOT_FOUND, PAGING, PATHS, SCHEMAS, _error, _json, _q, _ref

_str_or_null = {"type": ["string", "null"]}
_int_or_null = {"type": ["integer", "null"], "minimum": 1}
_date_or_null = {"type": ["string", "null"], "format": "date"}
_time_or_null = {"type": ["string", "null"], "format": "date-time"}
_time = {"type": "string", "format": "date-time"}
# Out: amounts are decimal strings. In: a string or a JSON number (read exactly; NaN and extra places: 400).
_money = {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["1234.50"]}
_money_or_null = {"type": ["string", "null"], "pattern": r"^-?\d+\.\d{2}$"}
_decimal = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["19", "2.5"]}


def _decimal_in(places: int, digits: int, *, nullable: bool = False) -> dict[str, Any]:
    whole = digits - places
    options: list[dict[str, Any]] = [
        {"type": "string", "pattern": rf"^-?\d{{1,{whole}}}(\.\d{{1,{places}}})?$"},
        {"type": "number", "exclusiveMinimum": -(10 ** whole), "exclusiveMaximum": 10 ** whole}]
    if nullable:
        options.append({"type": "null"})
    return {"anyOf": options, "description": f"a decimal string (\"12.50\") or number; at most {places} places"}


_price_in = _decimal_in(4, 16)
_percent_in = _decimal_in(2, 5)
_stage = {"type": "string", "description": "a key of GET /sales/stages (won and lost end a deal)"}
_source = {"type": "string", "enum": [s.value for s in OpportunitySource]}
_quote_state = {"type": "string", "enum": [s.value for s in QuoteState]}
_order_state = {"type": "string", "enum": [s.value for s in OrderState],
                "description": "open; handed_off: the ERP has taken it; cancelled"}
_body = lambda schema: {"required": True, "content": {"application/json": {"schema": schema}}}  # noqa: E731
_conflict = {"409": _error("The change clashes with the record's state (e.g. an accepted quote)")}

_product_fields = {
    "number": {"type": "string", "minLength": 1, "maxLength": 50}, "name": {"type": "string", "minLength": 1},
    "net_price": _price_in, "vat_rate": _decimal_in(2, 5, nullable=True), "unit": {"type": "string", "minLength": 1},
    "description": _str_or_null, "active": {"type": "boolean"}}
_opportunity_fields = {
    "title": {"type": "string", "minLength": 1, "maxLength": 300}, "contact_id": _int_or_null,
    "company_id": _int_or_null, "owner_id": _int_or_null, "amount": _decimal_in(2, 14, nullable=True),
    "close_date": _date_or_null, "stage": _stage, "probability": {"type": ["integer", "null"], "minimum": 0,
                                                                   "maximum": 100},
    "source": _source}
_line_in = {"type": "object", "additionalProperties": False, "properties": {
    "text": _str_or_null, "product_id": _int_or_null, "quantity": _decimal_in(3, 14), "unit": _str_or_null,
    "unit_price": _decimal_in(4, 16, nullable=True), "discount_percent": _percent_in,
    "vat_rate": _decimal_in(2, 5, nullable=True), "description": _str_or_null},
    "description": "free text, or a product_id that fills text, unit, price and rate not given"}
_quote_fields = {
    "lines": {"type": "array", "items": _line_in, "maxItems": 1000}, "intro": _str_or_null, "terms": _str_or_null,
    "language": {"type": ["string", "null"], "enum": ["de", "en", None]}, "valid_until": _date_or_null}

_totals = {"type": "object", "properties": {
    "net": _money, "vat": _money, "gross": _money, "line_nets": {"type": "array", "items": _money},
    "rates": {"type": "array", "description": "per VAT rate, highest first: VAT on the sum of its lines",
              "items": {"type": "object", "properties": {"rate": _decimal, "net": _money, "vat": _money}}}}}
_quote_summary = {
    "id": {"type": "integer"}, "opportunity_id": {"type": "integer"}, "number": _str_or_null,
    "version": {"type": "integer"}, "label": {"type": "string", "description": "AN-2026-0001, AN-2026-0001-2; #id"},
    "state": _quote_state, "previous_id": _int_or_null, "contact_id": _int_or_null, "company_id": _int_or_null,
    "language": {"type": "string"}, "quote_date": _date_or_null, "valid_until": _date_or_null,
    "net_total": _money, "vat_total": _money, "gross_total": _money, "sent_at": _time_or_null,
    "decided_at": _time_or_null, "created_at": _time, "updated_at": _time, "url": {"type": "string"}}

SCHEMAS.update({
    "Product": {"type": "object", "properties": {
        "id": {"type": "integer"}, "number": {"type": "string"}, "name": {"type": "string"},
        "description": _str_or_null, "unit": {"type": "string"}, "net_price": _decimal, "vat_rate": _decimal,
        "active": {"type": "boolean"}, "created_at": _time, "updated_at": _time}},
    "ProductInput": {"type": "object", "additionalProperties": False, "required": ["number", "name", "net_price"],
                     "properties": _product_fields},
    "ProductChanges": {"type": "object", "additionalProperties": False, "properties": _product_fields},
    "Opportunity": {"type": "object", "properties": {
        "id": {"type": "integer"}, "title": {"type": "string"}, "contact_id": _int_or_null,
        "company_id": _int_or_null, "owner_id": _int_or_null, "amount": _money_or_null,
        "amount_from_quote": {"type": "boolean"}, "close_date": _date_or_null, "stage": {"type": "string"},
        "probability": {"type": "integer"}, "source": _source, "lost_reason": _str_or_null,
        "is_open": {"type": "boolean"}, "created_at": _time, "created_by_id": _int_or_null, "updated_at": _time,
        "closed_at": _time_or_null, "last_contact_at": _time_or_null,
        "quotes": {"type": "array", "items": _ref("QuoteSummary")},
        "reminders": {"type": "array", "items": _ref("Reminder"), "description": "the quote follow-ups"}}},
    "OpportunityInput": {"type": "object", "additionalProperties": False, "required": ["title"],
                         "properties": _opportunity_fields,
                         "description": "a contact_id or a company_id (or both) is required"},
    "OpportunityChanges": {"type": "object", "additionalProperties": False, "properties": {
        **_opportunity_fields, "lost_reason": _str_or_null}},
    "QuoteSummary": {"type": "object", "properties": _quote_summary},
    "Quote": {"type": "object", "properties": {
        **_quote_summary, "intro": _str_or_null, "terms": _str_or_null,
        "address": {"type": "array", "items": {"type": "string"}}, "decline_reason": _str_or_null,
        "document_id": _int_or_null, "created_by_id": _int_or_null, "sent_message_id": _str_or_null,
        "lines": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "integer"}, "position": {"type": "integer"}, "product_id": _int_or_null,
            "text": {"type": "string"}, "description": _str_or_null, "quantity": _decimal, "unit": {"type": "string"},
            "unit_price": _decimal, "discount_percent": _decimal, "vat_rate": _decimal, "net": _money}}},
        "totals": _ref("Totals"),
        "versions": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "integer"}, "version": {"type": "integer"}, "label": {"type": "string"},
            "state": _quote_state}}},
        "pdf_url": {"type": "string"},
        "new_version": {"type": "boolean", "description": "PATCH: the change made a new version (this id)"}}},
    "QuoteInput": {"type": "object", "additionalProperties": False, "required": ["opportunity_id"],
                   "properties": {"opportunity_id": {"type": "integer", "minimum": 1}, **_quote_fields}},
    "QuoteChanges": {"type": "object", "additionalProperties": False, "properties": _quote_fields,
                     "description": "lines: the whole list in its new order"},
    "Totals": _totals,
    "OrderSummary": {"type": "object", "properties": {
        "id": {"type": "integer"}, "number": {"type": "string"}, "state": _order_state,
        "order_date": {"type": "string", "format": "date"}, "quote_id": _int_or_null,
        "opportunity_id": _int_or_null, "contact_id": _int_or_null, "company_id": _int_or_null,
        "net_total": _money, "vat_total": _money, "gross_total": _money, "created_at": _time,
        "url": {"type": "string"}}},
    "Order": {"type": "object", "description": "the ERP handoff: every amount a decimal string", "properties": {
        "id": {"type": "integer"}, "number": {"type": "string"}, "date": {"type": "string", "format": "date"},
        "state": _order_state, "currency": {"type": "string", "enum": ["EUR"]},
        "quote_number": _str_or_null, "quote_id": _int_or_null, "opportunity_id": _int_or_null,
        "customer": {"type": "object", "description": "contact and company ids and names, customer number, "
                                                      "address lines, billing address and delivery_address fields, "
                                                      "e-mail"},
        "lines": {"type": "array", "items": {"type": "object", "properties": {
            "position": {"type": "integer"}, "product_number": _str_or_null, "text": {"type": "string"},
            "quantity": _decimal, "unit": {"type": "string"}, "unit_price": _decimal,
            "discount_percent": _decimal, "vat_rate": _decimal, "net": _money}}},
        "totals": {"type": "object", "properties": {
            "net": _money, "vat": _money, "gross": _money,
            "rates": {"type": "array", "items": {"type": "object"}}}},
        "pdf_url": {"type": "string"}, "csv_url": {"type": "string"}}},
    "DealSuggestionMail": {"allOf": [_ref("TimelineItem"), {"type": "object", "properties": {
        "attribution_reason": _str_or_null,
        "suggestions": {"type": "array", "description": "the deals it names, each with why it was not linked",
                        "items": {"type": "object", "properties": {
                            "opportunity_id": {"type": "integer"}, "text": _str_or_null, "title": {"type": "string"},
                            "stage": {"type": "string"}, "is_open": {"type": "boolean"},
                            "contact_id": _int_or_null, "company_id": _int_or_null,
                            "url": {"type": "string"}}}}}}]},
})


def _items(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"items": {"type": "array", "items": _ref(name)}}}


_csv = {"text/csv": {"schema": {"type": "string"}}}
_pdf = {"200": {"description": "The PDF, always as a download", "content": {"application/pdf": {}}}}
_ids = [_q(name, {"type": "integer", "minimum": 1}) for name in ("contact_id", "company_id")]
_owner = _q("owner_id", {"type": "string", "pattern": r"^(me|[1-9]\d{0,9})$"}, "a staff id, or me")
_format = _q("format", {"type": "string", "enum": ["json", "csv"]}, "csv: one row per line (; separated)")


def _action(summary: str, op: str, ok: dict[str, Any], body: dict[str, Any] | None = None,
            conflict: bool = True) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "operationId": op,
                                 "responses": {**ok, **ERRORS, **FORBIDDEN, **NOT_FOUND,
                                               **(_conflict if conflict else {})}}
    if body is not None:
        operation["requestBody"] = _body(body)
    return {"parameters": [ID], "post": operation}


PATHS.update({
    "/products": {
        "get": {"summary": "Find products by number or name (those starting with q first)",
                "operationId": "listProducts",
                "parameters": [_q("q", {"type": "string", "maxLength": 200}),
                               _q("include_inactive", {"type": "string", "enum": ["0", "1", "true", "false"]}),
                               _q("limit", {"type": "integer", "minimum": 1, "maximum": 200})],
                "responses": {"200": _json(_items("Product")), **ERRORS}},
        "post": {"summary": "Create a product", "operationId": "createProduct",
                 "requestBody": _body(_ref("ProductInput")),
                 "responses": {"201": _json(_ref("Product"), "Created"), **ERRORS, **FORBIDDEN,
                               "409": _error("The product number is taken")}}},
    "/products/{id}": {
        "parameters": [ID],
        "get": {"summary": "One product", "operationId": "getProduct",
                "responses": {"200": _json(_ref("Product")), **ERRORS, **NOT_FOUND}},
        "patch": {"summary": "Change a product (quotes keep their lines as written)", "operationId": "patchProduct",
                  "requestBody": _body(_ref("ProductChanges")),
                  "responses": {"200": _json(_ref("Product")), **ERRORS, **FORBIDDEN, **NOT_FOUND,
                                "409": _error("The product number is taken")}}},
    "/opportunities": {
        "get": {"summary": "Opportunities, newest first", "operationId": "listOpportunities",
                "parameters": [_owner, _q("stage", _stage), *_ids,
                               _q("open", {"type": "string", "enum": ["0", "1", "true", "false"]},
                                  "1: not won or lost"), *PAGING],
                "responses": {"200": _json(_items("Opportunity")), **ERRORS}},
        "post": {"summary": "Open an opportunity (a lead becomes a prospect)", "operationId": "createOpportunity",
                 "requestBody": _body(_ref("OpportunityInput")),
                 "responses": {"201": _json(_ref("Opportunity"), "Created"), **ERRORS, **FORBIDDEN}}},
    "/opportunities/{id}": {
        "parameters": [ID],
        "get": {"summary": "An opportunity with its quotes and follow-ups", "operationId": "getOpportunity",
                "responses": {"200": _json(_ref("Opportunity")), **ERRORS, **NOT_FOUND}},
        "patch": {"summary": "Change an opportunity (stage lost needs lost_reason)", "operationId": "patchOpportunity",
                  "requestBody": _body(_ref("OpportunityChanges")),
                  "responses": {"200": _json(_ref("Opportunity")), **ERRORS, **FORBIDDEN, **NOT_FOUND,
                                **_conflict}}},
    "/opportunities/{id}/timeline": {
        "parameters": [ID],
        "get": {"summary": "The deal's mail, calls, quotes and notes, newest first",
                "operationId": "opportunityTimeline",
                "parameters": [_q("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                               _q("cursor", {"type": "string"}, "next_cursor of the previous page")],
                "responses": {"200": _json({"type": "object", "properties": {
                    "items": {"type": "array", "items": _ref("TimelineItem")}, "next_cursor": _str_or_null}}),
                    **ERRORS, **NOT_FOUND}}},
    "/opportunities/pipeline": {
        "get": {"summary": "Open opportunities by stage, and the weighted forecast per month",
                "operationId": "pipeline",
                "parameters": [_owner, _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
                                          "cards per stage (count and amount cover all)"),
                               _q("months", {"type": "integer", "minimum": 1, "maximum": 24})],
                "responses": {"200": _json({"type": "object", "properties": {
                    "stages": {"type": "array", "items": {"type": "object", "properties": {
                        "key": {"type": "string"}, "probability": {"type": "integer"}, "count": {"type": "integer"},
                        "amount": _money, "cards": {"type": "array", "items": {"type": "object"}}}}},
                    "forecast": {"type": "array", "items": {"type": "object", "properties": {
                        "month": {"type": "string", "format": "date"}, "amount": _money}}}}}), **ERRORS}}},
    "/sales/stages": {
        "get": {"summary": "The stages in pipeline order with their default probability", "operationId": "stages",
                "responses": {"200": _json({"type": "object", "properties": {"items": {"type": "array", "items": {
                    "type": "object", "properties": {"key": {"type": "string"}, "probability": {"type": "integer"},
                                                     "is_open": {"type": "boolean"}}}}}}), **ERRORS}}},
    "/quotes": {
        "get": {"summary": "Quotes (every version), newest first", "operationId": "listQuotes",
                "parameters": [_q("opportunity_id", {"type": "integer", "minimum": 1}), *_ids,
                               _q("state", _quote_state), _q("number", {"type": "string"}), *PAGING],
                "responses": {"200": _json(_items("QuoteSummary")), **ERRORS}},
        "post": {"summary": "Create a draft quote for an opportunity", "operationId": "createQuote",
                 "requestBody": _body(_ref("QuoteInput")),
                 "responses": {"201": _json(_ref("Quote"), "Created"), **ERRORS, **FORBIDDEN, **_conflict}}},
    "/quotes/totals": {
        "post": {"summary": "The totals of these lines, as the quote will have them (the editor's live sum)",
                 "operationId": "quoteTotals",
                 "requestBody": _body({"type": "object", "additionalProperties": False, "required": ["lines"],
                                       "properties": {"lines": {"type": "array", "maxItems": 1000, "items": {
                                           "type": "object", "properties": {
                                               "product_id": _int_or_null, "quantity": _decimal_in(3, 14),
                                               "unit_price": _decimal_in(4, 16, nullable=True),
                                               "discount_percent": _percent_in,
                                               "vat_rate": _decimal_in(2, 5, nullable=True)}}},
                                           "language": {"type": "string", "enum": ["de", "en"]}}}),
                 "responses": {"200": _json({"allOf": [_ref("Totals"), {"type": "object", "properties": {
                     "formatted": {"type": "object", "description": "the same, as printed in language"}}}]}),
                     **ERRORS}}},
    "/quotes/{id}": {
        "parameters": [ID],
        "get": {"summary": "A quote with lines, totals by VAT rate and versions", "operationId": "getQuote",
                "responses": {"200": _json(_ref("Quote")), **ERRORS, **NOT_FOUND}},
        "patch": {"summary": "Change a quote; a final or sent one gets a new version (its id in the answer and "
                             "the Location header, new_version true)", "operationId": "patchQuote",
                  "requestBody": _body(_ref("QuoteChanges")),
                  "responses": {"200": _json(_ref("Quote")), **ERRORS, **FORBIDDEN, **NOT_FOUND, **_conflict}},
        "delete": {"summary": "Delete a draft (a numbered quote stays)", "operationId": "deleteQuote",
                   "responses": {"204": {"description": "Deleted"}, **ERRORS, **FORBIDDEN, **NOT_FOUND,
                                 **_conflict}}},
    "/quotes/{id}/pdf": {
        "parameters": [ID],
        "get": {"summary": "The quote's PDF (a draft's is rendered now and marked as a draft)",
                "operationId": "quotePdf", "responses": {**_pdf, **ERRORS, **NOT_FOUND}}},
    "/quotes/{id}/finalise": _action("Number, date and freeze the quote; its PDF goes on the timeline",
                                     "finaliseQuote", {"200": _json(_ref("Quote"))}),
    "/quotes/{id}/send": _action(
        "Mail the quote with its PDF (finalised first if need be); to: empty for the contact's address",
        "sendQuote", {"200": _json(_ref("Quote"))},
        {"type": "object", "additionalProperties": False, "required": ["subject", "text"], "properties": {
            "to": _str_or_null, "subject": {"type": "string", "minLength": 1}, "text": {"type": "string"},
            "in_reply_to": {**_int_or_null, "description": "the interaction (a mail) this answers"}}}),
    "/quotes/{id}/accept": _action("The customer accepted: the quote becomes an order (won)", "acceptQuote",
                                   {"201": _json(_ref("Order"), "The order")}),
    "/quotes/{id}/decline": _action(
        "The customer declined (the opportunity is lost with the reason)", "declineQuote",
        {"200": _json(_ref("Quote"))},
        {"type": "object", "additionalProperties": False, "required": ["reason"],
         "properties": {"reason": {"type": "string", "minLength": 1}}}),
    "/quotes/{id}/versions": {
        "parameters": [ID],
        "get": {"summary": "Every version of the quote's number", "operationId": "quoteVersions",
                "responses": {"200": _json(_items("QuoteSummary")), **ERRORS, **NOT_FOUND}}},
    "/orders": {
        "get": {"summary": "Orders, newest first; format=csv for a spreadsheet or the ERP", "operationId": "listOrders",
                "parameters": [*_ids, _q("state", _order_state, "open: not taken by the ERP yet"), *PAGING,
                               _format],
                "responses": {"200": {"description": "OK", "content": {
                    "application/json": {"schema": _items("OrderSummary")}, **_csv}}, **ERRORS}}},
    "/orders/{id}": {
        "parameters": [ID],
        "get": {"summary": "An order as the ERP takes it (amounts as decimal strings)", "operationId": "getOrder",
                "parameters": [_format],
                "responses": {"200": {"description": "OK", "content": {
                    "application/json": {"schema": _ref("Order")}, **_csv}}, **ERRORS, **NOT_FOUND}},
        "patch": {"summary": "The ERP has taken the order (state handed_off), or it is cancelled; the same state "
                             "again changes nothing", "operationId": "patchOrder",
                  "requestBody": _body({"type": "object", "additionalProperties": False, "required": ["state"],
                                        "properties": {"state": _order_state}}),
                  "responses": {"200": _json(_ref("Order")), **ERRORS, **FORBIDDEN, **NOT_FOUND,
                                "409": _error("The order cannot make that move (a cancelled order, a taken "
                                              "one reopened)")}}},
    "/deal-suggestions": {
        "get": {"summary": "Triage: incoming mail naming a deal it was not put on (another customer's, an unknown "
                           "sender, a suspected spoof), with its suggestions, newest first",
                "operationId": "listDealSuggestions",
                "parameters": [_q("days", {"type": "integer", "minimum": 1, "maximum": 365}, "of the last days; 30"),
                               _q("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                               _q("offset", {"type": "integer", "minimum": 0})],
                "responses": {"200": _json(_items("DealSuggestionMail")), **ERRORS}}},
    "/interactions/{id}/deal": _action(
        "Put the mail (call, note …) on a deal; a suggestion for it is dropped, a customer's mail completes the "
        "deal's follow-ups", "linkInteractionToDeal",
        {"200": _json({"allOf": [_ref("DealSuggestionMail"), {"type": "object", "properties": {
            "opportunity_id": {"type": "integer"},
            "linked": {"type": "boolean", "description": "false: it was on the deal already"}}}]})},
        {"type": "object", "additionalProperties": False, "required": ["opportunity_id"],
         "properties": {"opportunity_id": {"type": "integer", "minimum": 1}}}, conflict=False),
    "/orders/{id}.csv": {
        "parameters": [ID],
        "get": {"summary": "An order's lines as CSV", "operationId": "getOrderCsv",
                "responses": {"200": {"description": "OK", "content": _csv}, **ERRORS, **NOT_FOUND}}},
    "/orders/{id}/pdf": {
        "parameters": [ID],
        "get": {"summary": "The order confirmation (Auftragsbestätigung)", "operationId": "orderPdf",
                "responses": {**_pdf, **ERRORS, **NOT_FOUND}}},
})

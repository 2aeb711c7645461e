"""Segments' and consent's part of the OpenAPI document. Added to ``openapi.PATHS`` and ``openapi.SCHEMAS`` when
the API package imports this module."""

from __future__ import annotations

from typing import Any

from web.api.openapi import ERRORS, FORBIDDEN, ID, NOT_FOUND, PATHS, SCHEMAS, _json, _q, _ref

_time = {"type": "string", "format": "date-time"}
_time_or_null = {"type": ["string", "null"], "format": "date-time"}
_CONFLICT = {"409": _json(_ref("Error"), "A segment with this name exists already")}
_DEFINITION = {
    "type": "object",
    "description": "the condition tree: {\"all\": […]} (AND), {\"any\": […]} (OR), {\"not\": …} or a condition "
                   "{\"field\": \"role\", \"op\": \"in\", \"value\": [\"customer\"]}. Fields: role, category, tags, "
                   "company.industry, company.size, company.customer_type, company.category, postcode (between), "
                   "city, country, owner, created, last_contact, open_ticket, open_opportunity, open_quote, "
                   "bouncing, consent.email|letter|phone, fields.<key>. A bad part answers 400 with its path in "
                   "`field` (definition.all[1].value)."}

# --- segments ---

SCHEMAS["Segment"] = {"type": "object", "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"}, "description": {"type": ["string", "null"]},
    "definition": _DEFINITION, "created_by_id": {"type": ["integer", "null"]}, "created_at": _time,
    "updated_at": _time, "url": {"type": "string"},
    "count": {"type": ["integer", "null"], "description": "how many people match now (not in the list; null "
                                                          "when the stored definition no longer reads)"}}}
_SEGMENT_PROPS: dict[str, Any] = {"name": {"type": "string", "minLength": 1, "maxLength": 200},
                                  "definition": _DEFINITION,
                                  "description": {"type": ["string", "null"], "maxLength": 2000}}
SCHEMAS["SegmentInput"] = {"type": "object", "additionalProperties": False, "required": ["name", "definition"],
                           "properties": _SEGMENT_PROPS}
SCHEMAS["SegmentChanges"] = {"type": "object", "additionalProperties": False, "properties": _SEGMENT_PROPS}
_EXPORT_FILES = {"200": {"description": "the file, a download (spreadsheet formulas neutralised)", "content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
        "schema": {"type": "string", "contentEncoding": "binary"}},
    "text/vcard": {"schema": {"type": "string"}}}}, **ERRORS, **NOT_FOUND}

PATHS.update({
    "/segments": {
        "get": {"summary": "Saved segments (filters over the contacts), by name", "operationId": "listSegments",
                "responses": {"200": _json({"type": "object", "properties": {
                    "items": {"type": "array", "items": _ref("Segment")}}}), **ERRORS}},
        "post": {"summary": "Save a segment; audited", "operationId": "createSegment",
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": _ref("SegmentInput")}}},
                 "responses": {"201": _json(_ref("Segment"), "Created"), **ERRORS, **FORBIDDEN, **_CONFLICT}}},
    "/segments/count": {
        "post": {"summary": "How many people a definition finds now (nothing is saved)",
                 "operationId": "countSegment",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["definition"], "properties": {"definition": _DEFINITION}}}}},
                 "responses": {"200": _json({"type": "object", "properties": {"count": {"type": "integer"}}}),
                               **ERRORS}}},
    "/segments/{id}": {
        "parameters": [ID],
        "get": {"summary": "One segment with its current count", "operationId": "getSegment",
                "responses": {"200": _json(_ref("Segment")), **ERRORS, **NOT_FOUND}},
        "patch": {"summary": "Rename, redefine or re-describe a segment; audited", "operationId": "patchSegment",
                  "requestBody": {"required": True, "content": {"application/json": {
                      "schema": _ref("SegmentChanges")}}},
                  "responses": {"200": _json(_ref("Segment")), **ERRORS, **FORBIDDEN, **NOT_FOUND, **_CONFLICT}},
        "delete": {"summary": "Delete a segment (the people stay); audited", "operationId": "deleteSegment",
                   "responses": {"204": {"description": "Deleted"}, **ERRORS, **FORBIDDEN, **NOT_FOUND}}},
    "/segments/{id}/contacts": {
        "parameters": [ID],
        "get": {"summary": "A page of the segment's people, in the contact list's dictionary order",
                "operationId": "segmentContacts",
                "parameters": [_q("page", {"type": "integer", "minimum": 1, "maximum": 100000}),
                               _q("size", {"type": "integer", "minimum": 1, "maximum": 500})],
                "responses": {"200": _json({"type": "object", "properties": {
                    "items": {"type": "array", "items": _ref("Contact")}, "page": {"type": "integer"},
                    "has_next": {"type": "boolean"}}}), **ERRORS, **NOT_FOUND}}},
    "/segments/{id}/export": {
        "parameters": [ID],
        "get": {"summary": "Export the segment's people as CSV, XLSX or vCard; audited",
                "operationId": "exportSegment",
                "parameters": [_q("format", {"type": "string", "enum": ["csv", "xlsx", "vcf"], "default": "csv"})],
                "responses": _EXPORT_FILES}},
})

# --- consent ---

_channel = {"type": "string", "enum": ["email", "letter", "phone"]}
_state = {"type": "string", "enum": ["pending", "opted_in", "opted_out"]}
_basis = {"type": ["string", "null"], "enum": ["consent", "existing_customer", "presumed_consent", None]}
SCHEMAS["ConsentRecord"] = {"type": "object", "properties": {
    "id": {"type": "integer"}, "contact_id": {"type": "integer"}, "channel": _channel, "state": _state,
    "legal_basis": _basis, "source": {"type": "string"}, "proof": {"type": "object"},
    "occurred_at": _time, "recorded_by_id": {"type": ["integer", "null"]}, "recorded_at": _time}}
SCHEMAS["ConsentInput"] = {"type": "object", "additionalProperties": False,
                           "required": ["channel", "state", "source"], "properties": {
    "channel": _channel, "state": _state,
    "legal_basis": {**_basis, "description": "an opt-in names its basis; an opt-out has none; existing_customer "
                                             "(§ 7(3) UWG) is for e-mail only, presumed_consent for the phone"},
    "source": {"type": "string", "minLength": 1, "maxLength": 50,
               "description": "how it came: staff, web_form, fair, phone_call, import …"},
    "proof": {"type": "object", "description": "what shows it (the words, the form, a link id); at most 10,000 "
                                               "characters as JSON"},
    "occurred_at": {**_time, "description": "when the person did it (default now; not in the future)"}}}
SCHEMAS["ConsentState"] = {"type": "object", "properties": {
    "contact_id": {"type": "integer"}, "channels": {"type": "array", "items": {"type": "object", "properties": {
        "channel": _channel, "state": {"type": "string", "enum": ["unknown", "pending", "opted_in", "opted_out"]},
        "legal_basis": _basis, "since": _time_or_null,
        "objected": {"type": "boolean", "description": "an opt-out anywhere in the channel's history"},
        "ledger_allows": {"type": "boolean", "description": "what the ledger alone allows a campaign (it also "
                                                            "checks orders, B2B and bouncing addresses)"},
        "basis": {"type": ["string", "null"]}, "reason": {"type": ["string", "null"]}}}}}}
SCHEMAS["ConsentProof"] = {"type": "object", "properties": {
    "contact": {"type": "object"}, "generated_at": _time,
    "channels": {"type": "array", "items": {"type": "object", "properties": {
        "channel": _channel, "state": {"type": "string"}, "legal_basis": _basis, "since": _time_or_null,
        "ledger_allows": {"type": "boolean"},
        "basis": {"type": ["string", "null"], "description": "when the ledger allows: the legal basis"},
        "reason": {"type": ["string", "null"], "description": "when not: why (a code: opted_out, pending, "
                                                              "no_consent, no_notice …)"},
        "records": {"type": "array", "items": {"type": "object"}}}}}}}

PATHS.update({
    "/contacts/{id}/consent": {
        "parameters": [ID],
        "get": {"summary": "The person's consent per channel (e-mail, letter, phone)",
                "operationId": "contactConsent",
                "responses": {"200": _json(_ref("ConsentState")), **ERRORS, **NOT_FOUND}},
        "post": {"summary": "Record an opt-in (with its legal basis) or an opt-out; append-only, audited",
                 "operationId": "recordConsent",
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": _ref("ConsentInput")}}},
                 "responses": {"201": _json(_ref("ConsentRecord"), "Recorded"), **ERRORS, **FORBIDDEN,
                               **NOT_FOUND,
                               "409": _json(_ref("Error"), "The person objected: only their own consent "
                                                           "opts them in again")}}},
    "/contacts/{id}/consent/double-opt-in": {
        "parameters": [ID],
        "post": {"summary": "Start a double opt-in: record it pending and mail the confirmation link; only the "
                            "person's click opts them in", "operationId": "requestDoubleOptIn",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "additionalProperties": False, "required": ["address"], "properties": {
                         "address": {"type": "string", "description": "one of the contact's e-mail addresses"},
                         "language": {"type": ["string", "null"], "enum": ["de", "en", None],
                                      "description": "of the mail (default: the person's, else the company's)"},
                         "source": {"type": ["string", "null"], "maxLength": 50,
                                    "description": "how they asked: web_form, shop … (default api)"},
                         "proof": {"type": "object", "description": "what shows they asked (the form, its IP)"}}}}}},
                 "responses": {"201": _json(_ref("ConsentRecord"), "Recorded pending, the mail queued"), **ERRORS,
                               **FORBIDDEN, **NOT_FOUND}}},
    "/contacts/{id}/consent/proof": {
        "parameters": [ID],
        "get": {"summary": "The proof of consent: every record per channel, oldest first, with its proof",
                "operationId": "consentProof",
                "responses": {"200": _json(_ref("ConsentProof")), **ERRORS, **NOT_FOUND}}},
})

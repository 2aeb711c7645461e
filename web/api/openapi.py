"""The OpenAPI 3.1 document for /api/v1, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from crm_inbox.models import InteractionKind
from web.api.blueprint import api


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _list_of(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"items": {"type": "array", "items": _ref(name)}}}


ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
}
NOT_FOUND = {"404": {"$ref": "#/components/responses/NotFound"}}
FORBIDDEN = {"403": {"$ref": "#/components/responses/Forbidden"}}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}


def _q(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


PAGING = [_q("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
          _q("offset", {"type": "integer", "minimum": 0})]

_str_or_null = {"type": ["string", "null"]}
_tags = {"type": "array", "items": {"type": "string"}}
_fields = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}
_phone = {"type": "object", "properties": {"raw": {"type": "string"}, "e164": _str_or_null}}
_category = {"type": ["string", "null"], "enum": ["A", "B", "C", None]}
_role = {"type": "string", "enum": ["lead", "prospect", "customer", "debtor", "supplier", "other"]}
_address_props = {"street": {"type": ["string", "null"], "maxLength": 200},
                  "postcode": {"type": ["string", "null"], "maxLength": 20},
                  "city": {"type": ["string", "null"], "maxLength": 100},
                  "country": {"type": ["string", "null"], "description": "ISO 3166 code (DE, AT, CH)"}}
_address = {"type": "object", "properties": _address_props, "description": "a postal address"}
_address_input = {"type": ["object", "null"], "additionalProperties": False, "properties": _address_props,
                  "description": "the keys sent change; null clears the address"}
_salutation = {"type": ["string", "null"], "enum": ["frau", "herr", "none", None]}
_language = {"type": ["string", "null"], "enum": ["de", "en", None]}
_customer_number = {"type": ["string", "null"], "maxLength": 50, "description": "the ERP's customer number"}
_title = {"type": ["string", "null"], "maxLength": 50, "description": "Dr., Prof. Dr."}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}},
    "Contact": {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": _str_or_null, "display_name": {"type": "string"},
        "company_id": {"type": ["integer", "null"]}, "emails": {"type": "array", "items": {"type": "string"}},
        "bouncing_emails": {"type": "array", "items": {"type": "string"}},
        "phones": {"type": "array", "items": _phone}, "role": _role, "category": _category, "tags": _tags,
        "fields": _fields, "owner_id": {"type": ["integer", "null"]}, "origin": {"type": "string"},
        "salutation": _salutation, "title": _title, "language": _language, "customer_number": _customer_number,
        "address": _address,
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"}}},
    "ContactInput": {"type": "object", "additionalProperties": False, "properties": {
        "name": _str_or_null, "company_id": {"type": ["integer", "null"]},
        "emails": {"type": "array", "items": {"type": "string", "format": "email"}},
        "phones": {"type": "array", "items": {"type": "string"}}, "role": _role, "category": _category,
        "tags": _tags, "fields": _fields, "owner_id": {"type": ["integer", "null"]},
        "salutation": _salutation, "title": _title, "language": _language, "customer_number": _customer_number,
        "address": _address_input}},
    "Company": {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"},
        "domains": {"type": "array", "items": {"type": "string"}}, "phones": {"type": "array", "items": _phone},
        "industry": _str_or_null, "size": _str_or_null,
        "customer_type": {"type": ["string", "null"], "enum": ["B2B", "B2C", None]},
        "category": _category, "tags": _tags, "fields": _fields, "customer_number": _customer_number,
        "address": _address, "delivery_address": _address,
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"}}},
    "CompanyInput": {"type": "object", "additionalProperties": False, "properties": {
        "name": {"type": "string", "minLength": 1}, "domains": {"type": "array", "items": {"type": "string"}},
        "phones": {"type": "array", "items": {"type": "string"}}, "industry": _str_or_null, "size": _str_or_null,
        "customer_type": {"type": ["string", "null"], "enum": ["B2B", "B2C", None]},
        "category": _category, "tags": _tags, "fields": _fields, "customer_number": _customer_number,
        "address": _address_input, "delivery_address": _address_input}},
    "Attachment": {"type": "object", "properties": {
        "id": {"type": "integer"}, "filename": {"type": "string"}, "content_type": {"type": "string"},
        "size": {"type": "integer"}, "sha256": {"type": "string"}, "url": {"type": "string"}}},
    "TimelineItem": {"type": "object", "properties": {
        "id": {"type": "integer"}, "kind": {"type": "string"}, "direction": {"type": "string"},
        "occurred_at": {"type": "string", "format": "date-time"}, "subject": _str_or_null,
        "excerpt": _str_or_null, "message_id": _str_or_null, "source_ref": _str_or_null,
        "contact_ids": {"type": "array", "items": {"type": "integer"}},
        "attachments": {"type": "array", "items": _ref("Attachment")}}},
    "Interaction": {"allOf": [_ref("TimelineItem"), {"type": "object", "properties": {
        "text": _str_or_null, "html": _str_or_null, "attribution_reason": _str_or_null,
        "inbound_message_id": {"type": ["integer", "null"]}, "details": {"type": "object"},
        "staff_ids": {"type": "array", "items": {"type": "integer"}},
        "links": {"type": "array", "items": {"type": "object"}}}}]},
    "Inbound": {"type": "object", "properties": {
        "id": {"type": "integer"},
        "state": {"type": "string", "enum": ["received", "processed", "failed", "ignored", "erased"]},
        "error": _str_or_null, "message_id": _str_or_null, "message_id_conflict": {"type": "boolean"},
        "failed_step": {"type": ["string", "null"], "description": "the pipeline step a failed message failed in"},
        "envelope_from": _str_or_null, "envelope_to": {"type": "array", "items": {"type": "string"}},
        "source": {"type": "string"}, "size": {"type": "integer"}, "deliveries": {"type": "integer"},
        "attempts": {"type": "integer"}, "received_at": {"type": "string", "format": "date-time"},
        "processed_at": {"type": ["string", "null"], "format": "date-time"}}},
}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


PATHS: dict[str, Any] = {
    "/contacts": {
        "get": {"summary": "Find contacts", "operationId": "listContacts",
                "parameters": [_q("email", {"type": "string"}, "any address of the contact"),
                               _q("phone", {"type": "string"}, "a phone number in any format"),
                               _q("q", {"type": "string", "maxLength": 200},
                                  "part of the name, the company's name or an address; or a phone number"),
                               _q("company_id", {"type": "integer", "minimum": 1}), *PAGING,
                               _q("format", {"type": "string", "enum": ["json", "csv"]},
                                  "csv: a spreadsheet download (formulas neutralised; the export is audited)")],
                "responses": {"200": {"description": "OK", "content": {
                    "application/json": {"schema": _list_of("Contact")},
                    "text/csv": {"schema": {"type": "string"}}}}, **ERRORS}},
        "post": {"summary": "Create a contact", "operationId": "createContact",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ContactInput")}}},
                 "responses": {"201": _json(_ref("Contact"), "Created"), **ERRORS, **FORBIDDEN}}},
    "/contacts/{id}": {
        "parameters": [ID],
        "get": {"summary": "One contact", "operationId": "getContact",
                "responses": {"200": _json(_ref("Contact")), **ERRORS, **NOT_FOUND}},
        "patch": {"summary": "Change a contact", "operationId": "patchContact",
                  "requestBody": {"required": True,
                                  "content": {"application/json": {"schema": _ref("ContactInput")}}},
                  "responses": {"200": _json(_ref("Contact")), **ERRORS, **FORBIDDEN, **NOT_FOUND}}},
    "/contacts/{id}/timeline": {
        "parameters": [ID],
        "get": {"summary": "The contact's interactions, newest first", "operationId": "contactTimeline",
                "parameters": [_q("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                               _q("cursor", {"type": "string"}, "next_cursor of the previous page"),
                               _q("kind", {"type": "string", "enum": [k.value for k in InteractionKind]})],
                "responses": {"200": _json({"type": "object", "properties": {
                    "items": {"type": "array", "items": _ref("TimelineItem")},
                    "next_cursor": _str_or_null}}), **ERRORS, **NOT_FOUND}}},
    "/companies": {
        "get": {"summary": "Find companies", "operationId": "listCompanies",
                "parameters": [_q("domain", {"type": "string"}), _q("phone", {"type": "string"}),
                               _q("q", {"type": "string", "maxLength": 200}, "part of the name or of a mail domain"),
                               *PAGING],
                "responses": {"200": _json(_list_of("Company")), **ERRORS}},
        "post": {"summary": "Create a company", "operationId": "createCompany",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CompanyInput")}}},
                 "responses": {"201": _json(_ref("Company"), "Created"), **ERRORS, **FORBIDDEN,
                               "409": _error("A domain belongs to another company")}}},
    "/companies/{id}": {
        "parameters": [ID],
        "get": {"summary": "One company", "operationId": "getCompany",
                "responses": {"200": _json(_ref("Company")), **ERRORS, **NOT_FOUND}},
        "patch": {"summary": "Change a company", "operationId": "patchCompany",
                  "requestBody": {"required": True,
                                  "content": {"application/json": {"schema": _ref("CompanyInput")}}},
                  "responses": {"200": _json(_ref("Company")), **ERRORS, **FORBIDDEN, **NOT_FOUND,
                                "409": _error("A domain belongs to another company")}}},
    "/interactions": {
        "get": {"summary": "Interactions, newest first; unassigned=1 lists what waits for triage",
                "operationId": "listInteractions",
                "parameters": [_q("unassigned", {"type": "string", "enum": ["0", "1", "true", "false"]}),
                               *PAGING],
                "responses": {"200": _json(_list_of("TimelineItem")), **ERRORS}}},
    "/interactions/{id}/assign": {
        "parameters": [ID],
        "post": {"summary": "Link an interaction to these contacts (kept, audited)",
                 "operationId": "assignInteraction",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["contact_ids"], "additionalProperties": False,
                     "properties": {
                         "contact_ids": {"type": "array", "minItems": 1,
                                         "items": {"type": "integer", "minimum": 1}},
                         "remember_address": {"type": "boolean", "description":
                                              "add the sender's address to the (single) contact"}}}}}},
                 "responses": {"200": _json(_ref("Interaction")), **ERRORS, **FORBIDDEN, **NOT_FOUND}}},
    "/interactions/{id}": {
        "parameters": [ID],
        "get": {"summary": "One interaction with its full text", "operationId": "getInteraction",
                "responses": {"200": _json(_ref("Interaction")), **ERRORS, **NOT_FOUND}}},
    "/attachments/{id}": {
        "parameters": [ID],
        "get": {"summary": "Download an attachment", "operationId": "getAttachment",
                "responses": {"200": {"description": "The file, always as a download",
                                      "content": {"application/octet-stream": {}}}, **ERRORS, **NOT_FOUND}}},
    "/inbound": {
        "get": {"summary": "Stored inbound messages", "operationId": "listInbound",
                "parameters": [_q("state", {"type": "string", "enum": ["received", "processed", "failed",
                                                                       "ignored", "erased"]}),
                               _q("limit", {"type": "integer", "minimum": 1, "maximum": 500})],
                "responses": {"200": _json(_list_of("Inbound")), **ERRORS}}},
    "/inbound/{id}/retry": {
        "parameters": [ID],
        "post": {"summary": "Process a failed message again", "operationId": "retryInbound",
                 "responses": {"200": _json(_ref("Inbound")), **ERRORS, **FORBIDDEN, **NOT_FOUND,
                               "409": _error("The message has not failed")}}},
}

TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "the phone system's secret from [cti] (or send it as X-CRM-Token)"}
_form_or_json = {"application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                 "application/json": {"schema": {"type": "object"}}}
WEBHOOK_ERRORS = {"400": {"$ref": "#/components/responses/BadRequest"},
                  "401": {"$ref": "#/components/responses/Unauthorized"},
                  "403": {"$ref": "#/components/responses/Forbidden"}}


def _webhook(summary: str, op: str, ok: dict[str, Any]) -> dict[str, Any]:
    return {"parameters": [TOKEN], "post": {
        "summary": summary, "operationId": op, "security": [],
        "requestBody": {"required": True, "content": _form_or_json},
        "responses": {**ok, **WEBHOOK_ERRORS}}}


CALL_EVENT = {"type": "object", "required": ["event", "call_id", "at"], "properties": {
    "event": {"type": "string", "enum": ["new", "answer", "hangup"]}, "call_id": {"type": "string"},
    "at": {"type": "string", "format": "date-time"}, "direction": {"type": "string", "enum": ["in", "out"]},
    "from": {"type": "string"}, "to": {"type": "string"}, "user": {"type": "string"},
    "extension": {"type": "string"}, "duration": {"type": "integer", "minimum": 0},
    "cause": {"type": "string", "enum": ["normalClearing", "busy", "cancel", "noAnswer", "congestion", "notFound",
                                         "forwarded"]}}}

PATHS.update({
    "/cti/{token}": _webhook("Zammad-style generic CTI events (newCall, answer, hangup)", "ctiEvent",
                             {"200": _json({"type": "object"})}),
    "/sipgate/{token}/in": _webhook("sipgate.io push events (incoming)", "sipgateIn",
                                    {"200": {"description": "<Response onAnswer onHangup/>",
                                             "content": {"application/xml": {}}}}),
    "/sipgate/{token}/out": _webhook("sipgate.io push events (outgoing)", "sipgateOut",
                                     {"200": {"description": "<Response onAnswer onHangup/>",
                                              "content": {"application/xml": {}}}}),
    "/placetel/{token}": _webhook("Placetel Notify API events", "placetelEvent", {"200": {"description": "OK"}}),
    "/twilio/{token}": _webhook("Twilio voice status callbacks (X-Twilio-Signature)", "twilioStatus",
                                {"204": {"description": "Recorded"}}),
    "/3cx/{token}/journal": _webhook("3CX ReportCall (call journal)", "threecxJournal",
                                     {"200": _json({"type": "object"})}),
    "/3cx/{token}/lookup": {"parameters": [TOKEN], "get": {
        "summary": "3CX contact lookup", "operationId": "threecxLookup", "security": [],
        "parameters": [_q("number", {"type": "string"})],
        "responses": {"200": _json({"type": "object"}), "401": {"$ref": "#/components/responses/Unauthorized"},
                      "403": {"$ref": "#/components/responses/Forbidden"}}}},
    "/3cx/template.xml": {"get": {
        "summary": "The 3CX CRM template to upload (admin)", "operationId": "threecxTemplate",
        "responses": {"200": {"description": "XML", "content": {"application/xml": {}}}, **ERRORS, **FORBIDDEN,
                      "409": _error("No 3CX token is configured")}}},
    "/calls/events": {"post": {
        "summary": "Generic JSON call events (staff bearer token or the CTI token)", "operationId": "callEvent",
        "requestBody": {"required": True, "content": {"application/json": {"schema": CALL_EVENT}}},
        "responses": {"200": _json({"type": "object"}), **WEBHOOK_ERRORS}}},
    "/lookup": {"get": {
        "summary": "Who is calling? JSON, or the display name with format=text", "operationId": "lookup",
        "parameters": [_q("number", {"type": "string"}), _q("format", {"type": "string", "enum": ["json", "text"]}),
                       _q("token", {"type": "string"}, "the CTI token, for PBXs that cannot send headers")],
        "responses": {"200": _json({"type": "object"}), **ERRORS, **NOT_FOUND, **FORBIDDEN}}},
    "/calls": {"get": {
        "summary": "Calls, newest first", "operationId": "listCalls",
        "parameters": [_q("missed", {"type": "string", "enum": ["0", "1"]}),
                       _q("callback", {"type": "string", "enum": ["0", "1"]}, "missed and not yet called back"),
                       _q("unassigned", {"type": "string", "enum": ["0", "1"]}, "no known caller"),
                       _q("limit", {"type": "integer", "minimum": 1, "maximum": 500})],
        "responses": {"200": _json({"type": "object"}), **ERRORS}}},
})

_ticket: dict[str, Any] = {"type": "object", "properties": {
    "id": {"type": "integer"}, "number": {"type": "integer"}, "label": {"type": "string"},
    "subject": {"type": "string"}, "state": {"type": "string", "enum": ["new", "open", "pending", "solved", "closed"]},
    "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"]},
    "contact_id": {"type": ["integer", "null"]}, "company_id": {"type": ["integer", "null"]},
    "assignee_id": {"type": ["integer", "null"]}, "merged_into_id": {"type": ["integer", "null"]},
    "previous_ticket_id": {"type": ["integer", "null"]}}}
SCHEMAS["Ticket"] = _ticket
PATHS.update({
    "/tickets": {"get": {
        "summary": "Tickets, most recently changed first", "operationId": "listTickets",
        "parameters": [_q("state", {"type": "string", "enum": ["new", "open", "pending", "solved", "closed"]}),
                       _q("open", {"type": "string", "enum": ["0", "1"]}, "1: new, open or pending"),
                       _q("assignee", {"type": "string"}, "a staff id, me or none"),
                       _q("contact_id", {"type": "integer", "minimum": 1}), *PAGING],
        "responses": {"200": _json(_list_of("Ticket")), **ERRORS}}},
    "/tickets/{id}": {
        "parameters": [ID],
        "get": {"summary": "A ticket with its thread and events", "operationId": "getTicket",
                "responses": {"200": _json(_ref("Ticket")), **ERRORS, **NOT_FOUND}},
        "patch": {"summary": "Change state, priority, assignee or subject", "operationId": "patchTicket",
                  "requestBody": {"required": True, "content": {"application/json": {"schema": {
                      "type": "object", "additionalProperties": False, "properties": {
                          "state": _ticket["properties"]["state"], "priority": _ticket["properties"]["priority"],
                          "assignee_id": {"type": ["integer", "null"], "minimum": 1},
                          "subject": {"type": "string", "minLength": 1}}}}}},
                  "responses": {"200": _json(_ref("Ticket")), **ERRORS, **FORBIDDEN, **NOT_FOUND}}},
    "/tickets/{id}/notes": {
        "parameters": [ID],
        "post": {"summary": "Add an internal note", "operationId": "addTicketNote",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}}}},
                 "responses": {"201": _json({"type": "object"}, "Created"), **ERRORS, **FORBIDDEN, **NOT_FOUND}}},
    "/tickets/{id}/merge": {
        "parameters": [ID],
        "post": {"summary": "Merge this ticket into target_id", "operationId": "mergeTicket",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["target_id"],
                     "properties": {"target_id": {"type": "integer", "minimum": 1}}}}}},
                 "responses": {"200": _json(_ref("Ticket")), **ERRORS, **FORBIDDEN, **NOT_FOUND}}},
})

_int_or_null = {"type": ["integer", "null"], "minimum": 1}
_time_or_null = {"type": ["string", "null"], "format": "date-time"}
_reminder_state = {"type": "string", "enum": ["open", "snoozed", "done", "cancelled"]}
SCHEMAS["Reminder"] = {"type": "object", "properties": {
    "id": {"type": "integer"}, "title": {"type": "string"}, "note": _str_or_null,
    "reason": {"type": "string", "description": "missed_call, ticket_no_reply, mail_note or manual"},
    "state": _reminder_state, "due_at": {"type": "string", "format": "date-time"}, "fired_at": _time_or_null,
    "pending_fire": {"type": "boolean"}, "contact_id": _int_or_null, "company_id": _int_or_null,
    "ticket_id": _int_or_null, "interaction_id": _int_or_null, "call_id": _int_or_null,
    "assignee_id": _int_or_null, "created_at": {"type": "string", "format": "date-time"},
    "created_by_id": _int_or_null, "completed_at": _time_or_null, "completed_by_id": _int_or_null,
    "completion": _str_or_null}}
_due_words = {"type": "string", "description": "words such as \"tomorrow 9:00\", \"in 3 days\", \"Freitag 10 Uhr\""}
_reminder_fields = {
    "title": {"type": "string", "minLength": 1, "maxLength": 300}, "note": _str_or_null,
    "due_at": {"type": "string", "format": "date-time"}, "due": _due_words, "assignee_id": _int_or_null,
    "contact_id": _int_or_null, "ticket_id": _int_or_null, "interaction_id": _int_or_null}
PATHS.update({
    "/reminders": {
        "get": {"summary": "Reminders, soonest due first", "operationId": "listReminders",
                "parameters": [_q("assignee", {"type": "string"}, "a staff id, me, or team (unassigned)"),
                               _q("state", {"type": "string", "enum": ["active", "open", "snoozed", "done",
                                                                      "cancelled"]}),
                               _q("due_before", {"type": "string", "format": "date-time"}),
                               _q("contact_id", {"type": "integer", "minimum": 1}), *PAGING],
                "responses": {"200": _json(_list_of("Reminder")), **ERRORS}},
        "post": {"summary": "Create a reminder (assigned to the caller unless assignee_id says otherwise)",
                 "operationId": "createReminder",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "additionalProperties": False, "required": ["title"],
                     "properties": _reminder_fields}}}},
                 "responses": {"201": _json(_ref("Reminder"), "Created"), **ERRORS, **FORBIDDEN}}},
    "/reminders/{id}": {
        "parameters": [ID],
        "get": {"summary": "A reminder", "operationId": "getReminder",
                "responses": {"200": _json(_ref("Reminder")), **ERRORS, **NOT_FOUND}},
        "patch": {"summary": "Change, snooze, complete (state done), cancel or reopen a reminder",
                  "operationId": "patchReminder",
                  "requestBody": {"required": True, "content": {"application/json": {"schema": {
                      "type": "object", "additionalProperties": False, "properties": {
                          **_reminder_fields, "state": _reminder_state, "snooze": _due_words,
                          "snooze_until": {"type": "string", "format": "date-time"},
                          "completion": {"type": "string"}}}}}},
                  "responses": {"200": _json(_ref("Reminder")), **ERRORS, **FORBIDDEN, **NOT_FOUND}}},
    "/contacts/{id}/notes": {
        "parameters": [ID],
        "post": {"summary": "Add a note to the contact's timeline", "operationId": "addContactNote",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}}}},
                 "responses": {"201": _json(_ref("TimelineItem"), "Created"), **ERRORS, **FORBIDDEN,
                               **NOT_FOUND}}},
    "/contacts/{id}/merge": {
        "parameters": [ID],
        "post": {"summary": "Merge the contact duplicate_id into this one (links and history move; it is deleted)",
                 "operationId": "mergeContact",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["duplicate_id"],
                     "properties": {"duplicate_id": {"type": "integer", "minimum": 1}}}}}},
                 "responses": {"200": _json(_ref("Contact")), **ERRORS, **FORBIDDEN, **NOT_FOUND}}},
    "/me/calendar": {
        "post": {"summary": "A new private iCalendar URL of the caller's open reminders (the old one stops)",
                 "operationId": "newCalendarUrl",
                 "responses": {"200": _json({"type": "object", "properties": {"url": {"type": "string"}}}),
                               **ERRORS}}},
})

PATHS.update({
    "/contacts/{id}/export": {
        "parameters": [ID],
        "get": {"summary": "Everything stored about the person as a zip (admin; audited): contact.json with master "
                           "data, company, timeline with full texts, tickets with events, calls, reminders and audit "
                           "entries; attachments/ and the raw mail under mail/",
                "operationId": "exportContact",
                "responses": {"200": {"description": "The archive, as a download",
                                      "content": {"application/zip": {}}}, **ERRORS, **FORBIDDEN, **NOT_FOUND}}},
    "/contacts/{id}/erase": {
        "parameters": [ID],
        "post": {"summary": "Erase the person everywhere (admin; cannot be undone; audited with counts only)",
                 "operationId": "eraseContact",
                 "responses": {"200": _json({"type": "object", "properties": {
                     "erased": {"type": "integer"},
                     "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                     "kept": {"type": ["string", "null"], "description": "quotes and orders kept as commercial "
                              "letters (§ 257 HGB, § 147 AO), and why"}}}),
                     **ERRORS, **FORBIDDEN, **NOT_FOUND}}},
})

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "CRM Inbox API", "version": "1",
             "description": "Contacts, companies, the timeline and inbound mail. Every request needs "
                            "`Authorization: Bearer <token>` (create one with `crm-inbox token create EMAIL`)."},
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": SCHEMAS,
        "responses": {
            "BadRequest": _error("Bad input; `field` names what is wrong"),
            "Unauthorized": _error("No or an invalid bearer token"),
            "Forbidden": _error("The user's role does not allow this"),
            "NotFound": _error("No such object"),
        },
    },
}


@api.get("/openapi.json")
def openapi() -> Response:
    return jsonify(DOCUMENT)

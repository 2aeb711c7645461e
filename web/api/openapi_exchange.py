"""Data in and out's part of the OpenAPI document: exports, customer-file documents, webhook subscriptions and
the ERP coupling. Added to ``openapi.PATHS`` and ``openapi.SCHEMAS`` when the API package imports this module."""

from __future__ import annotations

from web.api import openapi_sales
from web.api.openapi import PATHS, SCHEMAS

# --- exports ---

_EXPORT_PARAMS = [
    {"name": "format", "in": "query", "required": False,
     "schema": {"type": "string", "enum": ["csv", "xlsx", "vcf"], "default": "csv"},
     "description": "csv (UTF-8 with BOM, comma), xlsx or vcf (vCard 3.0)"},
    {"name": "q", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 200},
     "description": "only what the pages' search finds with this text; all without it"}]
_EXPORT_FILES = {"200": {"description": "the file, a download (spreadsheet formulas neutralised)", "content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
        "schema": {"type": "string", "contentEncoding": "binary"}},
    "text/vcard": {"schema": {"type": "string"}}}},
    "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"}}
PATHS["/contacts/export"] = {"get": {
    "summary": "Export contacts (all or a search result) as CSV, XLSX or vCard; audited",
    "operationId": "exportContacts", "parameters": _EXPORT_PARAMS, "responses": _EXPORT_FILES}}
PATHS["/companies/export"] = {"get": {
    "summary": "Export companies (all or a search result) as CSV, XLSX or vCard; audited",
    "operationId": "exportCompanies", "parameters": _EXPORT_PARAMS, "responses": _EXPORT_FILES}}

# --- documents ---

_DOC_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_DOC_ERRORS = {"400": {"$ref": "#/components/responses/BadRequest"},
               "401": {"$ref": "#/components/responses/Unauthorized"},
               "403": {"$ref": "#/components/responses/Forbidden"},
               "404": {"$ref": "#/components/responses/NotFound"}}
SCHEMAS["Document"] = {"type": "object", "properties": {
    "id": {"type": "integer", "description": "the timeline entry's id (kind document)"},
    "title": {"type": "string"}, "note": {"type": ["string", "null"]},
    "contact_id": {"type": ["integer", "null"]}, "company_id": {"type": ["integer", "null"]},
    "created_at": {"type": "string", "format": "date-time"}, "created_by_id": {"type": ["integer", "null"]},
    "file": {"$ref": "#/components/schemas/Attachment"}, "url": {"type": "string"}}}
_DOC_UPLOAD = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "at most [documents] max_bytes (25 MB by default)"},
        "title": {"type": "string", "maxLength": 300, "description": "the file name when empty"},
        "note": {"type": "string", "maxLength": 20000}}}}}}
_DOC_CREATED = {"201": {"description": "Filed", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Document"}}}}, **_DOC_ERRORS,
    "413": {"description": "The request is far larger than a document may be"}}


def _upload_to(whom: str, op: str) -> dict[str, object]:
    return {"parameters": [_DOC_ID], "post": {
        "summary": f"File a document (contract, letter, scan) in the {whom}'s customer file", "operationId": op,
        "requestBody": _DOC_UPLOAD, "responses": _DOC_CREATED}}


PATHS.update({
    "/contacts/{id}/documents": _upload_to("person", "addContactDocument"),
    "/companies/{id}/documents": _upload_to("company", "addCompanyDocument"),
    "/documents/{id}": {
        "parameters": [_DOC_ID],
        "patch": {"summary": "Rename a customer-file document (title, file name)", "operationId": "patchDocument",
                  "requestBody": {"required": True, "content": {"application/json": {"schema": {
                      "type": "object", "additionalProperties": False, "properties": {
                          "title": {"type": "string", "maxLength": 300},
                          "filename": {"type": "string", "minLength": 1, "maxLength": 255}}}}}},
                  "responses": {"200": {"description": "Renamed", "content": {"application/json": {
                      "schema": {"$ref": "#/components/schemas/Document"}}}}, **_DOC_ERRORS}},
        "delete": {"summary": "Remove a customer-file document with its file", "operationId": "deleteDocument",
                   "responses": {"204": {"description": "Removed"}, **_DOC_ERRORS}}},
})

# --- webhook subscriptions ---

_WH_ERRORS = {"400": {"$ref": "#/components/responses/BadRequest"},
              "401": {"$ref": "#/components/responses/Unauthorized"},
              "403": {"$ref": "#/components/responses/Forbidden"}}
_WH_404 = {"404": {"$ref": "#/components/responses/NotFound"}}
_WH_409 = {"409": {"description": "The subscription is disabled (enable it first)",
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
_WH_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}


def _wh_json(name: str, description: str = "OK") -> dict[str, object]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def _wh_list(name: str) -> dict[str, object]:
    return {"description": "OK", "content": {"application/json": {"schema": {"type": "object", "properties": {
        "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}}}}}}}


_wh_time = {"type": ["string", "null"], "format": "date-time"}
SCHEMAS["WebhookSubscription"] = {"type": "object", "properties": {
    "id": {"type": "integer"}, "url": {"type": "string"},
    "event_types": {"type": "array", "items": {"type": "string"},
                    "description": "event types (contact.created) or patterns (company.*, *)"},
    "description": {"type": ["string", "null"]}, "active": {"type": "boolean"},
    "failing_since": {**_wh_time, "description": "the first failed attempt since the last 2xx"},
    "disabled_at": {**_wh_time, "description": "set when it was disabled for failing too long"},
    "disabled_reason": {"type": ["string", "null"]}, "created_at": _wh_time,
    "secret": {"type": "string", "description": "whsec_…: in the answers to create and rotate-secret only"}}}
SCHEMAS["WebhookSubscriptionInput"] = {"type": "object", "additionalProperties": False, "properties": {
    "url": {"type": "string", "maxLength": 2000,
            "description": "http(s); hosts on loopback, private or reserved networks are refused (400) unless "
                           "[webhooks] allowed_private_networks allows them"},
    "event_types": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    "description": {"type": ["string", "null"], "maxLength": 200},
    "active": {"type": "boolean", "description": "PATCH only: true re-enables a disabled subscription"}}}
SCHEMAS["WebhookDelivery"] = {"type": "object", "properties": {
    "id": {"type": "integer"}, "event_id": {"type": "integer"},
    "webhook_id": {"type": "string", "description": "the webhook-id header, evt_<event id>; the same on retries"},
    "event_type": {"type": ["string", "null"]},
    "state": {"type": "string", "enum": ["pending", "delivered", "failed"]}, "attempts": {"type": "integer"},
    "response_code": {"type": ["integer", "null"]}, "last_error": {"type": ["string", "null"]},
    "last_attempt_at": _wh_time, "next_attempt_at": _wh_time, "delivered_at": _wh_time, "created_at": _wh_time}}
_WH_BODY = {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/WebhookSubscriptionInput"}}}}
PATHS.update({
    "/webhook-subscriptions": {
        "get": {"summary": "Webhook subscriptions (admin)", "operationId": "listWebhookSubscriptions",
                "responses": {"200": _wh_list("WebhookSubscription"), **_WH_ERRORS}},
        "post": {"summary": "Subscribe a URL to event types (admin); the answer carries the secret, shown once",
                 "operationId": "createWebhookSubscription", "requestBody": _WH_BODY,
                 "responses": {"201": _wh_json("WebhookSubscription", "Created"), **_WH_ERRORS}}},
    "/webhook-subscriptions/{id}": {
        "parameters": [_WH_ID],
        "get": {"summary": "One webhook subscription (admin)", "operationId": "getWebhookSubscription",
                "responses": {"200": _wh_json("WebhookSubscription"), **_WH_ERRORS, **_WH_404}},
        "patch": {"summary": "Change URL, event types, description or active (admin)",
                  "operationId": "patchWebhookSubscription", "requestBody": _WH_BODY,
                  "responses": {"200": _wh_json("WebhookSubscription"), **_WH_ERRORS, **_WH_404}},
        "delete": {"summary": "Delete a subscription and its deliveries (admin)",
                   "operationId": "deleteWebhookSubscription",
                   "responses": {"204": {"description": "Deleted"}, **_WH_ERRORS, **_WH_404}}},
    "/webhook-subscriptions/{id}/rotate-secret": {
        "parameters": [_WH_ID],
        "post": {"summary": "A new secret at once; the old one stops working (admin)",
                 "operationId": "rotateWebhookSecret",
                 "responses": {"200": _wh_json("WebhookSubscription"), **_WH_ERRORS, **_WH_404}}},
    "/webhook-subscriptions/{id}/deliveries": {
        "parameters": [_WH_ID],
        "get": {"summary": "The subscription's recent deliveries, newest first (admin)",
                "operationId": "listWebhookDeliveries",
                "parameters": [{"name": "limit", "in": "query", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
                "responses": {"200": _wh_list("WebhookDelivery"), **_WH_ERRORS, **_WH_404}}},
    "/webhook-deliveries/{id}/retry": {
        "parameters": [_WH_ID],
        "post": {"summary": "Send a delivery again now, whatever its state (admin)",
                 "operationId": "retryWebhookDelivery",
                 "responses": {"200": _wh_json("WebhookDelivery"), **_WH_ERRORS, **_WH_404}}},
    "/webhook-subscriptions/{id}/retry-failed": {
        "parameters": [_WH_ID],
        "post": {"summary": "Send every failed delivery of the subscription again, and the held ones now (admin)",
                 "operationId": "retryFailedWebhookDeliveries",
                 "responses": {"200": {"description": "How many failed deliveries are pending again", "content": {
                     "application/json": {"schema": {"type": "object", "properties": {
                         "retried": {"type": "integer"}}}}}}, **_WH_ERRORS, **_WH_404, **_WH_409}}},
    "/webhook-subscriptions/{id}/test": {
        "parameters": [_WH_ID],
        "post": {"summary": "Send a webhook.test event to this subscription only (admin)",
                 "operationId": "testWebhookSubscription",
                 "responses": {"202": _wh_json("WebhookDelivery", "Queued"), **_WH_ERRORS, **_WH_404,
                               **_WH_409}}},
})

# --- imports ---

_IMP_ERRORS = {"400": {"$ref": "#/components/responses/BadRequest"},
               "401": {"$ref": "#/components/responses/Unauthorized"}}
_IMP_404 = {"404": {"$ref": "#/components/responses/NotFound"}}
_IMP_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_imp_time = {"type": ["string", "null"], "format": "date-time"}
SCHEMAS["ImportBatch"] = {"type": "object", "properties": {
    "id": {"type": "integer"}, "filename": {"type": "string"},
    "file_format": {"type": "string", "enum": ["csv", "xlsx", "vcard"]},
    "state": {"type": "string", "enum": ["done", "undone"]},
    "counts": {"type": "object", "additionalProperties": {"type": "integer"},
               "description": "rows new, update, unchanged, duplicate, error; companies_new, companies_update; "
                              "erased: the import's records of people erased since"},
    "created_at": _imp_time, "created_by_id": {"type": ["integer", "null"]}, "undone_at": _imp_time,
    "undone_by_id": {"type": ["integer", "null"]},
    "changes": {"type": "string", "description": "the path of its changes (also in the import events)"},
    "records": {"type": "object", "additionalProperties": {"type": "integer"},
                "description": "GET one import only: records it created and updated (created, updated)"},
    "undo": {"type": "object", "additionalProperties": {"type": "integer"},
             "description": "undo only: removed, restored, kept (edited or used since), gone (deleted since by "
                            "other means), erased"}}}
SCHEMAS["ImportChange"] = {"type": "object", "properties": {
    "id": {"type": "integer", "description": "the cursor: ask with after=<id> for the next page"},
    "object_type": {"type": "string", "enum": ["contact", "company"]},
    "object_id": {"type": "integer", "description": "the record's id when the import ran"},
    "action": {"type": "string", "enum": ["created", "updated"]},
    "fields": {"type": "array", "items": {"type": "string"},
               "description": "updated: the changed fields as the import's mapping names them (title, email, "
                              "phone, company, field:<free field>); never the values before"}}}


def _imp_json(schema: dict[str, object], description: str = "OK") -> dict[str, object]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_IMP_BATCH: dict[str, object] = {"$ref": "#/components/schemas/ImportBatch"}
PATHS.update({
    "/imports": {"get": {
        "summary": "Past imports, newest first", "operationId": "listImports",
        "parameters": [{"name": "limit", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}],
        "responses": {"200": _imp_json({"type": "object", "properties": {
            "items": {"type": "array", "items": _IMP_BATCH}}}), **_IMP_ERRORS}}},
    "/imports/{id}": {"parameters": [_IMP_ID], "get": {
        "summary": "One import with its counts and how many records it created and updated",
        "operationId": "getImport", "responses": {"200": _imp_json(_IMP_BATCH), **_IMP_ERRORS, **_IMP_404}}},
    "/imports/{id}/changes": {"parameters": [_IMP_ID], "get": {
        "summary": "What the import did, record by record, in pages (what import.finished and import.undone "
                   "point to)",
        "operationId": "listImportChanges",
        "parameters": [{"name": "after", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 0, "default": 0},
                        "description": "the last change id seen (next_after of the page before)"},
                       {"name": "limit", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}],
        "responses": {"200": _imp_json({"type": "object", "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/ImportChange"}},
            "next_after": {"type": ["integer", "null"], "description": "null on the last page"}}}),
            **_IMP_ERRORS, **_IMP_404}}},
    "/imports/{id}/undo": {"parameters": [_IMP_ID], "post": {
        "summary": "Undo the import as a whole, as its page does; audited, sends import.undone",
        "operationId": "undoImport",
        "responses": {"200": _imp_json(_IMP_BATCH, "Undone; the counts in undo"), **_IMP_ERRORS, **_IMP_404,
                      "403": {"$ref": "#/components/responses/Forbidden"},
                      "409": {"description": "It was undone already", "content": {
                          "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
})

# --- ERP ---

_ERP_ERRORS = {"400": {"$ref": "#/components/responses/BadRequest"},
               "401": {"$ref": "#/components/responses/Unauthorized"},
               "403": {"$ref": "#/components/responses/Forbidden"},
               "409": {"description": "Several records have this customer number (merge them first), or a payment "
                                      "id is recorded with other values", "content": {"application/json": {
                                          "schema": {"$ref": "#/components/schemas/Error"}}}}}
_ERP_READ_ERRORS = {"400": {"$ref": "#/components/responses/BadRequest"},
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "409": _ERP_ERRORS["409"]}
_ERP_MONEY_IN = {"anyOf": [{"type": "string", "pattern": r"^\d{1,12}(\.\d{1,2})?$"},
                           {"type": "number", "minimum": 0, "exclusiveMaximum": 10 ** 12}],
                 "description": "a decimal string (\"1234.50\") or number; cents at most"}
_ERP_MONEY = {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["1234.50"]}
_ERP_DATE = {"type": "string", "format": "date"}


def _erp_number(what: str) -> dict[str, object]:
    return {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1,
                                                                     "maxLength": 50}, "description": what}


def _erp_json(schema: dict[str, object], description: str = "OK") -> dict[str, object]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_UPSERTED = {"created": {"type": "boolean"},
             "changed": {"type": "array", "items": {"type": "string"},
                         "description": "the fields this request changed; empty when created or unchanged"}}
_OVERDUE = {"debtor": {"type": "boolean", "description": "derived: the customer has an overdue invoice (the "
                                                         "stored role stays as it is)"},
            "overdue": {"type": "object", "properties": {"count": {"type": "integer"}, "gross": _ERP_MONEY,
                                                         "outstanding": _ERP_MONEY},
                        "description": "overdue invoices (a person's include their company's)"}}
SCHEMAS["Contact"]["properties"].update(_OVERDUE)
SCHEMAS["Company"]["properties"].update(_OVERDUE)
SCHEMAS["ErpContactInput"] = {"type": "object", "additionalProperties": False, "properties": {
    **{k: v for k, v in SCHEMAS["ContactInput"]["properties"].items() if k != "customer_number"},
    "company": {"type": "string", "description": "the person's company by its customer number (sent before)"}},
    "description": "as POST /contacts; the customer number is the URL's; a field left out stays as it is"}
SCHEMAS["ErpCompanyInput"] = {"type": "object", "additionalProperties": False, "properties": {
    k: v for k, v in SCHEMAS["CompanyInput"]["properties"].items() if k != "customer_number"},
    "description": "as POST /companies; the customer number is the URL's"}
SCHEMAS["Invoice"] = {"type": "object", "properties": {
    "id": {"type": "integer"}, "number": {"type": "string"},
    "status": {"type": "string", "enum": ["open", "paid", "overdue", "cancelled"]},
    "date": _ERP_DATE, "due_date": {"type": ["string", "null"], "format": "date"},
    "net": _ERP_MONEY, "gross": _ERP_MONEY, "paid": _ERP_MONEY, "currency": {"type": "string"},
    "customer_number": {"type": ["string", "null"]}, "contact_id": {"type": ["integer", "null"]},
    "company_id": {"type": ["integer", "null"]}, "order_number": {"type": ["string", "null"]},
    "order_id": {"type": ["integer", "null"], "description": "the CRM's order with that number, when known"},
    "overdue": {"type": "boolean", "description": "the ERP says so, or open past the due date"},
    "interaction_id": {"type": ["integer", "null"], "description": "its document entry on the timeline"},
    "pdf_url": {"type": ["string", "null"]},
    "payments": {"type": "array", "items": {"type": "object", "properties": {
        "id": {"type": "string"}, "amount": _ERP_MONEY, "date": _ERP_DATE}}},
    "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"}}}
_INVOICE_IN = {"type": "object", "additionalProperties": False,
               "required": ["date", "net", "gross", "customer_number"], "properties": {
                   "date": _ERP_DATE, "due_date": {"type": ["string", "null"], "format": "date"},
                   "net": _ERP_MONEY_IN, "gross": _ERP_MONEY_IN,
                   "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$", "default": "EUR"},
                   "status": {"type": "string", "enum": ["open", "paid", "overdue", "cancelled"],
                              "default": "open"},
                   "customer_number": {"type": "string", "minLength": 1, "maxLength": 50,
                                       "description": "a company's or a person's"},
                   "order_number": {"type": ["string", "null"], "maxLength": 50,
                                    "description": "the order it bills (AB-2026-0001)"},
                   "pdf": {"type": ["string", "null"], "contentEncoding": "base64",
                           "description": "the invoice PDF in base64 (line breaks as MIME wraps it are fine), "
                                          "at most [documents] max_bytes"}}}
_SYNC_ITEM = {"type": "object", "required": ["outcome"], "properties": {
    "kind": {"type": "string", "enum": ["company", "contact"]}, "index": {"type": "integer"},
    "external_id": {"type": ["string", "null"]},
    "outcome": {"type": "string", "enum": ["created", "updated", "unchanged", "error"]},
    "id": {"type": "integer"}, "changed": {"type": "array", "items": {"type": "string"}},
    "error": {"type": "object", "properties": {"field": {"type": ["string", "null"]}, "message": {"type": "string"}}}}}

PATHS.update({
    "/erp/companies/{id}": {
        "parameters": [_erp_number("the ERP's customer number (Kundennummer)")],
        "get": {"summary": "The company with this customer number", "operationId": "erpGetCompany",
                "responses": {"200": _erp_json({"$ref": "#/components/schemas/Company"}), **_ERP_READ_ERRORS}},
        "put": {"summary": "Create or update the company with this customer number (idempotent: an unchanged "
                           "record writes nothing)", "operationId": "erpPutCompany",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ErpCompanyInput"}}}},
                "responses": {"200": _erp_json({"allOf": [{"$ref": "#/components/schemas/Company"},
                                                          {"type": "object", "properties": _UPSERTED}]}),
                              "201": _erp_json({"allOf": [{"$ref": "#/components/schemas/Company"},
                                                          {"type": "object", "properties": _UPSERTED}]},
                                               "Created"), **_ERP_ERRORS}}},
    "/erp/contacts/{id}": {
        "parameters": [_erp_number("the ERP's customer number of the person")],
        "get": {"summary": "The person with this customer number", "operationId": "erpGetContact",
                "responses": {"200": _erp_json({"$ref": "#/components/schemas/Contact"}), **_ERP_READ_ERRORS}},
        "put": {"summary": "Create or update the person with this customer number (idempotent)",
                "operationId": "erpPutContact",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ErpContactInput"}}}},
                "responses": {"200": _erp_json({"allOf": [{"$ref": "#/components/schemas/Contact"},
                                                          {"type": "object", "properties": _UPSERTED}]}),
                              "201": _erp_json({"allOf": [{"$ref": "#/components/schemas/Contact"},
                                                          {"type": "object", "properties": _UPSERTED}]},
                                               "Created"), **_ERP_ERRORS}}},
    "/erp/sync": {"post": {
        "summary": "The nightly sync: up to 1,000 companies and people by customer number, companies first; each "
                   "item's outcome, a bad item changes nothing and does not stop the others",
        "operationId": "erpSync",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "properties": {
                "companies": {"type": "array", "items": {"allOf": [
                    {"$ref": "#/components/schemas/ErpCompanyInput"}]}},
                "contacts": {"type": "array", "items": {"$ref": "#/components/schemas/ErpContactInput"}}},
            "description": "each item has its \"external_id\" (the customer number) beside its fields"}}}},
        "responses": {"200": _erp_json({"type": "object", "properties": {
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "items": {"type": "array", "items": _SYNC_ITEM}}}), **_ERP_ERRORS}}},
    "/erp/invoices/{id}": {
        "parameters": [_erp_number("the ERP's invoice number (RE-2026-0042)")],
        "get": {"summary": "An invoice with its payments", "operationId": "erpGetInvoice",
                "responses": {"200": _erp_json({"$ref": "#/components/schemas/Invoice"}), **_ERP_READ_ERRORS}},
        "put": {"summary": "Create or update an invoice (on the customer's timeline as a document; idempotent)",
                "operationId": "erpPutInvoice",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _INVOICE_IN}}},
                "responses": {"200": _erp_json({"allOf": [{"$ref": "#/components/schemas/Invoice"},
                                                          {"type": "object", "properties": _UPSERTED}]}),
                              "201": _erp_json({"$ref": "#/components/schemas/Invoice"}, "Created"),
                              **_ERP_ERRORS,
                              "413": {"description": "The body is far larger than an invoice with its PDF can be"}}}},
    "/erp/payments": {"post": {
        "summary": "Record a payment once per ERP payment id; completing the gross marks the invoice paid",
        "operationId": "erpPostPayment",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "required": ["id", "invoice", "amount", "date"],
            "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 100,
                                  "description": "the ERP's payment id"},
                           "invoice": {"type": "string", "description": "the invoice number"},
                           "amount": _ERP_MONEY_IN, "date": _ERP_DATE}}}}},
        "responses": {"201": _erp_json({"type": "object", "properties": {
            "id": {"type": "string"}, "amount": _ERP_MONEY, "date": _ERP_DATE, "created": {"type": "boolean"},
            "invoice": {"$ref": "#/components/schemas/Invoice"}}}, "Recorded"),
            "200": {"description": "This payment id is recorded already with these values"}, **_ERP_ERRORS}}},
})
# The ERP's poll is a mode of the orders list (web.api.openapi_sales documents the list).
openapi_sales.PATHS["/orders"]["get"]["parameters"] = [
    *openapi_sales.PATHS["/orders"]["get"].get("parameters", []),
    {"name": "since", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "the ERP's poll: orders created or changed after this ISO 8601 time (with a zone; \"\" for "
                    "all), oldest first, with next_since and next_since_id to ask with next; an order is listed "
                    "once it is a minute old, so none committed late is skipped"},
    {"name": "since_id", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0},
     "description": "with since: the last order id seen at that time (ties)"}]
_ORDERS_JSON = openapi_sales.PATHS["/orders"]["get"]["responses"]["200"]["content"]["application/json"]
_ORDERS_JSON["schema"] = {**_ORDERS_JSON["schema"], "properties": {
    **_ORDERS_JSON["schema"]["properties"],
    "next_since": {"type": "string", "format": "date-time", "description": "with since: the cursor to ask with next"},
    "next_since_id": {"type": "integer", "description": "with since: the id to ask with next"}}}

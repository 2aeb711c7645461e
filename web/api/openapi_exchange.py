"""Data in and out's part of the OpenAPI document: exports, customer-file documents, webhook subscriptions and
the ERP coupling. Added to ``openapi.PATHS`` and ``openapi.SCHEMAS`` when the API package imports this module."""

from __future__ import annotations

from web.api.openapi import PATHS, SCHEMAS  # noqa: F401

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

# --- ERP ---

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

# --- webhook subscriptions ---

# --- ERP ---

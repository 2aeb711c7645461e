"""The reports' part of the OpenAPI document (#20): GET /reports/{name}. Added to ``openapi.PATHS`` and
``openapi.SCHEMAS`` when the API package imports this module (it describes; it never imports analytics)."""

from __future__ import annotations

from typing import Any

from web.api.openapi import PATHS, SCHEMAS

_DAY = {"type": "string", "format": "date", "description": "YYYY-MM-DD"}
_VALUE = {"type": ["string", "number", "integer", "boolean", "null"],
          "description": "as the column's unit says: eur as a decimal string (\"1234.50\"), dates ISO"}

SCHEMAS["ReportFigure"] = {"type": "object", "properties": {
    "key": {"type": "string", "description": "stable, the chart's and the CSV's URL part"},
    "kind": {"type": "string", "enum": ["bar", "stacked_bar", "line", "hbar", "heatmap", "table"]},
    "x": {"type": ["string", "null"], "description": "the column drawn along the chart's x axis"},
    "series": {"type": "array", "items": {"type": "string"}, "description": "the columns drawn as series"},
    "columns": {"type": "array", "items": {"type": "object", "properties": {
        "key": {"type": "string"},
        "unit": {"type": "string", "enum": ["text", "count", "percent", "hours", "minutes", "days", "eur", "date",
                                             "week", "month"]}}}},
    "rows": {"type": "array", "items": {"type": "array", "items": _VALUE}},
    "notes": {"type": "array", "items": {"type": "string"},
              "description": "what the reader should know, as codes: few_people (fewer than [analytics] "
                             "min_group_size people behind a staff-work figure: not shown), small_rows (rows with "
                             "too few people withheld), small_groups (teams under min_group_size pooled as "
                             "other_teams or left out), team_too_small (the filtered team is too small), "
                             "team_filter_not_applied (a figure about customers ignores the team filter), and "
                             "report-specific ones such as forecast_overdue"},
    "suppressed": {"type": "boolean", "description": "nothing may be shown (rows are empty): works agreement"}}}
SCHEMAS["Report"] = {"type": "object", "properties": {
    "report": {"type": "string", "enum": ["service", "phone", "sales", "customers"]},
    "filters": {"type": "object", "properties": {
        "from": _DAY, "to": _DAY, "team": {"type": ["string", "null"]},
        "category": {"type": ["string", "null"], "enum": ["A", "B", "C", "none", None]}}},
    "refreshed_at": {"type": ["string", "null"], "format": "date-time",
                     "description": "when the analytics store's snapshot was taken (UTC)"},
    "figures": {"type": "array", "items": {"$ref": "#/components/schemas/ReportFigure"}}}}


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


# The path parameter is called id like every other (tests/test_api.py maps each route's parameter to {id}).
PATHS["/reports/{id}"] = {"get": {
    "summary": "A report's figures (service, phone, sales, customers) from the analytics store",
    "description": "The rows the report page shows, with the same works-council suppression (staff groups under "
                   "[analytics] min_group_size are pooled or left out). Read from the analytics store, never "
                   "the CRM's own database: as fresh as the last `crm-inbox analytics refresh`.",
    "operationId": "getReport",
    "parameters": [
        {"name": "id", "in": "path", "required": True, "description": "the report's name",
         "schema": {"type": "string", "enum": ["service", "phone", "sales", "customers"]}},
        _q("from", _DAY, "first day (default: 90 days back for service and phone, 1 January for sales and "
                         "customers)"),
        _q("to", _DAY, "last day, inclusive (default: today, or 31 December); at most five years after from"),
        _q("team", {"type": "string", "maxLength": 100}, "only the work of this team's staff (staff figures)"),
        _q("category", {"type": "string", "enum": ["A", "B", "C", "none"]}, "the customer's A/B/C category")],
    "responses": {
        "200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Report"}}}},
        "400": {"$ref": "#/components/responses/BadRequest"},
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "404": {"$ref": "#/components/responses/NotFound"},
        "503": {"description": "The analytics store is missing, corrupt, locked or outdated (error.reason); "
                               "nothing else is affected", "content": {"application/json": {
                                   "schema": {"$ref": "#/components/schemas/Error"}}}}}}}

"""Reports over the API: GET /api/v1/reports/<name>?from=&to=&team=&category= answers the figures the report
page shows (the same rows, the same works-council suppression), read from the analytical store only.

Any staff token may read (read-only too). A store that cannot be read answers 503 with the reason; with
[analytics] enabled off the reports do not exist (404). The report side (the queries, the store access, DuckDB)
is imported inside the view, at the first report asked for: web.api registers this module in every app, and an
app or serve without analytics never loads it (issue #20: apart means apart)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Response, jsonify, request

from crm_inbox.erp.overdue import today
from crm_inbox.errors import AnalyticsUnavailable
from web.api import serialize as ser
from web.api.blueprint import api
from web.auth import require_token
from web.json_errors import fail
from web.requestdb import state

if TYPE_CHECKING:
    from crm_inbox.analytics.model import Figure

UNAVAILABLE = {"missing": "no analytics store yet: `crm-inbox analytics refresh` builds it",
               "corrupt": "the analytics store cannot be read; the next refresh replaces it",
               "locked": "the analytics store is locked by another program",
               "outdated": "the analytics store has an older layout; the next refresh rebuilds it"}


def figure_json(figure: Figure) -> dict[str, Any]:
    from web.reports.formatting import plain_value

    return {"key": figure.key, "kind": figure.kind, "x": figure.x or None, "series": list(figure.series),
            "columns": [{"key": c.key, "unit": c.unit} for c in figure.columns],
            "rows": [[plain_value(v) for v in row] for row in figure.rows],
            "notes": list(figure.notes), "suppressed": figure.suppressed}


@api.get("/reports/<name>")
@require_token()
def get_report(name: str) -> Response:
    settings = state().settings
    if not settings.analytics.enabled:
        fail(404, "not_found", "reports are switched off")
    from web.reports.filters import parse_filters, query_args
    from web.reports.names import REPORT_NAMES
    from web.reports.store_access import access

    if name not in REPORT_NAMES:
        fail(404, "not_found", "no such report")
    filters = parse_filters(name, request.args, today(settings))  # ValidationError: 400 with the field
    try:
        answer = access().run(name, filters)
    except AnalyticsUnavailable as exc:
        fail(503, "analytics_unavailable", UNAVAILABLE.get(exc.reason, UNAVAILABLE["corrupt"]), reason=exc.reason)
    args = query_args(filters)
    info = answer.info
    return jsonify({"report": name,
                    "filters": {"from": args["from"], "to": args["to"], "team": filters.team,
                                "category": filters.category},
                    "refreshed_at": ser.when(info.refreshed_at) if info else None,
                    "figures": [figure_json(f) for f in answer.report.figures]})

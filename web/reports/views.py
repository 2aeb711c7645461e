"""The report pages: /reports (the store's state, the four reports), /reports/<name> (filters, then every
figure: chart, table, notes, CSV link), the charts as SVG and the tables as CSV. Nothing here writes anything;
a store that cannot be read pauses the reports and nothing else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Response, abort, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from crm_inbox.analytics.model import Figure, Filters
from crm_inbox.erp.overdue import today
from crm_inbox.errors import AnalyticsUnavailable, ValidationError
from web import csrf
from web.auth import current_user
from web.downloads import csv_response
from web.i18n import local_time
from web.reports.blueprint import reports
from web.reports.charts import HEIGHT, WIDTH, chart_svg, has_chart
from web.reports.downloads import figure_csv
from web.reports.filters import CATEGORIES, default_period, last_day, parse_filters, query_args
from web.reports.labels import label
from web.reports.names import REPORT_NAMES
from web.reports.tables import figure_table
from web.requestdb import state

if TYPE_CHECKING:
    from web.reports.store_access import ReportsAccess

# An SVG opened on its own (not as the page's <img>) is a document of this origin: nothing in it may run.
# pygal's <style> is inline, so styles are allowed; its <script> never runs.
SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; script-src 'none'; sandbox"


def access() -> ReportsAccess:
    """The app's store access, imported at the first report request: mounting the pages loads neither the
    report queries nor DuckDB into serve's process; a report read does."""
    from web.reports.store_access import access as app_access

    return app_access()


def language() -> str:
    locale = get_locale()
    return "de" if locale is not None and locale.language == "de" else "en"


def _why(reason: str) -> str:
    if reason == "missing":
        return _("No analytics yet.")
    if reason == "outdated":
        return _("The analytics store was built by an older version; the next refresh rebuilds it.")
    if reason == "locked":
        return _("The analytics store is locked by another program.")
    return _("The analytics store cannot be read.")


@reports.context_processor
def template_helpers() -> dict[str, Any]:
    return {"csrf_field": csrf.field, "current_user": current_user, "label": label, "local_time": local_time,
            "why_unavailable": _why, "report_names": REPORT_NAMES}


def _filters(name: str) -> Filters:
    return parse_filters(name, MultiDict(request.args), today(state().settings))


def _filter_error(exc: ValidationError) -> str:
    return _("%(field)s: %(why)s", field=label(exc.field), why=_(exc.message))


@reports.get("/reports")
def overview() -> str:
    info, reason = access().status()
    return render_template("reports/overview.html", info=info, reason=reason,
                           refresh_minutes=state().settings.analytics.refresh_minutes)


@reports.get("/reports/<name>")
def report(name: str) -> tuple[str, int]:
    if name not in REPORT_NAMES:
        abort(404)
    reports_access = access()
    first, last = default_period(name, today(state().settings))
    form = {"from": request.args.get("from") or first.isoformat(), "to": request.args.get("to") or last.isoformat(),
            "team": request.args.get("team") or "", "category": request.args.get("category") or ""}
    page: dict[str, Any] = {"name": name, "form": form, "categories": CATEGORIES, "teams": reports_access.teams(),
                            "error": None, "reason": None, "answer": None}
    try:
        filters = _filters(name)
    except ValidationError as exc:
        page["error"] = _filter_error(exc)
        return render_template("reports/report.html", **page), 400
    try:
        answer = reports_access.run(name, filters)
    except AnalyticsUnavailable as exc:
        page["reason"] = exc.reason
        return render_template("reports/report.html", **page), 503
    lang = language()
    args = query_args(filters)
    page.update(answer=answer, args=args, min_size=reports_access.policy.min_group_size,
                figures=[(f, figure_table(f, lang), has_chart(f)) for f in answer.report.figures],
                chart_width=WIDTH, chart_height=HEIGHT, last=last_day(filters))
    return render_template("reports/report.html", **page), 200


def _figure(name: str) -> tuple[Filters, Figure]:
    """The figure of a chart or CSV URL; 400 for bad filters, 404 for no such figure, 503 for no store."""
    if name not in REPORT_NAMES:
        abort(404)
    try:
        filters = _filters(name)
    except ValidationError as exc:
        abort(400, description=_filter_error(exc))
    try:
        answer = access().run(name, filters)
    except AnalyticsUnavailable as exc:
        abort(503, description=_why(exc.reason))
    key = request.view_args["figure"] if request.view_args else ""
    try:
        return filters, answer.report.figure(key)
    except KeyError:
        abort(404)


@reports.get("/reports/<name>/<figure>.svg")
def chart(name: str, figure: str) -> Response:
    _, found = _figure(name)
    if not has_chart(found):
        abort(404)  # heat maps and tables are drawn by the page, suppressed figures not at all
    response = Response(chart_svg(found, language()), mimetype="image/svg+xml")
    response.headers["Content-Security-Policy"] = SVG_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@reports.get("/reports/<name>/<figure>.csv")
def table_csv(name: str, figure: str) -> Response:
    filters, found = _figure(name)
    filename = f"{name}-{found.key}-{filters.start.isoformat()}-{last_day(filters).isoformat()}.csv"
    return csv_response(figure_csv(found), filename)

"""GET /api/v1/reports/<name>: the figures of the report pages as JSON, for any staff token (read-only too),
with the same rows and the same works-council suppression; bad filters a 400 naming the field; a store that
cannot be read a 503 with the reason; listed in the OpenAPI document."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import make_token
from tests.test_analytics_pages import (
    BAD_FILTERS,
    EDGE_DATES,
    REPORTS,
    SMALL_TEAM,
    default_filters,
    expected,
    reports_settings,
    shared_store,
)
from web.reports.formatting import plain_value


@pytest.fixture
def settings(database_url, tmp_path, store_path):  # type: ignore[no-untyped-def]
    return reports_settings(database_url, tmp_path, store_path)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):  # type: ignore[no-untyped-def]
    return shared_store(tmp_path_factory)


def test_a_read_only_token_gets_every_report_with_the_pages_rows(client, factory, store_path):
    headers = {"Authorization": f"Bearer {make_token(factory, 'leser@beispiel-firma.de', role='readonly')}"}
    for name in REPORTS:
        filters = default_filters(name)
        response = client.get(f"/api/v1/reports/{name}", headers=headers)
        assert response.status_code == 200, response.json
        body = response.json
        assert body["report"] == name and body["refreshed_at"]
        assert body["filters"] == {"from": filters.start.isoformat(),
                                   "to": (filters.end - timedelta(days=1)).isoformat(), "team": None,
                                   "category": None}
        report = expected(store_path, name, filters)
        assert [f["key"] for f in body["figures"]] == [f.key for f in report.figures]
        for got, figure in zip(body["figures"], report.figures, strict=True):
            assert got["kind"] == figure.kind and got["suppressed"] == figure.suppressed
            assert got["columns"] == [{"key": c.key, "unit": c.unit} for c in figure.columns]
            assert got["rows"] == [[plain_value(v) for v in r] for r in figure.rows]
    pipeline = next(f for f in client.get("/api/v1/reports/sales", headers=headers).json["figures"]
                    if f["key"] == "pipeline_by_stage")
    money = [row[i] for row in pipeline["rows"] for i, c in enumerate(pipeline["columns"]) if c["unit"] == "eur"]
    assert money and all(isinstance(v, str) and "." in v for v in money)  # Decimal as a string, like other money


def test_the_works_council_rule_holds_in_the_api(client, auth, store_path):
    body = client.get(f"/api/v1/reports/service?team={SMALL_TEAM}", headers=auth).json
    assert body["filters"]["team"] == SMALL_TEAM
    withheld = [f for f in body["figures"] if f["suppressed"]]
    assert withheld and all(f["rows"] == [] and "team_too_small" in f["notes"] for f in withheld)
    everything = client.get("/api/v1/reports/service", headers=auth).json
    assert SMALL_TEAM not in str([f["rows"] for f in everything["figures"]])


def test_bad_filters_name_the_field_and_unknown_reports_are_404(client, auth):
    for query, field in BAD_FILTERS:
        response = client.get(f"/api/v1/reports/phone?{query}", headers=auth)
        assert response.status_code == 400, query
        assert response.json["error"]["code"] == "invalid"
        assert response.json["error"]["field"] == field.lower()
    for query in EDGE_DATES:
        response = client.get(f"/api/v1/reports/customers?{query}", headers=auth)
        assert response.status_code == 400 and response.json["error"]["field"] in ("from", "to"), query
    assert client.get("/api/v1/reports/payroll", headers=auth).status_code == 404
    assert client.get("/api/v1/reports/service").status_code == 401
    year = default_filters("sales").start.year
    body = client.get(f"/api/v1/reports/sales?from={year}-03-01&category=A", headers=auth).json
    assert body["filters"] == {"from": f"{year}-03-01", "to": f"{year}-12-31", "team": None, "category": "A"}


def test_a_missing_store_is_503_with_the_reason_and_switched_off_reports_are_404(database_url, tmp_path, factory):
    from web import create_app

    headers = {"Authorization": f"Bearer {make_token(factory, 'leser@beispiel-firma.de', role='readonly')}"}
    missing = create_app(reports_settings(database_url, tmp_path, tmp_path / "none.duckdb"), factory).test_client()
    response = missing.get("/api/v1/reports/service", headers=headers)
    assert response.status_code == 503
    assert response.json["error"]["code"] == "analytics_unavailable" and response.json["error"]["reason"] == "missing"
    off = create_app(reports_settings(database_url, tmp_path, tmp_path / "none.duckdb", enabled=False), factory)
    assert off.test_client().get("/api/v1/reports/service", headers=headers).status_code == 404


def test_the_openapi_document_describes_the_reports(client):
    document = client.get("/api/v1/openapi.json").json
    operation = document["paths"]["/reports/{id}"]["get"]
    assert operation["operationId"] == "getReport"
    assert {p["name"] for p in operation["parameters"]} == {"id", "from", "to", "team", "category"}
    assert {"200", "400", "401", "404", "503"} <= set(operation["responses"])
    assert "ReportFigure" in document["components"]["schemas"]

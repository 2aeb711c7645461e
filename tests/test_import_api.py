"""Past imports over the API: listed newest first, one with its counts, its changes in pages (field names, no
old values) as the import events point to, undone as the page undoes it; read-only users may read, not undo."""

from __future__ import annotations

from sqlalchemy import select

from crm_inbox.contacts.inputs import ContactChanges
from crm_inbox.contacts.service import create_contact
from crm_inbox.db import unit_of_work
from crm_inbox.imports.readers import read_table
from crm_inbox.imports.service import run_import
from crm_inbox.models import Contact, Event
from tests.conftest import make_token

MAPPING = {"Name": "name", "E-Mail": "email", "Titel": "title", "Hobby": "field:Hobby"}


def imported(factory, settings):  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        anna = create_contact(session, ContactChanges(name="Anna Alt", emails=("anna@example.org",)), "DE", None).id
    first = run_import(factory, settings, read_table("a.csv", b"Name;E-Mail\nErst Kunde;erst@example.org\n"),
                       {"Name": "name", "E-Mail": "email"}, filename="a.csv", actor=None)
    table = read_table("b.csv", b"Name;E-Mail;Titel;Hobby\nAnna Alt;anna@example.org;Dr.;Golf\n"
                                b"Neu Eins;eins@example.org;;\nNeu Zwei;zwei@example.org;;\n")
    second = run_import(factory, settings, table, MAPPING, filename="b.csv", actor=None)
    return anna, first.batch_id, second.batch_id


def test_imports_are_listed_and_their_changes_paged_without_old_values(client, auth, factory, settings):
    anna, first, second = imported(factory, settings)
    listed = client.get("/api/v1/imports", headers=auth).get_json()["items"]
    assert [(b["id"], b["filename"], b["state"]) for b in listed] == [(second, "b.csv", "done"),
                                                                       (first, "a.csv", "done")]
    one = client.get(f"/api/v1/imports/{second}", headers=auth).get_json()
    assert one["counts"]["new"] == 2 and one["counts"]["update"] == 1
    assert all(isinstance(n, int) for n in one["counts"].values())  # the rows left out are the page's, not counts
    assert one["records"] == {"created": 2, "updated": 1}
    assert one["changes"] == f"/api/v1/imports/{second}/changes"
    with factory() as session:  # the webhook's event names the same place
        payload = session.execute(select(Event.payload).where(Event.subject_id == second,
                                                              Event.type == "import.finished")).scalar_one()
    assert payload["changes"] == one["changes"]
    page = client.get(f"{one['changes']}?limit=2", headers=auth).get_json()
    assert [(c["object_id"], c["action"], c["fields"]) for c in page["items"]][:1] == [
        (anna, "updated", ["title", "field:Hobby"])]
    assert len(page["items"]) == 2 and page["next_after"] == page["items"][-1]["id"]
    assert "Golf" not in str(page) and "before" not in page["items"][0]
    rest = client.get(f"{one['changes']}?limit=2&after={page['next_after']}", headers=auth).get_json()
    assert [c["action"] for c in rest["items"]] == ["created"] and rest["next_after"] is None
    assert client.get("/api/v1/imports/999/changes", headers=auth).status_code == 404
    assert client.get(f"/api/v1/imports/{second}/changes?after=x", headers=auth).status_code == 400
    assert client.get("/api/v1/imports/99999999999", headers=auth).status_code == 404


def test_undo_over_the_api_and_read_only_users_may_not(client, auth, factory, settings):
    anna, _, second = imported(factory, settings)
    readonly = {"Authorization": f"Bearer {make_token(factory, 'leser@beispiel-firma.de', 'readonly')}"}
    assert client.get(f"/api/v1/imports/{second}", headers=readonly).status_code == 200
    assert client.post(f"/api/v1/imports/{second}/undo", headers=readonly).status_code == 403
    answer = client.post(f"/api/v1/imports/{second}/undo", headers=auth)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["state"] == "undone" and body["undone_by_id"] is not None
    assert body["undo"] == {"removed": 2, "restored": 2, "kept": 0, "gone": 0, "erased": 0}
    with factory() as session:
        assert session.execute(select(Contact.name).order_by(Contact.id)).scalars().all() == ["Anna Alt",
                                                                                               "Erst Kunde"]
        assert session.get(Contact, anna).title is None  # type: ignore[union-attr]
    again = client.post(f"/api/v1/imports/{second}/undo", headers=auth)
    assert again.status_code == 409 and again.get_json()["error"]["code"]
    assert client.post("/api/v1/imports/999/undo", headers=auth).status_code == 404

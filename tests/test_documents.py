"""The customer file (Kundenakte): staff file documents for a person or a company on the pages and over the API;
they show on the timelines, download as attachments, are renamed and removed (audited), refused when too large,
are in the person's data-protection export and go with the person's erasure. Both storages: the database and
a directory (files 0600, removed with their row, never left behind by a failed transaction)."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work
from crm_inbox.documents.service import add_document, remove_document
from crm_inbox.documents.storage import directory_of
from crm_inbox.models import Attachment, AuditEntry, Company, Contact, Interaction
from crm_inbox.staff.service import add_staff, create_token
from tests.conftest import make_settings
from tests.test_pages import csrf_token, log_in

PASSWORD = "richtig-geheim-42"
LIMIT = 64 * 1024
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"  # binary, about 10 KB


@pytest.fixture
def storage() -> str:
    """The directory (files to check on disk); the tests where the storage matters run with both."""
    return "directory"


@pytest.fixture
def settings(storage: str, database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "instance", documents={"storage": storage, "max_bytes": LIMIT})


BOTH = pytest.mark.parametrize("storage", ["database", "directory"])


@pytest.fixture
def world(factory: sessionmaker[Session]) -> dict[str, Any]:
    """A company with one person, and a user of each role (with an API token)."""
    out: dict[str, Any] = {"tokens": {}}
    with unit_of_work(factory) as session:
        for role in ("admin", "staff", "readonly"):
            # The admin only calls the API: a password hash costs a third of a second.
            user = add_staff(session, f"{role}@beispiel-firma.de", f"{role.title()} Nutzer", role,
                             password=PASSWORD if role != "admin" else None)
            out["tokens"][role] = {"Authorization": f"Bearer {create_token(session, user, 'documents test')}"}
            out[role] = user.id
        company = Company(name="Müller Maschinenbau GmbH", tags=[], fields={})
        session.add(company)
        session.flush()
        person = Contact(name="Claus Jürgens", company_id=company.id, tags=[], fields={})
        session.add(person)
        session.flush()
        out |= {"company": company.id, "person": person.id}
    return out


def files_on_disk(settings: Settings) -> list[Path]:
    root = directory_of(settings)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def audit_actions(factory: sessionmaker[Session]) -> list[tuple[str, int | None]]:
    with factory() as session:
        return [(a.action, a.staff_id) for a in session.execute(
            select(AuditEntry).where(AuditEntry.action.like("document.%")).order_by(AuditEntry.id)).scalars()]


def upload_on_page(client: Any, url: str, page: str, content: bytes, **fields: str) -> Any:
    token = csrf_token(client.get(page).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, "file": (io.BytesIO(content), "Wartungsvertrag 2027.pdf"),
                                  **fields}, content_type="multipart/form-data")


@BOTH
def test_a_document_filed_on_the_persons_page_shows_on_both_timelines_and_downloads_as_it_was(
        client, world, settings, factory):
    log_in(client, "staff@beispiel-firma.de", PASSWORD)
    page = f"/contacts/{world['person']}"
    assert 'enctype="multipart/form-data"' in client.get(page).get_data(as_text=True)
    response = upload_on_page(client, f"/contacts/{world['person']}/documents", page, PDF,
                              title="Wartungsvertrag", note="Unterschrieben zurück am 2. Dezember")
    assert response.status_code == 302
    for timeline in (page, f"/companies/{world['company']}"):
        html = client.get(timeline).get_data(as_text=True)
        assert "Wartungsvertrag" in html and "Unterschrieben zurück am 2. Dezember" in html
        assert "Wartungsvertrag 2027.pdf" in html and "10 KB" in html
    with factory() as session:
        att = session.execute(select(Attachment)).scalar_one()
        item = session.get_one(Interaction, att.interaction_id)
        assert (item.kind.value, item.direction.value, item.contact_ids) == ("document", "internal", [world["person"]])
        assert item.created_by_id == world["staff"]
        stored = (att.stored_file, att.content)
    if settings.documents.storage == "directory":
        [path] = files_on_disk(settings)
        assert stored == (path.relative_to(directory_of(settings)).as_posix(), b"")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_bytes() == PDF
    else:
        assert stored == (None, PDF) and files_on_disk(settings) == []
    listed = client.get(f"/api/v1/contacts/{world['person']}/timeline?kind=document",
                        headers=world["tokens"]["readonly"]).json["items"]
    assert [(i["subject"], i["attachments"][0]["filename"]) for i in listed] == [("Wartungsvertrag",
                                                                                 "Wartungsvertrag 2027.pdf")]
    download = client.get(f"/attachments/{att.id}")
    assert download.data == PDF
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.mimetype == "application/octet-stream"
    assert audit_actions(factory) == [("document.add", world["staff"])]


@BOTH
def test_a_document_for_the_company_over_the_api_is_renamed_and_removed_with_its_file(
        client, world, settings, factory):
    auth = world["tokens"]["staff"]
    response = client.post(f"/api/v1/companies/{world['company']}/documents", headers=auth,
                           data={"file": (io.BytesIO(PDF), "../../etc/zeichnung.dwg"), "title": "",
                                 "note": "Rev. B"}, content_type="multipart/form-data")
    assert response.status_code == 201, response.json
    doc = response.json
    assert (doc["title"], doc["note"], doc["company_id"], doc["contact_id"]) == ("zeichnung.dwg", "Rev. B",
                                                                               world["company"], None)
    assert doc["file"]["filename"] == "zeichnung.dwg" and doc["file"]["size"] == len(PDF)
    download = client.get(doc["file"]["url"], headers=world["tokens"]["readonly"])
    assert download.data == PDF and download.headers["X-Content-Type-Options"] == "nosniff"
    log_in(client, "readonly@beispiel-firma.de", PASSWORD)
    assert "zeichnung.dwg" in client.get(f"/companies/{world['company']}").get_data(as_text=True)

    renamed = client.patch(f"/api/v1/documents/{doc['id']}", headers=auth,
                           json={"title": "Zeichnung Halle 2", "filename": "halle-2.dwg"})
    assert renamed.status_code == 200
    assert (renamed.json["title"], renamed.json["file"]["filename"]) == ("Zeichnung Halle 2", "halle-2.dwg")
    assert client.get(doc["file"]["url"], headers=auth).headers["Content-Disposition"] == \
        'attachment; filename="halle-2.dwg"'
    on_disk = files_on_disk(settings)
    assert len(on_disk) == (1 if settings.documents.storage == "directory" else 0)

    assert client.delete(f"/api/v1/documents/{doc['id']}", headers=auth).status_code == 204
    assert client.get(f"/api/v1/interactions/{doc['id']}", headers=auth).status_code == 404
    assert client.delete(f"/api/v1/documents/{doc['id']}", headers=auth).status_code == 404
    assert files_on_disk(settings) == []
    assert audit_actions(factory) == [("document.add", world["staff"]), ("document.rename", world["staff"]),
                                      ("document.remove", world["staff"])]
    with factory() as session:
        removed = session.execute(select(AuditEntry).where(AuditEntry.action == "document.remove")).scalar_one()
        assert removed.details["title"] == "Zeichnung Halle 2"
        assert removed.details["files"][0]["filename"] == "halle-2.dwg"


def test_a_quote_pdf_or_a_mail_is_not_a_document_staff_may_remove(client, world, factory):
    with unit_of_work(factory) as session:
        from crm_inbox.models import Direction, InteractionKind, utcnow
        from crm_inbox.timeline.service import record_interaction

        letter = record_interaction(session, kind=InteractionKind.DOCUMENT, direction=Direction.OUT,
                                    occurred_at=utcnow(), subject="Angebot A-2026-0001",
                                    attachments=[("angebot.pdf", "application/pdf", PDF)])
        letter_id = letter.id
    auth = world["tokens"]["admin"]
    assert client.delete(f"/api/v1/documents/{letter_id}", headers=auth).status_code == 404
    assert client.patch(f"/api/v1/documents/{letter_id}", headers=auth, json={"title": "x"}).status_code == 404


def test_too_large_empty_or_missing_files_are_refused_and_nothing_is_kept(client, world, settings, factory):
    url = f"/api/v1/contacts/{world['person']}/documents"
    auth = world["tokens"]["staff"]
    for data, why in (({"file": (io.BytesIO(b"x" * (LIMIT + 1)), "scan.tif")}, "too large"),
                      ({"file": (io.BytesIO(b""), "leer.pdf")}, "empty"),
                      ({"title": "ohne Datei"}, "required")):
        response = client.post(url, headers=auth, data=data, content_type="multipart/form-data")
        assert response.status_code == 400 and why in response.json["error"]["message"], response.json
        assert response.json["error"]["field"] == "file"
    far_too_large = client.post(url, headers=auth, data={"file": (io.BytesIO(b"x" * (LIMIT * 3)), "scan.tif")},
                                content_type="multipart/form-data")
    assert (far_too_large.status_code, far_too_large.json["error"]["field"]) == (413, "file")
    assert f"at most {LIMIT} bytes" in far_too_large.json["error"]["message"]
    log_in(client, "staff@beispiel-firma.de", PASSWORD)
    message = "No document filed: The file is too large: a document may have at most 64 KB."
    for page, status, size in ((f"/contacts/{world['person']}", 422, LIMIT + 1),
                               # Far over: refused before it is read (413), with the same message on the page.
                               (f"/contacts/{world['person']}", 413, LIMIT * 3),
                               (f"/companies/{world['company']}", 413, LIMIT * 3)):
        response = upload_on_page(client, f"{page}/documents", page, b"x" * size)
        assert response.status_code == status, page
        html = response.get_data(as_text=True)
        assert message in html and 'id="add-document"' in html, page
    with factory() as session:
        assert session.execute(select(func.count()).select_from(Interaction)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(Attachment)).scalar_one() == 0
    assert files_on_disk(settings) == [] and audit_actions(factory) == []


def test_any_other_form_over_the_limit_goes_back_with_a_message(app, client, world, factory):
    app.config["MAX_CONTENT_LENGTH"] = 4096
    log_in(client, "staff@beispiel-firma.de", PASSWORD)
    page = f"/contacts/{world['person']}"
    data = {"csrf_token": csrf_token(client.get(page).get_data(as_text=True)), "text": "x" * 8000}
    back = client.post(f"{page}/notes", data=data, headers={"Referer": f"http://localhost{page}?kind=note"})
    assert (back.status_code, back.headers["Location"]) == (303, f"{page}?kind=note")
    assert "Nothing was saved: what you sent is larger than the 4 KB this form takes." in client.get(
        back.headers["Location"]).get_data(as_text=True)
    # Sent from elsewhere (or without a Referer): the plain error, never a redirect off the site.
    assert client.post(f"{page}/notes", data=data, headers={"Referer": "https://evil.example/x"}).status_code == 413
    with factory() as session:
        assert session.execute(select(func.count()).select_from(Interaction)).scalar_one() == 0


def test_readonly_users_see_and_download_but_cannot_file_rename_or_remove(client, world, settings, factory):
    with unit_of_work(factory) as session:
        item = add_document(session, settings, contact_id=world["person"], filename="brief.pdf",
                            content_type="application/pdf", content=PDF, title="Brief", note=None,
                            actor=world["staff"])
        item_id, att_id = item.id, item.attachments[0].id
    readonly = world["tokens"]["readonly"]
    for method, url, kwargs in (
            ("post", f"/api/v1/contacts/{world['person']}/documents",
             {"data": {"file": (io.BytesIO(PDF), "x.pdf")}, "content_type": "multipart/form-data"}),
            ("patch", f"/api/v1/documents/{item_id}", {"json": {"title": "neu"}}),
            ("delete", f"/api/v1/documents/{item_id}", {})):
        assert getattr(client, method)(url, headers=readonly, **kwargs).status_code == 403
    log_in(client, "readonly@beispiel-firma.de", PASSWORD)
    page = f"/contacts/{world['person']}"
    html = client.get(page).get_data(as_text=True)
    assert "Brief" in html and "add-document" not in html
    assert "document_rename" not in client.get(f"/interactions/{item_id}").get_data(as_text=True)
    assert "/rename" not in client.get(f"/interactions/{item_id}").get_data(as_text=True)
    assert client.get(f"/attachments/{att_id}").data == PDF
    token = csrf_token(html)
    assert upload_on_page(client, f"{page}/documents", page, PDF).status_code == 403
    for action in ("rename", "remove"):
        assert client.post(f"/documents/{item_id}/{action}", data={"csrf_token": token, "title": "x",
                                                                  "confirm": "1"}).status_code == 403
    assert audit_actions(factory) == [("document.add", world["staff"])]


def test_renaming_and_removing_on_the_documents_page_asks_first(client, world, settings, factory):
    with unit_of_work(factory) as session:
        item_id = add_document(session, settings, company_id=world["company"], filename="plan.pdf",
                               content_type="application/pdf", content=PDF, title="Plan", note="",
                               actor=world["admin"]).id
    log_in(client, "staff@beispiel-firma.de", PASSWORD)
    page = f"/interactions/{item_id}"
    token = csrf_token(client.get(page).get_data(as_text=True))
    client.post(f"/documents/{item_id}/rename", data={"csrf_token": token, "title": "Hallenplan",
                                                      "filename": "hallenplan.pdf"})
    html = client.get(page).get_data(as_text=True)
    assert "Hallenplan" in html and "hallenplan.pdf" in html
    asked = client.post(f"/documents/{item_id}/remove", data={"csrf_token": token})
    assert asked.status_code == 200 and "Remove for good" in asked.get_data(as_text=True)
    assert client.get(page).status_code == 200  # still there
    done = client.post(f"/documents/{item_id}/remove", data={"csrf_token": token, "confirm": "1"})
    assert done.status_code == 302 and done.headers["Location"].startswith(f"/companies/{world['company']}")
    assert client.get(page).status_code == 404 and files_on_disk(settings) == []
    assert [a for a, _ in audit_actions(factory)] == ["document.add", "document.rename", "document.remove"]


@BOTH
def test_the_export_has_the_persons_files_and_erasure_takes_them_but_leaves_the_companys(
        client, world, settings, factory):
    with unit_of_work(factory) as session:
        mine = add_document(session, settings, contact_id=world["person"], filename="ausweis.pdf",
                            content_type="application/pdf", content=PDF, title="Ausweiskopie", note=None,
                            actor=world["staff"])
        theirs = add_document(session, settings, company_id=world["company"], filename="agb.pdf",
                              content_type="application/pdf", content=b"AGB " * 100, title="AGB", note=None,
                              actor=world["staff"])
        mine_id, mine_att, theirs_id = mine.id, mine.attachments[0].id, theirs.id
    admin = world["tokens"]["admin"]
    export = client.get(f"/api/v1/contacts/{world['person']}/export", headers=admin)
    assert export.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(export.data))
    assert archive.read(f"attachments/{mine_att}-ausweis.pdf") == PDF
    assert not any("agb" in name for name in archive.namelist())  # the company's, not the person's
    before = files_on_disk(settings)
    assert client.post(f"/api/v1/contacts/{world['person']}/erase", headers=admin).status_code == 200
    with factory() as session:
        assert session.get(Interaction, mine_id) is None and session.get(Interaction, theirs_id) is not None
    if settings.documents.storage == "directory":
        assert len(before) == 2 and len(files_on_disk(settings)) == 1


def test_a_failed_transaction_leaves_no_file_and_a_rolled_back_removal_keeps_it(world, factory, settings):
    with pytest.raises(RuntimeError), unit_of_work(factory) as session:
        add_document(session, settings, contact_id=world["person"], filename="a.pdf", content_type="application/pdf",
                     content=PDF, title="A", note=None, actor=None)
        assert len(files_on_disk(settings)) == 1  # written before the commit
        raise RuntimeError("the request failed after the upload")
    assert files_on_disk(settings) == []
    with unit_of_work(factory) as session:
        item_id = add_document(session, settings, contact_id=world["person"], filename="a.pdf",
                               content_type="application/pdf", content=PDF, title="A", note=None, actor=None).id
    with pytest.raises(RuntimeError), unit_of_work(factory) as session:
        remove_document(session, settings, session.get_one(Interaction, item_id), None)
        raise RuntimeError("the removal failed")
    assert len(files_on_disk(settings)) == 1

"""The import pages as staff use them: upload an Outlook CSV, map its columns, read the preview, import,
look at the import and undo it; read-only users, too large files and someone else's upload are refused."""

from __future__ import annotations

import html
import io
import os
import re
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_inbox.db import unit_of_work
from crm_inbox.models import Company, Contact, ContactEmail, ContactPhone, ImportBatch
from crm_inbox.phone import to_e164
from crm_inbox.staff.service import add_staff
from tests.conftest import make_settings
from tests.test_pages import PASSWORD, STAFF, csrf_token, log_in

READER = "lena.lesen@beispiel-firma.de"
OTHER = "otto.andere@beispiel-firma.de"
CLAUS = "claus.juergens@mueller-maschinenbau.de"

# What German Outlook's "Exportieren → CSV (Windows)" writes: cp1252, ";" between the fields, CRLF lines.
OUTLOOK_CSV = (
    "Anrede;Vorname;Nachname;Firma;E-Mail-Adresse;Telefon geschäftlich;Position;Hobby\r\n"
    "Herr;Claus;Jürgens;Müller Maschinenbau GmbH;claus.juergens@mueller-maschinenbau.de;0221 9876543;"
    "Einkaufsleiter;Segeln\r\n"
    "Frau;Anna;Schmidt;Bäckerei Schmidt;anna@baeckerei-schmidt.de;0221 123456;Inhaberin;\r\n"
    "Herr;Jörg;Weiß;Weiß & Söhne KG;joerg.weiss@weiss-soehne.de;089 555123;;Fußball\r\n"
    "Frau;Petra;Köhler;;petra.koehler@web.de;;;\r\n"
    "Herr;;;;keine-adresse;;;\r\n"
    "Frau;Anna;Schmidt;Bäckerei Schmidt;anna@baeckerei-schmidt.de;;;\r\n"
).encode("cp1252")


@pytest.fixture
def people(factory) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        company = Company(name="Müller Maschinenbau GmbH", tags=[], fields={})
        # as an older system spelt him: the file's "Jürgens" renames him, and the preview shows it
        claus = Contact(name="Claus Juergens", company=company, tags=[], fields={"Position": "Einkauf"})
        claus.emails = [ContactEmail(email=CLAUS)]
        claus.phones = [ContactPhone(raw="0171 2345678", e164=to_e164("0171 2345678"))]
        session.add(claus)
        session.flush()
        return {"claus": claus.id, "company": company.id}


def upload(client: Any, data: bytes, filename: str = "Kontakte.CSV") -> Any:
    token = csrf_token(client.get("/imports").get_data(as_text=True))
    return client.post("/imports", data={"csrf_token": token, "file": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data")


def upload_token(response: Any) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)
    match = re.search(r"upload=([\w-]+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


def selected(page: str) -> dict[str, str]:
    """Column header → the target preselected for it on the mapping page."""
    out = {}
    for header, options in re.findall(r'<label for="col\d+">([^<]*)</label>.*?<select[^>]*>(.*?)</select>', page,
                                      re.S):
        choice = re.search(r'<option value="([^"]*)" selected>', options)
        out[header] = choice.group(1) if choice else ""
    return out


def counts(factory) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        return (session.execute(select(func.count()).select_from(Contact)).scalar_one(),
                session.execute(select(func.count()).select_from(Company)).scalar_one())


def claus_now(factory, ident: int) -> tuple[str | None, list[str]]:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        claus = session.get_one(Contact, ident)
        return claus.fields.get("Position"), sorted(p.e164 or p.raw for p in claus.phones)


def test_upload_map_preview_import_and_undo(client, factory, people, monkeypatch):
    log_in(client)
    assert 'href="/imports"' in client.get("/contacts").get_data(as_text=True)  # in the navigation
    before = counts(factory)
    claus_before = claus_now(factory, people["claus"])
    token = upload_token(upload(client, OUTLOOK_CSV))

    mapping_page = client.get(f"/imports/mapping?upload={token}").get_data(as_text=True)
    assert "Kontakte.CSV" in mapping_page and "cp1252" in mapping_page  # the file as read
    chosen = selected(mapping_page)
    assert chosen["Vorname"] == "first_name" and chosen["Nachname"] == "last_name" and chosen["Firma"] == "company"
    assert chosen["E-Mail-Adresse"] == "email" and chosen["Hobby"] == ""
    assert "Bäckerei Schmidt" in mapping_page  # sample values, decoded
    form = {f"col{i}": target for i, target in enumerate(chosen.values())}
    form |= {"col7": "field:Hobby", "upload": token, "save_as": "Outlook (Test)",
             "csrf_token": csrf_token(mapping_page)}
    response = client.post("/imports/mapping", data=form)
    assert response.status_code == 302 and "/imports/preview" in response.headers["Location"]

    preview = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Nothing has been written yet" in preview
    assert f'href="/contacts/{people["claus"]}"' in preview  # the update names the contact it changes …
    claus_row = re.search(r'<tr class="action-update">.*?</tr>', preview, re.S)
    assert claus_row and "Phone" in claus_row.group(0)  # … and which fields, old → new, added numbers with "+"
    assert "Full name: <del>Claus Juergens</del> → <ins>Claus Jürgens</ins>" in claus_row.group(0)
    assert "Salutation: <del>—</del> → <ins>Mr</ins>" in claus_row.group(0)
    assert "Phone: <ins>+ 0221 9876543</ins>" in claus_row.group(0)
    assert preview.count('<tr class="action-new">') == 3
    assert re.search(r'<tr class="action-error">\s*<td class="number">6</td>', preview)  # the row as Excel counts
    assert "duplicate of row 3 (same e-mail address)" in preview  # Anna twice in the file
    assert counts(factory) == before and claus_now(factory, people["claus"]) == claus_before  # nothing written
    monkeypatch.setattr("web.pages.imports.PREVIEW_ROWS", 2)
    new_only = client.get(f"/imports/preview?upload={token}&show=new").get_data(as_text=True)
    assert new_only.count('<tr class="action-new">') == 2 and "1 more row is not shown here." in new_only
    monkeypatch.undo()
    errors_only = client.get(f"/imports/preview?upload={token}&show=error").get_data(as_text=True)
    assert '<tr class="action-error">' in errors_only and '<tr class="action-new">' not in errors_only

    mapping = re.search(r'name="mapping" value="([^"]*)"', preview)
    assert mapping
    response = client.post("/imports/confirm", data={"upload": token, "mapping": html.unescape(mapping.group(1)),
                                                     "csrf_token": csrf_token(preview)})
    assert response.status_code == 302 and re.fullmatch(r"/imports/\d+", response.headers["Location"])
    batch_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "<strong>3</strong> new contacts" in batch_page and "<strong>1</strong> updated contact<" in batch_page
    assert "Kontakte.CSV" in batch_page
    assert "Free field: Hobby" in batch_page  # the mapping used
    # the rows left out: which and why (the bad address itself is not kept)
    assert re.search(r'<tr class="action-error">\s*<td class="number">6</td>\s*<td><span class="error-text">error: '
                     r'an e-mail address is not valid</span>', batch_page)
    assert re.search(r'<td class="number">7</td>\s*<td>duplicate of row 3 \(same e-mail address\)', batch_page)
    assert "keine-adresse" not in batch_page
    assert counts(factory)[0] == before[0] + 3
    assert claus_now(factory, people["claus"]) != claus_before
    # the upload is gone with the import: a second click imports nothing twice
    again = client.post("/imports/confirm", data={"upload": token, "mapping": "{}", "csrf_token": csrf_token(preview)})
    assert again.status_code == 302 and again.headers["Location"] == "/imports"
    second = upload_token(upload(client, OUTLOOK_CSV))
    offered = re.search(r'<option value="(\d+)" >Outlook \(Test\)</option>',
                        client.get(f"/imports/mapping?upload={second}").get_data(as_text=True))
    assert offered  # the saved mapping is offered, and applying it brings back the free field
    assert selected(client.get(f"/imports/mapping?upload={second}&saved={offered.group(1)}")
                    .get_data(as_text=True))["Hobby"] == "field:Hobby"

    batch_id = int(response.headers["Location"].rsplit("/", 1)[1])
    listing = client.get("/imports").get_data(as_text=True)
    assert f'href="/imports/{batch_id}/undo"' in listing
    confirm = client.get(f"/imports/{batch_id}/undo").get_data(as_text=True)
    assert counts(factory)[0] == before[0] + 3  # asking is not undoing
    undone = client.post(f"/imports/{batch_id}/undo", data={"csrf_token": csrf_token(confirm)}, follow_redirects=True)
    # three people and the two companies new to the CRM are removed; Claus and his company get their old values
    assert re.search(r"Import undone. Removed: 5; given back their values from before: \d+; kept, as they were "
                     r"changed or used since: 0; deleted since by other means: 0\.", undone.get_data(as_text=True))
    assert counts(factory) == before and claus_now(factory, people["claus"]) == claus_before
    with unit_of_work(factory) as session:
        assert session.get_one(ImportBatch, batch_id).state.value == "undone"
    twice = client.post(f"/imports/{batch_id}/undo", data={"csrf_token": csrf_token(confirm)}, follow_redirects=True)
    assert "undone already" in twice.get_data(as_text=True)


def colleague(factory, email: str, role: str) -> None:  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        add_staff(session, email, email.split("@")[0], role, password=PASSWORD)


def test_read_only_users_see_nothing_of_importing(client, factory):
    colleague(factory, READER, "readonly")
    log_in(client, READER)
    assert "/imports" not in client.get("/contacts").get_data(as_text=True)  # no link, no button
    token = csrf_token(client.get("/contacts").get_data(as_text=True))
    for url in ("/imports", "/imports/mapping?upload=x", "/imports/preview?upload=x", "/imports/1",
                "/imports/1/undo"):
        assert client.get(url).status_code == 403, url
    for url in ("/imports", "/imports/mapping", "/imports/confirm", "/imports/discard", "/imports/1/undo"):
        assert client.post(url, data={"csrf_token": token}).status_code == 403, url


def test_a_file_over_the_limit_gets_a_clear_message(factory, database_url, tmp_path, people):
    from web import create_app

    app = create_app(make_settings(database_url, tmp_path / "small", imports={"max_upload_bytes": 4096}), factory)
    client = app.test_client()
    log_in(client)
    for size in (5000, 200_000):  # over the import's limit; over it and the form's allowance (Werkzeug's 413)
        response = upload(client, b"Vorname;Nachname\r\n" + b"x" * size)
        assert response.status_code == 413
        assert "larger than the 4 KB an import may have" in response.get_data(as_text=True)
    response = upload(client, b"\x00\x01 not a table", "bild.xlsx")
    assert response.status_code == 400 and "cannot be imported" in response.get_data(as_text=True)
    assert counts(factory)[0] == 1


def test_an_upload_is_the_uploaders_alone(app, factory, people):
    colleague(factory, OTHER, "staff")
    first, second = app.test_client(), app.test_client()
    log_in(first)
    token = upload_token(upload(first, OUTLOOK_CSV))
    log_in(second, OTHER)
    page = second.get(f"/imports/mapping?upload={token}")
    assert page.status_code == 302 and page.headers["Location"] == "/imports"
    csrf = csrf_token(second.get("/imports").get_data(as_text=True))
    assert second.get(f"/imports/preview?upload={token}").headers["Location"] == "/imports"
    response = second.post("/imports/mapping", data={"upload": token, "col1": "first_name", "csrf_token": csrf})
    assert response.headers["Location"] == "/imports"
    response = second.post("/imports/confirm", data={"upload": token, "mapping": "null", "csrf_token": csrf})
    assert response.headers["Location"] == "/imports"
    assert counts(factory)[0] == 1
    assert "Vorname" in first.get(f"/imports/mapping?upload={token}").get_data(as_text=True)  # still the owner's


def test_uploads_are_kept_private_and_stale_ones_removed(settings):
    from web.pages import import_uploads

    old = import_uploads.keep(settings, 1, "alt.csv", b"Vorname\r\nAnna\r\n")
    assert old.data_path.stat().st_mode & 0o777 == 0o600 and old.meta_path.stat().st_mode & 0o777 == 0o600
    assert import_uploads.find(settings, old.token, 2) is None  # another user's token is nobody's
    assert import_uploads.find(settings, "../" + old.token[3:], 1) is None
    day_ago = time.time() - import_uploads.STALE_SECONDS - 60
    for path in (old.data_path, old.meta_path):
        os.utime(path, (day_ago, day_ago))
    new = import_uploads.keep(settings, 1, "neu.csv", b"Vorname\r\nBen\r\n")
    assert import_uploads.find(settings, old.token, 1) is None and not old.data_path.exists()
    assert import_uploads.find(settings, new.token, 1) is not None


def test_filters_show_the_kept_preview_and_a_changed_mapping_previews_again(client, factory, settings, people):
    log_in(client)
    token = upload_token(upload(client, OUTLOOK_CSV))
    mapping_page = client.get(f"/imports/mapping?upload={token}").get_data(as_text=True)
    form = {f"col{i}": target for i, target in enumerate(selected(mapping_page).values())}
    form |= {"upload": token, "csrf_token": csrf_token(mapping_page)}
    preview = client.get(client.post("/imports/mapping", data=form).headers["Location"]).get_data(as_text=True)
    assert "error: “keine-adresse” is not an e-mail address" in preview  # translated by its reason
    assert preview.count('<tr class="action-new">') == 3
    kept = settings.instance_path / "imports" / f"{token}.preview.json"
    assert kept.stat().st_mode & 0o777 == 0o600
    with unit_of_work(factory) as session:  # two companies of Anna's company's name appear after the preview
        twins = [Company(name="Bäckerei Schmidt", tags=[], fields={}),
                 Company(name="Baeckerei Schmidt GmbH", tags=[], fields={})]
        session.add_all(twins)
        session.flush()
        twin_ids = sorted(t.id for t in twins)
    new_only = client.get(f"/imports/preview?upload={token}&show=new").get_data(as_text=True)
    assert new_only.count('<tr class="action-new">') == 3  # the kept preview, not a new dry run
    assert "Anna Schmidt, Bäckerei Schmidt" in new_only
    form["col7"] = "field:Hobby"  # another mapping: previewed again, now with the twins
    again = client.get(client.post("/imports/mapping", data=form).headers["Location"]).get_data(as_text=True)
    assert again.count('<tr class="action-new">') == 2
    anna = re.search(r'<tr class="action-duplicate">\s*<td class="number">3</td>.*?</tr>', again, re.S)
    assert anna, again
    assert all(f'<a href="/companies/{i}">company {i}</a> (same name)' in anna.group(0) for i in twin_ids)
    assert "duplicate of row 3 (same e-mail address)" not in again  # row 3 was left out: row 7 names the twins too

"""Staff users, API tokens, exports (CSV and a person's data), retries of failed mail and tickets staff open
each leave exactly one audit entry naming who did it, whichever way they come in (page, API, command line or
a new caller of the service), because the service writes it, not the view. The command line has no logged-in
user: its entries name nobody (staff_id None)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.cli import main
from crm_inbox.config import Settings
from crm_inbox.contacts.csv_export import export_contacts_csv
from crm_inbox.db import unit_of_work
from crm_inbox.models import ApiToken, AuditEntry, Contact, ContactEmail, InboundState, StaffUser
from crm_inbox.pipeline.runner import process, retry_now
from crm_inbox.privacy.service import write_export
from crm_inbox.staff.service import add_staff, change_staff, create_token, find_staff, revoke_token
from crm_inbox.tickets.service import open_for_contact
from tests.test_failed_step import nesting_bomb, stored
from tests.test_pages import csrf_token, log_in

API = "/api/v1"
ADMIN = "chefin@beispiel-firma.de"
PASSWORD = "richtig-geheim-42"

Entry = tuple[str, int | None, int | None, dict[str, Any]]


def entries(factory: sessionmaker[Session], object_type: str) -> list[Entry]:
    with factory() as session:
        return [(e.action, e.object_id, e.staff_id, e.details) for e in session.execute(
            select(AuditEntry).where(AuditEntry.object_type == object_type).order_by(AuditEntry.id)).scalars()]


def post(client, url: str, data: dict[str, str] | None = None, form_page: str = "/me"):  # type: ignore[no-untyped-def]
    token = csrf_token(client.get(form_page).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **(data or {})})


@pytest.fixture
def admin(factory: sessionmaker[Session]) -> int:
    """An admin who logs in to the pages (set up without an audit entry, as test fixtures are)."""
    with unit_of_work(factory) as session:
        return add_staff(session, ADMIN, "Clara Chefin", "admin", password=PASSWORD).id


@pytest.fixture
def cli_config(settings: Settings, tmp_path: Path) -> Path:
    path = tmp_path / "crm.toml"
    path.write_text(f"[service]\ninstance_dir = '{settings.service.instance_dir}'\n"
                    f"[database]\nurl = '{settings.database.url}'\n")
    return path


@pytest.fixture
def person(factory: sessionmaker[Session]) -> int:
    with unit_of_work(factory) as session:
        contact = Contact(name="Petra Privat", tags=[])
        contact.emails = [ContactEmail(email="petra@privat.example")]
        session.add(contact)
        session.flush()
        return contact.id


def anna(factory: sessionmaker[Session]) -> int:
    """The API token's user (conftest's ``auth``)."""
    with factory() as session:
        user = find_staff(session, "anna.schmidt@beispiel-firma.de")
        assert user is not None
        return user.id


def test_setting_up_staff_outside_a_staff_action_is_not_audited(factory, admin):
    assert entries(factory, "staff_user") == []


def test_staff_users_made_and_changed_on_the_page_by_the_service_and_on_the_command_line(
        client, factory, admin, cli_config):
    log_in(client, ADMIN)
    answer = post(client, "/admin/users", {"name": "Lena Vogel", "emails": "Lena.Vogel@beispiel-firma.de",
                                           "role": "readonly", "password": "lang-genug-1"}, "/admin/users")
    assert answer.status_code == 302
    with factory() as session:
        lena = find_staff(session, "lena.vogel@beispiel-firma.de")
        assert lena is not None
        lena_id = lena.id
    assert entries(factory, "staff_user") == [
        ("create", lena_id, admin, {"emails": ["Lena.Vogel@beispiel-firma.de"], "role": "readonly"})]

    answer = post(client, f"/admin/users/{lena_id}", {"name": "Lena Vogel", "emails": "lena.vogel@beispiel-firma.de",
                                                      "role": "staff", "extension": "", "active": "on"},
                  "/admin/users")
    assert answer.status_code == 302
    assert entries(factory, "staff_user")[1:] == [("update", lena_id, admin, {"role": "staff"})]

    with unit_of_work(factory) as session:
        made = add_staff(session, "max@beispiel-firma.de", "Max", actor=admin)
        change_staff(session, made, extension="42", actor=admin)
        change_staff(session, made, extension="42", actor=admin)  # no change: no entry
        made_id = made.id
    assert entries(factory, "staff_user")[2:] == [
        ("create", made_id, admin, {"emails": ["max@beispiel-firma.de"], "role": "staff"}),
        ("update", made_id, admin, {"extension": "42"})]

    assert main(["--config", str(cli_config), "user", "add", "cli@beispiel-firma.de", "--name", "Cli"]) == 0
    with factory() as session:
        cli_user = find_staff(session, "cli@beispiel-firma.de")
        assert cli_user is not None
        cli_id = cli_user.id
    assert entries(factory, "staff_user")[4:] == [
        ("create", cli_id, None, {"emails": ["cli@beispiel-firma.de"], "role": "staff"})]


def test_api_tokens_made_and_revoked_on_the_page_by_the_service_and_on_the_command_line(
        client, factory, admin, cli_config, capsys):
    log_in(client, ADMIN)
    assert post(client, "/me/tokens", {"name": "Skript"}).status_code == 200
    with factory() as session:
        token_id = session.execute(select(ApiToken.id).where(ApiToken.staff_id == admin)).scalar_one()
    assert entries(factory, "api_token") == [("create", None, admin, {"name": "Skript"})]
    assert post(client, f"/me/tokens/{token_id}/revoke").status_code == 302
    assert post(client, f"/me/tokens/{token_id}/revoke").status_code == 302  # already revoked: no second entry
    assert entries(factory, "api_token")[1:] == [("revoke", token_id, admin, {})]

    with unit_of_work(factory) as session:
        user = session.get_one(StaffUser, admin)
        create_token(session, user, "Export", actor=admin)
        new_id = session.execute(select(ApiToken.id).where(ApiToken.name == "Export")).scalar_one()
        assert revoke_token(session, user, new_id, actor=admin)
    assert entries(factory, "api_token")[2:] == [("create", None, admin, {"name": "Export"}),
                                                 ("revoke", new_id, admin, {})]

    assert main(["--config", str(cli_config), "token", "create", ADMIN, "--name", "Nacht"]) == 0
    assert capsys.readouterr().out.strip().startswith("crm_")
    assert entries(factory, "api_token")[4:] == [("create", None, None, {"name": "Nacht"})]


def test_a_csv_export_on_the_page_over_the_api_and_by_the_service(client, auth, factory, admin, person):
    log_in(client, ADMIN)
    assert client.get("/contacts.csv?q=petra").status_code == 200
    assert client.get(f"{API}/contacts?format=csv&limit=10", headers=auth).status_code == 200
    with unit_of_work(factory) as session:
        text = export_contacts_csv(session, [session.get_one(Contact, person)], admin, "Skript")
    assert "Petra Privat" in text
    assert entries(factory, "contact") == [
        ("export", None, admin, {"format": "csv", "query": "petra", "count": 1}),
        ("export", None, anna(factory), {"format": "csv", "query": {"format": "csv", "limit": "10"}, "count": 1}),
        ("export", None, admin, {"format": "csv", "query": "Skript", "count": 1})]


def test_a_persons_data_exported_on_the_page_over_the_api_by_the_service_and_on_the_command_line(
        client, auth, factory, admin, person, cli_config, tmp_path):
    log_in(client, ADMIN)
    assert client.get(f"/contacts/{person}/export").status_code == 200
    assert client.get(f"{API}/contacts/{person}/export", headers=auth).status_code == 200
    with unit_of_work(factory) as session:
        archive = io.BytesIO()
        write_export(session, person, archive, admin)
    assert "contact.json" in zipfile.ZipFile(archive).namelist()
    target = tmp_path / "petra.zip"
    assert main(["--config", str(cli_config), "privacy", "export", str(person), "-o", str(target)]) == 0
    assert target.exists()
    found = [(action, object_id, staff_id, details.get("by"), details["interactions"])
             for action, object_id, staff_id, details in entries(factory, "contact")]
    assert found == [("export", person, admin, None, 0), ("export", person, anna(factory), None, 0),
                     ("export", person, admin, None, 0), ("export", person, None, "cli", 0)]


def test_a_failed_export_on_the_command_line_leaves_no_entry(factory, person, cli_config, tmp_path):
    target = tmp_path / "no-such-folder" / "petra.zip"
    assert main(["--config", str(cli_config), "privacy", "export", str(person), "-o", str(target)]) == 2
    assert entries(factory, "contact") == []


def test_a_retry_on_the_page_over_the_api_by_the_service_and_on_the_command_line(
        client, auth, factory, settings, admin, cli_config, capsys):
    # A MIME bomb fails in parsing every time, so each retry ends failed again and can be retried once more.
    inbound_id = stored(factory, nesting_bomb())
    assert process(factory, settings, inbound_id).state == InboundState.FAILED
    log_in(client, ADMIN)
    assert post(client, f"/triage/inbound/{inbound_id}/retry", form_page="/triage").status_code == 302
    answer = client.post(f"{API}/inbound/{inbound_id}/retry", headers=auth)
    assert answer.status_code == 200 and answer.json["state"] == "failed"
    [outcome] = retry_now(factory, settings, [inbound_id], admin)
    assert outcome.state == InboundState.FAILED
    assert main(["--config", str(cli_config), "inbox", "retry", str(inbound_id)]) == 1  # still failed
    assert capsys.readouterr().out.split("\t")[:2] == [str(inbound_id), "failed"]
    assert retry_now(factory, settings, [inbound_id + 1000], admin) == []  # not a failed message: no entry
    failed = {"state": "failed"}
    assert entries(factory, "inbound_message") == [
        ("retry", inbound_id, admin, failed), ("retry", inbound_id, anna(factory), failed),
        ("retry", inbound_id, admin, failed), ("retry", inbound_id, None, failed)]


def test_a_ticket_opened_on_the_page_and_by_the_service(client, factory, settings, admin, person):
    log_in(client, ADMIN)
    answer = post(client, f"/contacts/{person}/tickets", {"subject": "Rückruf wegen Rechnung"},
                  f"/contacts/{person}")
    assert answer.status_code == 302
    with unit_of_work(factory) as session:
        ticket = open_for_contact(session, settings, session.get_one(Contact, person), "Angebot", admin)
        assert ticket.assignee_id == admin
        second = ticket.id
    created = [e for e in entries(factory, "ticket") if e[0] == "create"]
    assert [(e[2], e[3]) for e in created] == [
        (admin, {"contact_id": person, "subject": "Rückruf wegen Rechnung"}),
        (admin, {"contact_id": person, "subject": "Angebot"})]
    assert created[1][1] == second

"""Staff teams: reports group staff work by team (works council), so an admin sets a person's team where staff
are managed; the change is audited like every other staff change."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crm_inbox.db import unit_of_work
from crm_inbox.models import AuditEntry, StaffUser
from crm_inbox.staff.service import add_staff, change_staff, find_staff
from tests.test_admin_pages import _post
from tests.test_pages import PASSWORD, STAFF, csrf_token, log_in

ADMIN = "anna.schmidt@beispiel-firma.de"


@pytest.fixture
def people(factory):  # type: ignore[no-untyped-def]
    with unit_of_work(factory) as session:
        admin = add_staff(session, ADMIN, "Anna Schmidt", "admin", password=PASSWORD, team="Vertrieb")
        staff = add_staff(session, STAFF, "Jonas Becker", "staff", password=PASSWORD)
        return admin.id, staff.id


def _entries(session, user_id: int) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    return list(session.execute(select(AuditEntry).where(AuditEntry.object_type == "staff_user",
                                                         AuditEntry.object_id == user_id)
                                .order_by(AuditEntry.id)).scalars())


def test_an_admin_sets_a_team_on_the_staff_page_and_it_is_audited(client, factory, people):
    admin_id, staff_id = people
    log_in(client, ADMIN)
    page = client.get(f"/admin/users/{staff_id}").get_data(as_text=True)
    assert 'name="team"' in page and '<option value="Vertrieb">' in page  # existing teams are offered
    answer = _post(client, f"/admin/users/{staff_id}", {"name": "Jonas Becker", "emails": STAFF, "role": "staff",
                                                         "active": "on", "team": "  Innendienst\r\n"})
    assert answer.status_code == 302
    with unit_of_work(factory) as session:
        assert session.get_one(StaffUser, staff_id).team == "Innendienst"
        entry = _entries(session, staff_id)[-1]
        assert entry.action == "update" and entry.staff_id == admin_id
        assert entry.details == {"team": "Innendienst"}
    listing = client.get("/admin/users").get_data(as_text=True)
    assert "<td>Innendienst</td>" in listing and "<td>Vertrieb</td>" in listing

    # Saving the form unchanged writes no entry; emptying the field takes the person out of the team.
    _post(client, f"/admin/users/{staff_id}", {"name": "Jonas Becker", "emails": STAFF, "role": "staff",
                                                "active": "on", "team": "Innendienst"})
    _post(client, f"/admin/users/{staff_id}", {"name": "Jonas Becker", "emails": STAFF, "role": "staff",
                                                "active": "on", "team": ""})
    with unit_of_work(factory) as session:
        assert session.get_one(StaffUser, staff_id).team is None
        assert [e.details for e in _entries(session, staff_id)] == [{"team": "Innendienst"}, {"team": None}]


def test_a_new_user_gets_a_team_when_added(client, factory, people):
    log_in(client, ADMIN)
    answer = _post(client, "/admin/users", {"name": "Lena Vogel", "emails": "lena.vogel@beispiel-firma.de",
                                            "role": "staff", "team": "Vertrieb", "password": "lang-genug-1"})
    assert answer.status_code == 302
    with unit_of_work(factory) as session:
        lena = find_staff(session, "lena.vogel@beispiel-firma.de")
        assert lena is not None and lena.team == "Vertrieb"
        (entry,) = _entries(session, lena.id)
        assert entry.action == "create" and entry.details["team"] == "Vertrieb"


def test_a_team_name_is_one_line_of_at_most_100_characters(factory, people):
    _, staff_id = people
    with unit_of_work(factory) as session:
        user = session.get_one(StaffUser, staff_id)
        changed = change_staff(session, user, team="Service\nBcc: x@example.org" + "x" * 200, actor=None)
        assert "\n" not in (user.team or "") and len(user.team or "") == 100
        assert changed == {"team": user.team}
        assert change_staff(session, user, team=None, actor=None) == {}  # None leaves the team as it is
        assert user.team is not None


def test_only_admins_change_teams(client, app, factory, people):
    _, staff_id = people
    log_in(client)  # Jonas, staff
    token = csrf_token(client.get("/dashboard").get_data(as_text=True))
    answer = client.post(f"/admin/users/{staff_id}", data={"csrf_token": token, "name": "Jonas Becker",
                                                           "emails": STAFF, "active": "on", "team": "Chefetage"})
    assert answer.status_code == 403
    with unit_of_work(factory) as session:
        assert session.get_one(StaffUser, staff_id).team is None


RESERVED = ("other_teams", "All", " NONE ")  # codes the reports use: the pooled teams, the filter's choices


def test_a_team_may_not_be_named_like_a_code_of_the_reports(client, factory, people, tmp_path, settings, capsys):
    _, staff_id = people
    log_in(client, ADMIN)
    for team in RESERVED:
        answer = _post(client, f"/admin/users/{staff_id}", {"name": "Jonas Becker", "emails": STAFF,
                                                             "role": "staff", "active": "on", "team": team})
        assert answer.status_code == 400, team
        assert "reserved by the reports" in answer.get_data(as_text=True)
    answer = _post(client, "/admin/users", {"name": "Lena Vogel", "emails": "lena.vogel@beispiel-firma.de",
                                            "role": "staff", "team": "Other_Teams", "password": "lang-genug-1"})
    assert answer.status_code == 400 and "reserved by the reports" in answer.get_data(as_text=True)
    with unit_of_work(factory) as session:
        assert session.get_one(StaffUser, staff_id).team is None
        assert find_staff(session, "lena.vogel@beispiel-firma.de") is None
        assert change_staff(session, session.get_one(StaffUser, staff_id), team="Allgemein", actor=None)  # a word

    config = tmp_path / "crm.toml"
    config.write_text(f"[service]\ninstance_dir = '{settings.service.instance_dir}'\n"
                      f"[database]\nurl = '{settings.database.url}'\n")
    from crm_inbox.cli import main

    assert main(["--config", str(config), "user", "add", "max@beispiel-firma.de", "--name", "Max",
                 "--team", "other_teams"]) != 0
    assert "reserved by the reports" in capsys.readouterr().err
    with unit_of_work(factory) as session:
        assert find_staff(session, "max@beispiel-firma.de") is None

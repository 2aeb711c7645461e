"""Every change to contacts and companies leaves exactly one audit entry naming who made it and what changed,
whichever way it comes in (API, the pages' forms, triage, or a new caller of the service), because the
service writes it, not the view."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.contacts.inputs import CompanyChanges, ContactChanges
from crm_inbox.contacts.lookup import contacts_named_by
from crm_inbox.contacts.service import create_company, create_contact, update_company, update_contact
from crm_inbox.db import unit_of_work
from crm_inbox.errors import NotFound, ValidationError
from crm_inbox.models import AuditEntry, Company, Contact, ContactEmail
from crm_inbox.privacy.service import find_contact
from crm_inbox.staff.service import add_staff, find_staff
from tests.mailfactory import make_mail
from tests.test_pages import csrf_token, log_in
from tests.test_triage_api import deliver

API = "/api/v1"
EDITOR = "jonas.becker@beispiel-firma.de"  # the pages' user (tests.test_pages.log_in's default)
PASSWORD = "richtig-geheim-42"

Entry = tuple[str, str, int | None, int | None, dict[str, Any]]


def entries(factory: sessionmaker[Session]) -> list[Entry]:
    with factory() as session:
        return [(e.action, e.object_type, e.object_id, e.staff_id, e.details)
                for e in session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()]


def staff_id(factory: sessionmaker[Session], email: str) -> int:
    with factory() as session:
        user = find_staff(session, email)
        assert user is not None
        return user.id


@pytest.fixture
def editor(factory: sessionmaker[Session]) -> int:
    with unit_of_work(factory) as session:
        return add_staff(session, EDITOR, "Jonas Becker", "staff", password=PASSWORD).id


def test_api_changes_are_audited_once_each_as_the_tokens_user(client, auth, factory):
    anna = staff_id(factory, "anna.schmidt@beispiel-firma.de")
    firm = client.post(f"{API}/companies", json={"name": "Kunde GmbH", "domains": ["kunde.example"]}, headers=auth)
    person = client.post(f"{API}/contacts", json={"name": "Karl Kunde", "emails": ["KARL@kunde.example"],
                                                  "company_id": firm.json["id"]}, headers=auth)
    assert (firm.status_code, person.status_code) == (201, 201)
    firm_id, person_id = firm.json["id"], person.json["id"]
    assert client.patch(f"{API}/contacts/{person_id}", json={"role": "customer", "tags": ["Messe"]},
                        headers=auth).status_code == 200
    assert client.patch(f"{API}/companies/{firm_id}", json={"industry": "Maschinenbau"},
                        headers=auth).status_code == 200
    # Refused and empty changes change nothing, so they leave nothing in the log.
    assert client.patch(f"{API}/contacts/{person_id}", json={"role": "boss"}, headers=auth).status_code == 400
    assert client.patch(f"{API}/contacts/{person_id}", json={}, headers=auth).status_code == 200
    assert client.post(f"{API}/companies", json={"industry": "ohne Namen"}, headers=auth).status_code == 400

    assert entries(factory) == [
        ("create", "company", firm_id, anna, {"name": "Kunde GmbH", "domains": ["kunde.example"]}),
        ("create", "contact", person_id, anna, {"name": "Karl Kunde", "company_id": firm_id,
                                               "emails": ["karl@kunde.example"]}),
        ("update", "contact", person_id, anna, {"role": "customer", "tags": ["Messe"]}),
        ("update", "company", firm_id, anna, {"industry": "Maschinenbau"}),
    ]


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"name": 5}, "name", "must be a string"),
    ({"emails": "karl@kunde.example"}, "emails", "must be a list of e-mail addresses"),
    ({"emails": ["kein-at"]}, "emails", "'kein-at' is not an e-mail address"),
    ({"role": "boss"}, "role", "must be one of"),
    ({"owner_id": "1"}, "owner_id", "must be the id of an existing record"),
    ({"owner_id": 999_999}, "owner_id", "no such staff user"),
    ({"fields": {"a": [1]}}, "fields.a", "must be a string, number, boolean or null"),
])
def test_the_api_names_the_bad_field_whether_its_shape_or_its_value_is_wrong(client, auth, factory, body, field,
                                                                             message):
    response = client.post(f"{API}/contacts", json=body, headers=auth)
    assert response.status_code == 400
    assert response.json["error"]["field"] == field and message in response.json["error"]["message"]
    assert entries(factory) == []


def test_page_edits_are_audited_once_each_as_the_logged_in_user(client, factory, editor):
    with unit_of_work(factory) as session:
        person = Contact(name="Claus Jürgens", tags=[], fields={})
        person.emails.append(ContactEmail(email="claus@mueller.example"))
        firm = Company(name="Weber Logistik", tags=[], fields={})
        session.add_all([person, firm])
        session.flush()
        person_id, firm_id = person.id, firm.id
    log_in(client)
    page = client.get(f"/contacts/{person_id}").get_data(as_text=True)
    # A company typed by a new name is made: two changes, two entries, both by the editor.
    assert client.post(f"/contacts/{person_id}/edit", data={
        "csrf_token": csrf_token(page), "name": "Claus Jürgens", "role": "customer", "tags": "Messe",
        "emails": "claus@mueller.example", "phones": "", "owner_id": "", "company": "Müller Maschinenbau",
        "fields": "Position: Einkauf"}).status_code == 302
    with factory() as session:
        new_firm = session.execute(select(Company.id).where(Company.name == "Müller Maschinenbau")).scalar_one()
    assert client.post(f"/companies/{firm_id}/edit", data={
        "csrf_token": csrf_token(page), "name": "Weber Logistik GmbH", "domains": "weber.example"}
    ).status_code == 302
    # A refused form and a digit that is no number change nothing and are a message, not a server error.
    assert client.post(f"/contacts/{person_id}/edit", data={
        "csrf_token": csrf_token(page), "emails": "kein-at", "owner_id": "²"}).status_code == 302

    assert entries(factory) == [
        ("create", "company", new_firm, editor, {"name": "Müller Maschinenbau"}),
        ("update", "contact", person_id, editor, {
            "name": "Claus Jürgens", "company_id": new_firm, "role": "customer", "category": None,
            "tags": ["Messe"], "fields": {"Position": "Einkauf"}, "owner_id": None,
            "emails": ["claus@mueller.example"], "phones": []}),
        ("update", "company", firm_id, editor, {
            "name": "Weber Logistik GmbH", "industry": None, "size": None, "customer_type": None, "category": None,
            "tags": [], "fields": {}, "domains": ["weber.example"], "phones": []}),
    ]


def test_a_contact_made_in_triage_is_audited_once_as_the_logged_in_user(client, factory, settings, editor):
    interaction = deliver(factory, settings, make_mail(sender="Hans Neumann <h.neumann@messebau.example>"))
    before = len(entries(factory))  # the mail made a lead; the machine's work is not staff's to audit
    log_in(client)
    page = client.get("/triage").get_data(as_text=True)
    assert client.post(f"/triage/{interaction}/new-contact", data={
        "csrf_token": csrf_token(page), "name": "Hans Neumann", "email": "hans@messebau.example"}).status_code == 302
    with factory() as session:
        made = session.execute(select(Contact.id).where(Contact.origin == "triage")).scalar_one()
    created, assigned = entries(factory)[before:]
    assert created == ("create", "contact", made, editor, {
        "name": "Hans Neumann", "role": "lead", "emails": ["hans@messebau.example"],
        "origin_detail": f"made from interaction {interaction}"})
    assert assigned[:4] == ("assign", "interaction", interaction, editor)
    assert assigned[4]["contact_ids"] == [made]


def test_a_new_caller_of_the_service_gets_the_audit_entry_too(factory, editor):
    """What a script or a future entry point would do: call the service; the log does not depend on a view."""
    with unit_of_work(factory) as session:
        firm = create_company(session, CompanyChanges(name="Direkt AG", phones=("030 1234567",)), "DE", editor)
        person = create_contact(session, ContactChanges(name="Dora Direkt", company_id=firm.id), "DE", editor)
        assert update_contact(session, person, ContactChanges(), "DE", editor) == {}  # nothing given: no change
        update_contact(session, person, ContactChanges(category="A", name=None), "DE", None)  # by the system
        update_company(session, firm, CompanyChanges(tags=("b", "a", "a")), "DE", editor)
        ids = firm.id, person.id
    with pytest.raises(ValidationError) as refused, unit_of_work(factory) as session:
        create_company(session, CompanyChanges(industry="ohne Namen"), "DE", editor)
    assert refused.value.field == "name"
    assert entries(factory) == [
        ("create", "company", ids[0], editor, {"name": "Direkt AG", "phones": ["030 1234567"]}),
        ("create", "contact", ids[1], editor, {"name": "Dora Direkt", "company_id": ids[0]}),
        ("update", "contact", ids[1], None, {"name": None, "category": "A"}),
        ("update", "company", ids[0], editor, {"tags": ["a", "b"]}),
    ]


def test_one_lookup_finds_a_contact_by_id_or_address_for_the_merge_page_and_the_cli(client, factory, editor):
    with unit_of_work(factory) as session:
        first, second = Contact(name="Info A", tags=[], fields={}), Contact(name="Info B", tags=[], fields={})
        first.emails.append(ContactEmail(email="info@geteilt.example"))
        second.emails.append(ContactEmail(email="info@geteilt.example"))
        session.add_all([first, second])
        session.flush()
        ids = first.id, second.id
    with factory() as session:
        assert [c.id for c in contacts_named_by(session, str(ids[1]))] == [ids[1]]
        assert [c.id for c in contacts_named_by(session, " <INFO@Geteilt.example> ")] == list(ids)
        # Not ids: a superscript digit, and a number beyond the id column (a 500 on PostgreSQL before).
        assert contacts_named_by(session, "²") == contacts_named_by(session, "99999999999") == []
        with pytest.raises(NotFound, match="2 contacts have the address"):
            find_contact(session, "info@geteilt.example")
        with pytest.raises(NotFound, match="no contact"):
            find_contact(session, "²")
    log_in(client)
    page = client.get(f"/contacts/{ids[0]}").get_data(as_text=True)
    assert client.post(f"/contacts/{ids[0]}/merge", data={"csrf_token": csrf_token(page),
                                                          "duplicate": "²"}).status_code == 302
    # The shared address names the one other contact: the merge page finds it.
    confirm = client.post(f"/contacts/{ids[0]}/merge", data={"csrf_token": csrf_token(page),
                                                             "duplicate": "info@geteilt.example"})
    assert confirm.status_code == 200 and "Info B" in confirm.get_data(as_text=True)
    assert client.post(f"/contacts/{ids[0]}/merge", data={"csrf_token": csrf_token(page), "confirm": "1",
                                                          "duplicate": "info@geteilt.example"}).status_code == 302
    assert [(e[0], e[2], e[3]) for e in entries(factory)] == [("merge", ids[0], editor)]

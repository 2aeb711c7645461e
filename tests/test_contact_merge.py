"""Merging a duplicate contact: every link and all history move to the contact that stays, nothing doubles,
the duplicate is gone and the audit log says what moved."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from crm_inbox.calls.service import CallEvent, apply_event
from crm_inbox.db import unit_of_work
from crm_inbox.models import AuditEntry, Call, Contact, Direction, Reminder, Ticket
from crm_inbox.tickets import service as ticket_service
from tests.test_api import API, assert_error, create_contact


def timeline(client, auth, contact_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    response = client.get(f"{API}/contacts/{contact_id}/timeline", headers=auth)
    assert response.status_code == 200
    return sorted(i["subject"] or "" for i in response.json["items"])


def test_merging_a_duplicate_moves_mail_calls_tickets_reminders_and_addresses(client, auth, factory, settings):
    stays = create_contact(client, auth, name="Klaus Müller", emails=["k.mueller@mueller-maschinenbau.de"],
                           phones=["+49 89 4711 33"], tags=["Stammkunde"], role="customer")
    dup = create_contact(client, auth, emails=["klaus.mueller@gmx.de", "K.Mueller@mueller-maschinenbau.de"],
                         phones=["0171/2345678", "089 471133"], tags=["Messe 2026"], fields={"Hobby": "Segeln"})
    note_both = client.post(f"{API}/contacts/{stays['id']}/notes", headers=auth, json={"text": "Anruf"}).json
    client.post(f"{API}/contacts/{dup['id']}/notes", headers=auth, json={"text": "Privat gemeldet"})
    with unit_of_work(factory) as session:
        from crm_inbox.models import Interaction, InteractionContact

        shared = session.get_one(Interaction, note_both["id"])
        session.add(InteractionContact(interaction_id=shared.id, contact_id=dup["id"],
                                       occurred_at=shared.occurred_at, role="about"))
        ticket = ticket_service.open_ticket(session, settings, subject="Angebot", interaction=None,
                                            contact=session.get_one(Contact, dup["id"]),
                                            opened_by="klaus.mueller@gmx.de")
        apply_event(session, settings, CallEvent("generic", "c-1", "hangup", datetime(2026, 11, 23, 9, tzinfo=UTC),
                                                 direction=Direction.IN, from_number="0171 2345678", to_number="22",
                                                 cause="noAnswer"))
        ticket_id = ticket.id

    response = client.post(f"{API}/contacts/{stays['id']}/merge", headers=auth, json={"duplicate_id": dup["id"]})
    assert response.status_code == 200, response.json
    merged = response.json
    assert merged["emails"] == ["k.mueller@mueller-maschinenbau.de", "klaus.mueller@gmx.de"]
    assert [p["e164"] for p in merged["phones"]] == ["+4989471133", "+491712345678"]
    assert merged["tags"] == ["Stammkunde", "Messe 2026"] and merged["fields"] == {"Hobby": "Segeln"}
    assert merged["name"] == "Klaus Müller" and merged["role"] == "customer"
    assert merged["merged"]["timeline_links"] >= 1 and merged["merged"]["tickets"] == 1

    assert client.get(f"{API}/contacts/{dup['id']}", headers=auth).status_code == 404
    subjects = timeline(client, auth, stays["id"])
    assert subjects.count("Note") == 2  # the shared note once, the duplicate's own note moved
    with factory() as session:
        assert session.get_one(Ticket, ticket_id).contact_id == stays["id"]
        assert session.execute(select(Call.contact_id)).scalar_one() == stays["id"]
        assert {r.contact_id for r in session.execute(select(Reminder)).scalars()} == {stays["id"]}
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "merge")).scalar_one()
        assert entry.object_id == stays["id"] and entry.details["duplicate"]["id"] == dup["id"]
    # the number now finds the one contact
    lookup = client.get(f"{API}/lookup", headers=auth, query_string={"number": "0171 2345678"})
    assert lookup.json["contact"]["id"] == stays["id"]


def test_merge_input_errors(client, auth):
    one = create_contact(client, auth, name="A")
    assert_error(client.post(f"{API}/contacts/{one['id']}/merge", headers=auth, json={"duplicate_id": one["id"]}),
                 400, "duplicate_id")
    assert_error(client.post(f"{API}/contacts/{one['id']}/merge", headers=auth, json={"duplicate_id": 99999}),
                 400, "duplicate_id")
    assert_error(client.post(f"{API}/contacts/{one['id']}/merge", headers=auth, json={"duplicate_id": "2"}),
                 400, "duplicate_id")
    assert_error(client.post(f"{API}/contacts/99999/merge", headers=auth, json={"duplicate_id": one["id"]}), 404)

"""Unassigned mail waits for triage; staff assign it, the decision is kept, and can teach an address."""

from __future__ import annotations

from sqlalchemy import select

from crm_inbox.intake.store import Envelope, store
from crm_inbox.models import AuditEntry
from crm_inbox.pipeline.runner import process
from tests.mailfactory import make_mail

API = "/api/v1"


def deliver(factory, settings, raw: bytes) -> int:
    accepted = store(factory, raw, Envelope("x@example.com", ("crm@beispiel-firma.de",), "127.0.0.1"))
    outcome = process(factory, settings, accepted.inbound_id)
    assert outcome.interaction_id is not None
    return outcome.interaction_id


def create(client, auth, **data) -> dict:
    response = client.post(f"{API}/contacts", json=data, headers=auth)
    assert response.status_code == 201, response.json
    return response.json


def test_unassigned_mail_is_listed_assigned_and_remembered(client, auth, factory, settings):
    shared = create(client, auth, name="Einkauf A", emails=["info@shared.example"])
    create(client, auth, name="Einkauf B", emails=["info@shared.example"])
    target = create(client, auth, name="Petra Weber", emails=["petra.weber@gmx.de"])
    # An address two contacts share is never guessed: the mail waits for a person.
    first = deliver(factory, settings, make_mail(sender="Info <info@shared.example>", subject="Bestellung"))
    known = deliver(factory, settings, make_mail(sender="petra.weber@gmx.de", subject="Hallo"))

    listed = client.get(f"{API}/interactions", query_string={"unassigned": 1}, headers=auth).json["items"]
    assert [item["id"] for item in listed] == [first]
    assert "belongs to 2 contacts" in listed[0]["attribution_reason"]

    response = client.post(f"{API}/interactions/{first}/assign", json={"contact_ids": [shared["id"]]},
                           headers=auth)
    assert response.status_code == 200
    assert response.json["contact_ids"] == [shared["id"]]
    assert response.json["details"]["assignment"]["before"] == []
    assert client.get(f"{API}/interactions", query_string={"unassigned": 1}, headers=auth).json["items"] == []
    timeline = client.get(f"{API}/contacts/{shared['id']}/timeline", headers=auth).json["items"]
    assert [item["id"] for item in timeline] == [first]
    with factory() as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "assign")).scalar_one()
        assert entry.object_id == first and entry.details["contact_ids"] == [shared["id"]]

    # Reassigning with remember_address teaches the CRM: the next mail from that address lands by itself.
    lone = deliver(factory, settings, make_mail(sender="Unbekannt <ghost@shared.example>", subject="?"))
    response = client.post(f"{API}/interactions/{lone}/assign",
                           json={"contact_ids": [target["id"]], "remember_address": True}, headers=auth)
    assert response.status_code == 200
    assert "ghost@shared.example" in client.get(f"{API}/contacts/{target['id']}", headers=auth).json["emails"]
    # The lead this mail had created for the unknown sender was the machine's mistake: it is gone.
    removed = response.json["details"]["assignment"]["removed_leads"]
    assert len(removed) == 1
    assert client.get(f"{API}/contacts/{removed[0]}", headers=auth).status_code == 404
    later = deliver(factory, settings, make_mail(sender="ghost@shared.example", subject="Nachtrag"))
    assert later in [i["id"] for i in client.get(f"{API}/contacts/{target['id']}/timeline", headers=auth).json["items"]]
    assert known != later


def test_assign_rejects_bad_input(client, auth, factory, settings):
    interaction = deliver(factory, settings, make_mail())
    for body, field in [({}, "contact_ids"), ({"contact_ids": []}, "contact_ids"),
                        ({"contact_ids": [999999]}, "contact_ids"), ({"contact_ids": ["x"]}, "contact_ids"),
                        ({"contact_ids": [1], "remember_address": "yes"}, "remember_address"),
                        ({"contact_ids": [1], "colour": 1}, "colour")]:
        response = client.post(f"{API}/interactions/{interaction}/assign", json=body, headers=auth)
        assert response.status_code == 400, body
        assert response.json["error"]["field"] == field
    assert client.post(f"{API}/interactions/999999/assign", json={"contact_ids": [1]},
                       headers=auth).status_code == 404
    assert client.get(f"{API}/interactions", query_string={"unassigned": "maybe"}, headers=auth).status_code == 400

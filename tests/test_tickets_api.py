"""The ticket API: list with filters, read with thread and events, change, internal notes, merge, audit log.

Mail is taken in the way SMTP does it (``intake.store``) and processed by ``worker.process``."""

from __future__ import annotations

from email.utils import make_msgid

import pytest
from sqlalchemy import select

from crm_inbox.intake.store import Envelope, store
from crm_inbox.models import AuditEntry, Interaction, Ticket
from crm_inbox.pipeline.runner import process
from crm_inbox.staff.service import find_staff
from tests.conftest import SUPPORT, make_token
from tests.mailfactory import make_mail

API = "/api/v1"
PETRA = "Petra Weber <petra.weber@weber-logistik.de>"
JENS = "Jens Koch <jens.koch@koch-bau.de>"


def deliver(factory, settings, sender: str, subject: str, **headers: str) -> tuple[int, str]:
    """A customer's mail to support; (interaction id, Message-ID)."""
    message_id = f"<{make_msgid().strip('<>').split('@')[0]}@{sender.rpartition('@')[2].rstrip('>')}>"
    raw = make_mail(sender=sender, to=SUPPORT, subject=subject, message_id=message_id, headers=headers or None)
    accepted = store(factory, raw, Envelope(sender.rpartition("<")[2].rstrip(">"), (SUPPORT,), "127.0.0.1"))
    outcome = process(factory, settings, accepted.inbound_id)
    assert outcome.interaction_id is not None, outcome
    return outcome.interaction_id, message_id


def ticket_of(factory, interaction_id: int) -> int:
    with factory() as session:
        ticket_id = session.get_one(Interaction, interaction_id).ticket_id
    assert ticket_id is not None
    return ticket_id


def open_ticket(factory, settings, sender: str = PETRA, subject: str = "Lieferung beschädigt") -> dict:
    interaction_id, message_id = deliver(factory, settings, sender, subject)
    ticket_id = ticket_of(factory, interaction_id)
    with factory() as session:
        ticket = session.get_one(Ticket, ticket_id)
        return {"id": ticket.id, "number": ticket.number, "contact_id": ticket.contact_id,
                "interaction_id": interaction_id, "message_id": message_id}


def staff_id(factory, email: str = "anna.schmidt@beispiel-firma.de") -> int:
    with factory() as session:
        user = find_staff(session, email)
        assert user is not None
        return user.id


def listed(client, auth, **params) -> list[int]:
    response = client.get(f"{API}/tickets", query_string=params, headers=auth)
    assert response.status_code == 200, response.json
    return [t["id"] for t in response.json["items"]]


def patch(client, auth, ticket_id: int, **data):  # type: ignore[no-untyped-def]
    return client.patch(f"{API}/tickets/{ticket_id}", json=data, headers=auth)


def audit_entries(factory, **where) -> list[AuditEntry]:
    with factory() as session:
        query = select(AuditEntry).where(AuditEntry.object_type == "ticket").order_by(AuditEntry.id)
        for key, value in where.items():
            query = query.where(getattr(AuditEntry, key) == value)
        return list(session.execute(query).scalars())


# --- list ---

def test_list_filters_by_state_assignee_and_contact(client, auth, factory, settings):
    anna = staff_id(factory)  # the token's user exists once the auth fixture ran
    first = open_ticket(factory, settings, PETRA, "Lieferung beschädigt")
    second = open_ticket(factory, settings, PETRA, "Rechnung falsch")
    third = open_ticket(factory, settings, JENS, "Angebot")

    assert sorted(listed(client, auth)) == [first["id"], second["id"], third["id"]]
    assert patch(client, auth, second["id"], state="open", assignee_id=anna).status_code == 200

    assert sorted(listed(client, auth, state="new")) == [first["id"], third["id"]]
    assert listed(client, auth, state="open") == [second["id"]]
    assert listed(client, auth, state="closed") == []
    assert listed(client, auth, assignee="me") == [second["id"]]
    assert listed(client, auth, assignee=str(anna)) == [second["id"]]
    assert sorted(listed(client, auth, assignee="none")) == [first["id"], third["id"]]
    assert sorted(listed(client, auth, contact_id=first["contact_id"])) == [first["id"], second["id"]]
    assert listed(client, auth, contact_id=third["contact_id"]) == [third["id"]]
    assert listed(client, auth, contact_id=first["contact_id"], state="open", assignee="me") == [second["id"]]
    assert listed(client, auth, limit=1) == [second["id"]]  # the most recently changed first

    item = client.get(f"{API}/tickets", query_string={"state": "open"}, headers=auth).json["items"][0]
    assert (item["number"], item["label"], item["state"], item["assignee_id"]) == (
        second["number"], f"#{second['number']}", "open", anna)


def test_open_lists_new_open_and_pending_but_not_solved_closed_or_merged(client, auth, factory, settings):
    new, answered, solved, merged, kept = (open_ticket(factory, settings, PETRA, f"Anfrage {n}")["id"]
                                           for n in range(5))
    assert patch(client, auth, answered, state="pending").status_code == 200
    assert patch(client, auth, solved, state="solved").status_code == 200
    response = client.post(f"{API}/tickets/{merged}/merge", json={"target_id": kept}, headers=auth)
    assert response.status_code == 200, response.json

    assert sorted(listed(client, auth, open="1")) == sorted([new, answered, kept])
    assert listed(client, auth, open="1", state="pending") == [answered]
    assert sorted(listed(client, auth, open="0")) == sorted([new, answered, solved, kept])  # merged: never listed


@pytest.mark.parametrize("params, field", [
    ({"open": "yes"}, "open"), ({"state": "done"}, "state"), ({"assignee": "anna"}, "assignee"),
    ({"assignee": "0"}, "assignee"),
    ({"contact_id": "x"}, "contact_id"), ({"contact_id": str(2**40)}, "contact_id"), ({"limit": "0"}, "limit"),
])
def test_list_rejects_bad_filters_naming_them(client, auth, params, field):
    response = client.get(f"{API}/tickets", query_string=params, headers=auth)
    assert response.status_code == 400
    assert response.json["error"]["field"] == field


def test_the_api_needs_a_token(client, factory, settings):
    ticket = open_ticket(factory, settings)
    assert client.get(f"{API}/tickets").status_code == 401
    assert client.get(f"{API}/tickets/{ticket['id']}").status_code == 401
    assert client.patch(f"{API}/tickets/{ticket['id']}", json={"state": "open"}).status_code == 401


# --- read ---

def test_get_shows_the_thread_and_the_events(client, auth, factory, settings):
    ticket = open_ticket(factory, settings)
    follow_id, _ = deliver(factory, settings, PETRA, "Noch etwas", **{"In-Reply-To": ticket["message_id"]})

    response = client.get(f"{API}/tickets/{ticket['id']}", headers=auth)
    assert response.status_code == 200
    data = response.json
    assert (data["number"], data["state"], data["priority"], data["contact_id"]) == (
        ticket["number"], "new", "normal", ticket["contact_id"])
    mails = [i for i in data["thread"] if i["kind"] == "email"]
    assert [i["id"] for i in mails] == [ticket["interaction_id"], follow_id]
    assert mails[0]["message_id"] == ticket["message_id"]
    assert all(i["ticket_id"] == ticket["id"] for i in data["thread"])
    assert [e["kind"] for e in data["events"]] == ["opened", "customer_reply"]
    assert data["events"][0]["interaction_id"] == ticket["interaction_id"]
    assert data["events"][1]["interaction_id"] == follow_id


@pytest.mark.parametrize("ident", [999999, 2**40])
def test_unknown_tickets_are_404(client, auth, ident):
    assert client.get(f"{API}/tickets/{ident}", headers=auth).status_code == 404
    assert patch(client, auth, ident, state="open").status_code == 404
    assert client.post(f"{API}/tickets/{ident}/notes", json={"text": "x"}, headers=auth).status_code == 404
    assert client.post(f"{API}/tickets/{ident}/merge", json={"target_id": 1}, headers=auth).status_code == 404


# --- change ---

def test_patch_changes_state_priority_and_assignee_each_as_an_event(client, auth, factory, settings):
    anna = staff_id(factory)
    ticket = open_ticket(factory, settings)
    response = patch(client, auth, ticket["id"], state="pending", priority="urgent", assignee_id=anna)
    assert response.status_code == 200
    data = response.json
    assert (data["state"], data["priority"], data["assignee_id"]) == ("pending", "urgent", anna)
    changes = {e["kind"]: e for e in data["events"] if e["kind"] in {"state", "priority", "assignee"}}
    assert changes["state"]["details"] == {"before": "new", "after": "pending"}
    assert changes["priority"]["details"] == {"before": "normal", "after": "urgent"}
    assert changes["assignee"]["details"] == {"before": None, "after": anna}
    assert {e["staff_id"] for e in changes.values()} == {anna}

    # Unchanged values are no change: no event, no audit entry.
    before = len(data["events"])
    again = patch(client, auth, ticket["id"], state="pending", priority="urgent")
    assert again.status_code == 200 and len(again.json["events"]) == before

    closed = patch(client, auth, ticket["id"], state="closed", assignee_id=None).json
    assert closed["state"] == "closed" and closed["closed_at"] is not None and closed["assignee_id"] is None

    subject = patch(client, auth, ticket["id"], subject="  Ersatzteil für Lieferung 4711 ").json
    assert subject["subject"] == "Ersatzteil für Lieferung 4711"
    assert subject["events"][-1]["kind"] == "subject"


@pytest.mark.parametrize("body, field", [
    ({"state": "done"}, "state"), ({"state": None}, "state"), ({"priority": "mega"}, "priority"),
    ({"priority": 3}, "priority"), ({"assignee_id": 999999}, "assignee_id"), ({"assignee_id": "1"}, "assignee_id"),
    ({"assignee_id": True}, "assignee_id"), ({"assignee_id": 2**40}, "assignee_id"), ({"subject": ""}, "subject"),
    ({"subject": ["x"]}, "subject"), ({"colour": "red"}, "colour"),
    ({"state": "open", "priority": "mega"}, "priority"),
])
def test_patch_rejects_bad_values_naming_the_field_and_changes_nothing(client, auth, factory, settings, body, field):
    ticket = open_ticket(factory, settings)
    response = patch(client, auth, ticket["id"], **body)
    assert response.status_code == 400, response.json
    assert response.json["error"]["field"] == field
    data = client.get(f"{API}/tickets/{ticket['id']}", headers=auth).json
    assert (data["state"], data["priority"], data["assignee_id"]) == ("new", "normal", None)
    assert [e["kind"] for e in data["events"]] == ["opened"]
    assert audit_entries(factory) == []


def test_patch_needs_a_json_object(client, auth, factory, settings):
    ticket = open_ticket(factory, settings)
    response = client.patch(f"{API}/tickets/{ticket['id']}", data="state=open", headers=auth)
    assert response.status_code == 400 and response.json["error"]["field"] == "body"


def test_read_only_users_can_read_but_not_change(client, factory, settings):
    ticket = open_ticket(factory, settings)
    other = open_ticket(factory, settings, JENS, "Angebot")
    ro = {"Authorization": f"Bearer {make_token(factory, 'ro@beispiel-firma.de', role='readonly')}"}
    assert client.get(f"{API}/tickets", headers=ro).status_code == 200
    assert client.get(f"{API}/tickets/{ticket['id']}", headers=ro).status_code == 200
    for response in (
        client.patch(f"{API}/tickets/{ticket['id']}", json={"state": "closed"}, headers=ro),
        client.post(f"{API}/tickets/{ticket['id']}/notes", json={"text": "heimlich"}, headers=ro),
        client.post(f"{API}/tickets/{ticket['id']}/merge", json={"target_id": other["id"]}, headers=ro),
    ):
        assert response.status_code == 403
        assert response.json["error"]["code"] == "forbidden"
    data = client.get(f"{API}/tickets/{ticket['id']}", headers=ro).json
    assert data["state"] == "new" and data["merged_into_id"] is None
    assert [e["kind"] for e in data["events"]] == ["opened"]


# --- notes ---

def test_internal_notes_are_on_the_ticket_and_on_the_contacts_timeline(client, auth, factory, settings):
    anna = staff_id(factory)
    ticket = open_ticket(factory, settings)
    response = client.post(f"{API}/tickets/{ticket['id']}/notes", json={"text": "  Kunde ruft morgen an.  "},
                           headers=auth)
    assert response.status_code == 201
    assert response.json["kind"] == "note" and response.json["text"] == "Kunde ruft morgen an."

    events = client.get(f"{API}/tickets/{ticket['id']}", headers=auth).json["events"]
    assert events[-1]["kind"] == "note" and events[-1]["staff_id"] == anna
    assert events[-1]["details"]["text"] == "Kunde ruft morgen an."
    timeline = client.get(f"{API}/contacts/{ticket['contact_id']}/timeline", headers=auth).json["items"]
    notes = [i for i in timeline if i["kind"] == "ticket" and "Kunde ruft morgen an." in (i["excerpt"] or "")]
    assert len(notes) == 1 and notes[0]["ticket_id"] == ticket["id"] and notes[0]["direction"] == "internal"
    assert [e.action for e in audit_entries(factory)] == ["note"]


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "   "}, {"text": 5}, {"text": "x" * 20001}])
def test_notes_need_text(client, auth, factory, settings, body):
    ticket = open_ticket(factory, settings)
    response = client.post(f"{API}/tickets/{ticket['id']}/notes", json=body, headers=auth)
    assert response.status_code == 400 and response.json["error"]["field"] == "text"
    assert [e["kind"] for e in client.get(f"{API}/tickets/{ticket['id']}", headers=auth).json["events"]] == ["opened"]


# --- timeline ---

def test_every_change_is_on_the_contacts_timeline(client, auth, factory, settings):
    anna = staff_id(factory)
    ticket = open_ticket(factory, settings)
    patch(client, auth, ticket["id"], state="open")
    patch(client, auth, ticket["id"], priority="high")
    patch(client, auth, ticket["id"], assignee_id=anna)
    client.post(f"{API}/tickets/{ticket['id']}/notes", json={"text": "Rückruf vereinbart"}, headers=auth)

    items = client.get(f"{API}/contacts/{ticket['contact_id']}/timeline", headers=auth).json["items"]
    mail = next(i for i in items if i["kind"] == "email")
    assert mail["id"] == ticket["interaction_id"] and mail["ticket_id"] == ticket["id"]
    changes = [i for i in items if i["kind"] == "ticket"]
    assert all(i["ticket_id"] == ticket["id"] for i in changes)
    label = f"#{ticket['number']}"
    assert sorted(i["subject"] for i in changes) == sorted([
        f"{label}: opened: Lieferung beschädigt", f"{label}: state new → open", f"{label}: priority normal → high",
        f"{label}: assigned to Test User", f"{label}: internal note: Rückruf vereinbart"])
    only = client.get(f"{API}/contacts/{ticket['contact_id']}/timeline", query_string={"kind": "ticket"},
                      headers=auth).json["items"]
    assert len(only) == 5


# --- merge ---

def test_merge_moves_the_messages_and_follow_ups_land_in_the_target(client, auth, factory, settings):
    anna = staff_id(factory)
    target = open_ticket(factory, settings, PETRA, "Lieferung beschädigt")
    source = open_ticket(factory, settings, PETRA, "Nochmal: Lieferung beschädigt")

    response = client.post(f"{API}/tickets/{source['id']}/merge", json={"target_id": target["id"]}, headers=auth)
    assert response.status_code == 200
    merged = response.json
    assert merged["id"] == target["id"]
    thread = [i["id"] for i in merged["thread"] if i["kind"] == "email"]
    assert thread == [target["interaction_id"], source["interaction_id"]]
    assert merged["events"][-1]["kind"] == "merged_in"
    assert merged["events"][-1]["details"] == {"source": f"#{source['number']}"}

    gone = client.get(f"{API}/tickets/{source['id']}", headers=auth).json
    assert gone["state"] == "closed" and gone["merged_into_id"] == target["id"] and gone["closed_at"]
    assert gone["events"][-1]["kind"] == "merged"
    assert [i for i in gone["thread"] if i["kind"] == "email"] == []
    assert listed(client, auth) == [target["id"]]  # merged tickets are not listed

    # A follow-up to the merged ticket's number, and one by Message-ID, land in the target.
    by_number, _ = deliver(factory, settings, PETRA, f"Re: [#{source['number']}] Nochmal")
    by_reference, _ = deliver(factory, settings, PETRA, "Re: Nochmal", **{"In-Reply-To": source["message_id"]})
    assert ticket_of(factory, by_number) == target["id"]
    assert ticket_of(factory, by_reference) == target["id"]
    with factory() as session:
        assert session.get_one(Ticket, source["id"]).state.value == "closed"  # not reopened, no new ticket
        assert len(session.execute(select(Ticket)).scalars().all()) == 2

    (entry,) = audit_entries(factory, action="merge")
    assert (entry.staff_id, entry.object_id, entry.details) == (anna, source["id"], {"into": target["id"]})
    timeline = client.get(f"{API}/contacts/{target['contact_id']}/timeline", query_string={"kind": "ticket"},
                          headers=auth).json["items"]
    assert {f"#{source['number']}: merged into #{target['number']}",
            f"#{target['number']}: #{source['number']} merged in"} <= {i["subject"] for i in timeline}


def test_merge_refuses_itself_missing_and_merged_targets(client, auth, factory, settings):
    first = open_ticket(factory, settings, PETRA, "Eins")
    second = open_ticket(factory, settings, PETRA, "Zwei")
    third = open_ticket(factory, settings, PETRA, "Drei")
    url = f"{API}/tickets/{first['id']}/merge"
    for body in ({"target_id": first["id"]}, {"target_id": 999999}, {"target_id": "2"}, {"target_id": True},
                 {"target_id": 2**40}, {}):
        response = client.post(url, json=body, headers=auth)
        assert response.status_code == 400, body
        assert response.json["error"]["field"] == "target_id"
    assert client.post(url, data="x", headers=auth).status_code == 400

    # Into a ticket that was itself merged: refused, pointing at where it went.
    assert client.post(f"{API}/tickets/{second['id']}/merge", json={"target_id": third["id"]},
                       headers=auth).status_code == 200
    response = client.post(url, json={"target_id": second["id"]}, headers=auth)
    assert response.status_code == 400 and response.json["error"]["field"] == "target_id"
    # Back the other way (a cycle) is refused the same way.
    response = client.post(f"{API}/tickets/{third['id']}/merge", json={"target_id": second["id"]}, headers=auth)
    assert response.status_code == 400
    first_now = client.get(f"{API}/tickets/{first['id']}", headers=auth).json
    assert first_now["merged_into_id"] is None and first_now["state"] == "new"
    assert [e.action for e in audit_entries(factory)] == ["merge"]


# --- audit ---

def test_the_audit_log_records_who_changed_what(client, auth, factory, settings):
    anna = staff_id(factory)
    ticket = open_ticket(factory, settings)
    patch(client, auth, ticket["id"], state="open", priority="high")
    patch(client, auth, ticket["id"], assignee_id=anna)
    patch(client, auth, ticket["id"], priority="high")  # no change: no entry
    entries = audit_entries(factory, object_id=ticket["id"])
    assert [(e.action, e.staff_id, e.details) for e in entries] == [
        ("update", anna, {"state": "open", "priority": "high"}),
        ("update", anna, {"assignee_id": anna}),
    ]

"""Events other systems hear about (the outbound webhooks deliver them): every change of a contact, company,
timeline entry, call, ticket, reminder and quote is recorded once, with the payload a receiver reads; nothing
for a change that changes nothing; no mail text; and a person's erasure blanks their events while their
export lists them."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.calls.service import CallEvent, apply_event
from crm_inbox.config import Settings, replace
from crm_inbox.contacts.directory import Directory
from crm_inbox.contacts.inputs import CompanyChanges, ContactChanges
from crm_inbox.contacts.merge import merge_contacts
from crm_inbox.contacts.service import (
    company_named,
    create_company,
    create_contact,
    create_lead,
    update_company,
    update_contact,
)
from crm_inbox.correspondence.service import MailDraft
from crm_inbox.db import unit_of_work
from crm_inbox.mail.addresses import Address
from crm_inbox.models import Contact, Direction, Event, InteractionKind, Reminder, utcnow
from crm_inbox.privacy.service import erase_contact, write_export
from crm_inbox.reminders.service import fire_due
from crm_inbox.sales import quotes
from crm_inbox.sales.inputs import QuoteFields
from crm_inbox.staff.service import add_staff
from crm_inbox.tickets import service as tickets
from crm_inbox.tickets.inputs import TicketChanges
from crm_inbox.timeline.service import add_note, record_interaction
from tests.sales_data import lines, opportunity, sales_settings, world

CONTACT_KEYS = {"id", "name", "emails", "phones", "company_id", "role", "customer_number"}
COMPANY_KEYS = {"id", "name", "customer_number", "domains"}
TICKET_KEYS = {"id", "number", "label", "state", "priority", "assignee_id", "contact_id", "company_id",
               "merged_into_id"}
CALL_KEYS = {"id", "from", "to", "direction", "duration_seconds", "contact_id", "company_id", "staff_id", "answered",
             "cause", "started_at", "ended_at"}
QUOTE_KEYS = {"id", "number", "opportunity_id", "contact_id", "company_id", "total_net", "total_gross", "currency",
              "state"}


def _new(session: Session, seen: int) -> list[Event]:
    """The events recorded since the event id ``seen``, oldest first."""
    return list(session.scalars(select(Event).where(Event.id > seen).order_by(Event.id)))


def _last_id(session: Session) -> int:
    return max(session.scalars(select(Event.id)).all(), default=0)


def _types(events: list[Event]) -> list[str]:
    return [e.type for e in events]


def test_contacts_and_companies_each_change_once_and_nothing_for_a_no_op(settings: Settings,
                                                                         factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        firm = create_company(session, CompanyChanges(name="Müller GmbH", domains=("mueller.example",),
                                                      customer_number="K-1"), "DE", None)
        [made] = _new(session, 0)
        assert (made.type, made.subject_type, made.subject_id) == ("company.created", "company", firm.id)
        assert made.payload == {"id": firm.id, "name": "Müller GmbH", "customer_number": "K-1",
                                "domains": ["mueller.example"]}

        seen = _last_id(session)
        anna = create_contact(session, ContactChanges(name="Anna Schmidt", company_id=firm.id,
                                                      emails=("anna@mueller.example",), phones=("0171 2345678",),
                                                      role="customer", customer_number="K-1-7"), "DE", None)
        [made] = _new(session, seen)
        assert made.type == "contact.created" and set(made.payload) == CONTACT_KEYS
        assert made.payload == {"id": anna.id, "name": "Anna Schmidt", "emails": ["anna@mueller.example"],
                                "phones": ["+491712345678"], "company_id": firm.id, "role": "customer",
                                "customer_number": "K-1-7"}

        # A form hands over every field again: the same values are no change, and no event.
        seen = _last_id(session)
        update_contact(session, anna, ContactChanges(name="Anna Schmidt", emails=("anna@mueller.example",),
                                                     phones=("0171 2345678",), role="customer"), "DE", None)
        update_company(session, firm, CompanyChanges(name="Müller GmbH", domains=("mueller.example",)), "DE", None)
        assert company_named(session, "müller gmbh", None) == (firm, False)
        assert _new(session, seen) == []

        update_contact(session, anna, ContactChanges(name="Anna Schmidt-Berg", emails=("anna@mueller.example",),
                                                     city="Berlin"), "DE", None)
        update_company(session, firm, CompanyChanges(name="Müller GmbH", customer_number="K-2"), "DE", None)
        changed = _new(session, seen)
        assert _types(changed) == ["contact.updated", "company.updated"]
        assert changed[0].payload["changed"] == ["city", "name"] and changed[0].payload["name"] == "Anna Schmidt-Berg"
        assert set(changed[0].payload) == CONTACT_KEYS | {"changed"}
        assert changed[1].payload["changed"] == ["customer_number"] and changed[1].payload["customer_number"] == "K-2"

        seen = _last_id(session)
        other, created = company_named(session, "Neu AG", None)
        lead = create_lead(session, Directory(session, replace(settings, mail={"create_company_for_unknown_domain":
                                                                               True}).mail),
                           Address("Bernd Kurz", "bernd@kurz-bau.example"), "mail 1", new_company_for_domain=True)
        made_now = _new(session, seen)
        assert created and _types(made_now) == ["company.created", "company.created", "contact.created"]
        assert made_now[0].payload == {"id": other.id, "name": "Neu AG", "customer_number": None, "domains": []}
        assert made_now[1].payload["domains"] == ["kurz-bau.example"]
        assert made_now[2].payload == {"id": lead.id, "name": "Bernd Kurz", "emails": ["bernd@kurz-bau.example"],
                                       "phones": [], "company_id": lead.company_id, "role": "lead",
                                       "customer_number": None}

        seen = _last_id(session)
        duplicate = create_contact(session, ContactChanges(name="A. Schmidt", emails=("a.schmidt@web.example",)),
                                   "DE", None)
        duplicate_id = duplicate.id
        merge_contacts(session, anna, duplicate, None)
        merged = _new(session, seen)
        assert _types(merged) == ["contact.created", "contact.merged"]
        assert (merged[1].subject_id, merged[1].payload) == (anna.id, {"id": anna.id, "merged_id": duplicate_id})


def test_a_timeline_entry_is_announced_without_its_text(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        firm = create_company(session, CompanyChanges(name="Kunde AG"), "DE", None)
        anna = create_contact(session, ContactChanges(name="Anna", company_id=firm.id), "DE", None)
        ben = create_contact(session, ContactChanges(name="Ben"), "DE", None)
        seen = _last_id(session)
        when = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
        mail = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.IN, occurred_at=when,
                                  subject="Angebot", text="Geheimer Text der Mail", html="<p>Geheimer Text</p>",
                                  contacts=[(anna, "from"), (ben, "to"), (anna, "cc")])
        note = add_note(session, anna, None, "Vertrauliche Notiz")
        [announced, noted] = _new(session, seen)
        assert (announced.type, announced.subject_type, announced.subject_id) == \
            ("interaction.created", "interaction", mail.id)
        assert announced.payload == {"id": mail.id, "kind": "email", "direction": "in",
                                     "occurred_at": when.isoformat(), "subject": "Angebot",
                                     "contact_ids": [anna.id, ben.id], "company_id": None}
        assert noted.subject_id == note.id and noted.payload["company_id"] == firm.id == note.company_id
        assert "Geheim" not in json.dumps(announced.payload) and "Vertraulich" not in json.dumps(noted.payload)


def _call(session: Session, settings: Settings, call_id: str, kind: Any, at: int, **extra: Any) -> None:
    apply_event(session, settings, CallEvent("cti", call_id, kind, datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
                                             + timedelta(seconds=at), **extra))


def test_a_call_ends_once_missed_or_ended_and_a_replay_records_nothing(settings: Settings,
                                                                       factory: sessionmaker[Session]) -> None:
    settings = replace(settings, phone={"own_numbers": ("+49 89 1234567-0",)})
    with unit_of_work(factory) as session:
        klaus = create_contact(session, ContactChanges(name="Klaus", phones=("0171 2345678",)), "DE", None)
        seen = _last_id(session)
        _call(session, settings, "c1", "new", 0, direction=Direction.IN, from_number="01712345678",
              to_number="+49891234567-22")
        _call(session, settings, "c1", "hangup", 30, cause="noAnswer")
        _call(session, settings, "c2", "new", 100, direction=Direction.IN, from_number="01712345678",
              to_number="+49891234567-22")
        _call(session, settings, "c2", "answer", 105)
        _call(session, settings, "c2", "hangup", 200, cause="normalClearing")
    with unit_of_work(factory) as session:  # the phone system sends the hangups again
        _call(session, settings, "c1", "hangup", 30, cause="noAnswer")
        _call(session, settings, "c2", "hangup", 200, cause="normalClearing")
    with factory() as session:
        ends = [e for e in _new(session, seen) if e.type.startswith("call.")]
        assert _types(ends) == ["call.missed", "call.ended"]
        missed, ended = (e.payload for e in ends)
        assert set(missed) == set(ended) == CALL_KEYS
        assert (missed["contact_id"], missed["duration_seconds"], missed["answered"], missed["direction"]) == \
            (klaus.id, 0, False, "in")
        assert (ended["duration_seconds"], ended["answered"], ended["from"]) == (95, True, "01712345678")
        assert ended["ended_at"] == "2026-12-01T09:03:20+00:00"
        # Each call is one timeline entry, announced when it first rang.
        assert sum(e.type == "interaction.created" for e in _new(session, seen)) == 2


def test_tickets_are_announced_when_opened_and_when_state_assignee_priority_or_merge_change(
        settings: Settings, factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        staff = add_staff(session, "jonas@beispiel-firma.de", "Jonas").id
        eva = create_contact(session, ContactChanges(name="Eva"), "DE", None)
        seen = _last_id(session)
        first = tickets.open_for_contact(session, settings, eva, "Drucker defekt", staff)
        second = tickets.open_for_contact(session, settings, eva, "Drucker geht nicht", None)
        opened = [e for e in _new(session, seen) if e.type.startswith("ticket.")]
        assert [(e.type, e.subject_id) for e in opened] == [
            ("ticket.created", first.id), ("ticket.changed", first.id), ("ticket.created", second.id)]
        assert set(opened[0].payload) == TICKET_KEYS and opened[0].payload["number"] == first.number
        assert opened[1].payload["changed"] == ["assignee_id"] and opened[1].payload["assignee_id"] == staff

        seen = _last_id(session)
        tickets.change(session, first, staff, TicketChanges(state="new", priority="normal"))  # as it is
        assert [e for e in _new(session, seen) if e.type.startswith("ticket.")] == []
        tickets.change(session, first, staff, TicketChanges(state="open", priority="high"))
        tickets.merge(session, second, first, staff)
        changes = [e for e in _new(session, seen) if e.type.startswith("ticket.")]
        assert [(e.subject_id, e.payload["changed"]) for e in changes] == [
            (first.id, ["state", "priority"]), (second.id, ["merged_into_id", "state"])]
        assert (changes[0].payload["state"], changes[0].payload["priority"]) == ("open", "high")
        assert (changes[1].payload["state"], changes[1].payload["merged_into_id"]) == ("closed", first.id)


def test_a_reminder_fires_once(settings: Settings, factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        eva = create_contact(session, ContactChanges(name="Eva"), "DE", None)
        due = utcnow() - timedelta(minutes=5)
        reminder = Reminder(title="Eva anrufen", due_at=due, fire_at=due, reason="manual", contact_id=eva.id)
        session.add(reminder)
        session.flush()
        reminder_id, seen = reminder.id, _last_id(session)
    assert fire_due(factory, settings) == 1
    assert fire_due(factory, settings) == 0
    with factory() as session:
        [fired] = _new(session, seen)
        assert (fired.type, fired.subject_id) == ("reminder.fired", reminder_id)
        assert fired.payload["contact_id"] == eva.id and fired.payload["title"] == "Eva anrufen"
        assert fired.payload["due_at"] == due.isoformat() and fired.payload["fired_at"] is not None


def test_quotes_sent_accepted_and_declined(settings: Settings, factory: sessionmaker[Session]) -> None:
    sales = sales_settings(settings)
    with unit_of_work(factory) as session:
        w = world(session, sales)
        by = w.staff.id
        sent = quotes.create_quote(session, sales, QuoteFields(opportunity_id=w.opp.id, lines=lines(w)), by=by)
        other = opportunity(session, sales, w.staff, w.contact, "Zweites Projekt")
        declined = quotes.create_quote(session, sales, QuoteFields(opportunity_id=other.id, lines=lines(w)), by=by)
        seen = _last_id(session)
        quotes.send_quote(session, sales, sent, MailDraft(to="", subject="Ihr Angebot", text="Anbei."), by=by)
        quotes.accept_quote(session, sales, sent, by=by)
        quotes.finalise_quote(session, sales, declined, by=by)
        quotes.decline_quote(session, sales, declined, "zu teuer", by=by)
        events = [e for e in _new(session, seen) if e.type.startswith("quote.")]
        assert [(e.type, e.subject_id) for e in events] == [
            ("quote.sent", sent.id), ("quote.accepted", sent.id), ("quote.declined", declined.id)]
        assert all(set(e.payload) == QUOTE_KEYS for e in events)
        assert events[0].payload == {"id": sent.id, "number": sent.label, "opportunity_id": w.opp.id,
                                     "contact_id": w.contact.id, "company_id": w.company.id, "total_net": "454.80",
                                     "total_gross": "535.24", "currency": "EUR", "state": "sent"}
        assert (events[1].payload["state"], events[2].payload["state"]) == ("accepted", "declined")


def test_erasure_blanks_the_persons_events_and_the_export_lists_them(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        petra = create_contact(session, ContactChanges(name="Petra Lang", emails=("petra@lang.example",)),
                               "DE", None)
        ben = create_contact(session, ContactChanges(name="Ben Kurz"), "DE", None)
        update_contact(session, petra, ContactChanges(city="Köln"), "DE", None)
        own = add_note(session, petra, None, "Rückruf wegen Petra Lang")
        shared = record_interaction(session, kind=InteractionKind.EMAIL, direction=Direction.IN,
                                    occurred_at=utcnow(), subject="Treffen mit Petra Lang", text="…",
                                    contacts=[(petra, "from"), (ben, "to")])
        petra_id, ben_id, own_id, shared_id = petra.id, ben.id, own.id, shared.id

    target = io.BytesIO()
    with unit_of_work(factory) as session:
        counts = write_export(session, petra_id, target, None)
    exported = json.loads(zipfile.ZipFile(target).read("contact.json"))["events"]
    assert counts["events"] == 4
    assert [(e["type"], e["subject_id"]) for e in exported] == [
        ("contact.created", petra_id), ("contact.updated", petra_id), ("interaction.created", own_id),
        ("interaction.created", shared_id)]
    assert exported[0]["payload"]["emails"] == ["petra@lang.example"]

    with unit_of_work(factory) as session:
        counts = erase_contact(session, petra_id, None)
    assert counts["events_blanked"] == 4
    with factory() as session:
        events = {(e.type, e.subject_id): e.payload for e in session.scalars(select(Event))}
        for key in (("contact.created", petra_id), ("contact.updated", petra_id), ("contact.erased", petra_id)):
            assert events[key] == {"id": petra_id, "erased": True}
        assert events[("interaction.created", own_id)] == {"id": own_id, "erased": True}  # deleted with her
        kept = events[("interaction.created", shared_id)]  # Ben's mail stays, without her
        assert kept["contact_ids"] == [ben_id] and kept["subject"] == "Treffen mit [erased]"
        assert events[("contact.created", ben_id)]["name"] == "Ben Kurz"
        assert session.get(Contact, ben_id) is not None
        assert "Petra" not in json.dumps(list(events.values())) and "lang.example" not in json.dumps(
            list(events.values()))

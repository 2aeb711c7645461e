"""Segments: every kind of condition finds exactly the right people in a small world; AND/OR/NOT nest; a bad
definition is refused with the path of the bad part; saving, renaming and deleting are audited; the count is the
length of the list, and the export takes a segment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from crm_inbox.consent import ledger
from crm_inbox.db import unit_of_work
from crm_inbox.errors import Conflict, ValidationError
from crm_inbox.models import (
    AuditEntry,
    Category,
    Company,
    Contact,
    ContactEmail,
    CustomerType,
    Interaction,
    InteractionContact,
    Opportunity,
    Quote,
    Role,
    Segment,
    Ticket,
)
from crm_inbox.models.interactions import Direction, InteractionKind
from crm_inbox.models.marketing import Channel, ConsentRecord, ConsentState
from crm_inbox.models.sales import QuoteState
from crm_inbox.models.tickets import TicketState
from crm_inbox.segments import service as segments
from crm_inbox.staff.service import add_staff

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BAVARIA = ["80000", "87999"]


def _at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


@pytest.fixture
def world(factory):
    """Six people; returns {short name: contact id} and the owner's staff id."""
    with unit_of_work(factory) as session:
        owner = add_staff(session, "olga@beispiel-firma.de", "Olga Owner", "staff")
        bau = Company(name="Bau GmbH", industry="Bau", size="50-249", customer_type=CustomerType.B2B,
                      postcode="86150", city="Augsburg", country="DE", tags=[], fields={})
        shop = Company(name="Shop", customer_type=CustomerType.B2C, postcode="10115", city="Berlin", country="DE",
                       tags=[], fields={})

        def person(name: str, role: Role, created: str, **kw: Any) -> Contact:
            return Contact(name=name, role=role, created_at=_at(created), tags=kw.pop("tags", []),
                           fields=kw.pop("fields", {}), **kw)

        people = {
            "anna": person("Anna Alt", Role.CUSTOMER, "2025-01-10", category=Category.A, tags=["VIP", "Newsletter"],
                           fields={"Branche": "Hochbau", "Größe (m²)": "XL"}, postcode="80331",
                           city="München", country="DE", owner_id=owner.id),
            "bert": person("Bert Bau", Role.CUSTOMER, "2026-03-01", category=Category.B, tags=["Newsletter"],
                           company=bau),
            "carla": person("Carla Clever", Role.LEAD, "2026-06-01", company=shop, postcode="D-80331",
                            city="München"),
            "dora": person("Dora Dupont", Role.PROSPECT, "2024-05-05", category=Category.A, tags=["Händler"],
                           fields={"Branche": ""}, postcode="75001", city="Paris", country="FR"),
            "emil": person("Ärmin Eins", Role.CUSTOMER, "2026-11-20", category=Category.A),
            "fritz": person("Fritz Fern", Role.CUSTOMER, "2026-02-01", category=Category.A, postcode="80999"),
        }
        people["anna"].emails = [ContactEmail(email="anna@alt.example")]
        people["bert"].emails = [ContactEmail(email="bert@bau.example", bouncing=True),
                                 ContactEmail(email="bert@privat.example")]
        people["emil"].emails = [ContactEmail(email="emil@eins.example")]
        session.add_all([bau, shop, *people.values()])
        session.flush()
        ids = {key: c.id for key, c in people.items()}

        def touch(key: str, kind: InteractionKind, days_ago: int) -> None:
            when = NOW - timedelta(days=days_ago)
            item = Interaction(kind=kind, direction=Direction.IN, occurred_at=when, details={})
            item.contact_links = [InteractionContact(contact_id=ids[key], occurred_at=when)]
            session.add(item)

        touch("anna", InteractionKind.EMAIL, 10)
        touch("anna", InteractionKind.CALL, 300)
        touch("bert", InteractionKind.CALL, 200)
        touch("carla", InteractionKind.NOTE, 5)  # a note is no contact
        touch("dora", InteractionKind.EMAIL, 400)
        touch("fritz", InteractionKind.EMAIL, 100)

        session.add_all([
            Ticket(subject="Offen", state=TicketState.OPEN, contact_id=ids["anna"]),
            Ticket(subject="Erledigt", state=TicketState.CLOSED, contact_id=ids["dora"]),
        ])
        bert_deal = Opportunity(title="Open deal", stage="new", probability=10, contact_id=ids["bert"])
        carla_deal = Opportunity(title="Won", stage="won", probability=100, contact_id=ids["carla"])
        dora_deal = Opportunity(title="Lost", stage="lost", probability=0, contact_id=ids["dora"])
        session.add_all([bert_deal, carla_deal, dora_deal])
        session.flush()
        session.add_all([
            Quote(opportunity_id=carla_deal.id, state=QuoteState.SENT, contact_id=ids["carla"], address=[]),
            Quote(opportunity_id=dora_deal.id, state=QuoteState.DRAFT, contact_id=ids["dora"], address=[]),
        ])

        def consent(key: str, channel: Channel, state: ConsentState, days_ago: int = 0) -> None:
            session.add(ConsentRecord(contact_id=ids[key], channel=channel, state=state, source="staff", proof={},
                                      occurred_at=NOW - timedelta(days=days_ago)))
            session.flush()  # ids in the order given: the latest record is the state

        consent("anna", Channel.EMAIL, ConsentState.PENDING)
        consent("anna", Channel.EMAIL, ConsentState.OPTED_IN)
        consent("bert", Channel.EMAIL, ConsentState.OPTED_IN)
        consent("bert", Channel.EMAIL, ConsentState.OPTED_OUT)
        consent("bert", Channel.EMAIL, ConsentState.OPTED_IN, days_ago=700)  # an old consent imported later
        consent("carla", Channel.LETTER, ConsentState.OPTED_IN)
        return ids, owner.id


def leaf(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "op": op, **({} if value is None else {"value": value})}


EVERYONE = {"anna", "bert", "carla", "dora", "emil", "fritz"}
CASES: list[tuple[dict[str, Any], set[str]]] = [
    (leaf("role", "in", ["customer"]), {"anna", "bert", "emil", "fritz"}),
    (leaf("role", "is", "Lead"), {"carla"}),
    (leaf("category", "is", "a"), {"anna", "dora", "emil", "fritz"}),
    (leaf("category", "empty"), {"carla"}),
    (leaf("tags", "has", "Newsletter"), {"anna", "bert"}),
    (leaf("tags", "has_any", ["VIP", "Presse"]), {"anna"}),
    (leaf("tags", "has_all", ["VIP", "Newsletter"]), {"anna"}),
    (leaf("tags", "has", "Händler"), {"dora"}),
    (leaf("fields.Branche", "equals", "Hochbau"), {"anna"}),
    (leaf("fields.Branche", "exists"), {"anna"}),  # Dora's is empty
    (leaf("fields.Größe (m²)", "equals", "XL"), {"anna"}),
    (leaf("company.industry", "is", "Bau"), {"bert"}),
    (leaf("company.size", "in", ["50-249", "250+"]), {"bert"}),
    (leaf("company.customer_type", "is", "B2C"), {"carla"}),
    (leaf("company.customer_type", "is", "B2B"), {"bert"}),
    # own address first, else the company's; "D-80331" and a French 75001 are no German codes
    (leaf("postcode", "between", BAVARIA), {"anna", "bert", "fritz"}),
    (leaf("postcode", "between", ["70000", "79999"]), set()),
    (leaf("postcode", "between", ["10000", "10999"]), set()),  # Carla has an address of her own
    (leaf("city", "is", "München"), {"anna", "carla"}),
    (leaf("city", "is", "Augsburg"), {"bert"}),
    (leaf("country", "is", "fr"), {"dora"}),
    (leaf("country", "in", ["DE"]), {"anna", "bert"}),
    (leaf("created", "before", "2026-01-01"), {"anna", "dora"}),
    (leaf("created", "after", "2026-05-01"), {"carla", "emil"}),
    (leaf("created", "within_days", 30), {"emil"}),
    (leaf("last_contact", "within_days", 90), {"anna"}),
    (leaf("last_contact", "older_than_days", 90), {"bert", "carla", "dora", "emil", "fritz"}),
    (leaf("last_contact", "never"), {"carla", "emil"}),
    (leaf("last_contact", "after", "2026-01-01"), {"anna", "bert", "fritz"}),
    (leaf("last_contact", "before", "2025-12-01"), {"carla", "dora", "emil"}),
    (leaf("open_ticket", "is", True), {"anna"}),
    (leaf("open_ticket", "is", False), EVERYONE - {"anna"}),
    (leaf("open_opportunity", "is", True), {"bert"}),
    (leaf("open_quote", "is", True), {"carla"}),
    (leaf("consent.email", "is", "opted_in"), {"anna"}),
    (leaf("consent.email", "is", "opted_out"), {"bert"}),
    (leaf("consent.email", "is", "pending"), set()),
    (leaf("consent.email", "is", "unknown"), {"carla", "dora", "emil", "fritz"}),
    (leaf("consent.email", "in", ["opted_in", "unknown"]), {"anna", "carla", "dora", "emil", "fritz"}),
    (leaf("consent.letter", "is", "opted_in"), {"carla"}),
    (leaf("bouncing", "is", True), {"bert"}),
    (leaf("bouncing", "is", False), EVERYONE - {"bert"}),
    # nesting
    ({"all": [leaf("role", "is", "customer"), leaf("postcode", "between", BAVARIA), leaf("category", "is", "A"),
              leaf("last_contact", "older_than_days", 90)]}, {"fritz"}),
    ({"any": [leaf("tags", "has", "VIP"), leaf("bouncing", "is", True)]}, {"anna", "bert"}),
    ({"not": leaf("role", "is", "customer")}, {"carla", "dora"}),
    ({"all": [{"any": [leaf("category", "is", "A"), leaf("category", "is", "B")]},
              {"not": leaf("consent.email", "is", "opted_out")}]}, {"anna", "dora", "emil", "fritz"}),
    ({"not": {"any": [{"not": leaf("open_ticket", "is", True)}, leaf("role", "is", "lead")]}}, {"anna"}),
]


def test_each_condition_finds_exactly_its_people(factory, world) -> None:
    ids, owner_id = world
    names = {v: k for k, v in ids.items()}
    cases = [*CASES, (leaf("owner", "is", owner_id), {"anna"}), (leaf("owner", "empty"), EVERYONE - {"anna"})]
    with factory() as session:
        for definition, expected in cases:
            ids_found, more = segments.contact_ids(session, definition, size=500, now=NOW)
            found = {names[i] for i in ids_found}
            assert not more
            assert found == expected, definition
            assert segments.count(session, definition, now=NOW) == len(expected), definition


def test_not_finds_everyone_else_also_those_whose_value_is_empty(factory, world) -> None:
    """NOT over every condition of the table is its complement: people without a category, an owner, a company
    or a free field (SQL NULL) are "not category A", "not owner 1", "not fields.Branche = Hochbau"."""
    ids, owner_id = world
    names = {v: k for k, v in ids.items()}
    cases = [*CASES, (leaf("owner", "is", owner_id), {"anna"}), (leaf("owner", "empty"), EVERYONE - {"anna"}),
             (leaf("owner", "in", [owner_id, owner_id + 1]), {"anna"})]
    with factory() as session:
        for definition, expected in cases:
            negated = {"not": definition}
            found = {names[i] for i in segments.contact_ids(session, negated, size=500, now=NOW)[0]}
            assert found == EVERYONE - expected, negated
            assert segments.count(session, negated, now=NOW) == len(EVERYONE - expected), negated
            twice = {names[i] for i in segments.contact_ids(session, {"not": negated}, size=500, now=NOW)[0]}
            assert twice == expected, negated


def test_the_list_is_a_page_in_the_contact_lists_order(factory, world) -> None:
    ids, _ = world
    customers = leaf("role", "is", "customer")
    with factory() as session:
        first, more = segments.contact_ids(session, customers, size=3, now=NOW)
        rest, after = segments.contact_ids(session, customers, page=2, size=3, now=NOW)
    assert (more, after) == (True, False)
    assert first + rest == [ids["anna"], ids["emil"], ids["bert"], ids["fritz"]]  # Ä as A, not after Z


@pytest.mark.parametrize(("definition", "path"), [
    ([], "definition"),
    ({"all": []}, "definition.all"),
    ({"all": [leaf("role", "is", "customer")], "any": [leaf("role", "is", "lead")]}, "definition"),
    ({"all": [leaf("rolle", "is", "customer")]}, "definition.all[0].field"),
    ({"any": [leaf("role", "is", "customer"), leaf("role", "is", "king")]}, "definition.any[1].value"),
    ({"not": leaf("role", "has", "customer")}, "definition.not.op"),
    (leaf("postcode", "between", ["87999", "80000"]), "definition.value"),
    (leaf("postcode", "between", ["8000", "87999"]), "definition.value[0]"),
    (leaf("last_contact", "older_than_days", "90"), "definition.value"),
    (leaf("created", "before", "1.1.2026"), "definition.value"),
    (leaf("created", "after", "2026-02-30"), "definition.value"),
    (leaf("tags", "has_any", ["VIP", 3]), "definition.value[1]"),
    ({**leaf("role", "is", "lead"), "extra": 1}, "definition.extra"),
    ({"all": [leaf("role", "is", "lead")] * 101}, "definition.all[100]"),
    ({"not": {"not": {"not": {"not": {"not": {"not": leaf("role", "is", "lead")}}}}}},
     "definition.not.not.not.not.not.not"),
    # ids beyond the id columns' range (PostgreSQL: 32 bit) are no staff ids
    (leaf("owner", "is", 2**31), "definition.value"),
    (leaf("owner", "in", [1, 10**30]), "definition.value[1]"),
    (leaf("owner", "is", 0), "definition.value"),
    (leaf("owner", "is", True), "definition.value"),
    (leaf("last_contact", "within_days", 10**30), "definition.value"),
])
def test_a_bad_definition_is_refused_with_its_path(factory, definition, path) -> None:
    with unit_of_work(factory) as session:
        with pytest.raises(ValidationError) as caught:
            segments.create(session, "Kaputt", definition, actor=None)
        assert caught.value.field == path
        assert session.scalar(select(Segment.id)) is None


def test_saved_segments_are_audited_and_exported(factory, world) -> None:
    _, owner_id = world
    bavaria = {"all": [leaf("role", "is", "Customer"), leaf("postcode", "between", BAVARIA)]}
    with unit_of_work(factory) as session:
        segment = segments.create(session, " Kunden  Bayern ", bavaria, actor=owner_id)
        segment_id = segment.id
        assert segment.name == "Kunden Bayern"
        assert segment.definition["all"][0] == {"field": "role", "op": "is", "value": "customer"}
        with pytest.raises(Conflict):
            segments.create(session, "kunden bayern", bavaria, actor=owner_id)
    with unit_of_work(factory) as session:
        segments.rename(session, segment_id, "Bayern", actor=owner_id)
        segments.update(session, segment_id, actor=owner_id, definition=leaf("role", "is", "lead"))
        exported = segments.export(session, segment_id, "csv", actor=owner_id)
        assert exported.count == 1 and "Carla Clever" in exported.content.decode("utf-8-sig")
    with unit_of_work(factory) as session:
        segments.delete(session, segment_id, actor=owner_id)
    with factory() as session:
        assert session.get(Segment, segment_id) is None
        trail = session.execute(select(AuditEntry.action, AuditEntry.details).where(
            AuditEntry.object_type == "segment", AuditEntry.object_id == segment_id).order_by(AuditEntry.id)).all()
        assert [action for action, _ in trail] == ["create", "update", "update", "delete"]
        assert trail[1][1]["name"] == ["Kunden Bayern", "Bayern"]
        assert all(staff == owner_id for staff in session.scalars(
            select(AuditEntry.staff_id).where(AuditEntry.object_type == "segment")))


def test_the_consent_condition_agrees_with_the_ledger(factory, world) -> None:
    """What a segment calls a person's consent is what the consent ledger says (the campaign relies on both)."""
    ids, _ = world
    with factory() as session:
        for channel in Channel:
            states = {i: (c.state.value if c else "unknown")
                      for i, c in ledger.current(session, ids.values(), channel).items()}
            for state in ("unknown", *(s.value for s in ConsentState)):
                found, _ = segments.contact_ids(session, leaf(f"consent.{channel.value}", "is", state), size=500)
                assert set(found) == {i for i, s in states.items() if s == state}, (channel, state)

"""A parsed condition tree → one SQLAlchemy where-clause over ``contacts`` (the same SQL on SQLite and PostgreSQL,
except for tags, which are a JSON list).

What the conditions mean where the words leave room:

- **Address** (postcode, city, country): a person's own address when it has one (a postcode or city of its own),
  else their company's. A postcode range compares strings and only matches German five-digit codes: the address's
  country must be DE or empty and the stored code exactly five characters, so "D-80331", "8010" (Graz) or
  "75001" (Paris, country FR) never fall into a German range. Codes are not rewritten on the way.
- **Dates** are UTC days: ``before`` a date is earlier than its start, ``after`` is from its start on (the two
  split the timeline); ``within_days`` N is the last N × 24 h, ``older_than_days`` N earlier than that.
- **Last contact** is a mail or call on the person's timeline (in either direction). ``before`` / ``older_than_days``
  mean "no contact since", so people never contacted count too; ``never`` is just those.
- **Open**: a ticket new, open or pending; an opportunity not won or lost; a quote final or sent (not draft,
  decided or superseded).
- **Consent** per channel is the state of the person's latest record for it, as the consent ledger has it (by
  ``occurred_at``, then id: a backdated import never outranks a later opt-out), "unknown" without one.
- **Bouncing**: at least one of the person's addresses bounces.
- **Free fields** compare the stored value as text with the given text exactly; ``exists`` means set to a
  non-empty value.
- **Not** holds for everyone the condition does not hold for, also where the value compared is empty: "not
  category A" includes the people without a category, "not owner 1" those without an owner."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, exists, false, func, not_, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import aliased

from crm_inbox.models import (
    Category,
    Company,
    ConsentRecord,
    Contact,
    ContactEmail,
    CustomerType,
    Interaction,
    InteractionContact,
    InteractionKind,
    Opportunity,
    Quote,
    QuoteState,
    Role,
    Ticket,
    TicketState,
)
from crm_inbox.models.marketing import Channel, ConsentState
from crm_inbox.segments.definition import UNKNOWN, All, Any_, Condition, Leaf, Not

CONTACT_KINDS = (InteractionKind.EMAIL, InteractionKind.CALL)
OPEN_TICKET = (TicketState.NEW, TicketState.OPEN, TicketState.PENDING)
CLOSED_STAGES = ("won", "lost")
OPEN_QUOTE = (QuoteState.FINAL, QuoteState.SENT)


def where(condition: Condition, *, dialect: str, now: datetime) -> ColumnElement[bool]:
    """The where-clause over ``Contact`` for ``condition``; ``dialect`` is the engine's ("sqlite",
    "postgresql"), ``now`` the moment relative days count from."""
    match condition:
        case All(parts):
            return and_(*(where(p, dialect=dialect, now=now) for p in parts))
        case Any_(parts):
            return or_(*(where(p, dialect=dialect, now=now) for p in parts))
        case Not(part):
            # A comparison with an empty value (SQL NULL) is NULL, and NOT NULL is NULL again: without the
            # coalesce "not category A" would leave out the people with no category at all.
            return not_(func.coalesce(where(part, dialect=dialect, now=now), false()))
        case Leaf():
            return _leaf(condition, dialect, now)
    raise TypeError(condition)  # pragma: no cover


def _leaf(leaf: Leaf, dialect: str, now: datetime) -> ColumnElement[bool]:
    field, op, value = leaf.field, leaf.op, leaf.value
    if field.startswith("fields."):
        return _free_field(field.removeprefix("fields."), op, value, dialect)
    if field.startswith("consent."):
        channel = Channel(field.removeprefix("consent."))
        states = value if op == "in" else (value,)
        return or_(*(_consent(channel, s) for s in states))
    match field:
        case "role":
            return _enum_match(Contact.role, Role, op, value)
        case "category":
            return _enum_match(Contact.category, Category, op, value)
        case "tags":
            return _tags(op, (value,) if op == "has" else value, dialect)
        case "company.industry":
            return _company(_text_match(Company.industry, op, value))
        case "company.size":
            return _company(_text_match(Company.size, op, value))
        case "company.customer_type":
            return _company(_enum_match(Company.customer_type, CustomerType, op, value))
        case "company.category":
            return _company(_enum_match(Company.category, Category, op, value))
        case "postcode":
            return _postcode(*value)
        case "city":
            return _address(Contact.city, Company.city, op, value)
        case "country":
            return _address(Contact.country, Company.country, op, value)
        case "owner":
            return _text_match(Contact.owner_id, op, value)
        case "created":
            return _dates(Contact.created_at, op, value, now)
        case "last_contact":
            return _last_contact(op, value, now)
        case "open_ticket":
            return _flagged(value, exists().where(Ticket.contact_id == Contact.id, Ticket.state.in_(OPEN_TICKET)))
        case "open_opportunity":
            return _flagged(value, exists().where(Opportunity.contact_id == Contact.id,
                                                  Opportunity.stage.not_in(CLOSED_STAGES)))
        case "open_quote":
            return _flagged(value, exists().where(Quote.contact_id == Contact.id, Quote.state.in_(OPEN_QUOTE)))
        case "bouncing":
            return _flagged(value, exists().where(ContactEmail.contact_id == Contact.id, ContactEmail.bouncing))
    raise ValueError(f"no query for {field} {op}")  # pragma: no cover (definition.parse checks)


def _enum_match(column: Any, kind: type[Enum], op: str, value: Any) -> ColumnElement[bool]:
    if op == "empty":
        return column.is_(None)
    values = [kind(v) for v in (value if op == "in" else (value,))]
    return column.in_(values)


def _text_match(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "empty":
        return column.is_(None)
    return column.in_(list(value) if op == "in" else [value])


def _company(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return Contact.company_id.in_(select(Company.id).where(condition))


def _address(own: Any, firm: Any, op: str, value: Any) -> ColumnElement[bool]:
    """The person's own value when they have an address of their own, else the company's."""
    values = list(value) if op == "in" else [value]
    has_own = _has_own_address()
    return or_(and_(has_own, own.in_(values)),
               and_(not_(has_own), _company(firm.in_(values))))


def _has_own_address() -> ColumnElement[bool]:
    return or_(Contact.postcode.is_not(None), Contact.city.is_not(None))


def _postcode(low: str, high: str) -> ColumnElement[bool]:
    def in_range(postcode: Any, country: Any) -> ColumnElement[bool]:
        return and_(postcode >= low, postcode <= high, func.length(postcode) == 5,
                    or_(country.is_(None), country == "DE"))

    has_own = _has_own_address()
    return or_(and_(has_own, in_range(Contact.postcode, Contact.country)),
               and_(not_(has_own), _company(in_range(Company.postcode, Company.country))))


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _since(op: str, value: Any, now: datetime) -> datetime:
    """The moment a date condition splits at."""
    if op in ("before", "after"):
        return _day_start(value)
    return now - timedelta(days=value)


def _dates(column: Any, op: str, value: Any, now: datetime) -> ColumnElement[bool]:
    at = _since(op, value, now)
    return column >= at if op in ("after", "within_days") else column < at


def _contact_since(at: datetime | None) -> Any:
    query = (exists().where(InteractionContact.contact_id == Contact.id,
                            Interaction.id == InteractionContact.interaction_id,
                            Interaction.kind.in_(CONTACT_KINDS)))
    return query if at is None else query.where(InteractionContact.occurred_at >= at)


def _last_contact(op: str, value: Any, now: datetime) -> ColumnElement[bool]:
    if op == "never":
        return not_(_contact_since(None))
    contacted = _contact_since(_since(op, value, now))
    return contacted if op in ("after", "within_days") else not_(contacted)


def _flagged(value: bool, condition: Any) -> ColumnElement[bool]:
    return condition if value else not_(condition)


def _consent(channel: Channel, state: str) -> ColumnElement[bool]:
    mine = and_(ConsentRecord.contact_id == Contact.id, ConsentRecord.channel == channel)
    if state == UNKNOWN:
        return not_(exists().where(mine))
    newer = aliased(ConsentRecord)
    later = or_(newer.occurred_at > ConsentRecord.occurred_at,
                and_(newer.occurred_at == ConsentRecord.occurred_at, newer.id > ConsentRecord.id))
    latest = not_(exists().where(newer.contact_id == ConsentRecord.contact_id, newer.channel == channel, later))
    return exists().where(mine, ConsentRecord.state == ConsentState(state), latest)


def _tags(op: str, tags: Sequence[str], dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        as_jsonb = cast(Contact.tags, JSONB)
        if op == "has_any":
            return or_(*(as_jsonb.contains([t]) for t in tags))
        return as_jsonb.contains(list(tags))
    each = func.json_each(Contact.tags).table_valued("value")
    if op == "has_all":
        return and_(*(exists().select_from(each).where(each.c.value == t) for t in tags))
    return exists().select_from(each).where(each.c.value.in_(list(tags)))


def _free_field(key: str, op: str, value: Any, dialect: str) -> ColumnElement[bool]:
    def holds(stored: Any) -> ColumnElement[bool]:
        return and_(stored.is_not(None), stored != "") if op == "exists" else stored == value

    if dialect == "postgresql":
        return holds(cast(Contact.fields[key].as_string(), String))
    # SQLite's path lookup compares keys as escaped in the JSON text ("Gr\\u00f6\\u00dfe"); json_each unescapes.
    each = func.json_each(Contact.fields).table_valued("key", "value")
    return exists().select_from(each).where(each.c.key == key, holds(cast(each.c.value, String)))

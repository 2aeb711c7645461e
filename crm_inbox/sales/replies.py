"""Replies find their deal: an incoming mail that answers our mail about a deal (our Message-ID in its
In-Reply-To/References: a quote mail, or any mail sent from the CRM on the deal) or that names a quote or order
number in its subject or text (``AN-2026-0042``, ``AN-2026-0042-2``, ``AB-2026-0007``: the number alone suffices,
for clients and relays that rewrite the headers) is linked to that opportunity, with the reason, and completes
the deal's follow-up reminders.

Precision first: a deal is linked only when it belongs to whom the mail is from (the deal's contact is one of the
mail's contacts, or the deal's company one of theirs). A number of another customer's deal is not linked; the mail
keeps the suggestion in ``details["deal_suggestions"]`` and in its reason, for staff to decide (``suggested``
lists such mail for triage). Automatic mail (auto-replies, bounces) and mail we send never link.

``decide`` is the decision, facts in and decision out; ``file_reply`` gathers the facts and applies it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import CompoundSelect, Select, bindparam, literal_column, select, union_all
from sqlalchemy.orm import Session

from crm_inbox import audit
from crm_inbox.config import SalesSettings, Settings
from crm_inbox.errors import ValidationError
from crm_inbox.mail.parse import referenced
from crm_inbox.models import (
    Direction,
    Interaction,
    InteractionKind,
    InteractionOpportunity,
    Opportunity,
    Order,
    Quote,
    utcnow,
)
from crm_inbox.sales import follow_up
from crm_inbox.sales.opportunities import link_interaction

SCAN_CHARS = 200_000  # of a mail's text: a number is near the top (or in the quoted mail below it)


# --- the decision ---

@dataclass(frozen=True)
class Deal:
    """An opportunity as the decision sees it."""

    id: int
    title: str
    contact_id: int | None
    company_id: int | None


@dataclass(frozen=True)
class Pointer:
    """One way the mail points at a deal: "answers our mail of 2026-03-02", "names AN-2026-0042"."""

    deal: Deal
    reason: str


@dataclass(frozen=True)
class ReplyFacts:
    direction: Direction
    automatic: bool
    spoof_suspected: bool
    contact_ids: frozenset[int]  # whom the mail was linked to
    company_ids: frozenset[int]  # their companies
    pointers: tuple[Pointer, ...]  # in order of strength: references first, then numbers


@dataclass(frozen=True)
class Link:
    opportunity_id: int
    reason: str


@dataclass(frozen=True)
class Suggestion:
    opportunity_id: int
    text: str


@dataclass(frozen=True)
class Decision:
    links: tuple[Link, ...] = ()
    suggestions: tuple[Suggestion, ...] = ()


def decide(facts: ReplyFacts) -> Decision:
    """Which deals the mail is linked to, and which are only suggested (see the module docstring)."""
    if facts.direction != Direction.IN or facts.automatic or not facts.pointers:
        return Decision()
    reasons: dict[int, list[str]] = {}
    deals: dict[int, Deal] = {}
    for pointer in facts.pointers:
        deals.setdefault(pointer.deal.id, pointer.deal)
        if pointer.reason not in reasons.setdefault(pointer.deal.id, []):
            reasons[pointer.deal.id].append(pointer.reason)
    links: list[Link] = []
    suggestions: list[Suggestion] = []
    for deal_id, deal in deals.items():
        why = "; ".join(reasons[deal_id])
        if facts.spoof_suspected:
            suggestions.append(Suggestion(deal_id, f"{why}: deal {deal_id} “{deal.title}”, not linked: the mail "
                                                   "may be spoofed"))
        elif not facts.contact_ids and not facts.company_ids:
            suggestions.append(Suggestion(deal_id, f"{why}: deal {deal_id} “{deal.title}” (the sender is unknown)"))
        elif (deal.contact_id is not None and deal.contact_id in facts.contact_ids) or (
                deal.company_id is not None and deal.company_id in facts.company_ids):
            links.append(Link(deal_id, why))
        else:
            suggestions.append(Suggestion(deal_id, f"{why}: deal {deal_id} “{deal.title}” belongs to another "
                                                   "customer, not linked"))
    return Decision(tuple(links), tuple(suggestions))


# --- quote and order numbers in text ---

@dataclass(frozen=True)
class NamedNumber:
    kind: str  # "quote" | "order"
    number: str  # as stored (the version suffix dropped): "AN-2026-0042"
    written: str  # as found: "AN-2026-0042-2"


def _field_pattern(fmt: str, prefix: str) -> str | None:
    """A regular expression for numbers made by ``fmt`` ("AN-{year}-{seq:04d}"); None if it has no ``seq``."""
    parts: list[str] = []
    seen: set[str] = set()
    for literal, field, _spec, _conversion in string.Formatter().parse(fmt):
        parts.append(re.escape(literal))
        if field is None:
            continue
        if field not in ("year", "seq"):
            return None
        group = f"{prefix}_{field}"
        digits = r"\d{4}" if field == "year" else r"\d{1,12}"
        parts.append(rf"(?P={group})" if field in seen else rf"(?P<{group}>{digits})")
        seen.add(field)
    return "".join(parts) if "seq" in seen else None


@lru_cache(maxsize=8)
def _number_regex(quote_format: str, order_format: str) -> re.Pattern[str] | None:
    quote = _field_pattern(quote_format, "q")
    order = _field_pattern(order_format, "o")
    alternatives = ([rf"(?P<quote>{quote})(?:-(?P<q_version>\d{{1,3}}))?"] if quote else []) + (
        [rf"(?P<order>{order})"] if order else [])
    if not alternatives:
        return None
    # Not inside a longer word or number ("_" counts as a separator: "Angebot_AN-2026-0042.pdf").
    return re.compile(rf"(?<![^\W_])(?:{'|'.join(alternatives)})(?![^\W_])", re.IGNORECASE)


def named_numbers(text: str, sales: SalesSettings) -> list[NamedNumber]:
    """The quote and order numbers ``text`` names, in order, each once, in their stored form (the digits as
    the format prints them, the letters as configured: "an-2026-42" names AN-2026-0042)."""
    regex = _number_regex(sales.quote_number_format, sales.order_number_format)
    if regex is None:
        return []
    found: dict[tuple[str, str], NamedNumber] = {}
    for match in regex.finditer(text[:SCAN_CHARS]):
        kind, fmt, prefix = (("quote", sales.quote_number_format, "q") if match.group("quote") is not None
                             else ("order", sales.order_number_format, "o"))
        year = match.group(f"{prefix}_year") if f"{prefix}_year" in regex.groupindex else None
        number = fmt.format(year=int(year) if year else 0, seq=int(match.group(f"{prefix}_seq")))
        found.setdefault((kind, number), NamedNumber(kind, number, match.group(0)))
    return list(found.values())


# --- gathering the facts, applying the decision ---

def _deal(opp: Opportunity) -> Deal:
    return Deal(opp.id, opp.title, opp.contact_id, opp.company_id)


# Asked for every customer's mail that answers another, as one statement (built once: SQLAlchemy reuses its
# compiled form): the deals of our mail it answers (part 0) and of the quotes we sent it answers (part 1).
DEALS_OF_REFS: CompoundSelect = union_all(
    select(literal_column("0").label("part"), InteractionOpportunity.opportunity_id,
           Interaction.occurred_at.label("at"), Interaction.id.label("row_id"))
    .join(Interaction, Interaction.id == InteractionOpportunity.interaction_id)
    .where(Interaction.source_ref.in_(bindparam("refs", expanding=True)), Interaction.direction == Direction.OUT),
    select(literal_column("1"), Quote.opportunity_id, Quote.sent_at, Quote.id)
    .where(Quote.sent_message_id.in_(bindparam("refs", expanding=True))))


def _newest_first(row: Any) -> tuple[int, float]:
    """Our mail by its time, newest first; then the quotes, the latest first."""
    return (row.part, -(row.at.timestamp() if row.part == 0 else row.row_id))


def pointers(session: Session, settings: Settings, *, subject: str, text: str,
             references: Sequence[str], answered: Sequence[Any] | None = None) -> list[Pointer]:
    """The deals the mail points at: by our Message-IDs it answers, then by the numbers it names. ``answered``:
    the rows of ``DEALS_OF_REFS`` (``part``, ``opportunity_id``, ``at``, ``row_id``) when the caller read them
    already (the pipeline reads a reply's look-ups in one statement), else they are read here."""
    found: list[tuple[int, str]] = []
    refs = referenced(references)
    if refs:
        # Core on the session's connection (rows of earlier mails: nothing pending to flush): half the cost
        # of the ORM's execution, and a reply runs these for every mail it references.
        if answered is None:
            answered = session.connection().execute(DEALS_OF_REFS, {"refs": refs}).all()
        rows = sorted(answered, key=_newest_first)
        first: dict[int, datetime | None] = {}
        for row in rows:  # the quote mail is usually both: one reason per deal
            first.setdefault(row.opportunity_id, row.at)
        found += [(opp_id, f"answers our mail of {when:%Y-%m-%d}" if when else "answers our mail")
                  for opp_id, when in first.items()]
    numbers = named_numbers(f"{subject}\n{text}", settings.sales)
    quotes = [n.number for n in numbers if n.kind == "quote"]
    orders = [n.number for n in numbers if n.kind == "order"]
    by_number: dict[str, set[int]] = {}
    if quotes:
        for number, opp_id in session.execute(select(Quote.number, Quote.opportunity_id).where(
                Quote.number.in_(quotes))):
            by_number.setdefault(f"quote:{number}", set()).add(opp_id)
    if orders:
        for number, order_opp in session.execute(select(Order.number, Order.opportunity_id).where(
                Order.number.in_(orders), Order.opportunity_id.is_not(None))):
            if order_opp is not None:
                by_number.setdefault(f"order:{number}", set()).add(order_opp)
    for named in numbers:
        for opp_id in sorted(by_number.get(f"{named.kind}:{named.number}", ())):
            found.append((opp_id, f"names {named.written}"))
    ids = {opp_id for opp_id, _ in found}
    deals = {o.id: _deal(o) for o in session.execute(
        select(Opportunity).where(Opportunity.id.in_(ids))).scalars()} if ids else {}
    return [Pointer(deals[opp_id], reason) for opp_id, reason in found if opp_id in deals]


def apply(session: Session, interaction: Interaction, decision: Decision) -> list[str]:
    """Link, complete the follow-ups, keep the suggestions on the mail; returns notes for its reason."""
    notes: list[str] = []
    for link in decision.links:
        opp = session.get_one(Opportunity, link.opportunity_id)
        link_interaction(session, opp, interaction, link.reason)
        follow_up.customer_replied(session, opp.id)
        notes.append(f"on deal {opp.id} “{opp.title}”: {link.reason}")
    if decision.suggestions:
        interaction.details = {**interaction.details, "deal_suggestions": [
            {"opportunity_id": s.opportunity_id, "text": s.text} for s in decision.suggestions]}
        notes += [f"deal suggested, not linked: {s.text}" for s in decision.suggestions]
    return notes


def file_reply(session: Session, settings: Settings, interaction: Interaction, *, direction: Direction,
               automatic: bool, spoof_suspected: bool, contacts: Iterable[tuple[int, int | None]],
               subject: str, text: str, references: Sequence[str], answered: Sequence[Any] | None = None,
               ) -> list[str]:
    """The pipeline's step: ``contacts`` are (contact id, company id) of whom the mail was linked to;
    ``answered``: see ``pointers``."""
    if direction != Direction.IN or automatic:
        return []  # no query at all for most mail
    found = pointers(session, settings, subject=subject, text=text, references=references, answered=answered)
    if not found:
        return []
    people = list(contacts)
    facts = ReplyFacts(direction, automatic, spoof_suspected, frozenset(c for c, _ in people),
                       frozenset(company for _, company in people if company is not None), tuple(found))
    return apply(session, interaction, decide(facts))


def link_by_hand(session: Session, interaction: Interaction, opp: Opportunity, *, by: int | None) -> bool:
    """Staff decided a suggested (or any) mail belongs to the deal: linked with that reason, the suggestion
    dropped, the follow-ups completed when it is the customer's mail, audited. False if it was linked already."""
    if interaction.kind not in (InteractionKind.EMAIL, InteractionKind.CALL, InteractionKind.MEETING,
                                InteractionKind.NOTE, InteractionKind.DOCUMENT):
        raise ValidationError("interaction_id", "only mail, calls, meetings, notes and documents go on a deal")
    linked = link_interaction(session, opp, interaction, f"linked by staff user {by}")
    left = [s for s in interaction.details.get("deal_suggestions", []) if s.get("opportunity_id") != opp.id]
    if "deal_suggestions" in interaction.details:
        details = {k: v for k, v in interaction.details.items() if k != "deal_suggestions"}
        interaction.details = details | ({"deal_suggestions": left} if left else {})
    if interaction.direction == Direction.IN and interaction.kind == InteractionKind.EMAIL:
        follow_up.customer_replied(session, opp.id)
    audit.record(session, by, "link", "interaction", interaction.id, {"opportunity_id": opp.id})
    return linked


def suggested(days: int = 30) -> Select[Interaction]:
    """Mail of the last ``days`` with a deal suggested and not linked, newest first (for triage). Bounded by
    time, so the JSON test runs on one index range of ``occurred_at``, never the whole table."""
    linked = select(InteractionOpportunity.interaction_id).where(
        InteractionOpportunity.interaction_id == Interaction.id).exists()
    since: datetime = utcnow() - timedelta(days=days)
    return (select(Interaction).where(
        Interaction.occurred_at >= since, Interaction.kind == InteractionKind.EMAIL,
        Interaction.direction == Direction.IN, Interaction.details["deal_suggestions"].as_string().is_not(None),
        ~linked).order_by(Interaction.occurred_at.desc(), Interaction.id.desc()))

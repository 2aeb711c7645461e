"""What a reply answers, read in one statement: the tickets, deals and campaign mails its In-Reply-To and
References name.

Each capability keeps its own look-up and its own decision (``tickets.service.TICKETS_BY_REF``,
``sales.replies.DEALS_OF_REFS``, ``campaigns.responses.RECIPIENTS_BY_MESSAGE_ID``); here they are only run
together, as one UNION ALL, because every reply needs all three and each statement costs a round trip and
SQLAlchemy's execution (about 0.15 ms on PostgreSQL), more than the database's work on it. The rows go back to
each capability in the shape of its own look-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Integer, String, cast, literal, null, select, union_all
from sqlalchemy.orm import Session

from crm_inbox.campaigns import responses as campaign_responses
from crm_inbox.mail.parse import referenced
from crm_inbox.sales import replies as sales_replies
from crm_inbox.tickets import service as ticket_service


class DealRow(NamedTuple):
    """A row of ``sales.replies.DEALS_OF_REFS``."""

    part: int
    opportunity_id: int
    at: Any
    row_id: int


@dataclass(frozen=True)
class Answered:
    """The rows of each capability's look-up, as it would have read them itself."""

    tickets: list[tuple[int, int]]
    deals: list[DealRow]
    campaign_mails: list[tuple[int, str]]


_deals = sales_replies.DEALS_OF_REFS.subquery("deals")
_tickets = ticket_service.TICKETS_BY_REF.subquery("tickets")
_mails = campaign_responses.RECIPIENTS_BY_MESSAGE_ID.subquery("campaign_mails")
# One shape for the three: (source, part, a, b, at, ref). The deals come first: a UNION's columns take their
# types from its first SELECT, and theirs carry the time's type (SQLite returns it as text otherwise).
_ANSWERED = union_all(
    select(literal("deal").label("source"), _deals.c.part, _deals.c.opportunity_id.label("a"),
           _deals.c.row_id.label("b"), _deals.c.at, cast(null(), String).label("ref")),
    select(literal("ticket"), cast(null(), Integer), _tickets.c.id, _tickets.c.ticket_id, null(), null()),
    select(literal("campaign"), cast(null(), Integer), _mails.c.id, cast(null(), Integer), null(),
           _mails.c.message_id),
)


def look_up(session: Session, references: Sequence[str]) -> Answered | None:
    """What a mail with these In-Reply-To and References answers; None when it names none."""
    refs = referenced(references)
    if not refs:
        return None
    # Core on the session's connection: the rows are earlier mails', nothing pending needs a flush.
    rows = session.connection().execute(_ANSWERED, {
        "refs": refs, "variants": campaign_responses.variants(references)}).all()
    return Answered(
        tickets=[(r.a, r.b) for r in rows if r.source == "ticket"],
        deals=[DealRow(r.part, r.a, r.at, r.b) for r in rows if r.source == "deal"],
        campaign_mails=[(r.a, r.ref) for r in rows if r.source == "campaign"])

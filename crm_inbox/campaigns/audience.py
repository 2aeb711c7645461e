"""Who a campaign reaches: every member of its segment decided by the consent policy (``consent.policy.
may_receive``) with the facts only the campaign knows: the address it would go to, a purchase, B2B, a bouncing
or erased address, a postal address for letters.

Decided in batches (a few queries per 1000 people), so 50,000 members are decided in seconds; the same
decision is made for the preview (how many are left out, and why) and for the send ledger.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Integer, any_, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from crm_inbox import outbox
from crm_inbox.config import Settings
from crm_inbox.consent import ledger, policy
from crm_inbox.models import Channel, Company, Contact, ContactEmail, CustomerType, Order
from crm_inbox.segments import service as segments

REASONS: dict[str, str] = {
    **policy.REASONS,
    "no_address": "no e-mail address",
    "no_postal_address": "no postal address",
}


@dataclass(frozen=True)
class Member:
    contact_id: int
    address: str | None  # the e-mail address the mail goes to (None for letters, or none usable)
    allowed: bool
    basis: str | None  # when allowed: consent, existing_customer, legitimate_interest, …
    reason: str | None  # when left out: a key of REASONS


@dataclass(frozen=True)
class Preview:
    included: int
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> count


def id_in(session: Session, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """``column IN (ids)``; on PostgreSQL ``= ANY(array)``: one parameter instead of a thousand, which psycopg
    would parse anew for every batch (its statement cache keeps short queries only)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(list(ids), ARRAY(Integer)))
    return column.in_(ids)


def _has_postal(street: str | None, postcode: str | None, city: str | None) -> bool:
    # A letter needs at least a town and a street or postcode to be deliverable.
    return bool((city or "").strip()) and bool((street or "").strip() or (postcode or "").strip())


def _choose(found: list[tuple[str, bool]], suppressed: set[str]) -> tuple[str | None, bool, bool]:
    """(address, bouncing, erased): the first address that neither bounces nor is suppressed; else why not."""
    # An address the outbox would refuse (a list, a display name) is no address to mail.
    found = [(email, bouncing) for email, bouncing in found if outbox.single_recipient(email)]
    for email, bouncing in found:
        if not bouncing and email not in suppressed:
            return email, False, False
    if any(not bouncing for _, bouncing in found):  # the working ones are all on the suppression list
        return next(e for e, b in found if not b), False, True
    return (found[0][0], True, False) if found else (None, False, False)


def decide(session: Session, settings: Settings, contact_ids: Sequence[int], channel: Channel) -> list[Member]:
    """The decision for each of these contacts (in the given order; unknown ids are skipped)."""
    del settings  # the policy needs none today; kept so a setting (e.g. B2B rules) can join without new callers
    ids = list(dict.fromkeys(contact_ids))
    if not ids:
        return []
    people = {row[0]: row[1:] for row in session.execute(
        select(Contact.id, Contact.company_id, Company.customer_type, Contact.street, Contact.postcode,
               Contact.city, Company.street, Company.postcode, Company.city)
        .outerjoin(Company, Company.id == Contact.company_id).where(id_in(session, Contact.id, ids)))}
    consents = ledger.current(session, people, channel)
    buyers = set(session.scalars(select(Order.contact_id).where(id_in(session, Order.contact_id, ids)).distinct()))
    addresses: dict[int, list[tuple[str, bool]]] = {}
    suppressed: set[str] = set()
    if channel == Channel.EMAIL:
        for contact_id, email, bouncing in session.execute(
                select(ContactEmail.contact_id, ContactEmail.email, ContactEmail.bouncing)
                .where(id_in(session, ContactEmail.contact_id, ids)).order_by(ContactEmail.id)):
            addresses.setdefault(contact_id, []).append((email, bool(bouncing)))
        suppressed = ledger.suppressed(session, Channel.EMAIL,
                                       {e for found in addresses.values() for e, _ in found})
    out: list[Member] = []
    for contact_id in ids:
        if contact_id not in people:
            continue
        company_id, customer_type, street, postcode, city, c_street, c_postcode, c_city = people[contact_id]
        b2b = company_id is not None and customer_type != CustomerType.B2C
        address, bouncing, erased = None, False, False
        if channel == Channel.EMAIL:
            address, bouncing, erased = _choose(addresses.get(contact_id, []), suppressed)
        decision = policy.may_receive(channel, consents.get(contact_id), has_order=contact_id in buyers, b2b=b2b,
                                      bouncing=bouncing, erased=erased)
        reason = decision.reason
        if decision.allowed and channel == Channel.EMAIL and address is None:
            reason = "no_address"
        elif decision.allowed and channel == Channel.LETTER and not (
                _has_postal(street, postcode, city) or _has_postal(c_street, c_postcode, c_city)):
            reason = "no_postal_address"
        if reason is not None:
            out.append(Member(contact_id, address if channel == Channel.EMAIL else None, False, None, reason))
        else:
            out.append(Member(contact_id, address, True, decision.basis, None))
    return out


def members(session: Session, settings: Settings, segment_id: int, channel: Channel, *,
            batch: int = 1000) -> Iterator[list[Member]]:
    """Every member of the segment, decided, in batches of ``batch`` (by contact id). The ids are read once at
    the start: who joins the segment while the batches are decided is not in this campaign."""
    segment = segments.get(session, segment_id)
    ids = list(session.scalars(segments.member_ids(session, segment).order_by(Contact.id)))
    for start in range(0, len(ids), batch):
        yield decide(session, settings, ids[start:start + batch], channel)


def preview(session: Session, settings: Settings, segment_id: int, channel: Channel) -> Preview:
    """How many the campaign would reach now, and how many are left out for which reason."""
    included = 0
    left_out: Counter[str] = Counter()
    for chunk in members(session, settings, segment_id, channel):
        for member in chunk:
            if member.allowed:
                included += 1
            else:
                left_out[member.reason or "no_consent"] += 1
    return Preview(included, dict(sorted(left_out.items(), key=lambda item: (-item[1], item[0]))))

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
from crm_inbox.models import Channel, Company, ConsentSuppression, Contact, ContactEmail, CustomerType, Order
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


@dataclass(frozen=True)
class ContactRef:
    """A contact by id, for ``timeline.service.record_interaction`` (it needs only the id, not the row)."""

    id: int


def suppression_reason(reason: str) -> str:
    """The reason a suppressed address leaves its person out (a key of REASONS): an erased person's address
    "erased", any other (an opt-out by link) "opted_out". The same at the start and at release."""
    return "erased" if reason == "erased" else "opted_out"


def _suppressions(session: Session, addresses: set[str]) -> dict[str, str]:
    """The addresses on the e-mail suppression list, with the reason each was put there."""
    by_digest: dict[str, list[str]] = {}
    for address in addresses:
        by_digest.setdefault(ledger.address_digest(Channel.EMAIL, address), []).append(address)
    digests = sorted(by_digest)
    found: dict[str, str] = {}
    for start in range(0, len(digests), 1000):
        for digest, reason in session.execute(select(ConsentSuppression.digest, ConsentSuppression.reason).where(
                ConsentSuppression.channel == Channel.EMAIL,
                ConsentSuppression.digest.in_(digests[start:start + 1000]))):
            found.update(dict.fromkeys(by_digest[digest], reason))
    return found


def _choose(found: list[tuple[str, bool]], suppressed: dict[str, str]) -> tuple[str | None, bool, str | None]:
    """(address, bouncing, suppression reason): the first address that neither bounces nor is suppressed; else
    why not."""
    # An address the outbox would refuse (a list, a display name) is no address to mail.
    found = [(email, bouncing) for email, bouncing in found if outbox.single_recipient(email)]
    for email, bouncing in found:
        if not bouncing and email not in suppressed:
            return email, False, None
    working = [email for email, bouncing in found if not bouncing]
    if working:  # the working ones are all on the suppression list: an erasure says more than an opt-out
        reasons = {suppression_reason(suppressed[email]) for email in working}
        return working[0], False, "erased" if "erased" in reasons else "opted_out"
    return (found[0][0], True, None) if found else (None, False, None)


def decide(session: Session, contact_ids: Sequence[int], channel: Channel) -> list[Member]:
    """The decision for each of these contacts (in the given order; unknown ids are skipped)."""
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
    suppressed: dict[str, str] = {}
    if channel == Channel.EMAIL:
        for contact_id, email, bouncing in session.execute(
                select(ContactEmail.contact_id, ContactEmail.email, ContactEmail.bouncing)
                .where(id_in(session, ContactEmail.contact_id, ids)).order_by(ContactEmail.id)):
            addresses.setdefault(contact_id, []).append((email, bool(bouncing)))
        suppressed = _suppressions(session, {e for found in addresses.values() for e, _ in found})
    out: list[Member] = []
    for contact_id in ids:
        if contact_id not in people:
            continue
        company_id, customer_type, street, postcode, city, c_street, c_postcode, c_city = people[contact_id]
        b2b = company_id is not None and customer_type != CustomerType.B2C
        address, bouncing, suppression = None, False, None
        if channel == Channel.EMAIL:
            address, bouncing, suppression = _choose(addresses.get(contact_id, []), suppressed)
        decision = policy.may_receive(channel, consents.get(contact_id), has_order=contact_id in buyers, b2b=b2b,
                                      bouncing=bouncing, erased=suppression == "erased")
        reason = decision.reason
        if suppression == "opted_out" and reason != "erased":
            reason = "opted_out"  # its working addresses were opted out by their links
        if reason is None and channel == Channel.EMAIL and address is None:
            reason = "no_address"
        elif reason is None and channel == Channel.LETTER and not (
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
        yield decide(session, ids[start:start + batch], channel)


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

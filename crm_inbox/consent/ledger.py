"""The consent ledger: one append-only record per change of a person's consent for a channel.

Records are only ever added (``record``), never changed; the person's erasure deletes them (``privacy.consent``).
The current state of a person and channel is the latest record by ``occurred_at`` (when the person did it), then
by id: an old consent imported later never outranks a newer opt-out. No record means "unknown".

Also here: the suppression list, addresses (as SHA-256 hashes) that campaigns never write to although no contact
holds them any more (see ``ConsentSuppression``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_inbox import audit
from crm_inbox.consent.policy import Consent
from crm_inbox.errors import Conflict, NotFound, ValidationError
from crm_inbox.models import (
    Channel,
    ConsentRecord,
    ConsentState,
    ConsentSuppression,
    Contact,
    LegalBasis,
    utcnow,
)

MAX_SOURCE = 50
MAX_PROOF = 10_000  # characters of the proof as JSON: a form's fields, a link id, a quoted sentence, not a file
CLOCK_SKEW = timedelta(minutes=5)  # how far in the future "when the person did it" may lie (a client's clock)
_CHUNK = 500


_E = TypeVar("_E", Channel, ConsentState, LegalBasis)


def _enum(kind: type[_E], field: str, value: _E | str) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise ValidationError(field, f"must be one of {', '.join(m.value for m in kind)}") from None


def record(session: Session, contact_id: int, channel: Channel | str, state: ConsentState | str,
           legal_basis: LegalBasis | str | None, source: str, proof: dict[str, Any] | None = None,
           occurred_at: datetime | None = None, actor: int | None = None) -> ConsentRecord:
    """Append a change of the person's consent for the channel; audited. ``source`` says how it came (web_form,
    double_opt_in, staff, import, unsubscribe, …), ``proof`` what shows it (IP, link id, mail id, the text of
    the form); ``occurred_at`` when the person did it (default now); ``actor`` the staff user who recorded it.

    Rules: an opt-in names its legal basis; an opt-out and a pending double opt-in have none but consent;
    ``existing_customer`` is for e-mail only (§ 7(3) UWG) and never after the person objected on the channel
    (only their own consent opts them in again); ``presumed_consent`` is for the phone only; a pending double
    opt-in is e-mail only."""
    channel = _enum(Channel, "channel", channel)
    state = _enum(ConsentState, "state", state)
    basis = _enum(LegalBasis, "legal_basis", legal_basis) if legal_basis not in (None, "") else None
    source = " ".join((source or "").split())
    if not source:
        raise ValidationError("source", "is required")
    if len(source) > MAX_SOURCE:
        raise ValidationError("source", f"must be at most {MAX_SOURCE} characters")
    proof = dict(proof or {})
    if len(repr(proof)) > MAX_PROOF:
        raise ValidationError("proof", f"must be at most {MAX_PROOF} characters")
    now = utcnow()
    occurred_at = occurred_at or now
    if occurred_at.tzinfo is None:
        raise ValidationError("occurred_at", "needs a time zone")
    if occurred_at > now + CLOCK_SKEW:
        raise ValidationError("occurred_at", "lies in the future")
    if state == ConsentState.OPTED_IN and basis is None:
        raise ValidationError("legal_basis", "an opt-in names its legal basis")
    if state == ConsentState.OPTED_OUT and basis is not None:
        raise ValidationError("legal_basis", "an opt-out has no legal basis")
    if state == ConsentState.PENDING:
        if channel != Channel.EMAIL:
            raise ValidationError("state", "a double opt-in is for e-mail only")
        if basis not in (None, LegalBasis.CONSENT):
            raise ValidationError("legal_basis", "a double opt-in asks for consent")
        basis = LegalBasis.CONSENT
    if basis == LegalBasis.EXISTING_CUSTOMER and channel != Channel.EMAIL:
        raise ValidationError("legal_basis", "the existing-customer exception (§ 7(3) UWG) is for e-mail only")
    if basis == LegalBasis.PRESUMED_CONSENT and channel != Channel.PHONE:
        raise ValidationError("legal_basis", "presumed consent is for phone calls to businesses only")
    if session.get(Contact, contact_id) is None:
        raise NotFound(f"no contact {contact_id}")
    if basis == LegalBasis.EXISTING_CUSTOMER and state == ConsentState.OPTED_IN and objected(
            session, contact_id, channel):
        raise Conflict("the person objected to marketing mail: only their own consent can opt them in again")
    row = ConsentRecord(contact_id=contact_id, channel=channel, state=state, legal_basis=basis, source=source,
                        proof=proof, occurred_at=occurred_at, recorded_by_id=actor)
    session.add(row)
    session.flush()
    audit.record(session, actor, "consent", "contact", contact_id,
                 {"record": row.id, "channel": channel.value, "state": state.value,
                  "legal_basis": basis.value if basis else None, "source": source})
    return row


def objected(session: Session, contact_id: int, channel: Channel) -> bool:
    """Did the person ever opt out on the channel?"""
    return session.execute(select(ConsentRecord.id).where(
        ConsentRecord.contact_id == contact_id, ConsentRecord.channel == channel,
        ConsentRecord.state == ConsentState.OPTED_OUT).limit(1)).first() is not None


def latest_query(channel: Channel) -> Select[Any]:
    """``(contact_id, record id)`` of each person's latest record for the channel: for joining in bulk (the
    segments' consent condition). Ordered by the person's time, then id, on the ledger's index."""
    ranked = select(ConsentRecord.contact_id, ConsentRecord.id, func.row_number().over(
        partition_by=ConsentRecord.contact_id,
        order_by=(ConsentRecord.occurred_at.desc(), ConsentRecord.id.desc())).label("rank")) \
        .where(ConsentRecord.channel == channel).subquery()
    return select(ranked.c.contact_id, ranked.c.id).where(ranked.c.rank == 1)


def current(session: Session, contact_ids: Iterable[int], channel: Channel | str) -> dict[int, Consent | None]:
    """Each person's current consent for the channel (None: unknown): the state, its basis and time, and whether
    they ever objected there (which ends the existing-customer exception for good)."""
    channel = _enum(Channel, "channel", channel)
    ids = sorted(set(contact_ids))
    out: dict[int, Consent | None] = dict.fromkeys(ids)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        rows = session.execute(
            select(ConsentRecord.contact_id, ConsentRecord.id, ConsentRecord.state, ConsentRecord.legal_basis,
                   ConsentRecord.occurred_at)
            .where(ConsentRecord.contact_id.in_(chunk), ConsentRecord.channel == channel)
            .order_by(ConsentRecord.contact_id, ConsentRecord.occurred_at, ConsentRecord.id)).all()
        opted_out: set[int] = set()
        for contact_id, record_id, state, basis, occurred_at in rows:  # the last one per person wins
            if state == ConsentState.OPTED_OUT:
                opted_out.add(contact_id)
            out[contact_id] = Consent(state=state, basis=basis, occurred_at=occurred_at, record_id=record_id,
                                      objected=contact_id in opted_out)
    return out


def records(session: Session, contact_id: int, channel: Channel | None = None) -> list[ConsentRecord]:
    """The person's records, oldest first (by when the person did it)."""
    query = select(ConsentRecord).where(ConsentRecord.contact_id == contact_id)
    if channel is not None:
        query = query.where(ConsentRecord.channel == channel)
    return list(session.execute(query.order_by(ConsentRecord.channel, ConsentRecord.occurred_at,
                                               ConsentRecord.id)).scalars())


# --- suppression ---

def normalise(channel: Channel, address: str) -> str:
    """An e-mail address lower-cased (as contacts keep them); a phone number as given (E.164)."""
    address = address.strip()
    return address.lower() if channel == Channel.EMAIL else address


def address_digest(channel: Channel, address: str) -> str:
    return hashlib.sha256(normalise(channel, address).encode("utf-8", "surrogateescape")).hexdigest()


def suppress(session: Session, channel: Channel, address: str, reason: str) -> bool:
    """Add the address to the suppression list; False when it was there already (idempotent, also when two
    requests race)."""
    return suppress_digest(session, channel, address_digest(channel, address), reason)


def suppress_digest(session: Session, channel: Channel, digest: str, reason: str) -> bool:
    if session.execute(select(ConsentSuppression.id).where(ConsentSuppression.channel == channel,
                                                           ConsentSuppression.digest == digest)).first():
        return False
    try:
        with session.begin_nested():
            session.add(ConsentSuppression(channel=channel, digest=digest, reason=reason))
    except IntegrityError:  # a concurrent request added it first
        return False
    return True


def suppressed(session: Session, channel: Channel, addresses: Iterable[str]) -> set[str]:
    """Which of the addresses are on the suppression list (as given)."""
    by_digest: dict[str, list[str]] = {}
    for address in addresses:
        by_digest.setdefault(address_digest(channel, address), []).append(address)
    digests = sorted(by_digest)
    found: set[str] = set()
    for start in range(0, len(digests), _CHUNK):
        for digest in session.execute(select(ConsentSuppression.digest).where(
                ConsentSuppression.channel == channel,
                ConsentSuppression.digest.in_(digests[start:start + _CHUNK]))).scalars():
            found.update(by_digest[digest])
    return found


def lift_suppression(session: Session, channel: Channel, address: str) -> bool:
    """Take the address off the suppression list (a confirmed new consent); whether it was on it."""
    row = session.execute(select(ConsentSuppression).where(
        ConsentSuppression.channel == channel,
        ConsentSuppression.digest == address_digest(channel, address))).scalar_one_or_none()
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True

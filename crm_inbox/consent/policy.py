"""Who may receive marketing on which channel: the rules of § 7 UWG and the GDPR as one pure decision.

``may_receive`` takes the person's current consent for the channel (the latest ledger record, see
``consent.ledger.current``) and the facts a campaign knows (a purchase, B2B, a bouncing address, an erased
address) and answers ``Decision(True, basis)`` or ``Decision(False, reason)``. The reasons are short codes the
campaign preview counts ("left out: 12 opted out, 3 bouncing …"); ``REASONS`` says each in words.

What no rule here can check, and the campaign must: that mail under the existing-customer exception is about the
sender's own *similar* goods or services and says in every mail that the person may object at any time (§ 7(3)
Nr. 2 and 4 UWG); that every campaign mail carries the one-click opt-out (RFC 8058).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crm_inbox.models import Channel, ConsentState, LegalBasis

# Bases of a permitted mailing, as the campaign's send ledger records them.
CONSENT = "consent"
EXISTING_CUSTOMER = "existing_customer"
PRESUMED_CONSENT = "presumed_consent"
LEGITIMATE_INTEREST = "legitimate_interest"

REASONS = {
    "erased": "the address belonged to a person whose data was erased",
    "opted_out": "the person opted out (objected) for this channel",
    "bouncing": "the e-mail address bounces",
    "pending": "the double opt-in is not confirmed yet",
    "no_consent": "no consent for this channel",
    "no_notice": "a customer, but the notice of the right to object (§ 7(3) UWG) is not recorded",
    "no_purchase": "recorded as an existing customer, but there is no order",
    "consumer_phone": "phone marketing to a consumer needs their express consent",
}


@dataclass(frozen=True)
class Consent:
    """A person's current consent for one channel: the latest record, and whether they ever objected."""

    state: ConsentState
    basis: LegalBasis | None
    occurred_at: datetime
    record_id: int
    objected: bool = False  # an opted_out record anywhere in the channel's history


@dataclass(frozen=True)
class Decision:
    allowed: bool
    basis: str | None = None  # when allowed: consent, existing_customer, presumed_consent, legitimate_interest
    reason: str | None = None  # when not: a key of REASONS

    @staticmethod
    def allow(basis: str) -> Decision:
        return Decision(True, basis=basis)

    @staticmethod
    def deny(reason: str) -> Decision:
        return Decision(False, reason=reason)


def may_receive(channel: Channel, consent: Consent | None, *, has_order: bool = False, b2b: bool = False,
                bouncing: bool = False, erased: bool = False) -> Decision:
    """May a campaign on ``channel`` reach this person? ``consent`` is None when nothing is recorded (unknown).

    For every channel, first: an erased address never (Art. 17 GDPR; its hash is kept for exactly this), and an
    opt-out always wins (Art. 21(2), (3) GDPR: after an objection to direct marketing the data is no longer used
    for it; § 7(3) Nr. 3 UWG; § 7(1) sentence 2 UWG: advertising the person recognisably does not want)."""
    if erased:
        return Decision.deny("erased")
    if consent is not None and consent.state == ConsentState.OPTED_OUT:
        return Decision.deny("opted_out")
    if channel == Channel.EMAIL:
        return _email(consent, has_order=has_order, bouncing=bouncing)
    if channel == Channel.LETTER:
        return _letter(consent)
    return _phone(consent, b2b=b2b)


def _email(consent: Consent | None, *, has_order: bool, bouncing: bool) -> Decision:
    """E-mail: § 7(2) Nr. 2 UWG: advertising by electronic mail needs the addressee's prior express consent
    (Art. 6(1)(a), Art. 7 GDPR; for new subscribers given by double opt-in, since the sender must prove it).

    Exception, § 7(3) UWG (existing customer): without consent when the address was obtained with a sale (the
    person has an order), the mail is for similar products, the person has not objected, and they were told
    clearly at collection and in every mail that they may object. The notice is recorded in the ledger as an
    opted_in record with the basis ``existing_customer``; a purchase without it is not enough (``no_notice``),
    and an opt-out, ever, ends the exception (only their own consent can opt them in again).

    A bouncing address is never mailed, whatever the consent: the mail cannot arrive, and mailbox providers
    rate a sender by its bounces."""
    if bouncing:
        return Decision.deny("bouncing")
    if consent is None:
        return Decision.deny("no_notice" if has_order else "no_consent")
    if consent.state == ConsentState.PENDING:
        return Decision.deny("pending")
    if consent.basis == LegalBasis.CONSENT:
        return Decision.allow(CONSENT)
    if consent.basis == LegalBasis.EXISTING_CUSTOMER:
        if consent.objected:
            return Decision.deny("opted_out")
        return Decision.allow(EXISTING_CUSTOMER) if has_order else Decision.deny("no_purchase")
    return Decision.deny("no_consent")


def _letter(consent: Consent | None) -> Decision:
    """Letter: direct marketing by post needs no consent: the legitimate interest of Art. 6(1)(f) GDPR
    (recital 47: direct marketing may be one), until the person objects (Art. 21(2), (3) GDPR; § 7(1) sentence 2
    UWG). An explicit consent is named as the basis where there is one."""
    if consent is not None and consent.state == ConsentState.OPTED_IN and consent.basis == LegalBasis.CONSENT:
        return Decision.allow(CONSENT)
    return Decision.allow(LEGITIMATE_INTEREST)


def _phone(consent: Consent | None, *, b2b: bool) -> Decision:
    """Phone: § 7(2) Nr. 1 UWG: a marketing call to a consumer needs their prior express consent (and § 7a UWG:
    that consent is documented and kept for five years: the ledger); to a business (B2B) at least its presumed
    consent. Presumed consent is never assumed here: it needs an opted_in record with the basis
    ``presumed_consent`` whose proof says why (e.g. an existing business relationship about the topic), and it
    counts only for a B2B contact."""
    if consent is None or consent.state != ConsentState.OPTED_IN:
        return Decision.deny("pending" if consent is not None and consent.state == ConsentState.PENDING
                             else "no_consent")
    if consent.basis == LegalBasis.CONSENT:
        return Decision.allow(CONSENT)
    if consent.basis == LegalBasis.PRESUMED_CONSENT:
        return Decision.allow(PRESUMED_CONSENT) if b2b else Decision.deny("consumer_phone")
    return Decision.deny("no_consent")

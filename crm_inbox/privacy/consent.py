"""The consent ledger in the data-protection export and erasure.

Export: every consent record of the person (``"consent"``), oldest first per channel, with its proof.

Erasure: the records go with the person. So that no later campaign writes to the erased person again (the
issue's "never mailed: erased"), each of their e-mail addresses and phone numbers (E.164) goes onto the
suppression list (``consent_suppressions``) as the SHA-256 of the normalised address only, never in clear: the
same choice as the tombstones of erased mail, which keep only the hash of the Message-ID. A hash identifies the
address only to whoever has it already (a later import, a new subscription): exactly the check it is kept for
(Art. 17(3)(b) and Art. 21(3) GDPR: honouring the objection needs to recognise the address). A later confirmed
double opt-in for the address lifts it. Postal addresses are not suppressed: a letter goes to a contact, and an
erased contact is gone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from crm_inbox.consent import ledger
from crm_inbox.db import affected
from crm_inbox.models import Channel, ConsentRecord, Contact


def export(session: Session, contact_id: int) -> dict[str, list[dict[str, Any]]]:
    return {"consent": [{
        "id": r.id, "channel": r.channel.value, "state": r.state.value,
        "legal_basis": r.legal_basis.value if r.legal_basis else None, "source": r.source, "proof": r.proof,
        "occurred_at": r.occurred_at.isoformat(), "recorded_by_id": r.recorded_by_id,
        "created_at": r.created_at.isoformat(),
    } for r in ledger.records(session, contact_id)]}


def erase(session: Session, contact: Contact) -> dict[str, int]:
    """Delete the person's consent records and suppress their addresses and numbers; the counts."""
    suppressed = sum(ledger.suppress(session, Channel.EMAIL, e.email, "erased") for e in contact.emails)
    suppressed += sum(ledger.suppress(session, Channel.PHONE, p.e164, "erased") for p in contact.phones if p.e164)
    deleted = affected(session.execute(delete(ConsentRecord).where(ConsentRecord.contact_id == contact.id)))
    return {"consent_records": deleted, "addresses_suppressed": suppressed}

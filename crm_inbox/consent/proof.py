"""The proof of one person's consent: their complete history per channel as plain data, for a printable page or
PDF (German courts ask for each consent to be documented completely; § 7a UWG: phone consent kept five years)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_inbox.consent import ledger
from crm_inbox.consent.policy import may_receive
from crm_inbox.errors import NotFound
from crm_inbox.models import Channel, Contact, StaffUser, utcnow


def history(session: Session, contact_id: int) -> dict[str, Any]:
    """``{"contact": {id, name, emails}, "generated_at", "channels": [{"channel", "state", "legal_basis",
    "since", "ledger_allows", "basis", "reason", "records": [...]}]}``: every record, oldest first, with who
    recorded it and what proves it; the state is "unknown" where nothing is recorded; ``reason`` is a code of
    ``policy.REASONS`` (the edges say it in words). All values are strings, numbers or None (JSON-ready)."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    rows = ledger.records(session, contact_id)
    staff_ids = {r.recorded_by_id for r in rows if r.recorded_by_id}
    staff: dict[int, str] = {row.id: row.name for row in session.execute(
        select(StaffUser.id, StaffUser.name).where(StaffUser.id.in_(staff_ids)))} if staff_ids else {}
    channels = []
    for channel in Channel:
        consent = ledger.current(session, [contact_id], channel)[contact_id]
        decision = may_receive(channel, consent)
        channels.append({
            "channel": channel.value,
            "state": consent.state.value if consent else "unknown",
            "legal_basis": consent.basis.value if consent and consent.basis else None,
            "since": consent.occurred_at.isoformat() if consent else None,
            # Without the campaign's facts (an order, B2B, a bouncing address): what the ledger alone allows.
            "ledger_allows": decision.allowed,
            "basis": decision.basis,  # when allowed: the basis a campaign would record
            "reason": decision.reason,  # when not: a code of policy.REASONS (the edge says it in words)
            "records": [{
                "id": r.id, "occurred_at": r.occurred_at.isoformat(), "state": r.state.value,
                "legal_basis": r.legal_basis.value if r.legal_basis else None, "source": r.source,
                "proof": r.proof, "recorded_by": staff.get(r.recorded_by_id) if r.recorded_by_id else None,
                "recorded_at": r.created_at.isoformat(),
            } for r in rows if r.channel == channel],
        })
    return {"contact": {"id": contact.id, "name": contact.name, "emails": sorted(e.email for e in contact.emails)},
            "generated_at": utcnow().isoformat(), "channels": channels}

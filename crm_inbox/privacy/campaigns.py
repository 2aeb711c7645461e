"""Campaigns in the data-protection export and erasure.

Export: every campaign the person was considered for (``"campaigns"``): left out and why, or what they got, when,
to which address with which Message-ID, and what came back (reply, bounce, opt-out, opportunity).

Erasure: the person's rows in the send ledgers stay as anonymous rows (state, reason left out, legal basis, the
times of release, reply, bounce and opt-out), so a campaign's recipients, replies and opt-outs still add up; the
contact, the address, the Message-ID (which names the mail in the recipient's mailbox) and the links to timeline
entries, the outbox row and the opportunity are blanked, so nothing on the row identifies the person. The campaign
mails themselves (outbox rows, timeline entries) go with the person's other mail (``privacy.service``); the
campaign's "sent" and "opportunities" figures, read through those links, lose them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_inbox.db import affected
from crm_inbox.models import Campaign, CampaignRecipient, Contact


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


def export(session: Session, contact_id: int) -> dict[str, list[dict[str, Any]]]:
    r = CampaignRecipient
    rows = session.execute(select(r, Campaign.name, Campaign.channel).join(Campaign, Campaign.id == r.campaign_id)
                           .where(r.contact_id == contact_id).order_by(r.campaign_id, r.id)).all()
    return {"campaigns": [{
        "campaign_id": row.campaign_id, "campaign": name, "channel": channel.value, "state": row.state.value,
        "reason_left_out": row.reason, "legal_basis": row.basis, "address": row.address,
        "message_id": row.message_id, "released_at": _iso(row.released_at), "replied_at": _iso(row.replied_at),
        "reply_interaction_id": row.reply_interaction_id, "bounced_at": _iso(row.bounced_at),
        "opted_out_at": _iso(row.opted_out_at), "opportunity_id": row.opportunity_id,
    } for row, name, channel in rows]}


def erase(session: Session, contact: Contact) -> dict[str, int]:
    """Blank the person's send-ledger rows (see the module); the count."""
    r = CampaignRecipient
    return {"campaign_recipients_anonymised": affected(session.execute(
        update(r).where(r.contact_id == contact.id).values(
            contact_id=None, address=None, message_id=None, outgoing_mail_id=None, interaction_id=None,
            reply_interaction_id=None, opportunity_id=None)))}

"""Staff decisions the machine could not make: assigning an interaction to contacts."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session

from crm_inbox import audit
from crm_inbox.errors import ValidationError
from crm_inbox.ids import ref_id
from crm_inbox.mail.addresses import normalise_email
from crm_inbox.models import (
    Contact,
    ContactEmail,
    Direction,
    InboundMessage,
    InboundState,
    Interaction,
    InteractionContact,
    utcnow,
)


def unassigned_query() -> Select[Interaction]:
    """Interactions with the outside world that no contact is linked to, newest first."""
    linked = exists().where(InteractionContact.interaction_id == Interaction.id)
    return (select(Interaction).where(Interaction.direction != Direction.INTERNAL, ~linked)
            .order_by(Interaction.occurred_at.desc(), Interaction.id.desc()))


def unassigned_count(session: Session) -> int:
    """How much waits for triage (the dashboard's count)."""
    return session.execute(select(func.count()).select_from(unassigned_query().subquery())).scalar_one()


def assign(session: Session, interaction: Interaction, contact_ids: Sequence[int], staff_id: int | None, *,
           remember_address: bool = False) -> list[int]:
    """Link ``interaction`` to exactly these contacts. The decision is kept on the interaction (who, when,
    what it was before) and in the audit log; with ``remember_address`` the sender's address is added to
    the (single) contact so that later mail from it lands there by itself."""
    if not contact_ids:
        raise ValidationError("contact_ids", "must be a non-empty list of contact ids")
    ids = sorted({ref_id("contact_ids", cid) or 0 for cid in contact_ids})  # an id out of range: a 400, not a 500
    contacts = session.execute(select(Contact).where(Contact.id.in_(ids))).scalars().all()
    if len(contacts) != len(ids):
        missing = sorted(set(ids) - {c.id for c in contacts})
        raise ValidationError("contact_ids", f"no such contact: {missing[0]}")
    before = interaction.contact_ids
    interaction.contact_links = [
        InteractionContact(contact_id=c.id, occurred_at=interaction.occurred_at, role="assigned") for c in contacts]
    remembered = None
    if remember_address:
        if len(contacts) != 1:
            raise ValidationError("remember_address", "needs exactly one contact")
        remembered = normalise_email(interaction.details.get("sender_email") or "")
        if not remembered:
            raise ValidationError("remember_address", "this interaction has no sender address to remember")
        if all(e.email != remembered for e in contacts[0].emails):
            contacts[0].emails.append(ContactEmail(email=remembered))
    session.flush()
    dropped = _drop_orphan_leads(session, interaction, keep=set(ids))
    interaction.details = {**interaction.details, "assignment": {
        "by": staff_id, "at": utcnow().isoformat(), "before": before, "remembered_address": remembered,
        "removed_leads": dropped}}
    interaction.attribution_reason = ((interaction.attribution_reason or "") +
                                      f"; assigned by staff user {staff_id} to contacts {ids}").lstrip("; ")
    audit.record(session, staff_id, "assign", "interaction", interaction.id,
                 {"contact_ids": ids, "before": before, "remembered_address": remembered, "removed_leads": dropped})
    session.flush()
    return ids


def _drop_orphan_leads(session: Session, interaction: Interaction, keep: set[int]) -> list[int]:
    """Leads this very mail created, now moved off it and linked to nothing else, were the machine's
    mistake: remove them, so their address does not make later mail ambiguous."""
    dropped = []
    for contact_id in interaction.details.get("new_contact_ids", []):
        if contact_id in keep:
            continue
        contact = session.get(Contact, contact_id)
        still_linked = session.execute(
            select(InteractionContact.interaction_id).where(InteractionContact.contact_id == contact_id).limit(1)
        ).first()
        if contact is not None and contact.origin == "mail" and still_linked is None:
            session.delete(contact)
            dropped.append(contact_id)
    return dropped


def ignore_failed(session: Session, inbound_id: int, staff_id: int | None) -> bool:
    """A failed message staff decided needs nothing (spam, a test): kept, marked ignored, audited."""
    message = session.get(InboundMessage, inbound_id)
    if message is None or message.state != InboundState.FAILED:
        return False
    message.state = InboundState.IGNORED
    message.error = f"ignored by staff user {staff_id} (was: {message.error or 'failed'})"[:2000]
    audit.record(session, staff_id, "ignore", "inbound_message", inbound_id)
    return True

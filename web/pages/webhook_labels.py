"""What admins read on the webhook pages for the engine's keys: a short description of each event type, which
box a pattern ticks, and what a delivery's event is about (its object, linked where it has a page)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import url_for

from crm_inbox.events import pattern_matches
from crm_inbox.webhooks.catalogue import EVENT_TYPES
from web.i18n import N_

# Marked here, translated where shown; an event type missing here shows its technical name only.
EVENT_DESCRIPTIONS = {
    "contact.created": N_("Contact created"), "contact.updated": N_("Contact changed"),
    "contact.merged": N_("Contacts merged"), "contact.erased": N_("Contact erased (data protection)"),
    "company.created": N_("Company created"), "company.updated": N_("Company changed"),
    "interaction.created": N_("Mail, call or note added to a timeline"),
    "call.ended": N_("Call ended"), "call.missed": N_("Call missed"),
    "ticket.created": N_("Ticket opened"), "ticket.changed": N_("Ticket changed"),
    "reminder.fired": N_("Reminder due"),
    "opportunity.created": N_("Opportunity created"), "opportunity.changed": N_("Opportunity changed"),
    "opportunity.won": N_("Opportunity won"), "opportunity.lost": N_("Opportunity lost"),
    "quote.sent": N_("Quote sent"), "quote.accepted": N_("Quote accepted"), "quote.declined": N_("Quote declined"),
    "order.created": N_("Order created"),
    "import.finished": N_("Import finished"), "import.undone": N_("Import undone"),
    "invoice.created": N_("Invoice received from the ERP"), "invoice.updated": N_("Invoice changed (e.g. paid)"),
    "payment.created": N_("Payment received"),
    "campaign.started": N_("Campaign started"), "campaign.cancelled": N_("Campaign cancelled"),
    "webhook.test": N_("Test event"),
}

# An event's subject_type as staff name it ("Contact 12").
SUBJECT_LABELS = {
    "contact": N_("Contact"), "company": N_("Company"), "interaction": N_("Timeline entry"), "call": N_("Call"),
    "ticket": N_("Ticket"), "reminder": N_("Reminder"), "opportunity": N_("Opportunity"), "quote": N_("Quote"),
    "order": N_("Order"), "import": N_("Import"), "invoice": N_("Invoice"), "payment": N_("Payment"),
    "webhook_subscription": N_("Subscription"), "campaign": N_("Campaign"),
}

# The subjects with a page of their own: endpoint and its id argument.
_SUBJECT_PAGES = {
    "contact": ("pages.contact", "contact_id"), "company": ("pages.company", "company_id"),
    "ticket": ("pages.ticket", "ticket_id"), "opportunity": ("pages.opportunity", "opportunity_id"),
    "quote": ("pages.quote", "quote_id"), "order": ("pages.order", "order_id"),
    "import": ("pages.import_batch", "batch_id"), "webhook_subscription": ("pages.webhook", "subscription_id"),
    "campaign": ("pages.campaign", "campaign_id"),
}


def subject_url(subject_type: str, subject_id: int | None) -> str | None:
    page = _SUBJECT_PAGES.get(subject_type)
    if page is None or subject_id is None:
        return None
    endpoint, argument = page
    values: dict[str, Any] = {argument: subject_id}  # url_for types its own keywords, not the route's
    return url_for(endpoint, **values)


@dataclass(frozen=True)
class EventChoice:
    """One box of the event list: ticked by itself, or ticked (and greyed) because a pattern takes it."""

    type: str
    description: str | None
    ticked: bool
    covered_by: str | None


def event_choices(chosen: Iterable[str]) -> list[EventChoice]:
    """The catalogue's event types as boxes for ``chosen`` (the stored or submitted types and patterns). A box a
    pattern covers is shown ticked but not sent back, so saving keeps the pattern rather than the types it
    expands to today (a pattern also takes the types added later)."""
    chosen = list(chosen)
    patterns = [p for p in chosen if p not in EVENT_TYPES]
    choices = []
    for event_type in EVENT_TYPES:
        ticked = event_type in chosen
        covering = None if ticked else next((p for p in patterns if pattern_matches(p, event_type)), None)
        choices.append(EventChoice(event_type, EVENT_DESCRIPTIONS.get(event_type), ticked, covering))
    return choices


def typed_patterns(chosen: Iterable[str]) -> str:
    """The patterns among ``chosen`` as the pattern field shows them ("invoice.* payment.*")."""
    return " ".join(p for p in chosen if p not in EVENT_TYPES)

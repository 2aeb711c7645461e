"""Follow-up that completes itself: a sent quote gets a reminder "Angebot nachfassen: AN-2026-0042" for the
deal's owner, due ``[sales] quote_follow_up_days`` after sending. It is done by itself when the customer
replies about the deal, the quote is accepted or declined, or a newer version is sent.

The reminder is a rule's reminder (``rule_key`` ``quote_follow_up:<quote id>``): sending the same quote again,
or a replayed transaction, never makes a second one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_inbox.config import Settings
from crm_inbox.models import Opportunity, Quote, utcnow
from crm_inbox.reminders import service as reminders

REASON = "quote_follow_up"
CUSTOMER_REPLIED = "the customer replied"


def rule_key(quote_id: int) -> str:
    return f"{REASON}:{quote_id}"


def title(label: str, language: str) -> str:
    return f"Angebot nachfassen: {label}" if language == "de" else f"Follow up quote {label}"


def start(session: Session, settings: Settings, quote: Quote) -> None:
    """The sent quote's follow-up reminder, for the opportunity's owner (else whoever made the quote)."""
    opp = session.get_one(Opportunity, quote.opportunity_id)
    sent = quote.sent_at or utcnow()
    language = settings.company.language  # staff read it: the instance's language, not the customer's
    note = (f"Angebot {quote.label} an den Kunden gesendet; noch keine Antwort." if language == "de"
            else f"Quote {quote.label} was sent to the customer; no reply yet.")
    reminders.create_for_rule(
        session, rule_key=rule_key(quote.id), reason=REASON, title=title(quote.label, language),
        due_at=sent + timedelta(days=settings.sales.quote_follow_up_days), note=note,
        contact_id=quote.contact_id or opp.contact_id, company_id=quote.company_id or opp.company_id,
        opportunity_id=opp.id, assignee_id=opp.owner_id or quote.created_by_id)


def settle(session: Session, quote_ids: Sequence[int], why: str, *, by: int | None) -> None:
    """Those quotes' follow-ups are done (accepted, declined, a new version sent, the customer replied)."""
    reminders.finish_by_rule_keys(session, [rule_key(i) for i in quote_ids], why, by)


def customer_replied(session: Session, opportunity_id: int) -> None:
    """The customer wrote about the deal: the follow-ups of all its quotes are done."""
    quote_ids = session.execute(select(Quote.id).where(Quote.opportunity_id == opportunity_id)).scalars().all()
    settle(session, list(quote_ids), CUSTOMER_REPLIED, by=None)

"""What one inbound mail does to support tickets: the decisions, without a database.

A mail either belongs to a ticket already (found by number or references) or may open one. The service
(``tickets.service.file_mail``) looks up what these decisions need and carries them out.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_inbox.config import TicketSettings
from crm_inbox.models import Direction, TicketState

# A ticket in one of these states waits for somebody: listed as open, counted on the customer's page.
OPEN_STATES = (TicketState.NEW, TicketState.OPEN, TicketState.PENDING)
# Waiting for staff, not for the customer (PENDING): what nobody has taken yet is counted on the dashboard.
AWAITING_STAFF_STATES = (TicketState.NEW, TicketState.OPEN)
# A customer's reply makes these open again (CLOSED only until new_ticket_after_closed_days: see reply_in_thread).
REOPENED_BY_REPLY = (TicketState.PENDING, TicketState.SOLVED, TicketState.CLOSED)
# A staff member's reply to these means: answered, now waiting for the customer.
ANSWERED_BY_STAFF_REPLY = (TicketState.NEW, TicketState.OPEN)


@dataclass(frozen=True)
class MailFacts:
    """What the pipeline knows about one inbound mail that matters to tickets."""

    direction: Direction
    automatic: bool  # auto-reply, bounce, list or bulk mail
    spoof_suspected: bool
    to_support: bool  # sent (envelope, To or Cc) to one of the support addresses
    sender: str | None  # the outside party's address
    imported: bool  # old mail imported now (``is_history``): never answered, never a mail loop


class InThread(enum.Enum):
    """What a mail found in an existing ticket does to it."""

    STAFF_REPLY = "staff reply"  # answered by us: pending
    CUSTOMER_REPLY = "follow-up"  # the customer writes again: (re)open, unless automatic
    NEW_TICKET = "new ticket"  # a reply to a ticket closed long ago opens a new one that follows it
    LINK_ONLY = "link only"  # joins the thread, changes nothing (internal mail, a suspected spoof)


def reply_in_thread(facts: MailFacts, state: TicketState, closed_at: datetime, cfg: TicketSettings,
                    now: datetime) -> InThread:
    if facts.direction == Direction.OUT:
        return InThread.STAFF_REPLY
    if facts.direction != Direction.IN or facts.spoof_suspected:
        return InThread.LINK_ONLY
    if not facts.automatic and closed_long_enough(state, closed_at, cfg, now):
        return InThread.NEW_TICKET
    return InThread.CUSTOMER_REPLY


def closed_long_enough(state: TicketState, closed_at: datetime, cfg: TicketSettings, now: datetime) -> bool:
    """A reply to a ticket closed this long ago is a new request ([tickets] new_ticket_after_closed_days)."""
    if state != TicketState.CLOSED:
        return False
    return now - closed_at >= timedelta(days=cfg.new_ticket_after_closed_days)


def why_no_new_ticket(facts: MailFacts) -> str | None:
    """None if the mail may open a ticket (the loop limit aside); else why not ("" when not worth a note:
    mail that is not a request to support)."""
    if not facts.to_support or facts.direction != Direction.IN:
        return ""
    if facts.automatic:
        return "automatic mail"
    if facts.spoof_suspected:
        return "possible spoof"
    return None


HISTORY_AFTER = timedelta(days=1)


def is_history(source: str, written_at: datetime | None, received_at: datetime) -> bool:
    """Old mail brought in now: a file import, or IMAP mail written more than a day before the CRM fetched it
    (the first fetch of a mailbox's ten years). It opens tickets, but is never acknowledged (the customer
    was answered long ago) and never counts towards the loop limit (years of requests arrive in minutes)."""
    if source == "file":
        return True
    return source == "imap" and written_at is not None and written_at < received_at - HISTORY_AFTER


def is_loop(recent_tickets: int, cfg: TicketSettings) -> bool:
    """This many tickets from one sender within the loop window is a mail loop (or a flood): open no more."""
    return recent_tickets >= cfg.loop_max_tickets


def may_acknowledge(facts: MailFacts, cfg: TicketSettings, own_addresses: Collection[str]) -> bool:
    """Whether a new ticket may be acknowledged at all (the per-sender window is checked against the outbox):
    never for an import of old mail, never to our own addresses, and only when acknowledgements are on."""
    return bool(cfg.acknowledge and facts.sender and not facts.imported and facts.sender not in own_addresses)

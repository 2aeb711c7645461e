"""The ticket decisions for one inbound mail, without a database (crm_inbox.tickets.policy)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm_inbox.config import TicketSettings
from crm_inbox.models import Direction, TicketState
from crm_inbox.tickets.policy import (
    InThread,
    MailFacts,
    closed_long_enough,
    is_loop,
    may_acknowledge,
    reply_in_thread,
    why_no_new_ticket,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CUSTOMER = MailFacts(direction=Direction.IN, automatic=False, spoof_suspected=False, to_support=True,
                     sender="eva@wagner-technik.de", imported=False)
CFG = TicketSettings(acknowledge=True, new_ticket_after_closed_days=14)


@pytest.mark.parametrize("facts, state, closed_days_ago, expected", [
    (replace(CUSTOMER, direction=Direction.OUT), TicketState.OPEN, 0, InThread.STAFF_REPLY),
    (replace(CUSTOMER, direction=Direction.INTERNAL), TicketState.OPEN, 0, InThread.LINK_ONLY),
    (replace(CUSTOMER, spoof_suspected=True), TicketState.PENDING, 0, InThread.LINK_ONLY),
    (CUSTOMER, TicketState.PENDING, 0, InThread.CUSTOMER_REPLY),
    (CUSTOMER, TicketState.CLOSED, 13, InThread.CUSTOMER_REPLY),  # reopens: closed only recently
    (CUSTOMER, TicketState.CLOSED, 14, InThread.NEW_TICKET),
    (replace(CUSTOMER, automatic=True), TicketState.CLOSED, 30, InThread.CUSTOMER_REPLY),  # an auto-reply joins
])
def test_what_a_mail_does_in_its_ticket(facts, state, closed_days_ago, expected):
    assert reply_in_thread(facts, state, NOW - timedelta(days=closed_days_ago), CFG, NOW) is expected


def test_only_a_closed_ticket_is_closed_long_enough():
    assert not closed_long_enough(TicketState.SOLVED, NOW - timedelta(days=100), CFG, NOW)


@pytest.mark.parametrize("facts, expected", [
    (CUSTOMER, None),
    (replace(CUSTOMER, to_support=False), ""),
    (replace(CUSTOMER, direction=Direction.OUT), ""),
    (replace(CUSTOMER, automatic=True), "automatic mail"),
    (replace(CUSTOMER, spoof_suspected=True), "possible spoof"),
])
def test_who_may_open_a_ticket(facts, expected):
    assert why_no_new_ticket(facts) == expected


def test_the_loop_limit_counts_the_sender_s_recent_tickets():
    assert not is_loop(CFG.loop_max_tickets - 1, CFG)
    assert is_loop(CFG.loop_max_tickets, CFG)


@pytest.mark.parametrize("facts, cfg, expected", [
    (CUSTOMER, CFG, True),
    (CUSTOMER, replace(CFG, acknowledge=False), False),
    (replace(CUSTOMER, imported=True), CFG, False),  # old mail read from files is not answered now
    (replace(CUSTOMER, sender=None), CFG, False),
    (replace(CUSTOMER, sender="crm@beispiel-firma.de"), CFG, False),  # never to ourselves
])
def test_who_gets_an_acknowledgement(facts, cfg, expected):
    assert may_acknowledge(facts, cfg, {"crm@beispiel-firma.de"}) is expected

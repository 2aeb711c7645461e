"""Several messages in one transaction (``runner.process_batch``, what a worker process does with the messages
it has been given): on PostgreSQL one commit for all of them, yet each message's outcome stays its own. On
SQLite each is processed alone. On SQLite and, with CRM_INBOX_TEST_DATABASE_URL, on PostgreSQL."""

from __future__ import annotations

import logging
from collections import Counter

from sqlalchemy import func, select, text

from crm_inbox.intake.store import Envelope, store
from crm_inbox.models import ContactEmail, InboundMessage, InboundState, Interaction, Ticket
from crm_inbox.pipeline.runner import process, process_batch
from tests.conftest import CRM, SUPPORT
from tests.mailfactory import make_mail
from tests.test_failed_step import nesting_bomb


def _store(factory, raw: bytes, to: str = CRM) -> int:
    return store(factory, raw, Envelope(mail_from="x@example.com", rcpt_to=(to,), peer="127.0.0.1",
                                        source="smtp")).inbound_id


def _alone(ids: list[int]) -> list[tuple[int, list[int]]]:
    return [(i, []) for i in ids]


def _transactions_of_interactions(session) -> int | None:
    """How many transactions wrote the interactions (PostgreSQL's xmin; None on SQLite, which has none)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.scalar(text("SELECT count(DISTINCT xmin::text) FROM interactions"
                               " WHERE inbound_message_id IS NOT NULL"))


def test_a_batch_records_every_message_once_with_its_reply_threaded_and_one_lead_per_sender(settings, factory):
    original = make_mail(sender="Kundin <kundin@firma.example>", to=SUPPORT, subject="Störung Anlage 7",
                         message_id="<stoerung-7@firma.example>")
    reply = make_mail(sender="Kundin <kundin@firma.example>", to=SUPPORT, subject="Re: Störung Anlage 7",
                      message_id="<nachtrag-7@firma.example>",
                      headers={"In-Reply-To": "<stoerung-7@firma.example>"})
    ids = [_store(factory, original, SUPPORT), _store(factory, reply, SUPPORT),
           _store(factory, make_mail(sender="Neu <neu@neu.example>", subject="Frage 1")),
           _store(factory, make_mail(sender="Neu <neu@neu.example>", subject="Frage 2"))]

    outcomes = process_batch(factory, settings, _alone(ids))

    assert [(o.inbound_id, o.state) for o in outcomes] == [(i, InboundState.PROCESSED) for i in ids]
    assert all(o.interaction_id for o in outcomes)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Interaction)
                              .where(Interaction.inbound_message_id.is_not(None))) == 4
        # The reply is in its original's ticket, though neither was committed when it was processed.
        tickets = session.execute(select(Ticket.id, func.count(Interaction.id))
                                  .join(Interaction, Interaction.ticket_id == Ticket.id)
                                  .where(Interaction.inbound_message_id.is_not(None)).group_by(Ticket.id)).all()
        assert [n for _, n in tickets] == [2]
        assert session.scalar(select(func.count()).select_from(ContactEmail)
                              .where(ContactEmail.email == "neu@neu.example")) == 1
        assert _transactions_of_interactions(session) in (None, 1)  # PostgreSQL: one commit for the four


def test_a_failing_message_in_a_batch_fails_alone_with_its_reason(settings, factory, caplog):
    ids = [_store(factory, make_mail(sender=f"Kunde {k} <kunde{k}@kunde{k}.example>", subject=f"Anfrage {k}"))
           for k in range(2)]
    bomb = _store(factory, nesting_bomb())
    ids.insert(1, bomb)
    ids.append(_store(factory, make_mail(sender="Kunde 3 <kunde3@kunde3.example>", subject="Anfrage 3")))

    with caplog.at_level(logging.INFO, logger="crm_inbox.pipeline.runner"):
        outcomes = process_batch(factory, settings, _alone(ids))

    assert [o.state for o in outcomes] == [InboundState.PROCESSED, InboundState.FAILED, InboundState.PROCESSED,
                                           InboundState.PROCESSED]
    assert outcomes[1].failed_step == "parse"
    with factory() as session:
        rows = {r.id: r for r in session.scalars(select(InboundMessage))}
        assert (rows[bomb].state, rows[bomb].failed_step, rows[bomb].attempts) == (InboundState.FAILED, "parse", 1)
        assert "nested deeper than 20 levels" in (rows[bomb].error or "")
        # The others are recorded once each, and their attempt counted once (the batch's was rolled back).
        assert Counter((r.state, r.attempts) for i, r in rows.items() if i != bomb) == {(InboundState.PROCESSED, 1): 3}
        assert session.scalar(select(func.count()).select_from(Interaction)) == 3
    if factory.kw["bind"].dialect.name == "postgresql":
        assert f"a batch of 4 messages is processed one by one (inbound {', '.join(map(str, ids))})" in caplog.text


def test_a_message_already_processed_leaves_the_rest_of_its_batch_recorded(settings, factory):
    ids = [_store(factory, make_mail(sender=f"Kunde {k} <kunde{k}@kunde{k}.example>", subject=f"Anfrage {k}"))
           for k in range(3)]
    assert process(factory, settings, ids[1]).state == InboundState.PROCESSED  # a sweep got there first

    outcomes = process_batch(factory, settings, _alone(ids))

    assert [o.state for o in outcomes] == [InboundState.PROCESSED, None, InboundState.PROCESSED]
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Interaction)) == 3
        assert set(session.scalars(select(InboundMessage.attempts))) == {1}

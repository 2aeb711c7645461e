"""Processing side by side in worker processes (``[worker] processes``): every message once, one lead per new
sender, replies in their original's ticket, and nothing lost when a worker process dies. On SQLite and, with
CRM_INBOX_TEST_DATABASE_URL, on PostgreSQL."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import smtplib
import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_inbox.config import Settings, replace
from crm_inbox.db import make_engine, unit_of_work, write_lock
from crm_inbox.intake.store import Envelope, store
from crm_inbox.models import Contact, ContactEmail, InboundMessage, InboundState, Interaction, Ticket
from crm_inbox.pipeline import DEFAULT_STEPS, Step
from crm_inbox.pipeline.pool import ProcessPool, process_all, processes_for_batch
from crm_inbox.pipeline.runner import process
from crm_inbox.staff.service import add_staff
from tests.conftest import CRM, PG_URL_ENV, SUPPORT
from tests.mailfactory import make_mail
from tests.serveproc import config_file, serve, wait_until


def _store(factory, raw: bytes, to: str = CRM) -> int:
    return store(factory, raw, Envelope(mail_from="x@example.com", rcpt_to=(to,), peer="127.0.0.1",
                                        source="smtp")).inbound_id


def _requests_and_replies(factory, pairs: int) -> list[tuple[int, int]]:
    """Each customer writes to support, and their reply to it follows at once: originals and replies sit next
    to each other, so two workers have them at the same moment."""
    ids = []
    for k in range(pairs):
        original = make_mail(sender=f"Kundin {k} <kundin{k}@firma{k}.example>", to=SUPPORT,
                             subject=f"Störung Anlage {k}", message_id=f"<stoerung-{k}@firma{k}.example>")
        reply = make_mail(sender=f"Kundin {k} <kundin{k}@firma{k}.example>", to=SUPPORT,
                          subject=f"Re: Störung Anlage {k}", message_id=f"<nachtrag-{k}@firma{k}.example>",
                          headers={"In-Reply-To": f"<stoerung-{k}@firma{k}.example>",
                                   "References": f"<stoerung-{k}@firma{k}.example>"})
        ids.append((_store(factory, original, SUPPORT), _store(factory, reply, SUPPORT)))
    return ids


def test_two_worker_processes_process_everything_once_and_thread_every_reply(settings, factory, tmp_path):
    pairs = _requests_and_replies(factory, 24)
    # Two mails of each of 12 new senders, one right after the other: one lead each.
    twice = [_store(factory, make_mail(sender=f"Neu {k} <neu{k}@neu{k}.example>", subject=f"Frage {j}"))
             for k in range(12) for j in range(2)]
    ids = [i for pair in pairs for i in pair] + twice
    # The service logs into a file: the worker processes' lines go there too, not to the terminal.
    log_file, root = tmp_path / "service.log", logging.getLogger()
    handler, level = logging.FileHandler(log_file), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        outcomes = process_all(settings, ids, processes=2)
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)

    assert Counter(o.state for o in outcomes) == {InboundState.PROCESSED: 72}
    logged = log_file.read_text()
    assert [i for i in ids if f"crm_inbox.pipeline.steps: inbound {i}: " not in logged] == []
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Interaction)
                              .where(Interaction.inbound_message_id.is_not(None))) == 72
        states = session.execute(select(InboundMessage.state)).scalars().all()
        assert Counter(states) == {InboundState.PROCESSED: 72}
        # Every reply is in its original's ticket: 24 tickets, two mails each.
        tickets = session.execute(select(Ticket.id, func.count(Interaction.id)).join(
            Interaction, Interaction.ticket_id == Ticket.id).where(Interaction.inbound_message_id.is_not(None))
            .group_by(Ticket.id)).all()
        assert len(tickets) == 24 and {n for _, n in tickets} == {2}
        for k in range(12):
            leads = session.scalars(select(ContactEmail.contact_id).where(
                ContactEmail.email == f"neu{k}@neu{k}.example")).all()
            assert len(leads) == 1, f"neu{k}: {len(leads)} leads"


def test_a_worker_process_that_dies_loses_nothing(settings, factory):
    ids = [_store(factory, make_mail(sender=f"Kunde {k} <kunde{k}@kunde{k}.example>")) for k in range(40)]
    seen: list = []
    with ProcessPool(settings, 2) as pool:
        for outcome in pool.run(ids):
            seen.append(outcome)
            if len(seen) == 3:  # SIGKILL one worker in the middle of the run
                os.kill(pool._workers[0].proc.pid, signal.SIGKILL)
        lost = [o.inbound_id for o in seen if o.retry_soon]
        # Those the dead worker had are still waiting (never half-recorded): the next run processes them.
        assert all(o.error == "the worker process ended" for o in seen if o.retry_soon)
        again = list(pool.run(lost))
    assert sorted(o.inbound_id for o in seen) == ids
    # None: the dead worker had committed it (its batch) but not said so yet; recorded once all the same (below).
    assert all(o.state in (InboundState.PROCESSED, None) for o in again)
    with factory() as session:
        assert Counter(session.execute(select(InboundMessage.state)).scalars()) == {InboundState.PROCESSED: 40}
        assert session.scalar(select(func.count()).select_from(Interaction)) == 40
        assert session.scalar(select(func.count()).select_from(Contact)) == 40


def test_a_staff_address_added_meanwhile_counts_as_staff_for_the_next_mail(settings, factory):
    # The staff directory is kept per process and re-read when it changes (PostgreSQL); never a stale one.
    first = _store(factory, make_mail(sender="Lena Vogel <lena.vogel@partner.example>", subject="Hallo"))
    process(factory, settings, first)
    with unit_of_work(factory) as session:
        add_staff(session, "lena.vogel@partner.example", "Lena Vogel")
    second = _store(factory, make_mail(sender="Lena Vogel <lena.vogel@partner.example>", subject="Noch etwas",
                                       to=f"Kunde <kunde@kunde.example>, {CRM}"))
    process(factory, settings, second)
    with factory() as session:
        lena_leads = session.scalars(select(ContactEmail.contact_id).where(
            ContactEmail.email == "lena.vogel@partner.example")).all()
        assert len(lena_leads) == 1  # the lead of the first mail; the second made none for her
        newest = session.scalars(select(Interaction).order_by(Interaction.id.desc())).first()
        # She wrote to a customer: outgoing, and the customer (not she) is the party.
        assert newest is not None and newest.direction.value == "out"
        assert newest.details["sender_email"] == "kunde@kunde.example"


def _running(pid: int) -> bool:
    try:  # a zombie (state Z) has ended; only its exit status waits to be collected
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _fork_servers_of(pid: int) -> list[int]:
    return [child for child in _children(pid)
            if b"multiprocessing.forkserver" in Path(f"/proc/{child}/cmdline").read_bytes()]


def test_serve_processes_a_burst_in_worker_processes_which_end_with_it_even_after_sigkill(database_url, factory,
                                                                                         tmp_path):
    config = config_file(tmp_path, "node", database_url, worker={"processes": 2, "backlog_for_processes": 5})
    node = serve(config, tmp_path / "node.log")
    try:
        with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=60) as client:
            for k in range(40):  # one session, back to back: a backlog builds up behind the listener
                client.sendmail(f"kunde{k}@kunde{k}.example", [CRM],
                                make_mail(sender=f"Kunde {k} <kunde{k}@kunde{k}.example>"))

        def processed() -> bool:
            with factory() as session:
                return Counter(session.execute(select(InboundMessage.state)).scalars()) == {
                    InboundState.PROCESSED: 40}
        assert wait_until(processed, timeout=120)
        (server,) = _fork_servers_of(node.proc.pid)
        workers = _children(server)
        assert len(workers) == 2  # the burst went to two worker processes, forked from serve's fork server
        node.kill()
        node.proc.wait(30)
        # Their input ends with serve, and so does the fork server's: no stray processes stay behind.
        assert wait_until(lambda: not any(_running(p) for p in [server, *workers]), timeout=30)
    finally:
        if node.proc.poll() is None:
            node.kill()


needs_row_locks = pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason="another node's row lock: PostgreSQL "
                                     "(SQLite has one writer at a time); runs in the PostgreSQL pass")


@needs_row_locks
def test_a_reply_waits_for_its_original_however_long_another_message_holds_it_up(settings, factory, database_url):
    # Another node holds the first message (its row lock): the worker that has it, and the original queued behind
    # it, wait while the other worker gets through dozens of mails. The reply still lands in the original's ticket.
    slow = _store(factory, make_mail(sender="Langsam <langsam@langsam.example>"))
    original = _store(factory, make_mail(sender="Kundin <kundin@firma.example>", to=SUPPORT, subject="Störung",
                                         message_id="<stoerung@firma.example>"), SUPPORT)
    small = [_store(factory, make_mail(sender=f"Kunde {k} <k{k}@k{k}.example>")) for k in range(2)]
    reply = _store(factory, make_mail(sender="Kundin <kundin@firma.example>", to=SUPPORT, subject="Re: Störung",
                                      message_id="<nachtrag@firma.example>",
                                      headers={"In-Reply-To": "<stoerung@firma.example>"}), SUPPORT)
    more = [_store(factory, make_mail(sender=f"Kunde {k} <m{k}@m{k}.example>")) for k in range(60)]
    holder = make_engine(database_url)
    try:
        with holder.connect() as conn, ProcessPool(settings, 2) as pool:
            held = conn.begin()
            conn.execute(select(InboundMessage.id).where(InboundMessage.id == slow).with_for_update())
            for done, _ in enumerate(pool.run([slow, original, *small, reply, *more]), start=1):
                if done == 50:
                    held.rollback()  # the other node lets go
            assert pool.deferred >= 1  # the reply was handed back while its original waited
    finally:
        holder.dispose()
    with factory() as session:
        tickets = session.execute(select(Ticket.id, func.count(Interaction.id)).join(
            Interaction, Interaction.ticket_id == Ticket.id).where(Interaction.inbound_message_id.is_not(None))
            .group_by(Ticket.id)).all()
        assert [n for _, n in tickets] == [2]


@pytest.mark.skipif(bool(os.environ.get(PG_URL_ENV)), reason="SQLite's claim: PostgreSQL's is the row lock, held "
                    "from the first read (the test above)")
def test_a_message_another_process_recorded_meanwhile_is_rolled_back_not_recorded_twice(settings, factory, caplog):
    # SQLite claims a message with its state change, last in the transaction. Here another process records it
    # after this one has read and parsed it (before any write): this one's writes go, the message is there once.
    inbound_id = _store(factory, make_mail(sender="Neu <neu@neu.example>", subject="Anfrage"))
    meanwhile: list[object] = []

    def another_process_records_it(ctx: object) -> None:
        meanwhile.append(process(factory, settings, inbound_id))

    steps = (Step("meanwhile", "another process records the message", another_process_records_it, writes=False),
             *DEFAULT_STEPS)
    with caplog.at_level(logging.INFO, logger="crm_inbox.pipeline.runner"):
        outcome = process(factory, settings, inbound_id, steps)

    assert [getattr(o, "state", None) for o in meanwhile] == [InboundState.PROCESSED]
    assert outcome.state is None and outcome.interaction_id is None
    # Not a failure with a traceback: one line that says what happened.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and "meanwhile" in r.getMessage()
            ] == [f"inbound {inbound_id}: recorded by another process meanwhile; this attempt is rolled back "
                  "(IntegrityError)"]
    assert not [r for r in caplog.records if r.exc_info]
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Interaction)) == 1
        assert session.scalar(select(func.count()).select_from(ContactEmail)
                              .where(ContactEmail.email == "neu@neu.example")) == 1
        assert session.scalar(select(InboundMessage.attempts).where(InboundMessage.id == inbound_id)) == 1


def test_two_messages_with_one_message_id_side_by_side_are_both_kept_and_flagged(settings, factory):
    # Each worker has one copy at the same time: each flags itself, neither waits for the other's row.
    ids = []
    for k in range(20):
        for variant in ("a", "b"):
            ids.append(_store(factory, make_mail(sender=f"Kunde {k} <k{k}@firma{k}.example>", subject=f"Frage {k}",
                                                 body=f"Text {variant}\n", message_id=f"<gleich-{k}@x.example>")))
    outcomes = process_all(settings, ids, processes=2)
    assert Counter(o.state for o in outcomes) == {InboundState.PROCESSED: 40}
    with factory() as session:
        flags = session.execute(select(InboundMessage.message_id_conflict)).scalars().all()
        assert flags == [True] * 40


def test_mail_that_ends_its_worker_process_three_times_is_kept_as_failed(settings, factory, database_url):
    # Whatever kills a worker on this message (memory, a crash in a library) would do so at every sweep: the third
    # time it is failed with its reason, visible and retryable like any failed mail; the other mail goes on.
    stuck = _store(factory, make_mail(sender="Kunde <kunde@kunde.example>", subject="Riesig"))
    holder = make_engine(database_url)
    try:
        with ProcessPool(settings, 1) as pool:
            for _ in range(3):
                killer = threading.Thread(target=_kill_while_held, args=(pool, holder, stuck))
                killer.start()
                (outcome,) = pool.run([stuck])
                killer.join()
            assert outcome.state == InboundState.FAILED
            assert outcome.error == "a worker process ended while processing it (3 times)"
            other = _store(factory, make_mail(sender="Kundin <kundin@kundin.example>"))
            assert [o.state for o in pool.run([other])] == [InboundState.PROCESSED]
    finally:
        holder.dispose()
    with factory() as session:
        row = session.get_one(InboundMessage, stuck)
        assert (row.state, row.attempts) == (InboundState.FAILED, 3)


def _kill_while_held(pool: ProcessPool, holder, inbound_id: int) -> None:
    """Another writer holds the message up (the write lock; on PostgreSQL its row), so the worker still has it
    when it is killed; then lets go."""
    with holder.connect() as conn, (write_lock(holder) if conn.dialect.name == "sqlite" else conn.begin()):
        if conn.dialect.name != "sqlite":
            conn.execute(select(InboundMessage.id).where(InboundMessage.id == inbound_id).with_for_update())
        assert wait_until(lambda: any(w.in_flight for w in pool._workers), timeout=30)
        for worker in pool._workers:
            if worker.in_flight:
                os.kill(worker.proc.pid, signal.SIGKILL)
                worker.proc.join()


def test_a_small_batch_job_starts_no_worker_processes():
    """``ingest`` or ``imap fetch`` of a few hundred mails is done sooner in its own process than by workers
    that cost 1.5 s of CPU each to start; from 1,000 on, ``[worker] processes`` decides (auto: one per CPU, at
    most 4, on SQLite as on PostgreSQL). A number set by hand is always obeyed."""
    settings = Settings()
    auto = replace(settings, worker={"processes": 0})
    assert settings.database.url.startswith("sqlite")
    assert auto.worker.process_count() == min(len(os.sched_getaffinity(0)), 4)
    assert processes_for_batch(auto, 1) == 1
    assert processes_for_batch(auto, 999) == 1
    assert processes_for_batch(auto, 1000) is None
    assert processes_for_batch(replace(settings, worker={"processes": 2}), 5) is None

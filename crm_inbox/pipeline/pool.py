"""Processing many stored messages at once (a burst, a mailbox's history): in this process, or in worker
processes side by side (``[worker] processes``).

Why processes: Python runs one thread at a time, and processing a mail is mostly Python (parsing, deciding,
building statements). Each worker process runs ``runner.process_batch`` on the ids it has been given (on
PostgreSQL those that have arrived in one transaction), so two messages are processed on two cores. What keeps
this as safe as one worker:
- a message is claimed before any write (the row lock on PostgreSQL; on SQLite the write lock, and a
  conditional update at the end that rolls everything back if another process had it): two processes never
  both record it;
- two mails of one new sender still make one lead (``contacts.service.lock_new_addresses``);
- a reply whose original is still waiting (processed by another worker at this moment) is handed back and
  processed after it, so it threads into the original's ticket (``others`` of ``runner.process``).

Workers are forked from a fork server (``multiprocessing``'s, started on first need) that has imported
processing once: two workers start and answer in about a tenth of a second (measured), not after a second and
a half of imports each, which would otherwise fall into the very burst that needs them, and again after each
idle minute.

To a worker: one JSON message per message to process; from a worker: one JSON message per outcome. A worker
exits when its input closes, so it never outlives the service, not even after a SIGKILL (the fork server ends
with the service too); a message a dying worker had is still ``received`` and the next sweep takes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import selectors
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from multiprocessing.connection import Connection
from multiprocessing.util import Finalize
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import make_engine, make_sessionmaker
from crm_inbox.models import InboundState
from crm_inbox.pipeline.runner import Outcome, process, process_batch, worker_ended

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
IN_FLIGHT_PER_WORKER = 4  # enough that a worker never waits for its next id, few enough to share out a burst
NICENESS = 10
MAX_DEFERRALS = 50  # a safety net: each deferral waits for one original's outcome, so a reply needs few
# The fork server costs about a second and a half of CPU to start (the imports), each worker its first
# statements: with ``[worker] processes`` on auto, a batch job of fewer messages is done sooner in its own process.
BATCH_FOR_PROCESSES = 1000
_FORKSERVER = multiprocessing.get_context("forkserver")


def processes_for_batch(settings: Settings, total: int) -> int | None:
    """The ``processes`` argument of ``process_all`` for a batch job (``ingest``, ``imap fetch``) of ``total``
    messages: one process below ``BATCH_FOR_PROCESSES`` on auto, else ``[worker] processes`` (None)."""
    return 1 if not settings.worker.processes and total < BATCH_FOR_PROCESSES else None


def process_all(settings: Settings, ids: Iterable[int], *, processes: int | None = None,
                on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Process stored inbound messages (``ids`` in order of arrival) with ``processes`` worker processes (None:
    ``[worker] processes``; 0 or 1: in this process). Returns the outcomes (not necessarily in order);
    ``on_outcome`` is called as each message ends."""
    count = settings.worker.process_count() if processes is None else processes
    outcomes = []
    if count > 1:
        with ProcessPool(settings, count) as pool:
            for outcome in pool.run(ids):
                if on_outcome is not None:
                    on_outcome(outcome)
                outcomes.append(outcome)
        return outcomes
    engine = make_engine(settings.database.url, durable=False, pre_ping=False)
    try:
        factory = make_sessionmaker(engine)
        for inbound_id in ids:
            outcome = process(factory, settings, inbound_id)
            if on_outcome is not None:
                on_outcome(outcome)
            outcomes.append(outcome)
        return outcomes
    finally:
        engine.dispose()


# --- the service's side ---

def _log_file() -> str | None:
    """The file the service logs to, if it logs to one (else the workers log to the stderr they share with it):
    a worker's lines belong beside the service's."""
    return next((h.baseFilename for h in logging.getLogger().handlers
                 if isinstance(h, logging.FileHandler) and h.baseFilename != os.devnull), None)


def _start_fork_server() -> None:
    """Start the fork server (once per service process) with processing imported, below the service's threads."""
    def start() -> None:
        # Linux keeps a nice value per thread and a child inherits its thread's: the fork server, and each worker
        # forked from it, runs below accepting mail (a sender waits for the 250) and pages from its first import.
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
        _FORKSERVER.set_forkserver_preload([__name__])
        multiprocessing.forkserver.ensure_running()
    starter = threading.Thread(target=start, name="crm-inbox-fork-server")
    starter.start()
    starter.join()


class _Worker:
    """One worker process and the ids it has not answered yet (in the order it was given them)."""

    def __init__(self, config: dict[str, Any]) -> None:
        _start_fork_server()
        requests_out, self.requests = _FORKSERVER.Pipe(duplex=False)
        self.outcomes, outcomes_in = _FORKSERVER.Pipe(duplex=False)
        self.proc = _FORKSERVER.Process(target=serve, args=(requests_out, outcomes_in, config),
                                        name="crm-inbox-worker", daemon=True)
        self.proc.start()
        requests_out.close()  # the worker's ends: only the worker may hold them, so each side sees the other end
        outcomes_in.close()
        # At interpreter exit (a pool nobody closed) multiprocessing joins its children: end the input first.
        self._finalizer = Finalize(self, self.requests.close, exitpriority=10)
        self.in_flight: deque[int] = deque()
        self.alive = True

    def send(self, request: dict[str, Any]) -> None:
        self.requests.send_bytes(json.dumps(request).encode())

    def read(self) -> list[bytes] | None:
        """What the worker has answered so far; None when its output ended."""
        answers = []
        try:
            answers.append(self.outcomes.recv_bytes())
            while self.outcomes.poll(0):
                answers.append(self.outcomes.recv_bytes())
        except (EOFError, OSError):  # gone, or closed by ``close`` from the stopping thread
            return answers or None
        return answers

    def close(self, timeout: float) -> None:
        self._finalizer()  # closes the input: the worker finishes what it has and exits
        self.proc.join(timeout)
        if self.proc.is_alive():
            log.error("worker process %s did not exit in %.0f s; killing it", self.proc.pid, timeout)
            self.proc.kill()
            self.proc.join()
        self.alive = False
        self.outcomes.close()


class ProcessPool:
    """``processes`` worker processes, started on first use and kept until ``close``."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.settings = settings
        self.processes = processes
        self._config = {"settings": settings, "log_level": logging.getLogger().getEffectiveLevel(),
                        "log_file": _log_file()}
        self._workers: list[_Worker] = []
        self._closed = False
        self._engine: Engine | None = None
        self.deferred = 0  # replies handed back because their original was being processed (for benchmarks)

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _ensure_workers(self) -> None:
        if self._closed:  # stopping: a worker that ends is not replaced
            return
        self._workers = [w for w in self._workers if w.alive]
        while len(self._workers) < self.processes:
            self._workers.append(_Worker(self._config))

    def run(self, ids: Iterable[int], before_each: Callable[[], None] | None = None) -> Iterator[Outcome]:
        """Process ``ids`` (in order of arrival) across the workers; yields each outcome as it comes.
        ``before_each`` runs before a message is handed out (the service lets a burst of SMTP go first)."""
        self._ensure_workers()
        # Taken from ``ids`` only as workers have room: an import stores the next batch while this one is
        # processed, and a generator that raises stops the run here.
        source = iter(ids)
        waiting: deque[tuple[int, int]] = deque()  # (id, times deferred) handed back or taken ahead
        parked: dict[int, list[tuple[int, int]]] = {}  # replies by the id of the original they wait for
        deferrals: dict[int, int] = {}
        selector = selectors.DefaultSelector()
        for worker in self._workers:
            selector.register(worker.outcomes, selectors.EVENT_READ, worker)
        try:
            while True:
                if not any(w.alive for w in self._workers):
                    return  # closed meanwhile (serve stops): what was not handed out stays received
                self._hand_out(source, waiting, before_each)
                busy = any(w.in_flight for w in self._workers)
                if not busy and not waiting:
                    if not parked:
                        break  # everything given out has come back and ``ids`` is exhausted
                    for replies in parked.values():  # nothing left that they could wait for
                        waiting.extend(replies)
                    parked.clear()
                    continue
                for key, _ in selector.select():
                    ready: _Worker = key.data
                    for outcome in self._answers(ready, selector):
                        if outcome.waits_for is not None:
                            self.deferred += 1
                            deferrals[outcome.inbound_id] = deferrals.get(outcome.inbound_id, 0) + 1
                            reply = (outcome.inbound_id, deferrals[outcome.inbound_id])
                            if any(outcome.waits_for in w.in_flight for w in self._workers):
                                parked.setdefault(outcome.waits_for, []).append(reply)
                            else:  # its original ended meanwhile
                                waiting.appendleft(reply)
                            continue
                        # Replies that waited for this one go next.
                        waiting.extendleft(reversed(parked.pop(outcome.inbound_id, [])))
                        yield outcome
        finally:
            selector.close()

    def _hand_out(self, source: Iterator[int], waiting: deque[tuple[int, int]],
                  before_each: Callable[[], None] | None) -> None:
        for worker in sorted((w for w in self._workers if w.alive), key=lambda w: len(w.in_flight)):
            while len(worker.in_flight) < IN_FLIGHT_PER_WORKER:
                if not waiting:
                    following = next(source, None)
                    if following is None:
                        return
                    waiting.append((following, 0))
                if before_each is not None:
                    before_each()
                inbound_id, times = waiting.popleft()
                # What the other workers have that was stored before it: a reply to one of those waits for it.
                others = [i for w in self._workers if w is not worker for i in w.in_flight if i < inbound_id]
                try:
                    worker.send({"id": inbound_id, "others": others if times < MAX_DEFERRALS else []})
                except (OSError, ValueError):  # the worker is gone (or closed): _answers settles what it had
                    waiting.appendleft((inbound_id, times))
                    break
                worker.in_flight.append(inbound_id)

    def _answers(self, worker: _Worker, selector: selectors.BaseSelector) -> list[Outcome]:
        answers = worker.read()
        if answers is None:
            # The worker died: what it had stays received (its transaction never committed) for the next sweep.
            worker.alive = False
            with contextlib.suppress(KeyError, ValueError):  # already closed by ``close``
                selector.unregister(worker.outcomes)
            worker.proc.join()
            code = worker.proc.exitcode
            if not self._closed or worker.in_flight:  # (after ``close``, a worker ends when its input does)
                log.error("worker process %s ended (exit code %s) with %d message(s) unfinished",
                          worker.proc.pid, code, len(worker.in_flight))
            lost = [worker_ended(self._factory(), i) for i in worker.in_flight]
            worker.in_flight.clear()
            worker.outcomes.close()
            self._ensure_workers()
            for fresh in self._workers:
                if fresh.alive and fresh is not worker and fresh.outcomes not in selector.get_map():
                    selector.register(fresh.outcomes, selectors.EVENT_READ, fresh)
            return lost
        outcomes = []
        for answer in answers:
            outcome = _outcome_from_json(json.loads(answer))
            if outcome.inbound_id in worker.in_flight:
                worker.in_flight.remove(outcome.inbound_id)
            outcomes.append(outcome)
        return outcomes

    def _factory(self) -> sessionmaker[Session]:
        """For the rare write here (a worker's end counted against its message)."""
        if self._engine is None:
            self._engine = make_engine(self.settings.database.url, pool_size=1)
        return make_sessionmaker(self._engine)

    def close(self, timeout: float = 30.0) -> None:
        """Let each worker finish what it has, then exit."""
        self._closed = True
        for worker in list(self._workers):
            worker.close(timeout)
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _outcome_to_json(outcome: Outcome) -> dict[str, Any]:
    data = asdict(outcome)
    data["state"] = outcome.state.value if outcome.state is not None else None
    return data


def _outcome_from_json(data: dict[str, Any]) -> Outcome:
    state = InboundState(data["state"]) if data["state"] is not None else None
    return Outcome(**{**data, "state": state})


# --- the worker process ---

def serve(requests: Connection, outcomes: Connection, config: dict[str, Any]) -> None:
    """A worker process's life: process each id it is sent until its input ends."""
    os.setpriority(os.PRIO_PROCESS, 0, NICENESS)  # (already, if forked from this module's fork server)
    # Ctrl-C reaches the whole process group: the service decides when a worker stops (by closing its input),
    # so the message it has is finished, never cut off.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings: Settings = config["settings"]
    logging.basicConfig(level=config["log_level"], format=LOG_FORMAT, filename=config["log_file"])
    # One connection for the worker's life, no ping: a dropped connection fails one message with a database
    # error, which leaves it received for the sweep, and SQLAlchemy reconnects for the next.
    engine = make_engine(settings.database.url, durable=False, pool_size=1, pre_ping=False)
    factory = make_sessionmaker(engine)
    try:
        while True:
            # What has arrived, up to what may be in flight: processed in one transaction (``process_batch``).
            # Nothing is waited for: a worker that is given one message at a time processes one at a time.
            try:
                batch = [json.loads(requests.recv_bytes())]
                while len(batch) < IN_FLIGHT_PER_WORKER and requests.poll(0):
                    batch.append(json.loads(requests.recv_bytes()))
            except EOFError:
                break
            for outcome in process_batch(factory, settings, [(r["id"], r["others"]) for r in batch]):
                outcomes.send_bytes(json.dumps(_outcome_to_json(outcome)).encode())
    except BrokenPipeError:  # the service is gone: what was committed is safe, the rest waits for a sweep
        pass
    finally:
        engine.dispose()
    # Skip the interpreter's teardown (see intake.writer.main): everything is committed and answered.
    logging.shutdown()
    os._exit(0)

"""The service's processing worker: a thread that processes accepted messages as they arrive, hands a backlog
to worker processes (``pool``, ``[worker] processes``), and sweeps for messages left waiting.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.pipeline.pool import ProcessPool
from crm_inbox.pipeline.runner import Outcome, process, waiting_ids

log = logging.getLogger(__name__)
POOL_IDLE_SECONDS = 60.0


class Worker:
    """A background thread that processes accepted messages as they arrive, and sweeps for any
    ``received`` rows left behind (a restart, a database outage, another node's crash)."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings, sweep_seconds: float = 30.0,
                 on_processed: Callable[[], None] | None = None, busy: Callable[[], bool] | None = None,
                 max_defer_seconds: float = 2.0, on_deliveries: Callable[[], None] | None = None) -> None:
        self.factory = factory
        self.settings = settings
        self.on_processed = on_processed
        self.on_deliveries = on_deliveries  # webhook deliveries were written (by a worker process)
        # While a burst of mail arrives, accepting it (the sender is waiting) goes before processing it
        # (nobody waits; the rows are already safe). Deferral is bounded, so processing never starves.
        self.busy = busy
        self.max_defer_seconds = max_defer_seconds
        self.sweep_seconds = sweep_seconds
        # After a database error the next sweep comes sooner (1 s, doubling up to sweep_seconds), so mail
        # that waited through an outage is processed soon after the database is back.
        self._retry_pause: float | None = None
        self._next_sweep = time.monotonic() + sweep_seconds
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="crm-inbox-worker", daemon=True)
        self._stopping = threading.Event()
        # A backlog (a burst, a sweep after an outage) goes to worker processes side by side, started on first
        # need; a trickle of mail is processed here, in this thread.
        self._processes = settings.worker.process_count()
        self._pool: ProcessPool | None = None
        self._pool_used = 0.0

    def start(self) -> None:
        self._thread.start()

    def submit(self, inbound_id: int) -> None:
        self._queue.put(inbound_id)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout)
        if self._pool is not None:
            self._pool.close(timeout)

    def wait_idle(self) -> None:
        """Block until everything submitted so far is processed (tests, benchmarks, shutdown)."""
        self._queue.join()

    def _give_way(self) -> None:
        if self.busy is None:
            return
        deadline = time.monotonic() + self.max_defer_seconds
        while self.busy() and time.monotonic() < deadline and not self._stopping.is_set():
            self._stopping.wait(0.01)

    def sweep(self) -> int:
        """Process every waiting message (page by page); returns how many were tried. A sweep that meets a
        database error stops and plans the next one soon (1 s, doubling up to ``sweep_seconds``)."""
        tried = 0
        after = 0
        while not self._stopping.is_set():
            try:
                with self.factory() as session:
                    ids = waiting_ids(session, after=after)
            except (OperationalError, DBAPIError) as exc:
                log.error("worker: cannot look for waiting messages: %s", exc.orig)
                self._next_sweep = time.monotonic() + self._database_failed()
                return tried
            if self._wants_pool(len(ids)):
                outcomes = list(self._pool_run(ids))  # every one, also after a database error: they are in flight
                for outcome in outcomes:
                    self._wake(outcome)
                tried += sum(not o.retry_soon for o in outcomes)
                if any(o.retry_soon for o in outcomes):
                    self._next_sweep = time.monotonic() + self._database_failed()
                    return tried
            else:
                for inbound_id in ids:
                    if process(self.factory, self.settings, inbound_id).retry_soon:
                        self._next_sweep = time.monotonic() + self._database_failed()
                        return tried
                    tried += 1
            if not ids:
                break
            after = ids[-1]  # a message that stays received (its failure could not be recorded) waits
        self._retry_pause = None
        self._next_sweep = time.monotonic() + self.sweep_seconds
        return tried

    def _after(self, outcome: Outcome) -> None:
        if outcome.retry_soon:  # sweep soon, unless one is planned sooner
            self._next_sweep = min(self._next_sweep, time.monotonic() + self._database_failed())
        elif self._retry_pause is not None:
            self._next_sweep = time.monotonic()  # the database answers again: no need to wait out the pause
        self._wake(outcome)

    def _wake(self, outcome: Outcome) -> None:
        if outcome.queued_mail and self.on_processed is not None:
            self.on_processed()  # wake the sender only when there is something to send
        if outcome.deliveries_written and self.on_deliveries is not None:
            self.on_deliveries()

    def _wants_pool(self, backlog: int) -> bool:
        return self._processes > 1 and backlog >= self.settings.worker.backlog_for_processes

    def _take_queued(self, most: int = 2000) -> list[int | None]:
        taken: list[int | None] = []
        while len(taken) < most:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return taken

    def _close_idle_pool(self) -> None:
        """Worker processes idle for a minute end (and give back their database connections)."""
        if self._pool is not None and time.monotonic() - self._pool_used > POOL_IDLE_SECONDS:
            self._pool.close()
            self._pool = None

    def _pool_run(self, ids: list[int]) -> Iterator[Outcome]:
        if self._pool is None:
            self._pool = ProcessPool(self.settings, self._processes)
        # Giving way to an SMTP burst here too: the worker processes run at a lower priority, but the database
        # server's work for them does not, and on two cores it halved the rate at which mail was accepted.
        yield from self._pool.run(ids, before_each=self._give_way)
        self._pool_used = time.monotonic()

    def _database_failed(self) -> float:
        """A message stayed received because the database failed: the pause until the next sweep (1 s after
        the first failure, doubling with each failed sweep up to ``sweep_seconds``)."""
        pause = 1.0 if self._retry_pause is None else min(self._retry_pause * 2, self.sweep_seconds)
        self._retry_pause = pause
        return pause

    def _run(self) -> None:
        self.sweep()
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, self._next_sweep - time.monotonic()))
            except queue.Empty:
                if not self._stopping.is_set():
                    self.sweep()
                    self._close_idle_pool()
                continue
            batch = [item]
            try:
                if item is None:
                    if self._queue.empty():
                        return
                    continue
                if self._wants_pool(self._queue.qsize() + 1):
                    batch += self._take_queued()
                    ids = [i for i in batch if i is not None]
                    outcomes: Iterable[Outcome] = self._pool_run(ids)
                else:
                    self._give_way()
                    outcomes = (process(self.factory, self.settings, item),)
                for outcome in outcomes:
                    self._after(outcome)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if None in batch[1:]:
                self._queue.put(None)  # the stop taken with the backlog: after what is left
            if self._retry_pause is not None and time.monotonic() >= self._next_sweep and not self._stopping.is_set():
                self.sweep()  # mail keeps arriving, but what the outage left behind must not wait for a lull

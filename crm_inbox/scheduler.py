"""Timed work inside ``crm-inbox serve``: firing due reminders, closing calls whose hangup never came and
the daily retention purge.

APScheduler 3 runs with its in-memory job store and only *wakes* the code; what is due lives in the
database (``reminders.fire_at``). APScheduler's persistent job stores cannot be shared between processes,
delete one-shot jobs when they start rather than when they finish, and drop jobs they cannot unpickle, so
they hold nothing here: after a restart the first tick finds whatever came due while the service was down,
and the fixed job ids mean a restart can never leave a second copy of a schedule behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.calls.service import close_stale_calls
from crm_inbox.config import Settings
from crm_inbox.db import unit_of_work, write_lock
from crm_inbox.privacy.retention import purge
from crm_inbox.reminders.service import fire_due, next_fire_at

log = logging.getLogger(__name__)

TICK = "reminders-tick"  # every [reminders] tick_seconds: rows other nodes wrote, and the safety net
NEXT = "reminders-next"  # one shot at the earliest due time, so a reminder fires on time, not a tick late
STALE_CALLS = "close-stale-calls"
RETENTION = "retention-purge"  # daily, and once at start (a restart must not postpone it by a day)


class Scheduler:
    def __init__(self, factory: sessionmaker[Session], settings: Settings,
                 on_fired: Callable[[], None] = lambda: None) -> None:
        self.factory, self.settings, self.on_fired = factory, settings, on_fired
        self._tick_lock = threading.Lock()  # the periodic and the one-shot job may meet
        self._scheduler = BackgroundScheduler(
            timezone=UTC, executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        # Finished runs per job id, so tests and shutdown can wait for "the first tick after start".
        self._runs: dict[str, int] = {}
        self._ran = threading.Condition()
        self._scheduler.add_listener(self._count, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)

    def start(self) -> None:
        now = datetime.now(UTC)
        self._scheduler.add_job(self.tick, "interval", seconds=self.settings.reminders.tick_seconds, id=TICK,
                                next_run_time=now, replace_existing=True)
        self._scheduler.add_job(self.close_stale_calls, "interval", seconds=60, id=STALE_CALLS, next_run_time=now,
                                replace_existing=True)
        retention = self.settings.retention
        if retention.inbound_raw_days or retention.call_days or retention.event_days:
            self._scheduler.add_job(self.purge, "interval", days=1, id=RETENTION, next_run_time=now,
                                    replace_existing=True)
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)  # a tick in progress finishes its transaction

    def _count(self, event: JobExecutionEvent) -> None:
        with self._ran:
            self._runs[event.job_id] = self._runs.get(event.job_id, 0) + 1
            self._ran.notify_all()

    def wait_runs(self, job_id: str, count: int = 1, timeout: float = 30.0) -> bool:
        """Block until job ``job_id`` has finished ``count`` runs since start."""
        with self._ran:
            return self._ran.wait_for(lambda: self._runs.get(job_id, 0) >= count, timeout)

    def job_ids(self) -> list[str]:
        return sorted(job.id for job in self._scheduler.get_jobs())

    def wake(self) -> None:
        """Reminders changed in this process: look again now (and plan the next due time)."""
        if self._scheduler.running:
            self._scheduler.add_job(self.tick, "date", run_date=datetime.now(UTC), id=NEXT, replace_existing=True,
                                    max_instances=3)

    def tick(self) -> int:
        """Fire what is due, then plan the next wake-up. Returns how many reminders fired here."""
        with self._tick_lock:
            try:
                fired = fire_due(self.factory, self.settings)
            except Exception:  # the database is away: the next tick tries again
                log.exception("reminders: firing failed")
                return 0
            if fired:
                log.info("reminders: %d fired", fired)
                self.on_fired()
            self._plan_next()
            return fired

    def _plan_next(self) -> None:
        with self.factory() as session:
            upcoming = next_fire_at(session)
        now = datetime.now(UTC)
        if upcoming is None or upcoming > now + timedelta(seconds=self.settings.reminders.tick_seconds):
            return  # the periodic tick comes first anyway
        if self._scheduler.running:
            self._scheduler.add_job(self.tick, "date", run_date=max(upcoming, now), id=NEXT, replace_existing=True,
                                    max_instances=3)

    def purge(self) -> dict[str, int]:
        try:
            return purge(self.factory, self.settings)
        except Exception:  # the database is away: tomorrow's run (or a restart) tries again
            log.exception("retention purge failed")
            return {}

    def close_stale_calls(self) -> int:
        try:
            with write_lock(self.factory), unit_of_work(self.factory) as session:
                closed = close_stale_calls(session, self.settings)
        except Exception:
            log.exception("closing stale calls failed")
            return 0
        if closed:
            log.info("closed %d call(s) whose hangup never arrived", closed)
        return closed

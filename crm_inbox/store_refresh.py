"""``serve``'s scheduled analytics refresh: ``crm-inbox analytics refresh`` in a child process of its own, at
the lowest CPU (``nice -n 19``) and, where ``ionice`` exists, idle I/O priority.

The operative side never imports the analytics package (an import-linter contract): the refresh is only ever
a command line run in another process, so its memory, CPU time, crashes and DuckDB's threads stay out of the
process that takes mail and calls. When it fails, one log line says so and serve goes on.

When: the store file's modification time is the last refresh (the refresh swaps a new file in). The first run
comes at once when the store is missing, else when the store is older than ``refresh_minutes``; after that
every ``refresh_minutes`` after the later of the last refresh and the last attempt (a failing refresh is not
retried in a loop). Never two at once from one serve: the next is planned only when the child has ended.
Several serve processes sharing one instance folder may each start one; the refresh's own file lock makes
the second return "busy" at once. Incremental or full is the command's own choice (a full rebuild at least
daily bounds what the incremental rules cannot see), so cron and this schedule behave alike.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from crm_inbox.config import Settings

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 3  # a child asked to stop gets this long (from the request) before it is killed


def next_refresh_at(now: float, store_mtime: float | None, last_attempt: float | None, interval: float) -> float:
    """When the next refresh is due (epoch seconds): at once for a missing store never tried, else
    ``interval`` after the later of the store's last refresh and the last attempt."""
    if store_mtime is None and last_attempt is None:
        return now
    return max(store_mtime or 0.0, last_attempt or 0.0) + interval


def refresh_command(config_path: str | None) -> list[str]:
    """The child's command line: this Python, the same configuration file as serve had."""
    command = [sys.executable, "-m", "crm_inbox"]
    if config_path:
        command += ["--config", str(config_path)]
    return [*command, "analytics", "refresh"]


def at_lowest_priority(command: list[str]) -> list[str]:
    """``command`` behind ``nice -n 19`` and, where it exists, ``ionice -c 3`` (idle I/O). Both exec the next
    program in the same process, so the child's pid is the refresh's. Command-line tools rather than a
    preexec_fn: serve has many threads, and Python code between fork and exec may wait forever for a lock
    another thread held at the fork. Where a tool is missing the refresh runs all the same."""
    ionice = shutil.which("ionice")
    if ionice:
        # -t: where the idle class cannot be set (some containers), the refresh runs all the same.
        command = [ionice, "-c", "3", "-t", *command]
    nice = shutil.which("nice")
    return [nice, "-n", "19", *command] if nice else command


def refresh_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: ours, plus the settings the refresh reads as serve holds them. serve's
    settings may differ from any file (the demo picks its own database and store), and environment
    variables override the file in the child."""
    analytics = settings.analytics
    store = analytics.store_path(settings.service.instance_dir)
    return {**environ,
            "CRM_INBOX_DATABASE_URL": settings.database.url,
            "CRM_INBOX_SERVICE_INSTANCE_DIR": settings.service.instance_dir,
            "CRM_INBOX_ANALYTICS_PATH": str(store),
            "CRM_INBOX_ANALYTICS_SOURCE_URL": analytics.source_url,
            "CRM_INBOX_ANALYTICS_MIN_GROUP_SIZE": str(analytics.min_group_size),
            "CRM_INBOX_ANALYTICS_PER_PERSON_REPORTS": "true" if analytics.per_person_reports else "false",
            "CRM_INBOX_REMINDERS_TIMEZONE": settings.reminders.timezone}


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


class StoreRefresher:
    """Starts the refresh when due, waits for it, logs its outcome in one line; ``stop`` ends a running one."""

    def __init__(self, settings: Settings, config_path: str | None = None) -> None:
        self.settings = settings
        self.interval = settings.analytics.refresh_minutes * 60
        self.store = settings.analytics.store_path(settings.service.instance_dir)
        self.command = refresh_command(config_path)
        self.environment = refresh_environment(settings, os.environ)
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # between starting a child and stop() looking for one
        self._child: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._last_attempt: float | None = None
        self._stop_requested_at: float | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.analytics.enabled and self.interval > 0

    @property
    def child_pid(self) -> int | None:
        """The running refresh's process id (None between runs)."""
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    def start(self) -> None:
        if not self.enabled:
            return
        # Not a "crm-inbox-" component thread: the supervisor stops serve when one of those dies, and analytics
        # must never stop the operative service.
        self._thread = threading.Thread(target=self._run, name="analytics-refresh", daemon=True)
        self._thread.start()

    def _store_mtime(self) -> float | None:
        try:
            return self.store.stat().st_mtime
        except OSError:
            return None

    def _run(self) -> None:
        while not self._stopping.is_set():
            due = next_refresh_at(time.time(), self._store_mtime(), self._last_attempt, self.interval)
            if self._stopping.wait(max(0.0, due - time.time())):
                return
            try:
                self._refresh_once()
            except Exception:  # the schedule outlives any failure; the next attempt is an interval later
                log.exception("analytics: the scheduled refresh could not run")
            self._last_attempt = time.time()

    def _refresh_once(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            self._child = subprocess.Popen(at_lowest_priority(self.command), env=self.environment,
                                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True, errors="replace")
        out, err = self._child.communicate()
        status = self._child.returncode
        if self._stopping.is_set():
            return  # ended by stop(): not a failure worth a line
        if status == 0:
            summary = last_line(out)  # the command's own line ("analytics: full refresh, …")
            log.info("%s", summary if summary.startswith("analytics") else f"analytics refresh: {summary}")
        else:
            log.warning("analytics: the scheduled refresh failed (exit status %s): %s", status, last_line(err))

    def request_stop(self) -> None:
        """Plan no more refreshes and ask a running one to end (SIGTERM), without waiting for it: serve's stop
        calls this first and reaps the child with ``stop`` once the operative parts have stopped."""
        with self._lock:
            self._stopping.set()
            child = self._child
            if self._stop_requested_at is None:
                self._stop_requested_at = time.monotonic()
        if child is not None and child.poll() is None:
            child.terminate()

    def stop(self) -> None:
        """End a running refresh and the schedule: what ``request_stop`` did if not yet done, then the child
        gets what is left of a short grace (from the request) to end before it is killed, and is reaped."""
        self.request_stop()
        child = self._child
        if child is not None and child.poll() is None:
            assert self._stop_requested_at is not None
            left = self._stop_requested_at + STOP_GRACE_SECONDS - time.monotonic()
            try:
                child.wait(max(0.0, left))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if self._thread is not None:
            self._thread.join(STOP_GRACE_SECONDS)  # its child has ended: it only logs nothing and returns

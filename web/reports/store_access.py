"""The web app's way to the analytical store: one read-only StoreReader per app (kept on AppState, made at the
first report request), the reports run on it, and a short-lived cache so that a page's charts and CSV links
do not run its report again. A store that cannot be read is logged once (per change of reason), never raised
beyond the reports."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import duckdb

from crm_inbox.analytics.model import Filters, Report, StaffPolicy
from crm_inbox.analytics.reports import catalog
from crm_inbox.analytics.store import StoreInfo, StoreReader, read_info
from crm_inbox.config import Settings
from crm_inbox.errors import AnalyticsUnavailable
from web.requestdb import state

log = logging.getLogger(__name__)
CACHED_REPORTS = 32
# What DuckDB raises when a store file's blocks cannot be read back (a checksum mismatch is a plain
# duckdb.Error saying "Corrupt database file").
_DAMAGE = (duckdb.IOException, duckdb.SerializationException, duckdb.InternalException)


def damaged(exc: duckdb.Error) -> bool:
    return isinstance(exc, _DAMAGE) or type(exc) is duckdb.Error or "corrupt" in str(exc).lower()


@dataclass(frozen=True)
class Answer:
    report: Report
    info: StoreInfo | None


class ReportsAccess:
    def __init__(self, path: Path, policy: StaffPolicy) -> None:
        self.path = path
        self.policy = policy
        self.reader = StoreReader(path)
        self._lock = threading.Lock()
        # (report, filters, the snapshot's refresh time) → the report: a new snapshot is a new key.
        self._cache: OrderedDict[tuple[str, Filters, object], Answer] = OrderedDict()
        self._trouble: str | None = None

    def run(self, name: str, filters: Filters) -> Answer:
        """The named report on the current snapshot. Raises AnalyticsUnavailable (logged once)."""
        try:
            with self.reader.cursor() as con:
                info = read_info(con)
                key = (name, filters, info.refreshed_at if info else None)
                with self._lock:
                    cached = self._cache.get(key)
                    if cached is not None:
                        self._cache.move_to_end(key)
                        return cached
                answer = Answer(catalog.run(name, con, filters, self.policy), info)
        except duckdb.Error as exc:
            if not damaged(exc):
                raise  # a report's bug: an error with its traceback
            # The file opened but a read failed (damaged blocks): the store is as good as corrupt.
            self.trouble(AnalyticsUnavailable("corrupt", str(exc)))
            raise AnalyticsUnavailable("corrupt", str(exc)) from exc
        except AnalyticsUnavailable as exc:
            self.trouble(exc)
            raise
        self.fine()
        with self._lock:
            self._cache[key] = answer
            while len(self._cache) > CACHED_REPORTS:
                self._cache.popitem(last=False)
        return answer

    def status(self) -> tuple[StoreInfo | None, str | None]:
        """(the last refresh, None) or (None, why the store cannot be read: missing, corrupt, locked, outdated)."""
        try:
            with self.reader.cursor() as con:
                info = read_info(con)
        except AnalyticsUnavailable as exc:
            self.trouble(exc)
            return None, exc.reason
        except duckdb.Error as exc:
            self.trouble(AnalyticsUnavailable("corrupt", str(exc)))
            return None, "corrupt"
        self.fine()
        return info, None

    def teams(self) -> list[str]:
        """The teams staff belong to (for the filter's choice); none when the store cannot be read."""
        try:
            with self.reader.cursor() as con:
                rows = con.execute("SELECT DISTINCT team FROM dim_staff WHERE team IS NOT NULL AND active "
                                   "ORDER BY team").fetchall()
        except (AnalyticsUnavailable, duckdb.Error):
            return []
        return [str(r[0]) for r in rows]

    def trouble(self, exc: AnalyticsUnavailable) -> None:
        """One log line when the store becomes unreadable (or for another reason), not one per request."""
        with self._lock:
            if self._trouble == exc.reason:
                return
            self._trouble = exc.reason
        log.warning("analytics store %s (%s): reports are paused; nothing else is affected", exc.reason,
                    self.path)

    def fine(self) -> None:
        with self._lock:
            if self._trouble is None:
                return
            self._trouble = None
        log.info("analytics store readable again (%s)", self.path)


def access_for(settings: Settings) -> ReportsAccess:
    return ReportsAccess(settings.analytics.store_path(settings.service.instance_dir),
                         StaffPolicy(min_group_size=settings.analytics.min_group_size,
                                     per_person=settings.analytics.per_person_reports))


def access() -> ReportsAccess:
    """The app's ReportsAccess, made at first use (the operative side never imports analytics)."""
    app_state = state()
    current = app_state.analytics
    if isinstance(current, ReportsAccess):
        return current
    with app_state.analytics_lock:
        if not isinstance(app_state.analytics, ReportsAccess):
            app_state.analytics = access_for(app_state.settings)
        return app_state.analytics

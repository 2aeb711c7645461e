"""What the app keeps for all its requests: settings, database, the screen-pop broker (``app.extensions``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.calls.screenpop import Broker
from crm_inbox.config import Settings


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    broker: Broker = field(default_factory=Broker)
    # Tells the scheduler that reminders changed (a new one may be due before its next tick).
    reminders_changed: Callable[[], None] = lambda: None
    # Tells the outbox sender that mail was queued (staff wrote a mail, a quote was sent): send it now.
    mail_queued: Callable[[], None] = lambda: None
    # The reports' way to the analytical store (web.reports.store_access.ReportsAccess with its StoreReader),
    # made at the first report request: typed loosely because operative modules never import analytics.
    analytics: object | None = None
    analytics_lock: threading.Lock = field(default_factory=threading.Lock)

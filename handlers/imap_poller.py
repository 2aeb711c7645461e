"""``crm-inbox serve``'s side of an IMAP account: a thread that imports, waits (IDLE or polling) and, after
any error, reconnects with capped exponential backoff, logging one line per attempt. It never spins: a
connection that fails again and again waits 1, 2, 4 … up to ``[imap] reconnect_max_seconds`` between tries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from imapclient.exceptions import IMAPClientError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import ConfigError, ImapAccount, Settings
from crm_inbox.intake.imap_folders import record_error
from crm_inbox.intake.store import Accepted
from handlers.imap import ImapError, Mailbox, describe

log = logging.getLogger(__name__)


def reconnect_delay(attempt: int, cap: float) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0, 1, …): 1, 2, 4, … up to ``cap``."""
    return float(min(cap, 2 ** min(attempt, 30)))



class Poller:
    """One account in ``crm-inbox serve``: a thread that imports, waits (IDLE or polling), and reconnects
    with capped exponential backoff after any error; ``stop()`` ends it within about a second."""

    def __init__(self, account: ImapAccount, settings: Settings, factory: sessionmaker[Session],
                 on_stored: Callable[[Accepted], None] | None = None) -> None:
        self.account = account
        self.settings = settings
        self.factory = factory
        self.on_stored = on_stored
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"crm-inbox-imap-{account.name}", daemon=True)
        self._last_progress = time.monotonic()
        self.connects = 0  # successful connections (for tests and logs)
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def _log_progress(self, done: int, total: int) -> None:
        """A large first import says how far it is, every 10 s or so (small passes stay quiet)."""
        now = time.monotonic()
        if done < total and now - self._last_progress < 10:
            return
        if done < total or total > self.settings.imap.batch_size:
            log.info("imap %s: %d of %d new message(s) stored", self.account.name, done, total)
        self._last_progress = now

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        attempt = 0
        name = self.account.name
        while not self._stop.is_set():
            mailbox = Mailbox(self.account, self.settings, self.factory, on_stored=self.on_stored)
            try:
                mailbox.open()
                self.connects += 1
                if attempt:
                    log.info("imap %s: connected again", name)
                elif self.connects == 1:
                    assert mailbox.client is not None
                    how = ("IDLE" if mailbox.client.has_capability("IDLE")
                           else f"polling every {self.account.poll_seconds} s")
                    log.info("imap %s: watching %r on %s:%s as %s (%s)", name, self.account.folder,
                             self.account.host, self.account.effective_port, self.account.username, how)
                while not self._stop.is_set():
                    mailbox.sync(self._stop, progress=self._log_progress)
                    self.last_error = None
                    mailbox.wait(self._stop)
                    attempt = 0  # only a whole cycle counts: a connection that always fails in IDLE backs off too
            except Exception as exc:
                mailbox.close()  # before the backoff: no half-dead connection is kept meanwhile
                if self._stop.is_set():
                    break
                message = describe(exc)
                if not isinstance(exc, ImapError | ConfigError | IMAPClientError | OSError | SQLAlchemyError):
                    log.exception("imap %s: unexpected error", name)
                delay = reconnect_delay(attempt, self.settings.imap.reconnect_max_seconds)
                attempt += 1
                self.last_error = message
                log.warning("imap %s: %s; trying again in %.0f s", name, message, delay)
                record_error(self.factory, name, self.account.folder, message)
                self._stop.wait(delay)
            finally:
                mailbox.close()
        log.info("imap %s: stopped", name)

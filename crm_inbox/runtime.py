"""The composition root: wires the core to the SMTP adapter, the worker and the web app in one process."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import threading
import traceback
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from crm_inbox import events
from crm_inbox.calls.relay import Relay
from crm_inbox.campaigns.sending import CampaignSender
from crm_inbox.config import Settings
from crm_inbox.db import check_schema, make_engine, make_sessionmaker
from crm_inbox.intake.memory import return_large_blocks_at_once
from crm_inbox.intake.store import Accepted
from crm_inbox.outbox import Sender
from crm_inbox.pipeline.worker import Worker
from crm_inbox.scheduler import Scheduler
from crm_inbox.store_refresh import StoreRefresher
from crm_inbox.webhooks.delivery import Deliverer

if TYPE_CHECKING:
    from crm_inbox.intake.smtp_store import SmtpStore
    from crm_inbox.intake.writer import IntakeProcess
    from handlers.smtp import SmtpServer

log = logging.getLogger(__name__)


class Service:
    """``crm-inbox serve``: the SMTP listener, the IMAP pollers, the processing worker, the scheduler, the
    outbox sender, the web app and the scheduled analytics refresh (a child process; ``config_path`` is the
    configuration file serve was started with, for that child)."""

    def __init__(self, settings: Settings, *, web: bool = True, smtp: bool = True,
                 config_path: str | None = None) -> None:
        self.settings = settings
        self.analytics_refresh = StoreRefresher(settings, config_path)
        self.engine = make_engine(settings.database.url, echo=settings.database.echo)
        self.factory = make_sessionmaker(self.engine)
        # Processing can be redone from the stored raw mail, so its commits need not wait for the disk.
        self.processing_engine = make_engine(settings.database.url, echo=settings.database.echo, durable=False)
        self.sender = Sender(self.factory, settings)
        self.scheduler = Scheduler(self.factory, settings, on_fired=self.sender.wake)
        # Campaign mail released at the rate gate goes to the outbox sender at once. A release need not wait
        # for the disk either: on SQLite a later durable commit (the outbox's "sent") makes it durable too, and
        # one lost with the power is released again after the restart, its mail not yet sent.
        self.campaigns = CampaignSender(make_sessionmaker(self.processing_engine), settings,
                                        on_released=self.sender.wake)
        # No ping per message (a round trip each on PostgreSQL): a connection the database dropped fails one
        # message with a database error, which leaves it received for the next sweep.
        self.worker_engine = make_engine(settings.database.url, echo=settings.database.echo, durable=False,
                                         pre_ping=False)
        # Outbound webhooks: woken after every commit in this process that wrote deliveries (events.record), and
        # by the worker for those its worker processes wrote.
        self.webhooks = Deliverer(self.factory, settings)
        self.worker = Worker(make_sessionmaker(self.worker_engine), settings, on_processed=self.sender.wake,
                             on_deliveries=self.webhooks.wake)
        self._webhooks_unhook: Any = None
        self.smtp: SmtpServer | None = None
        self.intake: SmtpStore | None = None
        self.imap_pollers: list[Any] = []
        self.web: Any = None  # waitress's server (the library has no type hints)
        self.relay: Relay | None = None
        self._web_thread: threading.Thread | None = None
        self._want_web = web
        self._want_smtp = smtp and settings.smtp.enabled

    def start(self) -> None:
        check_schema(self.engine)
        return_large_blocks_at_once()
        self.sender.start()
        self.campaigns.start()
        self._webhooks_unhook = events.on_committed(self.webhooks.wake)
        self.webhooks.start()
        self.scheduler.start()
        self.worker.start()
        if self._want_smtp:
            from crm_inbox.intake.smtp_store import SmtpStore
            from handlers.smtp import CrmSmtpHandler, SmtpServer
            from handlers.smtp_sessions import SessionLimits

            # The handler sees one Store; which process commits a message is the store's choice (docs/intake.md).
            self.intake = SmtpStore(self.factory, self.settings.database.url)
            smtp = self.settings.smtp
            handler = CrmSmtpHandler(self.intake, self.settings.mail.own_addresses, on_stored=self._on_stored,
                                     max_recipients=smtp.max_recipients)
            # aiosmtpd logs every command at INFO; we log one line per stored message instead.
            logging.getLogger("mail.log").setLevel(logging.WARNING)
            self.smtp = SmtpServer(handler, self.settings.smtp.host, self.settings.smtp.port,
                                   max_message_bytes=self.settings.smtp.max_message_bytes,
                                   hostname=self.settings.smtp.hostname, on_drained=self.intake.close,
                                   limits=SessionLimits(smtp.max_sessions, smtp.max_sessions_per_client,
                                                        uncapped_clients=self.settings.mail.trusted_relays),
                                   idle_timeout=smtp.idle_timeout_seconds,
                                   normalize_bare_lf=smtp.bare_newline == "normalize")
            self.smtp.start()
            asyncio.run_coroutine_threadsafe(self.intake.start(), self.smtp.loop).result(30)
            self.worker.busy = handler.busy
        if self.settings.imap.accounts:
            from handlers.imap_poller import Poller

            # One thread per mailbox; their stored mail goes to the same worker as SMTP mail.
            self.imap_pollers = [Poller(account, self.settings, self.factory, on_stored=self._on_stored)
                                 for account in self.settings.imap.accounts]
            for poller in self.imap_pollers:
                poller.start()
        if self._want_web:
            from waitress import create_server

            from web import create_app

            app = self.web_app = create_app(self.settings, self.factory, on_reminders_changed=self.scheduler.wake,
                                         on_mail_queued=self._mail_queued)
            if self.engine.dialect.name == "postgresql":  # several nodes may share it: relay the screen pops
                self.relay = Relay(self.settings.database.url, app.extensions["crm_inbox"].broker)
                self.relay.start()
            web = self.settings.web
            # poll(), not select(): select() cannot watch a descriptor above 1023, and 1,000 SMTP sessions
            # push the web's new sockets there. The connection limit counts half-sent requests too, so it is
            # set far above the thread count; channel_timeout closes those that go quiet.
            self.web = create_server(app, host=web.host, port=web.port, threads=web.threads, ident="crm-inbox",
                                     asyncore_use_poll=True, connection_limit=web.connection_limit,
                                     channel_timeout=web.channel_timeout,
                                     cleanup_interval=max(1, min(30, web.channel_timeout // 2)))
            self._web_thread = threading.Thread(target=self.web.run, name="crm-inbox-web", daemon=True)
            self._web_thread.start()
            log.info("web: listening on http://%s:%s/", self.settings.web.host, self.web_port)
        self.analytics_refresh.start()  # last: the operative parts run before any refresh starts

    @property
    def intake_process(self) -> IntakeProcess:
        """The SMTP intake's writer process (tests and the benchmark look at its pid)."""
        assert self.intake is not None, "the SMTP listener is not running"
        return self.intake.writer

    def _mail_queued(self) -> None:
        """The web app queued mail, or started, approved or resumed a campaign: send and release now."""
        self.sender.wake()
        self.campaigns.wake()

    def _on_stored(self, accepted: Accepted) -> None:
        if not accepted.duplicate:
            self.worker.submit(accepted.inbound_id)

    @property
    def smtp_port(self) -> int | None:
        return self.smtp.port if self.smtp else None

    @property
    def web_port(self) -> int | None:
        return int(self.web.effective_port) if self.web else None

    def _stop_web(self) -> None:
        """Close waitress's sockets inside its own loop thread: closing them from here while that thread
        waits in select() makes it die with EBADF (and requests in flight fail with a traceback)."""
        from waitress import wasyncore

        server = self.web
        socket_map = getattr(server, "_map", None)
        if socket_map is not None and getattr(server, "trigger", None) is not None:
            try:
                server.trigger.pull_trigger(lambda: wasyncore.close_all(socket_map))
            except OSError:  # the loop is gone already: nobody else uses the sockets
                wasyncore.close_all(socket_map)
            if self._web_thread is not None:
                self._web_thread.join(10)
            server.task_dispatcher.shutdown()
        else:  # another server class: its own close
            server.close()
            if self._web_thread is not None:
                self._web_thread.join(10)

    def stop(self) -> None:
        """Stop taking mail first, finish what is in flight, then stop the worker and the web app."""
        # A running refresh is asked to end (it leaves the old store as it was) without waiting for it: taking
        # mail stops at once; the child is reaped once the operative parts have stopped.
        self.analytics_refresh.request_stop()
        if self.smtp is not None:
            self.smtp.stop()  # closes the intake's store once the last message in flight is committed
        for poller in self.imap_pollers:  # each stops at its next IDLE tick or batch boundary
            poller.request_stop()
        for poller in self.imap_pollers:
            poller.stop()
        if self.relay is not None:
            self.relay.stop()
        if self.web is not None:
            self.web_app.extensions["crm_inbox"].broker.close()  # end the browsers' event streams
            self._stop_web()
        self.worker.stop()
        self.scheduler.stop()
        self.campaigns.stop()  # releases nothing more while the outbox sender finishes its round
        self.sender.stop()
        if self._webhooks_unhook is not None:
            self._webhooks_unhook()
            self.webhooks.stop()
        self.analytics_refresh.stop()  # reaped (killed if it has not ended within its grace)
        self.engine.dispose()
        self.processing_engine.dispose()
        self.worker_engine.dispose()
        log.info("service stopped")


# --- the process around the service: open files, supervision --------------------------------------------

# No more than the kernel allows any process (fs.nr_open's default); "unlimited" hard limits are not
# accepted as a soft limit for open files.
_OPEN_FILES_CEILING = 1 << 20


def open_files_target(soft: int, hard: int) -> int:
    """The soft limit of open files serve should run with: as high as the hard limit allows. Every SMTP
    session, web connection and database connection is a descriptor; the usual soft limit of 1,024 lets a
    burst of idle SMTP clients use up what the web needs."""
    if soft == resource.RLIM_INFINITY:
        return soft
    ceiling = _OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else min(hard, _OPEN_FILES_CEILING)
    return max(soft, ceiling)


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to the hard limit, log it, and return the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = open_files_target(soft, hard)
    if target == soft:
        log.info("open files: limit %s", soft)
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("open files: cannot raise the limit from %s to %s: %s", soft, target, exc)
        return soft
    log.info("open files: limit raised from %s to %s", soft, target)
    return target


COMPONENT_THREAD_PREFIX = "crm-inbox-"  # every component names its thread so (web, smtp, worker, imap-…)


def describe_death(thread_name: str, exc: BaseException | None, tb: Any = None) -> str:
    """One line for the log: which component died, of what, and where."""
    if exc is None:
        return f"component thread {thread_name} ended unexpectedly"
    where = ""
    frames = traceback.extract_tb(tb) if tb is not None else []
    if frames:
        where = f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}"
    return f"component thread {thread_name} died: {type(exc).__name__}: {exc}{where}"


class Supervisor:
    """Keeps ``serve`` from running half-alive: when one of its component threads (the web server's loop, the
    SMTP loop, the worker, the outbox, an IMAP poller, the event relay …) raises or ends while the service
    runs, ``wait`` returns, so that serve stops the rest and exits non-zero and systemd (Restart=on-failure)
    starts it afresh. The components own their threads; an exception is caught with ``threading.excepthook``,
    a quiet end by checking the threads that were alive once the service had started."""

    def __init__(self, check_seconds: float = 0.5) -> None:
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._death: str | None = None
        self._watched: list[threading.Thread] = []
        self._previous_hook = threading.excepthook
        self._installed = False

    def install(self) -> None:
        """Catch component threads' exceptions from now on (call before the service starts its threads)."""
        self._previous_hook = threading.excepthook
        threading.excepthook = self._thread_raised
        self._installed = True

    def uninstall(self) -> None:
        """Back to the previous hook: exceptions while stopping are printed as usual, not turned into exits."""
        if self._installed:
            threading.excepthook = self._previous_hook
            self._installed = False

    def watch_running(self) -> None:
        """Watch the component threads alive now (call once the service has started)."""
        self._watched = [t for t in threading.enumerate() if t.name.startswith(COMPONENT_THREAD_PREFIX)]

    def _thread_raised(self, args: threading.ExceptHookArgs) -> None:
        thread = args.thread
        if thread is None or not thread.name.startswith(COMPONENT_THREAD_PREFIX):
            self._previous_hook(args)
            return
        with self._lock:
            if self._death is None:
                self._death = describe_death(thread.name, args.exc_value, args.exc_traceback)

    def death(self) -> str | None:
        """The first component that died, as one line; None while every one is alive."""
        with self._lock:
            if self._death is not None:
                return self._death
        for thread in self._watched:
            if not thread.is_alive():
                with self._lock:
                    if self._death is None:  # its exception may have been recorded meanwhile
                        self._death = describe_death(thread.name, None)
                    return self._death
        return None

    def wait(self, stop_signals: Collection[signal.Signals]) -> str | None:
        """Block until a stop signal arrives (None: a clean stop) or a component dies (its line). The stop
        signals must be blocked in every thread (see cli)."""
        while True:
            if signal.sigtimedwait(stop_signals, self.check_seconds) is not None:
                return None
            death = self.death()
            if death is not None:
                return death

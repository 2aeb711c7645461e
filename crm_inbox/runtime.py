"""The composition root: wires the core to the SMTP adapter, the worker and the web app in one process."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from crm_inbox.config import Settings
from crm_inbox.db import check_schema, make_engine, make_sessionmaker
from crm_inbox.event_relay import Relay
from crm_inbox.intake import Accepted, BatchingStore, Envelope
from crm_inbox.memory import return_large_blocks_at_once
from crm_inbox.outbox import Sender
from crm_inbox.scheduler import Scheduler
from crm_inbox.worker import Worker

log = logging.getLogger(__name__)


class Service:
    """``crm-inbox serve``: the SMTP listener, the IMAP pollers, the processing worker, the scheduler, the
    outbox sender and the web app."""

    def __init__(self, settings: Settings, *, web: bool = True, smtp: bool = True) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database.url, echo=settings.database.echo)
        self.factory = make_sessionmaker(self.engine)
        # Processing can be redone from the stored raw mail, so its commits need not wait for the disk.
        self.processing_engine = make_engine(settings.database.url, echo=settings.database.echo, durable=False)
        self.sender = Sender(self.factory, settings)
        self.scheduler = Scheduler(self.factory, settings, on_fired=self.sender.wake)
        self.worker = Worker(make_sessionmaker(self.processing_engine), settings, on_processed=self.sender.wake)
        self.smtp = None
        self.imap_pollers: list[Any] = []
        self.web = None
        self.relay: Relay | None = None
        self._web_thread: threading.Thread | None = None
        self._want_web = web
        self._want_smtp = smtp and settings.smtp.enabled

    def start(self) -> None:
        check_schema(self.engine)
        return_large_blocks_at_once()
        self.sender.start()
        self.scheduler.start()
        self.worker.start()
        if self._want_smtp:
            from crm_inbox.intake_process import IntakeProcess
            from handlers.smtp import CrmSmtpHandler, SmtpServer

            # Ordinary mail is committed by a writer process; large mail in this one (see intake_process).
            self.intake = BatchingStore(self.factory)
            self.intake_process = IntakeProcess(self.settings.database.url)

            async def store(raw: bytes, envelope: Envelope) -> Accepted:
                if len(raw) >= BatchingStore.SMALL:
                    return await self.intake.submit(raw, envelope)
                return await self.intake_process.submit(raw, envelope)

            handler = CrmSmtpHandler(store, self.settings.mail.own_addresses, on_stored=self._on_stored)
            # aiosmtpd logs every command at INFO; we log one line per stored message instead.
            logging.getLogger("mail.log").setLevel(logging.WARNING)
            self.smtp = SmtpServer(handler, self.settings.smtp.host, self.settings.smtp.port,
                                   max_message_bytes=self.settings.smtp.max_message_bytes,
                                   hostname=self.settings.smtp.hostname, on_drained=self.intake_process.close)
            self.smtp.start()
            asyncio.run_coroutine_threadsafe(self.intake_process.start(), self.smtp.loop).result(30)
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

            app = self.web_app = create_app(self.settings, self.factory, on_reminders_changed=self.scheduler.wake)
            if self.engine.dialect.name == "postgresql":  # several nodes may share it: relay the screen pops
                self.relay = Relay(self.settings.database.url, app.extensions["crm_inbox"].broker)
                self.relay.start()
            self.web = create_server(app, host=self.settings.web.host, port=self.settings.web.port,
                                     threads=self.settings.web.threads, ident="crm-inbox")
            self._web_thread = threading.Thread(target=self.web.run, name="crm-inbox-web", daemon=True)
            self._web_thread.start()
            log.info("web: listening on http://%s:%s/", self.settings.web.host, self.web_port)

    def _on_stored(self, accepted: Accepted) -> None:
        if not accepted.duplicate:
            self.worker.submit(accepted.inbound_id)

    @property
    def smtp_port(self) -> int | None:
        return self.smtp.port if self.smtp else None

    @property
    def web_port(self) -> int | None:
        return int(self.web.effective_port) if self.web else None  # type: ignore[attr-defined]

    def _stop_web(self) -> None:
        """Close waitress's sockets inside its own loop thread: closing them from here while that thread
        waits in select() makes it die with EBADF (and requests in flight fail with a traceback)."""
        from waitress import wasyncore

        server = self.web
        socket_map = getattr(server, "_map", None)
        if socket_map is not None and getattr(server, "trigger", None) is not None:
            try:
                server.trigger.pull_trigger(lambda: wasyncore.close_all(socket_map))  # type: ignore[union-attr]
            except OSError:  # the loop is gone already: nobody else uses the sockets
                wasyncore.close_all(socket_map)
            if self._web_thread is not None:
                self._web_thread.join(10)
            server.task_dispatcher.shutdown()  # type: ignore[union-attr]
        else:  # another server class: its own close
            server.close()  # type: ignore[union-attr]
            if self._web_thread is not None:
                self._web_thread.join(10)

    def stop(self) -> None:
        """Stop taking mail first, finish what is in flight, then stop the worker and the web app."""
        if self.smtp is not None:
            self.smtp.stop()
            self.intake.close()
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
        self.sender.stop()
        self.engine.dispose()
        self.processing_engine.dispose()
        log.info("service stopped")

"""Screen pops across nodes on PostgreSQL: a call that reaches one node pops up in browsers on every node.

The webhook's transaction sends a NOTIFY, which PostgreSQL delivers to every listening node when (and only
if) it commits. Each node LISTENs on a connection of its own and hands what it hears to its in-process
``Broker``, except its own events: those it has published already, after commit, so one node never depends
on LISTEN. The channel is named after the schema, so two installations in one database never hear each
other. SQLite has one node: nothing to relay.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from crm_inbox.calls.screenpop import Broker

log = logging.getLogger(__name__)

_CHANNEL = "'crm_inbox_pop_' || md5(current_schema())"
_NOTIFY = text(f"SELECT pg_notify({_CHANNEL}, :payload)")


def notify_nodes(session: Session, broker: Broker, event: dict[str, Any], staff_ids: set[int] | None) -> None:
    """Within the webhook's transaction: tell the other nodes (PostgreSQL only) once it commits."""
    if session.get_bind().dialect.name != "postgresql":
        return
    payload = json.dumps({"node": broker.node, "event": event,
                          "staff": sorted(staff_ids) if staff_ids is not None else None})
    if len(payload) < 8000:  # PostgreSQL's limit for a payload; a screen pop is a few hundred bytes
        session.execute(_NOTIFY, {"payload": payload})


class Relay:
    """A thread that listens for the other nodes' screen pops and publishes them to this node's broker.
    When its connection fails it reconnects (1 s, doubling up to 30 s); pops meanwhile are missed, the
    calls themselves are recorded all the same."""

    def __init__(self, database_url: str, broker: Broker) -> None:
        self.engine = create_engine(database_url, poolclass=NullPool)
        self.broker = broker
        self.ready = threading.Event()  # set while listening
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crm-inbox-event-relay", daemon=True)

    def start(self, wait_seconds: float = 10.0) -> None:
        self._thread.start()
        if not self.ready.wait(wait_seconds):
            log.warning("event relay: not listening yet; screen pops from other nodes will follow once it is")

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)
        self.engine.dispose()

    def _run(self) -> None:
        pause = 1.0
        while not self._stopping.is_set():
            try:
                self._listen()
                pause = 1.0
            except Exception as exc:
                self.ready.clear()
                log.warning("event relay: %s; listening again in %.0f s", exc, pause)
                self._stopping.wait(pause)
                pause = min(pause * 2, 30.0)

    def _listen(self) -> None:
        raw = self.engine.raw_connection()
        try:
            connection: Any = raw.driver_connection  # psycopg's own connection: notifies() is not in DB-API
            connection.autocommit = True
            channel = connection.execute(f"SELECT {_CHANNEL}").fetchone()[0]
            connection.execute(f'LISTEN "{channel}"')  # md5 hex: nothing to quote
            self.ready.set()
            while not self._stopping.is_set():
                for note in connection.notifies(timeout=1.0):
                    self._deliver(note.payload)
        finally:
            raw.close()

    def _deliver(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            if message["node"] == self.broker.node:
                return
            staff = message["staff"]
            self.broker.publish(message["event"], set(staff) if staff is not None else None)
        except (ValueError, KeyError, TypeError):
            log.warning("event relay: ignored an unreadable notification %r", payload[:200])

"""Screen pops across nodes on PostgreSQL: a call that reaches one node pops up in browsers on every node.

Once the webhook's transaction has committed, ``PopSender`` publishes the pop on this node and sends a
NOTIFY, which PostgreSQL delivers to every listening node. Each node LISTENs on a connection of its own and
hands what it hears to its in-process ``Broker``, except its own events: those it has published already, so
one node never depends on LISTEN. The channel is named after the schema, so two installations in one database
never hear each other. SQLite has one node: nothing to relay.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, create_engine, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from crm_inbox.calls.screenpop import Broker
from crm_inbox.models import Contact

log = logging.getLogger(__name__)

_CHANNEL = "'crm_inbox_pop_' || md5(current_schema())"
_NOTIFY = text(f"SELECT pg_notify({_CHANNEL}, :payload)")


# One round trip for a batch of pops: each payload its own notification.
_NOTIFY_ALL = text(f"SELECT pg_notify({_CHANNEL}, payload) FROM unnest(CAST(:payloads AS text[])) AS payload")
_NAMES = select(Contact.id, Contact.name).where(Contact.id.in_(bindparam("ids", expanding=True)))


@dataclass(frozen=True)
class Pop:
    """An incoming call to show: to the given staff (everyone when None)."""

    call_id: int
    number: str
    contact_id: int | None
    url: str | None
    staff_ids: frozenset[int] | None
    name: str | None = None  # the caller's name when the webhook knew it (else read before sending)


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


class PopSender:
    """Screen pops sent after the webhook has answered the phone system: a thread of this node finds the
    callers' names the webhook did not know (nameless people), publishes to the node's broker and, on
    PostgreSQL, tells the other nodes in one NOTIFY per batch. Only committed calls are handed over, so a pop
    never shows a call that was rolled back. The thread ends when idle and starts again with the next pop."""

    IDLE_SECONDS = 10.0

    def __init__(self, engine: Engine, broker: Broker) -> None:
        self.engine = engine
        self.broker = broker
        self._queue: queue.SimpleQueue[Pop] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def send(self, pop: Pop) -> None:
        with self._guard:
            self._queue.put(pop)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="crm-inbox-screen-pops", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                batch = [self._queue.get(timeout=self.IDLE_SECONDS)]
            except queue.Empty:
                with self._guard:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            while len(batch) < 100:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._deliver(batch)
            except Exception as exc:  # the calls are recorded; only their pops are lost
                log.warning("screen pops: %d not delivered: %s", len(batch), exc)

    def _deliver(self, batch: list[Pop]) -> None:
        wanted = {p.contact_id for p in batch if p.contact_id is not None and p.name is None}
        postgres = self.engine.dialect.name == "postgresql"
        if not wanted:
            messages = self._publish(batch, {})
            if messages and postgres:
                with self.engine.begin() as connection:  # the browsers on the other nodes
                    connection.execute(_NOTIFY_ALL, {"payloads": messages})
            return
        # One connection for the names and the NOTIFY: each checkout costs the pool's ping, a round trip.
        with self.engine.begin() as connection:
            messages = self._publish(batch, self._names(connection, wanted))
            if messages and postgres:
                connection.execute(_NOTIFY_ALL, {"payloads": messages})

    def _publish(self, batch: list[Pop], names: dict[int, str]) -> list[str]:
        """Publish to this node's broker; returns the payloads for the other nodes."""
        messages = []
        for pop in batch:
            message = {"type": "call", "call_id": pop.call_id, "number": pop.number,
                       "name": pop.name or (names.get(pop.contact_id) if pop.contact_id else None), "url": pop.url}
            staff = set(pop.staff_ids) if pop.staff_ids is not None else None
            self.broker.publish(message, staff)
            payload = json.dumps({"node": self.broker.node, "event": message,
                                  "staff": sorted(staff) if staff is not None else None})
            if len(payload) < 8000:  # PostgreSQL's limit for a payload; a screen pop is a few hundred bytes
                messages.append(payload)
        return messages

    @staticmethod
    def _names(connection: Connection, contact_ids: set[int]) -> dict[int, str]:
        rows = connection.execute(_NAMES, {"ids": list(contact_ids)}).all()
        names: dict[int, str] = {contact_id: name for contact_id, name in rows if name}
        nameless = contact_ids - set(names)
        if nameless:  # known by an address: the ORM tells which (rare)
            with Session(bind=connection) as session:
                for contact_id in nameless:
                    contact = session.get(Contact, contact_id)
                    if contact is not None:
                        names[contact_id] = contact.display_name
        return names

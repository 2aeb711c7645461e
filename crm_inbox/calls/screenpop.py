"""Live notifications inside one process (the screen pop): staff browsers subscribe, calls publish.

With several nodes on PostgreSQL, ``event_relay`` carries each node's events to the others' brokers.
Each open stream holds a web server thread, so streams are bounded: a user's newest streams replace their
oldest beyond ``per_user``, and past ``total`` a new one is refused, so pages always have threads left.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

REPLACED = {"replaced": True}  # sentinel: this stream gave way to a newer one of the same user


class TooManyStreams(Exception):
    """Every stream the web server can spare is in use."""


@dataclass(eq=False)
class Subscription:
    staff_id: int
    queue: queue.Queue[dict[str, Any] | None] = field(default_factory=lambda: queue.Queue(maxsize=100))


class Broker:
    def __init__(self, total: int = 1000, per_user: int = 3) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[Subscription, None] = {}  # insertion order: oldest first
        self.total = total
        self.per_user = per_user
        self.node = uuid.uuid4().hex  # tells this node's events from the other nodes' (event_relay)

    def subscribe(self, staff_id: int) -> Subscription:
        sub = Subscription(staff_id)
        with self._lock:
            theirs = [s for s in self._subscriptions if s.staff_id == staff_id]
            for old in theirs[:max(0, len(theirs) - self.per_user + 1)]:
                del self._subscriptions[old]
                with contextlib.suppress(queue.Full):
                    old.queue.put_nowait(REPLACED)
            if len(self._subscriptions) >= self.total:
                raise TooManyStreams
            self._subscriptions[sub] = None
        return sub

    def __len__(self) -> int:
        return len(self._subscriptions)

    def close(self) -> None:
        """End every stream (shutdown): each subscriber receives None and stops."""
        with self._lock:
            subscriptions, self._subscriptions = list(self._subscriptions), {}
        for sub in subscriptions:
            with contextlib.suppress(queue.Full):
                sub.queue.put_nowait(None)

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscriptions.pop(sub, None)

    def publish(self, event: dict[str, Any], staff_ids: set[int] | None = None) -> int:
        """Deliver to the given staff (everyone when None); a browser that stopped reading loses events
        rather than holding up the phone system's webhook."""
        with self._lock:
            targets = [s for s in self._subscriptions if staff_ids is None or s.staff_id in staff_ids]
        delivered = 0
        for sub in targets:
            try:
                sub.queue.put_nowait(event)
                delivered += 1
            except queue.Full:
                pass
        return delivered

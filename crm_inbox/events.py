"""Live notifications inside one process (the screen pop): staff browsers subscribe, calls publish.

In-process only: with several nodes, a browser sees the calls that reach its own node (see README).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Subscription:
    staff_id: int
    queue: queue.Queue[dict[str, Any] | None] = field(default_factory=lambda: queue.Queue(maxsize=100))


class Broker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()

    def subscribe(self, staff_id: int) -> Subscription:
        sub = Subscription(staff_id)
        with self._lock:
            self._subscriptions.add(sub)
        return sub

    def close(self) -> None:
        """End every stream (shutdown): each subscriber receives None and stops."""
        with self._lock:
            subscriptions, self._subscriptions = list(self._subscriptions), set()
        for sub in subscriptions:
            with contextlib.suppress(queue.Full):
                sub.queue.put_nowait(None)

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(sub)

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

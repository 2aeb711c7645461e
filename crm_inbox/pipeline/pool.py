"""Processing many stored messages at once (a burst, a mailbox's history): in this process, or in worker
processes side by side when the database takes several writers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from crm_inbox.config import Settings
from crm_inbox.db import make_engine, make_sessionmaker
from crm_inbox.pipeline.runner import Outcome, process


def process_all(settings: Settings, ids: Iterable[int], *, processes: int | None = None,
                on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Process stored inbound messages (``ids`` in order of arrival) with ``processes`` worker processes (None:
    ``[worker] processes``; 0 or 1: in this process). Returns the outcomes (not necessarily in order);
    ``on_outcome`` is called as each message ends."""
    engine = make_engine(settings.database.url, durable=False)
    try:
        factory = make_sessionmaker(engine)
        outcomes = []
        for inbound_id in ids:
            outcome = process(factory, settings, inbound_id)
            if on_outcome is not None:
                on_outcome(outcome)
            outcomes.append(outcome)
        return outcomes
    finally:
        engine.dispose()

"""The live screen pop: a logged-in browser listens for incoming calls (Server-Sent Events)."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator

from flask import Response

from web.pages import pages
from web.pages.views import current_user
from web.requestdb import state

KEEPALIVE_SECONDS = 15


@pages.get("/events/calls")
def call_events() -> Response:
    user = current_user()
    assert user is not None  # the blueprint's guard sends anonymous visitors to the login
    broker = state().broker
    subscription = broker.subscribe(user.id)

    def stream() -> Iterator[str]:
        try:
            yield ": connected\n\n"  # flushes the headers at once, so the browser knows it is listening
            while True:
                try:
                    event = subscription.queue.get(timeout=KEEPALIVE_SECONDS)
                except queue.Empty:
                    yield ": keepalive\n\n"
                    continue
                if event is None:  # the service is stopping
                    return
                yield f"event: call\ndata: {json.dumps(event)}\n\n"
        finally:
            broker.unsubscribe(subscription)

    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

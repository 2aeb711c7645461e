"""The live screen pop: a logged-in browser listens for incoming calls (Server-Sent Events).

A stream holds one of the web server's threads while it is open. The page's script keeps it open only while
the tab is visible; a keepalive every few seconds lets the server notice a stream whose browser went away (a
page left, a tab closed) and free its thread; the broker bounds how many are open (see crm_inbox.calls.screenpop)."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator

from flask import Response

from crm_inbox.calls.screenpop import REPLACED, TooManyStreams
from web.auth import current_user
from web.pages.blueprint import pages
from web.requestdb import state

KEEPALIVE_SECONDS = 2


@pages.get("/events/calls")
def call_events() -> Response:
    user = current_user()
    assert user is not None  # the blueprint's guard sends anonymous visitors to the login
    broker = state().broker
    try:
        subscription = broker.subscribe(user.id)
    except TooManyStreams:
        # The page's script tries again later; pages themselves keep their threads.
        return Response("too many open screen-pop streams\n", status=503, mimetype="text/plain",
                        headers={"Retry-After": "30"})

    def stream() -> Iterator[str]:
        try:
            yield ": connected\n\n"  # flushes the headers at once, so the browser knows it is listening
            while True:
                try:
                    event = subscription.queue.get(timeout=KEEPALIVE_SECONDS)
                except queue.Empty:
                    yield ": keepalive\n\n"
                    continue
                if event is None:  # the service is stopping: the browser reconnects later
                    return
                if event is REPLACED:  # a newer stream of this user took its place: the script closes it
                    yield "event: replaced\ndata: {}\n\n"
                    return
                yield f"event: call\ndata: {json.dumps(event)}\n\n"
        finally:
            broker.unsubscribe(subscription)

    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

"""A busy phone system: webhooks from several threads at once, through the real app (waitress, as ``serve``
runs it), on SQLite and PostgreSQL. Every POST is answered 200 (none waits out a busy database), and the
two events of one call arriving at the same moment are both applied: each call ends with one line on the
caller's timeline, its missed-call event and its call-back reminder, once.
"""

from __future__ import annotations

import threading
import urllib.parse
from http.client import HTTPConnection
from typing import Any

from sqlalchemy import func, select

from crm_inbox.models import Call, CallState, Event, Interaction, InteractionContact, InteractionKind, Reminder
from tests.conftest import make_settings
from tests.test_api import create_contact

CTI = {"sipgate_token": "sg-secret"}
PHONE = {"own_numbers": ("+49 89 1234567-0",)}
CALLS = 12
THREADS = 4


def serve(settings: Any, factory: Any) -> tuple[Any, threading.Thread]:
    from waitress import create_server

    from web import create_app

    server = create_server(create_app(settings, factory), host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return server, thread


def stop(server: Any, thread: threading.Thread) -> None:
    """As ``serve`` stops: waitress's sockets closed inside its own loop thread (closing them from here while
    it waits in select() kills that thread with EBADF)."""
    from waitress import wasyncore

    server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    thread.join(timeout=10)
    server.task_dispatcher.shutdown()


def post(port: int, fields: dict[str, str]) -> int:
    connection = HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/api/v1/sipgate/sg-secret/in", body=urllib.parse.urlencode(fields),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_both_events_of_calls_posted_at_once_from_four_threads_are_each_applied_once(
        client, auth, factory, database_url, tmp_path):  # type: ignore[no-untyped-def]
    klaus = create_contact(client, auth, name="Klaus Müller", phones=["0171 2345678"])
    settings = make_settings(database_url, tmp_path / "instance", cti=CTI, phone=PHONE)
    server, thread = serve(settings, factory)
    port = server.effective_port
    # Each call's newCall and hangup are posted by two threads at the same moment (a barrier per call).
    barriers = [threading.Barrier(2) for _ in range(CALLS)]
    statuses: list[int] = []
    errors: list[BaseException] = []

    def phone_system(index: int) -> None:
        try:
            for n in range(index // 2, CALLS, THREADS // 2):
                base = {"callId": f"busy-{n}", "direction": "in", "from": "491712345678", "to": "4989123456722"}
                event = {"event": "newCall"} if index % 2 == 0 else {"event": "hangup", "cause": "noAnswer"}
                barriers[n].wait(timeout=30)
                statuses.append(post(port, {**base, **event}))
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=phone_system, args=(i,)) for i in range(THREADS)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
    finally:
        stop(server, thread)
    assert not errors and statuses == [200] * (2 * CALLS)

    with factory() as session:
        calls = session.execute(select(Call).order_by(Call.call_id)).scalars().all()
        assert len(calls) == CALLS
        for call in calls:
            assert call.state == CallState.ENDED and call.missed and call.callback_needed, call.call_id
            assert sorted(e["kind"] for e in call.events) == ["hangup", "new"]
            assert call.contact_id == klaus["id"] and call.interaction_id is not None
        lines = session.execute(select(InteractionContact.interaction_id).join(Interaction).where(
            InteractionContact.contact_id == klaus["id"], Interaction.kind == InteractionKind.CALL)).scalars().all()
        assert sorted(lines) == sorted(c.interaction_id for c in calls)
        assert {i.subject for i in session.execute(select(Interaction).where(
            Interaction.kind == InteractionKind.CALL)).scalars()} == {
            "Incoming call +491712345678: missed (noAnswer)"}
        assert session.execute(select(func.count()).select_from(Event).where(
            Event.type == "call.missed")).scalar_one() == CALLS
        assert session.execute(select(func.count()).select_from(Reminder).where(
            Reminder.reason == "missed_call")).scalar_one() == CALLS

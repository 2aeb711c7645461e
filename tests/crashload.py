"""Crash and load harness: SMTP client processes send mail and a phone system posts call events while
`crm-inbox serve` (one node or several on one database) is stopped again and again, with SIGKILL or SIGTERM,
and restarted. Afterwards every message that got a 250 must be in the database exactly once and processed,
every call once with its right final state, every missed call's call-back reminder fired once.

The clients behave like an MTA: a message without a 250 (connection refused or cut, a 4xx) is sent again,
the same bytes, a little later. Used by tests/test_crash.py (small and bounded) and bench/crash.py (bigger).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work
from crm_inbox.models import (
    Call,
    CallState,
    ContactEmail,
    InboundMessage,
    InboundState,
    Interaction,
    OutboxState,
    OutgoingMail,
    Reminder,
)
from crm_inbox.staff.service import add_staff
from tests.loadclients import CTI_TOKEN, PhoneSystem, call_id, client_main, message_id, missed_calls, token
from tests.serveproc import CountingSink, Serve, config_file, counting_sink, free_port, notifications
from tests.serveproc import serve as start_serve

OWN_NUMBER = "+49 89 4711-0"


@dataclass(frozen=True)
class Plan:
    clients: int = 3
    messages_per_client: int = 150
    kills: int = 5
    calls: int = 12
    stop_signal: int = signal.SIGKILL  # SIGTERM: graceful stops under load instead of crashes
    nodes: int = 1
    # Each node processes a backlog in two worker processes (what a burst between kills builds up).
    worker_processes: int = 2
    seed: int = 1
    timeout: float = 240.0  # for the whole run; every wait inside has its own share of it

    @property
    def messages(self) -> int:
        return self.clients * self.messages_per_client


@dataclass
class Report:
    plan: Plan
    acknowledged: int = 0
    found: int = 0
    duplicates: int = 0  # extra copies of a message in inbound_messages or on the timeline
    duplicate_leads: int = 0  # extra contacts made for one sender address
    lost: int = 0  # acknowledged, not in the database
    unprocessed: int = 0  # stored, not processed by the end
    never_acknowledged: int = 0  # the client gave up (time ran out)
    resent: int = 0  # got no 250 at first and were sent again …
    resent_already_stored: int = 0  # … and were stored already (the 250 came back "already received")
    failed_attempts: int = 0
    kills: int = 0
    stop_exit_codes: list[int] = field(default_factory=list)
    stop_seconds: list[float] = field(default_factory=list)
    call_events: int = 0
    call_event_retries: int = 0
    calls_right: int = 0
    reminders_fired_once: int = 0
    notifications_delivered: int = 0
    notifications_twice: int = 0
    elapsed: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        p = self.plan
        how = "SIGKILL" if p.stop_signal == signal.SIGKILL else "SIGTERM"
        return [
            f"nodes: {p.nodes}, SMTP clients: {p.clients} × {p.messages_per_client} messages, stops: {self.kills} "
            f"({how}), {self.elapsed:.0f} s",
            f"messages acknowledged: {self.acknowledged} of {p.messages}",
            f"messages found: {self.found}",
            f"duplicates: {self.duplicates} (duplicate leads: {self.duplicate_leads})",
            f"lost: {self.lost}",
            f"stored but not processed at the end: {self.unprocessed}",
            f"not acknowledged at first, sent again: {self.resent} (already stored when resent: "
            f"{self.resent_already_stored}); failed attempts: {self.failed_attempts}",
            f"call events posted: {self.call_events} (retries: {self.call_event_retries}); calls right: "
            f"{self.calls_right} of {p.calls}",
            f"missed-call reminders fired once: {self.reminders_fired_once} of {len(missed_calls(p.calls))}; "
            f"notifications delivered: {self.notifications_delivered}, twice: {self.notifications_twice}",
            *([f"SIGTERM stops: exit codes {sorted(set(self.stop_exit_codes))}, longest "
               f"{max(self.stop_seconds):.1f} s"] if p.stop_signal == signal.SIGTERM and self.stop_seconds else []),
            *(f"problem: {problem}" for problem in self.problems[:20]),
        ]


# --- the run ---

def run(plan: Plan, database_url: str, workdir: Path) -> Report:
    """Run ``plan`` against the (migrated, empty) database at ``database_url``; ``workdir`` holds configs and
    logs. Returns the report; ``report.problems`` lists everything that is not as it must be."""
    with contextlib.ExitStack() as stack:
        sink, sink_port = stack.enter_context(contextlib.contextmanager(counting_sink)())
        engine = make_engine(database_url)
        stack.callback(engine.dispose)
        return _run(plan, database_url, workdir, make_sessionmaker(engine), sink, sink_port)


def _run(plan: Plan, database_url: str, workdir: Path, factory: Any, sink: CountingSink, sink_port: int) -> Report:
    t0 = time.monotonic()
    deadline = time.time() + plan.timeout
    rng = random.Random(plan.seed)
    run_id = f"{plan.seed}{int(time.time() * 1000) % 100000}"
    report = Report(plan)
    with unit_of_work(factory) as session:  # the team gets the call-back reminders' notifications
        add_staff(session, "jonas.becker@beispiel-firma.de", "Jonas Becker")

    configs, logs = [], []
    for node in range(plan.nodes):
        configs.append(config_file(
            workdir, f"node{node}", database_url, smtp={"port": free_port()}, web={"port": free_port()},
            mail={"staff_domains": ["beispiel-firma.de"]}, cti={"token": CTI_TOKEN},
            phone={"own_numbers": [OWN_NUMBER]}, notifications=notifications(sink_port, 1),
            reminders={"tick_seconds": 1},
            worker={"processes": plan.worker_processes, "backlog_for_processes": 10}))
        logs.append(workdir / f"node{node}.log")
    nodes: list[Serve] = [start_serve(config, log) for config, log in zip(configs, logs, strict=True)]
    ctx = multiprocessing.get_context("spawn")  # never fork a process that runs threads
    progress = ctx.Value("i", 0)
    smtp_ports = [n.smtp_port for n in nodes]
    results = [workdir / f"client{i}.json" for i in range(plan.clients)]
    clients = [ctx.Process(target=client_main, name=f"crash-client-{i}", daemon=True,
                           args=(i, run_id, plan.messages_per_client, smtp_ports, progress, str(results[i]),
                                 deadline - 60, plan.seed)) for i in range(plan.clients)]
    phone = PhoneSystem(run_id, plan.calls, plan.messages, [n.web_port for n in nodes], progress, deadline - 60)
    try:
        for client in clients:
            client.start()
        phone.start()
        _stop_and_restart(plan, nodes, configs, logs, progress, rng, deadline - 60, report,
                          sending=lambda: any(c.is_alive() for c in clients))
        for client in clients:
            client.join(max(1.0, deadline - 30 - time.time()))
            if client.is_alive():
                report.problems.append(f"{client.name} did not finish in time")
                client.terminate()
        phone.mail_done.set()
        phone.join(max(1.0, deadline - 30 - time.time()))
        report.problems += phone.problems
        report.call_events, report.call_event_retries = phone.posted, phone.retries
        _wait_for_processing(factory, plan, sink, deadline)
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                began = time.monotonic()
                code = node.stop(timeout=90)
                report.stop_exit_codes.append(code)
                report.stop_seconds.append(time.monotonic() - began)
            node.ensure_gone()
        for client in clients:
            if client.is_alive():
                client.kill()
    _check_mail(plan, run_id, results, factory, report)
    _check_calls(plan, run_id, factory, sink, report)
    if any(code != 0 for code in report.stop_exit_codes):
        report.problems.append(f"exit codes after SIGTERM: {report.stop_exit_codes}")
    report.elapsed = time.monotonic() - t0
    return report


def _stop_and_restart(plan: Plan, nodes: list[Serve], configs: list[Path], logs: list[Path], progress: Any,
                      rng: random.Random, deadline: float, report: Report, sending: Callable[[], bool]) -> None:
    """Stop a node ``plan.kills`` times while mail streams in: the k-th stop once roughly (k+1)/(kills+2) of
    the mail is acknowledged (jittered, then a random moment later), and start it again after a random pause."""
    share = 1 / (plan.kills + 2)
    for k in range(plan.kills):
        target = plan.messages * (share * (k + 1) + rng.uniform(-share / 3, share / 3))
        while progress.value < target and time.time() < deadline and sending():
            time.sleep(0.02)
        if progress.value < target:
            report.problems.append(f"stop {k + 1} not reached in time (acknowledged: {progress.value})")
            return
        time.sleep(rng.uniform(0, 0.3))
        index = k % len(nodes)
        if plan.stop_signal == signal.SIGKILL:
            nodes[index].kill()
        else:
            began = time.monotonic()
            report.stop_exit_codes.append(nodes[index].stop(timeout=90))
            report.stop_seconds.append(time.monotonic() - began)
        report.kills += 1
        time.sleep(rng.uniform(0, 0.5))  # down for a moment: clients meet refused connections
        nodes[index] = start_serve(configs[index], logs[index])


def _wait_for_processing(factory: Any, plan: Plan, sink: CountingSink, deadline: float) -> None:
    """Until no stored message waits and every missed call's reminder is notified (or the deadline)."""
    def settled() -> bool:
        with factory() as session:
            waiting = session.execute(select(func.count()).select_from(InboundMessage)
                                      .where(InboundMessage.state == InboundState.RECEIVED)).scalar_one()
            unsent = session.execute(select(func.count()).select_from(OutgoingMail)
                                     .where(OutgoingMail.state != OutboxState.SENT)).scalar_one()
            reminders = session.execute(select(func.count()).select_from(Reminder)
                                        .where(Reminder.fired_at.is_not(None))).scalar_one()
        return waiting == 0 and unsent == 0 and reminders >= len(missed_calls(plan.calls))

    while not settled() and time.time() < deadline:
        time.sleep(0.25)


def _check_mail(plan: Plan, run_id: str, results: list[Path], factory: Any, report: Report) -> None:
    acked: set[str] = set()
    tokens: dict[str, str] = {}
    for index, path in enumerate(results):
        if not path.exists():
            report.problems.append(f"client {index} wrote no result")
            continue
        data = json.loads(path.read_text())
        for n, reply in data["rejected"].items():
            report.problems.append(f"{message_id(run_id, index, int(n))} was refused: {reply}")
        for n in range(plan.messages_per_client):
            mid = message_id(run_id, index, n)
            tokens[mid] = token(run_id, index, n)
            fails = data["failed"].get(str(n), 0)
            report.failed_attempts += fails
            if str(n) in data["acked"]:
                acked.add(mid)
                if fails:
                    report.resent += 1
                    report.resent_already_stored += "already received" in data["acked"][str(n)]
            else:
                report.never_acknowledged += 1
    report.acknowledged = len(acked)
    with factory() as session:
        stored = Counter(session.execute(select(InboundMessage.message_id)).scalars())
        states = dict(session.execute(select(InboundMessage.message_id, InboundMessage.state)).all())
        on_timeline = Counter(session.execute(select(Interaction.source_ref)
                                              .where(Interaction.inbound_message_id.is_not(None))).scalars())
        texts = dict(session.execute(select(Interaction.source_ref, Interaction.text)
                                     .where(Interaction.inbound_message_id.is_not(None))).all())
        leads = Counter(session.execute(select(ContactEmail.email)).scalars())
    report.found = sum(1 for mid in acked if stored[mid])
    report.lost = report.acknowledged - report.found
    report.duplicates = sum(n - 1 for n in stored.values() if n > 1) + sum(n - 1 for n in on_timeline.values() if n > 1)
    report.duplicate_leads = sum(n - 1 for n in leads.values() if n > 1)
    if report.duplicate_leads:
        report.problems.append(f"{report.duplicate_leads} extra contacts for one address: "
                               f"{[a for a, n in leads.items() if n > 1][:5]}")
    report.unprocessed = sum(1 for mid in states if states[mid] != InboundState.PROCESSED)
    if report.lost:
        report.problems.append(f"{report.lost} acknowledged messages are not stored: "
                               f"{sorted(m for m in acked if not stored[m])[:5]}")
    if report.duplicates:
        report.problems.append(f"{report.duplicates} duplicates: "
                               f"{[m for m, n in (stored + on_timeline).items() if n > 2][:5]}")
    if report.unprocessed:
        report.problems.append(f"{report.unprocessed} stored messages not processed: "
                               f"{Counter(s.value for s in states.values())}")
    missing = [mid for mid in states if mid in tokens and tokens[mid] not in (texts.get(mid) or "")]
    if missing:
        report.problems.append(f"{len(missing)} messages are not on the timeline with their text: {missing[:5]}")
    if report.never_acknowledged:
        report.problems.append(f"{report.never_acknowledged} messages never got a 250 before the time ran out")


def _check_calls(plan: Plan, run_id: str, factory: Any, sink: CountingSink, report: Report) -> None:
    with factory() as session:
        calls = {c.call_id: c for c in session.execute(select(Call).where(Call.source == "generic")).scalars()}
        timeline = Counter(session.execute(select(Interaction.source_ref)
                                           .where(Interaction.source_ref.like("generic:%"))).scalars())
        reminders = session.execute(select(Reminder).where(Reminder.call_id.is_not(None))).scalars().all()
        mails = Counter(session.execute(select(OutgoingMail.dedupe_key)
                                        .where(OutgoingMail.state == OutboxState.SENT)).scalars())
    for n in range(plan.calls):
        call = calls.get(call_id(run_id, n))
        missed = n in missed_calls(plan.calls)
        wrong = ("missing" if call is None else
                 f"state {call.state.value}" if call.state != CallState.ENDED else
                 f"missed={call.missed}" if call.missed != missed else
                 f"{len(call.events)} events" if len(call.events) != (2 if missed else 3) else
                 f"{timeline[f'generic:{call.call_id}']} timeline entries"
                 if timeline[f"generic:{call.call_id}"] != 1 else None)
        if wrong:
            report.problems.append(f"call {call_id(run_id, n)}: {wrong}")
        else:
            report.calls_right += 1
    by_call = Counter(r.call_id for r in reminders)
    delivered = Counter(sink.received)
    for reminder in reminders:
        queued = sum(1 for key in mails if key.startswith(f"reminder:{reminder.id}:"))
        if reminder.fired_at is None or by_call[reminder.call_id] != 1 or queued != 1:
            report.problems.append(f"reminder {reminder.id} (call {reminder.call_id}): fired_at {reminder.fired_at}, "
                                   f"{by_call[reminder.call_id]} for its call, {queued} notification(s) sent")
        else:
            report.reminders_fired_once += 1
        if not delivered[str(reminder.id)]:
            report.problems.append(f"the notification of reminder {reminder.id} never arrived")
    if len(reminders) != len(missed_calls(plan.calls)):
        report.problems.append(f"{len(reminders)} call-back reminders for {len(missed_calls(plan.calls))} missed calls")
    report.notifications_delivered = sum(delivered.values())
    # A kill between the relay's 250 and recording "sent" makes the next process send it again (at least
    # once, by design): counted, and asserted to be 0 only where nothing is killed.
    report.notifications_twice = sum(n - 1 for n in delivered.values() if n > 1)

"""Caller lookup and phone-webhook benchmark for CRM Inbox, printed as one table.

1. Lookup latency over HTTP: the real app (``web.create_app``) served by waitress on a free local port,
   ``GET /api/v1/lookup?number=…`` with a staff bearer token, numbers typed in national format ("0151
   2000 0003", "0151/20000003", …), 80 % known and 20 % unknown; p50/p95/p99 of ~2,000 requests after a
   warm-up, with 10,000 and then 1,000,000 contacts (each with one phone, E.164 stored) in the database.
   Targets: p99 under 10 ms at 1M, and the 1M p99 no more than 1.5× the 10k p99.
2. Phone-system webhooks: sipgate ``newCall`` + ``hangup`` sequences POSTed over HTTP by 4 client threads
   (keep-alive connections) in a client process of their own, as a phone system is another machine, at 1M
   contacts: events per second and p99 per POST (targets: at least 200 events/s, p99 at most 100 ms), and per
   event the statements and commits of the request (counted with SQLAlchemy's events on the server's engine;
   the screen pops' statements after the answer apart) and the server's CPU time (this process's).

Both databases, side by side in one run: a fresh SQLite file in a temporary directory (migrated with
``crm_inbox.db.upgrade``), then a PostgreSQL database ``bench_lookup`` created and dropped by the script on
the server of ``--postgres URL`` (the database named in the URL is only used to reach the server; ``test``
is never touched). The service logs at INFO into a file, as ``crm-inbox serve`` would.

Run from the repository root: ``.venv/bin/python bench/lookup.py [--quick] [--postgres URL | --no-postgres]``.
``--quick`` uses 10,000 and 100,000 contacts and fewer requests (about a minute per database).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import DEFAULT_PG_URL, setup_logging
from sqlalchemy import Engine, event, func, insert, select, text
from sqlalchemy.engine import make_url

from crm_inbox.config import Settings, replace
from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work, upgrade
from crm_inbox.models import Call, Company, CompanyPhone, Contact, ContactPhone, Role
from crm_inbox.phone import to_e164
from crm_inbox.staff.service import add_staff, create_token

PG_DATABASE = "bench_lookup"
CTI_TOKEN = "bench-sipgate-token"
BATCH = 50_000
# Contact i has 0151 2xxxxxxx with xxxxxxx = 3*i; 3*i+1 is the same range but nobody's: "unknown".
FIRST = ("Klaus", "Sabine", "Jürgen", "Petra", "Thomas", "Andrea", "Michael", "Claudia", "Stefan", "Birgit")
LAST = ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann")


def national(n: int) -> str:
    return f"0151{20_000_000 + n:08d}"


def known_number(i: int) -> str:
    return national(3 * i)


def unknown_number(i: int) -> str:
    return national(3 * i + 1)


def typed(digits: str, rng: random.Random) -> str:
    """The number as people type it (national format, assorted separators)."""
    area, rest = digits[:4], digits[4:]
    style = rng.randrange(4)
    if style == 0:
        return f"{area} {rest[:4]} {rest[4:]}"
    if style == 1:
        return f"{area}/{rest}"
    if style == 2:
        return f"{area}-{rest}"
    return f"({area}) {rest}"


def e164(digits: str) -> str:
    return "+49" + digits[1:]


def progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * pct // 100)))
    return ordered[int(rank) - 1]


# --- databases ---

class Database:
    """A fresh, migrated database: a SQLite file in ``directory`` or the PostgreSQL ``bench_lookup``."""

    def __init__(self, directory: Path, postgres: str | None) -> None:
        self.postgres_admin: str | None = None
        if postgres:
            import psycopg

            base = make_url(postgres)  # only its server and credentials: its database is never touched
            self.url = base.set(database=PG_DATABASE).render_as_string(hide_password=False)
            self.postgres_admin = base.set(drivername="postgresql", database="postgres").render_as_string(
                hide_password=False)
            with psycopg.connect(self.postgres_admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
                self.version = "PostgreSQL " + str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        else:
            import sqlite3

            self.url = f"sqlite:///{directory / 'lookup.db'}"
            self.version = "SQLite " + sqlite3.sqlite_version
        engine = make_engine(self.url)
        upgrade(engine)
        engine.dispose()

    def close(self) -> None:
        if self.postgres_admin:
            import psycopg

            with psycopg.connect(self.postgres_admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


def fill(engine: Engine, start: int, stop: int) -> float:
    """Contacts ``start``…``stop - 1`` (ids start+1…), each with one phone; one company per 50 contacts,
    with a switchboard block (+49 30 9xxxxx-0). Returns the seconds it took."""
    began = time.perf_counter()
    now = datetime.now(UTC)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA synchronous=OFF")  # a bulk load: durability does not matter here
        for low in range(start, stop, BATCH):
            high = min(stop, low + BATCH)
            companies = range(-(-low // 50), -(-high // 50))  # company c belongs to contacts 50c…50c+49
            if companies:
                conn.execute(insert(Company.__table__), [
                    {"id": c + 1, "name": f"Firma {c} GmbH", "search_name": f"firma {c} gmbh", "tags": [],
                     "fields": {}, "origin": "bench", "created_at": now, "updated_at": now} for c in companies])
                conn.execute(insert(CompanyPhone.__table__), [
                    {"company_id": c + 1, "raw": f"+49 30 9{c:06d}-0", "e164": f"+49309{c:06d}0",
                     "block_prefix": f"+49309{c:06d}"} for c in companies])
            conn.execute(insert(Contact.__table__), [
                {"id": i + 1, "name": f"{FIRST[i % 10]} {LAST[(i // 10) % 10]} {i}",
                 "search_name": f"{FIRST[i % 10]} {LAST[(i // 10) % 10]} {i}".lower(),
                 "company_id": i // 50 + 1 if i % 2 else None, "role": Role.CUSTOMER, "tags": [], "fields": {},
                 "origin": "bench", "created_at": now, "updated_at": now} for i in range(low, high)])
            conn.execute(insert(ContactPhone.__table__), [
                {"contact_id": i + 1, "raw": known_number(i), "e164": e164(known_number(i))}
                for i in range(low, high)])
            conn.commit()
            if (high - start) % 200_000 == 0:
                progress(f"{high:,} contacts ({time.perf_counter() - began:.0f} s)")
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))
            for table in ("companies", "contacts"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
            conn.commit()
        else:
            conn.exec_driver_sql("ANALYZE")
            conn.exec_driver_sql("PRAGMA synchronous=FULL")
            conn.commit()
    return time.perf_counter() - began


# --- the server ---

class Counter:
    """Statements and commits on the server's engine: those of the request threads (waitress), and those
    of the threads that work after the answer (the screen pops)."""

    def __init__(self, engine: Engine) -> None:
        self.statements = self.commits = self.after_answer = 0
        self.lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _in_request(self) -> bool:
        return threading.current_thread().name.startswith("waitress")

    def _statement(self, *_args: Any) -> None:
        with self.lock:
            if self._in_request():
                self.statements += 1
            else:
                self.after_answer += 1

    def _commit(self, *_args: Any) -> None:
        if self._in_request():
            with self.lock:
                self.commits += 1

    def reset(self) -> None:
        with self.lock:
            self.statements = self.commits = self.after_answer = 0


@dataclass
class Server:
    port: int
    server: Any
    thread: threading.Thread
    counter: Counter
    engine: Engine

    def stop(self) -> None:
        """As ``serve`` stops: the sockets closed inside waitress's loop thread (not from here, which would
        kill that thread with EBADF in select())."""
        from waitress import wasyncore

        self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))
        self.thread.join(timeout=10)
        self.server.task_dispatcher.shutdown()
        self.engine.dispose()


def serve(settings: Settings) -> Server:
    from waitress import create_server

    from web import create_app

    engine = make_engine(settings.database.url)
    counter = Counter(engine)
    app = create_app(settings, make_sessionmaker(engine))
    server = create_server(app, host="127.0.0.1", port=0, threads=settings.web.threads, ident="crm-inbox-bench")
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    return Server(int(server.effective_port), server, thread, counter, engine)


# --- measurements ---

@dataclass
class LookupResult:
    contacts: int
    requests: int
    p50: float
    p95: float
    p99: float
    mean: float
    known_ok: int
    unknown_404: int
    wrong: list[str] = field(default_factory=list)


def measure_lookups(port: int, token: str, contacts: int, requests: int, warmup: int, seed: int) -> LookupResult:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}

    def one() -> tuple[float, bool, int]:
        known = rng.random() < 0.8
        i = rng.randrange(contacts)
        number = typed(known_number(i) if known else unknown_number(i), rng)
        started = time.perf_counter()
        conn.request("GET", "/api/v1/lookup?" + urllib.parse.urlencode({"number": number}), headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if known and (response.status != 200 or f'"id":{i + 1},'.encode() not in body.replace(b" ", b"")):
            raise SystemExit(f"lookup of {number} (contact {i + 1}) answered {response.status}: {body[:200]!r}")
        if not known and response.status != 404:
            raise SystemExit(f"lookup of unknown {number} answered {response.status}: {body[:200]!r}")
        return elapsed, known, response.status

    for _ in range(warmup):
        one()
    times, known_ok, unknown_404 = [], 0, 0
    for _ in range(requests):
        elapsed, known, status = one()
        times.append(elapsed * 1000)
        known_ok += known and status == 200
        unknown_404 += (not known) and status == 404
    conn.close()
    return LookupResult(contacts, requests, percentile(times, 50), percentile(times, 95), percentile(times, 99),
                        statistics.fmean(times), known_ok, unknown_404)


def sipgate_sequences(calls: int, contacts: int, seed: int) -> Iterator[list[dict[str, str]]]:
    rng = random.Random(seed)
    for n in range(calls):
        i = rng.randrange(contacts)
        number = known_number(i) if rng.random() < 0.8 else unknown_number(i)
        base = {"callId": f"bench-{seed}-{n}", "direction": "in", "from": "49" + number[1:],
                "to": "4989123456722", "user[]": "Jonas Becker"}
        yield [{"event": "newCall", **base},
               {"event": "hangup", "cause": rng.choice(["normalClearing", "noAnswer", "busy"]), **base}]


@dataclass
class WebhookResult:
    events_per_s: float
    events: int
    p50: float
    p99: float
    statements: float  # per event, in the request
    after_answer: float  # per event, after the answer (screen pops)
    commits: float  # per event
    server_cpu_ms: float  # per event


def _webhook_clients(pipe: Any, port: int, contacts: int, per_thread: int, threads: int, run: int) -> None:
    """The phone system, in a process of its own (spawned): ``threads`` clients with one keep-alive connection
    each, started together when the server's process says go. Sends back (latencies in ms, errors)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.connect()
        mine = []
        barrier.wait()
        for sequence in sipgate_sequences(per_thread, contacts, seed=1000 * run + index):
            for posted in sequence:
                body = urllib.parse.urlencode(posted)
                started = time.perf_counter()
                conn.request("POST", f"/api/v1/sipgate/{CTI_TOKEN}/in", body=body,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
                response = conn.getresponse()
                response.read()
                mine.append((time.perf_counter() - started) * 1000)
                if response.status != 200:
                    with lock:
                        errors.append(f"{response.status} for {posted}")
        conn.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    pipe.send("ready")
    pipe.recv()  # go
    barrier.wait()
    for worker in workers:
        worker.join()
    pipe.send((latencies, errors))


def _receive(pipe: Any, process: Any, what: str) -> Any:
    while not pipe.poll(1.0):
        if not process.is_alive():
            raise SystemExit(f"the webhook client process ended (exit code {process.exitcode}) before {what}")
    return pipe.recv()


def measure_webhooks(server: Server, contacts: int, calls: int, threads: int, run: int) -> WebhookResult:
    """``calls`` sipgate calls (newCall + hangup) from ``threads`` clients in another process, as a phone system
    is another machine: the clients take neither this (the server's) process's GIL nor its CPU time."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_webhook_clients, name="webhook-clients",
                              args=(theirs, server.port, contacts, calls // threads, threads, run))
    process.start()
    try:
        _receive(ours, process, "it was ready")
        server.counter.reset()
        started, cpu = time.perf_counter(), time.process_time()
        ours.send("go")
        latencies, errors = _receive(ours, process, "its results")
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
    if errors:
        raise SystemExit(f"webhook errors: {errors[:3]} (+{len(errors) - 3 if len(errors) > 3 else 0} more)")
    events = len(latencies)
    counter = server.counter
    return WebhookResult(events / elapsed, events, percentile(latencies, 50), percentile(latencies, 99),
                         counter.statements / events, counter.after_answer / events, counter.commits / events,
                         1000 * cpu / events)


# --- main ---

@dataclass
class DatabaseRun:
    version: str
    fill_small: float
    fill_big: float
    at_small: LookupResult | None
    at_big: LookupResult | None
    webhooks: WebhookResult | None
    stored_calls: int


def run_database(tmp: Path, postgres: str | None, small: int, big: int, requests: int, warmup: int, calls: int,
                 parts: set[str]) -> DatabaseRun:
    threads = 4
    database = Database(tmp, postgres)
    server: Server | None = None
    try:
        settings = replace(Settings(), service={"instance_dir": str(tmp / "instance")},
                           database={"url": database.url}, smtp={"port": 0},
                           web={"port": 0, "secret_key": "bench-secret"},
                           cti={"sipgate_token": CTI_TOKEN}, phone={"own_numbers": ("+49 89 1234567-0",)})
        engine = make_engine(database.url)
        with unit_of_work(make_sessionmaker(engine)) as session:
            token = create_token(session, add_staff(session, "bench@beispiel-firma.de", "Bench Admin", "admin"))
            add_staff(session, "jonas.becker@beispiel-firma.de", "Jonas Becker", extension="22")
        assert to_e164(typed(known_number(7), random.Random(1))) == e164(known_number(7))

        progress(f"{database.version}: filling {small:,} contacts")
        fill_small = fill(engine, 0, small)
        server = serve(settings)
        at_small = at_big = None
        if "lookups" in parts:
            progress(f"serving on 127.0.0.1:{server.port}; {requests:,} lookups")
            at_small = measure_lookups(server.port, token, small, requests, warmup, seed=1)

        progress(f"filling up to {big:,} contacts")
        fill_big = fill(engine, small, big)
        with engine.connect() as conn:
            counted = conn.execute(select(func.count()).select_from(ContactPhone)).scalar_one()
        if counted != big:
            raise SystemExit(f"expected {big} phones, found {counted}")
        if "lookups" in parts:
            progress(f"{requests:,} lookups at {big:,}")
            at_big = measure_lookups(server.port, token, big, requests, warmup, seed=2)

        webhooks = None
        if "webhooks" in parts:
            progress(f"webhooks: {calls:,} sipgate calls from {threads} threads in a client process")
            measure_webhooks(server, big, max(threads * 10, calls // 10), threads, run=1)  # warm-up
            webhooks = measure_webhooks(server, big, calls, threads, run=2)
        with engine.connect() as conn:
            stored_calls = conn.execute(select(func.count()).select_from(Call)).scalar_one()
        engine.dispose()
    finally:
        if server is not None:
            server.stop()
        database.close()
    return DatabaseRun(database.version, fill_small, fill_big, at_small, at_big, webhooks, stored_calls)


def _verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def cells(run: DatabaseRun, small: int, big: int) -> dict[str, str]:
    """One database's column of the table, by figure."""
    out = {"figure": run.version.split(" (")[0], f"fill {small:,} contacts": f"{run.fill_small:.1f} s",
           f"fill to {big:,} contacts": f"{run.fill_big:.1f} s"}
    if run.at_small is not None and run.at_big is not None:
        for result in (run.at_small, run.at_big):
            out[f"lookup p50 / p95 / p99 at {result.contacts:,}"] = (
                f"{result.p50:.1f} / {result.p95:.1f} / {result.p99:.1f} ms")
        ratio = run.at_big.p99 / run.at_small.p99
        out[f"lookup p99 at {big:,}"] = f"{run.at_big.p99:.2f} ms {_verdict(run.at_big.p99 < 10)}"
        out[f"lookup p99 {big:,} / {small:,}"] = f"{ratio:.2f}× {_verdict(ratio <= 1.5)}"
    hooks = run.webhooks
    if hooks is not None:
        out["webhooks, 4 threads"] = f"{hooks.events_per_s:,.0f} events/s {_verdict(hooks.events_per_s >= 200)}"
        out["webhook p50 / p99 per POST"] = f"{hooks.p50:.1f} / {hooks.p99:.1f} ms {_verdict(hooks.p99 <= 100)}"
        out["statements per event (request)"] = f"{hooks.statements:.2f}"
        out["statements per event (after answer)"] = f"{hooks.after_answer:.2f}"
        out["commits per event"] = f"{hooks.commits:.2f}"
        out["server CPU per event"] = f"{hooks.server_cpu_ms:.2f} ms"
        out["events measured"] = f"{hooks.events:,} ({run.stored_calls:,} calls)"
    return out


TARGETS = {"lookup p99 at": "< 10 ms", "lookup p99 1": "≤ 1.5×", "webhooks, 4 threads": "≥ 200 events/s",
           "webhook p50 / p99": "p99 ≤ 100 ms", "statements per event (after": "screen pops, not waited for",
           "events measured": "calls stored incl. warm-up", "figure": "target"}


def table(runs: list[DatabaseRun], small: int, big: int) -> list[tuple[str, ...]]:
    """One row per figure: its name, one column per database, the target."""
    columns = [cells(run, small, big) for run in runs]
    rows = []
    for figure in columns[0]:
        target = next((t for start, t in TARGETS.items() if figure.startswith(start)), "")
        if figure == f"fill to {big:,} contacts" and big == 1_000_000:
            target = "< 180 s"
        rows.append((figure, *(column.get(figure, "") for column in columns), target))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k contacts, fewer requests")
    parser.add_argument("--postgres", default=DEFAULT_PG_URL, metavar="URL",
                        help="the PostgreSQL server to use (creates/drops bench_lookup there)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--only", action="append", choices=("lookups", "webhooks"), help="run only these parts")
    parser.add_argument("--requests", type=int, help="measured lookups per size (default 2000, quick 500)")
    parser.add_argument("--calls", type=int, help="sipgate calls (2 events each) for the webhook part")
    args = parser.parse_args()
    small, big = 10_000, 100_000 if args.quick else 1_000_000
    requests = args.requests or (500 if args.quick else 2000)
    warmup = 100 if args.quick else 300
    calls = args.calls or (400 if args.quick else 2000)
    parts = set(args.only or ("lookups", "webhooks"))

    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-lookup-"))
    setup_logging(tmp / "service.log")
    runs = []
    try:
        for postgres in [None] + ([] if args.no_postgres else [args.postgres]):
            runs.append(run_database(tmp, postgres, small, big, requests, warmup, calls, parts))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = table(runs, small, big)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"\nCRM Inbox lookup and webhook benchmark{' (quick)' if args.quick else ''}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("-" * (sum(widths) + 2 * len(widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

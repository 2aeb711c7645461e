"""How long does firing due reminders take, and what does the scheduler's tick cost on a big table?

1. Firing: a fresh database with a few staff users and 2,000 contacts gets N due reminders (default 10,000:
   ``fire_at`` = ``due_at`` in the last three days, state open, an assignee with an address, most with a
   contact) by SQLAlchemy Core bulk inserts; one ``crm_inbox.reminders.service.fire_due`` call then fires them all
   (claim, mark fired, queue one notification mail each in ``outgoing_mail``, one transaction per batch of
   200). Checked afterwards: exactly N rows fired (``fire_at`` NULL, ``fired_at`` set) and exactly N queued
   mails with purpose "reminder". Prints the seconds, reminders/s and SQL statements per reminder.
2. Ticks: a fresh database with 1,000,000 future reminders (due over the next year, from an hour ahead) plus
   100,000 finished ones (done/cancelled, ``fire_at`` NULL, due in the past), then ANALYZE. Times 200 ticks
   with nothing due: ``Scheduler(factory, settings).tick()`` on a scheduler that is never started (what the
   periodic job runs: ``fire_due`` + planning the next wake-up), ``fire_due`` alone and ``next_fire_at``
   alone (each in its own session, as the tick opens them). Prints p50/p95/p99/max in ms (target: a tick
   with nothing due under 10 ms, judged by p95) and the query plans of the due query and of
   ``min(fire_at)``, as the core runs them, to show they use ``ix_reminders_fire_at``.

    .venv/bin/python bench/reminders.py [--quick] [--postgres URL] [--no-postgres] [--future N] [--due N]

``--quick`` uses 2,000 due and 100,000 future reminders. Both parts run on SQLite (files in a temporary
directory) and on PostgreSQL in the database ``bench_reminders``, which the script creates and drops (the
database named in the URL only says which server; ``test``, ``postgres`` and the templates are never
touched). Notifications stay on (``notify_by_mail``): queuing the mail is part of firing.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import (
    DEFAULT_PG_URL,
    People,
    backends,
    bench_settings,
    environment,
    insert_contacts,
    percentile,
    pg_url,
    progress,
)
from sqlalchemy import Engine, event, func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work
from crm_inbox.models import Contact, OutgoingMail, Reminder
from crm_inbox.reminders.service import fire_due, next_fire_at
from crm_inbox.scheduler import Scheduler
from crm_inbox.staff.service import add_staff

PG_DATABASE = "bench_reminders"
TARGET_TICK_P95_MS = 10.0
CHUNK = 10_000
STAFF = (("Anna Krüger", "anna.krueger"), ("Jonas Weber", "jonas.weber"), ("Mehmet Yilmaz", "mehmet.yilmaz"),
         ("Sabine Hofmann", "sabine.hofmann"), ("Lukas Schäfer", "lukas.schaefer"), ("Petra Lange", "petra.lange"),
         ("Tobias Braun", "tobias.braun"), ("Nadine Wolf", "nadine.wolf"))
CONTACTS, FIRMS = 2_000, 300
# What reminders are about, roughly as a small sales/support team has them.
KINDS = (("missed_call", "Call back {who}", "Missed call from +49 711 {n}"),
         ("ticket_no_reply", "Answer ticket [#{n}]: Rückfrage zu Angebot {n}", "No staff reply yet."),
         ("mail_note", "Follow up: Angebot Nr. {n}", "Wiedervorlage Freitag – Angebot nachfassen"),
         ("manual", "Angebot {n} nachfassen", None),
         ("manual", "Quartalsgespräch mit {who} vorbereiten", "Unterlagen vom letzten Termin mitnehmen."))


# --- databases ---

@dataclass
class World:
    """A fresh database with staff and contacts, ready for reminders."""

    engine: Engine
    factory: sessionmaker[Session]
    settings: Settings
    staff_ids: list[int]
    contacts: list[tuple[int, int | None]]  # (contact id, company id)


@contextmanager
def world(db: Any, tmp: Path, seed: int) -> Iterator[World]:
    url = db.fresh()
    engine = make_engine(url)
    try:
        factory = make_sessionmaker(engine)
        settings = bench_settings(url, tmp / "instance")
        with unit_of_work(factory) as session:
            staff_ids = [add_staff(session, f"{local}@beispiel-firma.de", name).id for name, local in STAFF]
        firms, people = People(seed).population(CONTACTS, FIRMS)
        contact_ids = insert_contacts(engine, firms, people)
        with engine.connect() as conn:
            companies = dict(conn.execute(select(Contact.id, Contact.company_id)
                                          .where(Contact.id.in_(contact_ids))).all())
        yield World(engine, factory, settings, staff_ids, [(cid, companies[cid]) for cid in contact_ids])
    finally:
        engine.dispose()


# --- loading ---

class Loader:
    """Reminder rows as dicts, inserted with Core executemany in chunks (psycopg 3 batches them)."""

    def __init__(self, w: World, rng: random.Random, now: datetime) -> None:
        self.w, self.rng, self.now = w, rng, now
        self._rule = 0  # rule reminders carry a unique rule_key, as the rules write it

    def row(self, due_at: datetime, state: str, *, fire: bool) -> dict[str, Any]:
        rng = self.rng
        reason, title, note = rng.choice(KINDS)
        n = rng.randint(10_000, 99_999)
        contact_id, company_id = rng.choice(self.w.contacts) if rng.random() < 0.85 else (None, None)
        rule_key = None
        if reason != "manual":
            self._rule += 1
            rule_key = f"{reason}:{self._rule}"
        created = min(due_at, self.now) - timedelta(days=rng.uniform(0, 14))
        finished = not fire and state in ("done", "cancelled")
        return {
            "due_at": due_at, "title": title.format(who=f"Kunde {n}", n=n),
            "note": note.format(n=n) if note else None, "reason": reason, "state": state,
            "contact_id": contact_id, "company_id": company_id, "assignee_id": rng.choice(self.w.staff_ids),
            "rule_key": rule_key, "created_at": created, "created_by_id": None,
            "fire_at": due_at if fire else None, "fired_at": due_at if finished else None,
            "completed_at": due_at + timedelta(hours=rng.uniform(0, 48)) if finished else None,
            "completed_by_id": None, "completion": f"{state} by staff" if finished else None,
            "updated_at": created,
        }

    def insert(self, rows: Iterator[dict[str, Any]]) -> int:
        count = 0
        chunk: list[dict[str, Any]] = []
        with self.w.engine.begin() as conn:
            for row in rows:
                chunk.append(row)
                if len(chunk) >= CHUNK:
                    conn.execute(insert(Reminder.__table__), chunk)
                    count += len(chunk)
                    chunk = []
            if chunk:
                conn.execute(insert(Reminder.__table__), chunk)
                count += len(chunk)
        return count

    def due(self, n: int) -> Iterator[dict[str, Any]]:
        for _ in range(n):
            yield self.row(self.now - timedelta(seconds=self.rng.uniform(60, 3 * 86400)), "open", fire=True)

    def future(self, n: int) -> Iterator[dict[str, Any]]:
        start = self.now + timedelta(hours=1)  # nothing may come due while the ticks are timed
        for _ in range(n):
            due = (start + timedelta(seconds=self.rng.uniform(0, 365 * 86400))).replace(second=0, microsecond=0)
            yield self.row(due, "snoozed" if self.rng.random() < 0.05 else "open", fire=True)

    def finished(self, n: int) -> Iterator[dict[str, Any]]:
        for _ in range(n):
            due = self.now - timedelta(seconds=self.rng.uniform(3600, 2 * 365 * 86400))
            yield self.row(due, "done" if self.rng.random() < 0.85 else "cancelled", fire=False)


def analyze(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


# --- measuring ---

@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement (with its DB-API parameters) the engine runs inside the block."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def query_plan(engine: Engine, statement: str, parameters: Any) -> str:
    """The plan of a statement the core ran, on one line."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.exec_driver_sql("EXPLAIN (COSTS OFF) " + statement, parameters).all()
            return " → ".join(" ".join(str(r[0]).replace("->", "").split()) for r in rows)
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        return "; ".join(str(r[-1]) for r in rows)


def statement_kinds(seen: list[tuple[str, Any]], per: int) -> str:
    """"UPDATE reminders 2.0, SELECT contacts 0.9, …": statements by verb and table, per reminder."""
    counts: Counter[str] = Counter()
    for statement, _ in seen:
        words = statement.split()
        verb = words[0].upper()
        if verb == "SELECT":
            table = words[words.index("FROM") + 1] if "FROM" in words else ""
        else:
            table = words[2] if verb in ("INSERT", "DELETE") else words[1]
        counts[f"{verb} {table}"] += 1
    return ", ".join(f"{kind} {n / per:.1f}" for kind, n in counts.most_common())


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def stats_line(label: str, ms: list[float]) -> str:
    return (f"  {label:<28}{len(ms):>6}{percentile(ms, 50):>10.2f}{percentile(ms, 95):>10.2f}"
            f"{percentile(ms, 99):>10.2f}{max(ms):>10.2f}")


def bench_firing(db: Any, tmp: Path, n_due: int, seed: int) -> bool:
    with world(db, tmp, seed) as w:
        loader = Loader(w, random.Random(seed), datetime.now(UTC))
        started = time.perf_counter()
        loaded = loader.insert(loader.due(n_due))
        load_s = time.perf_counter() - started
        with w.factory() as session:  # open the pool's connection before the clock starts
            next_fire_at(session)
        progress(f"{db.name}: firing {loaded:,} due reminders")
        with statements(w.engine) as seen:
            started = time.perf_counter()
            fired = fire_due(w.factory, w.settings)
            fire_s = time.perf_counter() - started
        with w.engine.connect() as conn:
            done = conn.execute(select(func.count()).select_from(Reminder).where(
                Reminder.fire_at.is_(None), Reminder.fired_at.is_not(None))).scalar_one()
            mails = conn.execute(select(func.count()).select_from(OutgoingMail)
                                 .where(OutgoingMail.purpose == "reminder")).scalar_one()
    ok = fired == done == mails == n_due
    print(f"\n{db.name} {db.version()}: firing {n_due:,} due reminders (loaded in {load_s:.1f} s)")
    print(f"  one fire_due call: {fire_s:.2f} s, {fired / fire_s:,.0f} reminders/s, "
          f"{len(seen):,} SQL statements ({len(seen) / max(fired, 1):.1f} per reminder)")
    print(f"  per reminder: {statement_kinds(seen, max(fired, 1))}")
    print(f"  check: fire_due returned {fired:,}; fired rows {done:,}; queued reminder mails {mails:,}: "
          + ("OK" if ok else f"WRONG (expected {n_due:,} each)"))
    return ok


def bench_ticks(db: Any, tmp: Path, n_future: int, n_ticks: int, seed: int) -> bool:
    n_finished = n_future // 10
    with world(db, tmp, seed) as w:
        loader = Loader(w, random.Random(seed + 1), datetime.now(UTC))
        progress(f"{db.name}: loading {n_future:,} future and {n_finished:,} finished reminders")
        started = time.perf_counter()
        loaded = loader.insert(loader.future(n_future)) + loader.insert(loader.finished(n_finished))
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        analyze(w.engine)
        analyze_s = time.perf_counter() - started

        scheduler = Scheduler(w.factory, w.settings)  # never started: tick() adds no APScheduler jobs

        def plan_next() -> None:
            with w.factory() as session:
                next_fire_at(session)

        # fire_due directly first: Scheduler.tick would log and swallow an error, and time nothing.
        with statements(w.engine) as seen:
            assert fire_due(w.factory, w.settings) == 0
            plan_next()
        due_sql = next((s, p) for s, p in seen if "FROM reminders" in s and "fire_at <=" in s)
        min_sql = next((s, p) for s, p in seen if "min(reminders.fire_at)" in s)
        fired: list[int] = []
        for _ in range(20):  # warm-up: pool, statement caches, pages
            fired.append(scheduler.tick())
        progress(f"{db.name}: timing {n_ticks} ticks")
        tick_ms = timed(lambda: fired.append(scheduler.tick()), n_ticks)
        fire_ms = timed(lambda: fired.append(fire_due(w.factory, w.settings)), n_ticks)
        next_ms = timed(plan_next, n_ticks)
        with w.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(Reminder)).scalar_one()
            pending = conn.execute(select(func.count()).select_from(Reminder)
                                   .where(Reminder.fire_at.is_not(None))).scalar_one()
        plans = [query_plan(w.engine, *due_sql), query_plan(w.engine, *min_sql)]

    p95 = percentile(tick_ms, 95)
    met = p95 < TARGET_TICK_P95_MS
    print(f"\n{db.name} {db.version()}: ticks with nothing due, {n_future:,} future + {n_finished:,} finished "
          f"reminders ({total:,} rows, {pending:,} with fire_at; loaded {loaded:,} in {load_s:.1f} s = "
          f"{loaded / load_s:,.0f} rows/s, ANALYZE {analyze_s:.1f} s)")
    print(f"  {'ms':<28}{'n':>6}{'p50':>10}{'p95':>10}{'p99':>10}{'max':>10}")
    print(stats_line("Scheduler.tick()", tick_ms))
    print(stats_line("fire_due (nothing due)", fire_ms))
    print(stats_line("next_fire_at (own session)", next_ms))
    print(f"  target: a tick with nothing due under {TARGET_TICK_P95_MS:.0f} ms — p95 {p95:.2f} ms: "
          + ("met" if met else "MISSED"))
    print(f"  plan, due query:   {plans[0]}")
    print(f"  plan, next_fire_at: {plans[1]}")
    uses_index = all("ix_reminders_fire_at" in plan for plan in plans)
    if not uses_index:
        print("  WARNING: a plan does not use ix_reminders_fire_at")
    if any(fired):
        print(f"  WRONG: {sum(fired)} reminders fired during the ticks")
    return met and uses_index and not any(fired)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2,000 due and 100,000 future reminders")
    parser.add_argument("--postgres", default=DEFAULT_PG_URL, metavar="URL",
                        help=f"PostgreSQL server to use (database {PG_DATABASE}, created and dropped)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--due", type=int, help="due reminders fired in part 1 (default 10,000)")
    parser.add_argument("--future", type=int, help="future reminders in part 2 (default 1,000,000)")
    parser.add_argument("--ticks", type=int, default=200, help="ticks timed per measurement (default 200)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tmpdir", default=None, help="where the SQLite files go (default: the system temp dir)")
    args = parser.parse_args(argv)
    n_due = args.due or (2_000 if args.quick else 10_000)
    n_future = args.future or (100_000 if args.quick else 1_000_000)
    started = time.perf_counter()

    tmp = Path(tempfile.mkdtemp(prefix="bench-reminders-", dir=args.tmpdir))
    env = environment(tmp)
    results: list[bool] = []
    try:
        with backends(None if args.no_postgres else pg_url(args.postgres, PG_DATABASE), tmp) as dbs:
            pg = next((db for db in dbs if db.name == "PostgreSQL"), None)
            print(f"CRM Inbox reminders benchmark ({'quick' if args.quick else 'full'}) — Python {env['python']}, "
                  f"{env['cpus']} CPUs, SQLite {env['sqlite']}"
                  + (f", PostgreSQL {pg.version()}" if pg else "")
                  + f"; {env['platform']}; SQLite files in {env['tmp_dir']} ({env['tmp_fs']}); "
                    f"load average at start {env['load_avg']}")
            if not args.no_postgres and pg is None:
                results.append(False)
            for db in dbs:
                results.append(bench_firing(db, tmp, n_due, args.seed))
            for db in dbs:
                results.append(bench_ticks(db, tmp, n_future, args.ticks, args.seed))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average at the end {environment(tmp)['load_avg']}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""How fast is a follow-up matched to its ticket? ``crm_inbox.tickets.service.find_ticket`` over a large database.

Fills a fresh database with 100,000 tickets, each with 1–3 mail interactions (realistic Message-IDs in
``interactions.source_ref``, ``ticket_id`` set) plus mail that belongs to no ticket, with SQLAlchemy Core bulk
inserts; then times ``find_ticket`` for ~2,000 follow-ups: by ``[#number]`` in the subject, by In-Reply-To of a
message in a ticket, by a References list of 5 ids of which only one is in a ticket, and misses. Prints
p50/p95/p99 in ms per kind and overall (target: p95 under 5 ms) and checks every answer.

    .venv/bin/python bench/tickets.py [--quick] [--postgres URL] [--tickets N] [--lookups N]

SQLite runs in a temporary directory. ``--postgres URL`` runs against that server in the database
``bench_tickets``, which is created and dropped by the script (``test`` and the other databases on the
server are never touched).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from crm_inbox.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from crm_inbox.models import Interaction, Ticket, TicketEvent  # noqa: E402
from crm_inbox.models.tickets import NUMBER_OFFSET  # noqa: E402
from crm_inbox.tickets.service import find_ticket  # noqa: E402

BENCH_DB = "bench_tickets"
PROTECTED = frozenset({"test", "postgres", "template0", "template1"})
PREFIX = "#"
TARGET_P95_MS = 5.0
CHUNK = 5000

FIRMS = ["mueller-maschinenbau.de", "weber-logistik.de", "koch-bau.de", "schmidt-elektro.de", "hansen-it.com",
         "bergmann-holz.de", "nord-spedition.de", "alpen-medtech.at", "rhein-pharma.de", "meyer-druck.de"]
FREE = ["gmail.com", "gmx.de", "web.de", "t-online.de", "outlook.com"]
SUBJECTS = ["Lieferung {n} beschädigt", "Rechnung {n} fehlerhaft", "Rückfrage zu Angebot {n}",
            "Störung Anlage {n}", "Reklamation Auftrag {n}", "Ersatzteil für Maschine {n}",
            "Question about order {n}", "Invoice {n} missing", "Wartungstermin {n}", "Zugang gesperrt ({n})"]
STATES = ["closed"] * 70 + ["solved"] * 10 + ["pending"] * 8 + ["open"] * 8 + ["new"] * 4


# --- realistic Message-IDs ---

def message_id(rng: random.Random, domain: str) -> str:
    """Message-IDs as Gmail, Outlook/Exchange, web.de/GMX, Thunderbird and Apple Mail write them."""
    style = rng.randrange(5)
    if style == 0:
        body = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+=")
                       for _ in range(rng.randint(40, 60)))
        return f"<CA{body}@mail.gmail.com>"
    if style == 1:
        box = f"{rng.choice(['AM0PR04', 'DB9PR10', 'FR3P281', 'VI1PR08'])}MB{rng.randint(1000, 9999)}"
        return (f"<{box}{uuid.UUID(int=rng.getrandbits(128)).hex[:20].upper()}@{box}."
                f"eurprd0{rng.randint(1, 9)}.prod.outlook.com>")
    if style == 2:
        return f"<{rng.getrandbits(40)}.{rng.randint(10000, 99999)}.{rng.getrandbits(41)}@{rng.choice(FREE)}>"
    if style == 3:
        return f"<{uuid.UUID(int=rng.getrandbits(128))}@{domain}>"
    return f"<{uuid.UUID(int=rng.getrandbits(128)).hex.upper()}@{domain}>"


# --- databases ---

@contextmanager
def sqlite_database() -> Iterator[tuple[str, str]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-tickets-"))
    try:
        yield f"sqlite:///{tmp / 'crm.db'}", "SQLite"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def postgres_database(url: str) -> Iterator[tuple[str, str]]:
    import psycopg

    target = make_url(url).set(database=BENCH_DB)
    assert target.database not in PROTECTED
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    try:
        yield target.render_as_string(hide_password=False), f"PostgreSQL {version}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


# --- filling ---

@dataclass
class Filled:
    tickets: int
    interactions: int
    # (ticket id, [Message-IDs of its mail]) for a sample of tickets, to build follow-ups from
    sample: list[tuple[int, list[str]]]
    seconds: float


def fill(engine: Engine, n_tickets: int, rng: random.Random, sample_size: int) -> Filled:
    started = time.perf_counter()
    now = datetime.now(UTC)
    first = now - timedelta(days=3 * 365)
    span = (now - first).total_seconds()
    sample_ids = set(rng.sample(range(1, n_tickets + 1), min(sample_size, n_tickets)))
    sample: list[tuple[int, list[str]]] = []
    tickets: list[dict] = []
    mails: list[dict] = []
    events: list[dict] = []
    n_interactions = 0

    def flush(conn) -> None:  # type: ignore[no-untyped-def]
        if tickets:
            conn.execute(insert(Ticket.__table__), tickets)
            tickets.clear()
        if mails:
            conn.execute(insert(Interaction.__table__), mails)
            mails.clear()
        if events:
            conn.execute(insert(TicketEvent.__table__), events)
            events.clear()

    with engine.begin() as conn:
        for ticket_id in range(1, n_tickets + 1):
            opened = first + timedelta(seconds=span * ticket_id / n_tickets)
            state = rng.choice(STATES)
            firm = rng.choice(FIRMS)
            sender = f"kunde{rng.randrange(20000)}@{firm if rng.random() < 0.75 else rng.choice(FREE)}"
            subject = rng.choice(SUBJECTS).format(n=rng.randint(1000, 99999))
            tickets.append({
                "id": ticket_id, "number": NUMBER_OFFSET + ticket_id, "subject": subject, "state": state,
                "priority": "normal", "opened_by_email": sender, "opened_at": opened, "updated_at": opened,
                "last_customer_reply_at": opened,
                "closed_at": opened + timedelta(days=2) if state == "closed" else None,
            })
            # The events a ticket's life leaves (find_ticket reads them for closed tickets).
            kinds = ["opened", "staff_reply", "customer_reply", "state"][: rng.randint(1, 4)]
            if state == "closed":
                kinds.append("state")
            events.extend({"ticket_id": ticket_id, "at": opened, "kind": kind, "details": {}} for kind in kinds)
            ids = []
            for k in range(rng.randint(1, 3)):
                mid = message_id(rng, firm if k % 2 == 0 else "beispiel-firma.de")
                ids.append(mid)
                mails.append({
                    "kind": "email", "direction": "in" if k % 2 == 0 else "out",
                    "occurred_at": opened + timedelta(hours=k * 5), "subject": ("Re: " if k else "") + subject,
                    "excerpt": "…", "source_ref": mid, "ticket_id": ticket_id, "details": {},
                    "created_at": opened + timedelta(hours=k * 5),
                })
                n_interactions += 1
            # Mail that is on the timeline but in no ticket (to sales, newsletters): as many again, roughly.
            for _ in range(rng.choice((0, 1, 1, 2))):
                mails.append({
                    "kind": "email", "direction": "in", "occurred_at": opened, "subject": "Angebot",
                    "excerpt": "…", "source_ref": message_id(rng, firm), "ticket_id": None, "details": {},
                    "created_at": opened,
                })
                n_interactions += 1
            if ticket_id in sample_ids:
                sample.append((ticket_id, ids))
            if len(mails) >= CHUNK:
                flush(conn)
        flush(conn)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))
            conn.execute(text("SELECT setval(pg_get_serial_sequence('tickets', 'id'), (SELECT max(id) FROM tickets))"))
        else:
            conn.execute(text("ANALYZE"))
    return Filled(n_tickets, n_interactions, sample, time.perf_counter() - started)


# --- follow-ups ---

@dataclass(frozen=True)
class Lookup:
    kind: str
    subject: str
    references: tuple[str, ...]
    expected: int | None


def follow_ups(filled: Filled, n: int, rng: random.Random) -> list[Lookup]:
    kinds = ["number", "in_reply_to", "references", "miss"]
    out: list[Lookup] = []
    for i in range(n):
        kind = kinds[i % 4]
        ticket_id, ids = rng.choice(filled.sample)
        if kind == "number":
            out.append(Lookup(kind, f"AW: [#{NUMBER_OFFSET + ticket_id}] {rng.choice(SUBJECTS).format(n=i)}",
                              (), ticket_id))
        elif kind == "in_reply_to":
            out.append(Lookup(kind, f"Re: {rng.choice(SUBJECTS).format(n=i)}", (rng.choice(ids),), ticket_id))
        elif kind == "references":
            refs = [message_id(rng, "elsewhere.example") for _ in range(4)]
            refs.insert(rng.randrange(5), rng.choice(ids))
            out.append(Lookup(kind, f"Re: Re: {rng.choice(SUBJECTS).format(n=i)}", tuple(refs), ticket_id))
        else:  # a new request, or a reply to mail the CRM never saw
            refs = tuple(message_id(rng, "elsewhere.example") for _ in range(rng.randint(0, 5)))
            out.append(Lookup(kind, rng.choice(SUBJECTS).format(n=i), refs, None))
    rng.shuffle(out)
    return out


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def time_lookups(engine: Engine, lookups: list[Lookup]) -> tuple[dict[str, list[float]], int]:
    """Each lookup in its own session, as the pipeline does; only the find_ticket call is timed."""
    factory = make_sessionmaker(engine)
    times: dict[str, list[float]] = {}
    wrong = 0
    for warm in lookups[:50]:  # warm the pool and the statement caches
        with factory() as session:
            find_ticket(session, PREFIX, warm.subject, warm.references)
    for lookup in lookups:
        with factory() as session:
            started = time.perf_counter()
            ticket, _ = find_ticket(session, PREFIX, lookup.subject, lookup.references)
            elapsed = (time.perf_counter() - started) * 1000
        times.setdefault(lookup.kind, []).append(elapsed)
        if (ticket.id if ticket else None) != lookup.expected:
            wrong += 1
    return times, wrong


def run(url: str, label: str, n_tickets: int, n_lookups: int, seed: int) -> bool:
    rng = random.Random(seed)
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        upgrade(engine)
        print(f"\n{label}: schema migrated in {time.perf_counter() - started:.1f} s", flush=True)
        filled = fill(engine, n_tickets, rng, sample_size=max(200, n_lookups))
        print(f"{label}: {filled.tickets:,} tickets, {filled.interactions:,} mail interactions inserted in "
              f"{filled.seconds:.1f} s", flush=True)
        lookups = follow_ups(filled, n_lookups, rng)
        times, wrong = time_lookups(engine, lookups)
    finally:
        engine.dispose()
    everything = [t for ts in times.values() for t in ts]
    print(f"{'find_ticket':<14}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for kind in ["number", "in_reply_to", "references", "miss"]:
        ts = times.get(kind, [])
        print(f"{kind:<14}{len(ts):>6}{percentile(ts, 50):>10.3f}{percentile(ts, 95):>10.3f}"
              f"{percentile(ts, 99):>10.3f}{max(ts, default=float('nan')):>10.3f}")
    p95 = percentile(everything, 95)
    print(f"{'all':<14}{len(everything):>6}{percentile(everything, 50):>10.3f}{p95:>10.3f}"
          f"{percentile(everything, 99):>10.3f}{max(everything):>10.3f}   mean {statistics.fmean(everything):.3f}")
    ok = p95 < TARGET_P95_MS and wrong == 0
    verdict = "met" if p95 < TARGET_P95_MS else "MISSED"
    print(f"{label}: p95 {p95:.2f} ms against the target of {TARGET_P95_MS:.0f} ms: {verdict}"
          f"; wrong answers: {wrong}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", metavar="URL", help="also run against this PostgreSQL server "
                        f"(in a database {BENCH_DB} the script creates and drops)")
    parser.add_argument("--no-sqlite", action="store_true", help="only PostgreSQL")
    parser.add_argument("--quick", action="store_true", help="5,000 tickets and 400 lookups")
    parser.add_argument("--tickets", type=int, help="number of tickets (default 100,000)")
    parser.add_argument("--lookups", type=int, help="number of follow-ups timed (default 2,000)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    n_tickets = args.tickets or (5_000 if args.quick else 100_000)
    n_lookups = args.lookups or (400 if args.quick else 2_000)
    if args.postgres:
        name = make_url(args.postgres).database
        if name in PROTECTED - {"postgres"}:
            print(f"bench: note: {name!r} in the URL only names the server; the run uses {BENCH_DB!r}")
    results = []
    if not args.no_sqlite:
        with sqlite_database() as (url, label):
            import sqlite3

            results.append(run(url, f"{label} {sqlite3.sqlite_version}", n_tickets, n_lookups, args.seed))
    if args.postgres:
        with postgres_database(args.postgres) as (url, label):
            results.append(run(url, label, n_tickets, n_lookups, args.seed))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""How long does the live count of a segment take on a big database?

Fills a fresh database with SQLAlchemy Core bulk inserts — 1,000,000 contacts on PostgreSQL, 100,000 on SQLite —
with realistic spreads: a tenth as many companies (industries, sizes, B2B/B2C, German postcodes, about 15 % of
them Bavarian 80000–87999, some in Austria and Switzerland); 60 % of the people at a company (its address), the
others with an address of their own (15 % Bavarian); roles (30 % leads, 40 % customers, …), categories (A 20 %,
B 30 %, C 30 %, none), tags, created dates over five years; for 40 % of the people 1–3 timeline entries over
the last two years (60 % mail, 25 % calls, 15 % notes, which do not count as contact); an address for half of
them (2 % bouncing) and an e-mail consent record for a tenth.

Then times ``segments.service.count`` (the live count of the segment editor), 20 runs after one warm-up, for

1. the issue's 4-condition segment: customers in Bavaria with category A and no contact for 90 days — target
   p95 under 1 s;
2. the same, made ready for a campaign: also not opted out of e-mail and no bouncing address (for information).

    .venv/bin/python bench/segments.py [--quick] [--postgres URL] [--no-postgres] [--explain]

``--quick`` is ten times smaller; ``--explain`` prints the query plans. SQLite runs in a temporary directory;
PostgreSQL in the database ``bench_segments``, which the script creates and drops (``test`` is never touched).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import CompileError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    DEFAULT_PG_URL,
    FIRST_DE,
    LAST_DE,
    backends,
    environment,
    median,
    percentile,
    pg_url,
    progress,
)
from crm_inbox.db import make_engine, make_sessionmaker
from crm_inbox.models import (
    Company,
    ConsentRecord,
    Contact,
    ContactEmail,
    Interaction,
    InteractionContact,
)
from crm_inbox.segments import service as segments

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHUNK = 20_000
RUNS = 20
TARGET_S = 1.0
BAVARIA = ["80000", "87999"]
TARGET = {"all": [
    {"field": "role", "op": "is", "value": "customer"},
    {"field": "postcode", "op": "between", "value": BAVARIA},
    {"field": "category", "op": "is", "value": "A"},
    {"field": "last_contact", "op": "older_than_days", "value": 90},
]}
CAMPAIGN = {"all": [*TARGET["all"],
                    {"not": {"field": "consent.email", "op": "is", "value": "opted_out"}},
                    {"field": "bouncing", "op": "is", "value": False}]}
# One broad condition alone, the worst case for the count (every person is checked): for information.
BROAD = (("no contact 90 days, alone", {"field": "last_contact", "op": "older_than_days", "value": 90}),
         ("tag Newsletter, alone", {"field": "tags", "op": "has", "value": "Newsletter"}),
         ("e-mail consent unknown, alone", {"field": "consent.email", "op": "is", "value": "unknown"}))
BROAD_RUNS = 5
ROLES = (("lead", 30), ("prospect", 15), ("customer", 40), ("debtor", 5), ("supplier", 5), ("other", 5))
CATEGORIES = (("A", 20), ("B", 30), ("C", 30), (None, 20))
INDUSTRIES = ("Maschinenbau", "Elektro", "Logistik", "Bau", "Handel", "Software", "Medizintechnik", "Holzbau")
SIZES = ("1-9", "10-49", "50-249", "250+")
CITIES_BY = {"8": ("München", "Augsburg", "Ingolstadt", "Rosenheim"), "1": ("Berlin", "Potsdam"),
             "2": ("Hamburg", "Kiel"), "4": ("Düsseldorf", "Essen"), "5": ("Köln", "Bonn"),
             "6": ("Frankfurt am Main", "Mainz"), "7": ("Stuttgart", "Karlsruhe"), "9": ("Nürnberg", "Würzburg")}
TAGS = ("Newsletter", "VIP", "Messe 2026", "Händler", "Presse")
OTHER_CODES = [n for n in range(1067, 99999, 37) if not 80000 <= n <= 87999]
KINDS = (("email", 60), ("call", 25), ("note", 15))


def pick(rng: random.Random, spread: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([v for v, _ in spread], weights=[w for _, w in spread])[0]


def address(rng: random.Random) -> dict[str, Any]:
    """A postcode, city and country: 15 % Bavarian, 5 % Austrian or Swiss (four digits), else elsewhere in DE."""
    roll = rng.random()
    if roll < 0.15:
        code = str(rng.randint(80000, 87999))
    elif roll < 0.20:
        return {"postcode": str(rng.randint(1000, 9999)), "city": rng.choice(("Wien", "Graz", "Zürich")),
                "country": rng.choice(("AT", "CH"))}
    else:
        code = f"{rng.choice(OTHER_CODES):05d}"
    cities = CITIES_BY.get(code[0], ("Leipzig", "Dresden", "Hannover"))
    return {"postcode": code, "city": rng.choice(cities), "country": "DE"}


def chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(url: str, n_contacts: int) -> dict[str, int]:
    rng = random.Random(19)
    engine = make_engine(url)
    n_companies = n_contacts // 10
    counts = {"companies": n_companies, "contacts": n_contacts, "interactions": 0, "emails": 0, "consent": 0}

    def companies() -> Iterator[dict[str, Any]]:
        for i in range(1, n_companies + 1):
            yield {"id": i, "name": f"Firma {i} GmbH", "search_name": f"firma {i} gmbh",
                   "industry": rng.choice(INDUSTRIES), "size": rng.choice(SIZES),
                   "customer_type": "B2B" if rng.random() < 0.85 else "B2C", "category": pick(rng, CATEGORIES),
                   "tags": [], "fields": {}, "origin": "bench", "created_at": NOW, "updated_at": NOW,
                   **address(rng)}

    def contacts() -> Iterator[dict[str, Any]]:
        for i in range(1, n_contacts + 1):
            name = f"{rng.choice(FIRST_DE)} {rng.choice(LAST_DE)}"
            at_company = rng.random() < 0.6
            created = NOW - timedelta(days=rng.randint(0, 5 * 365), seconds=rng.randint(0, 86_399))
            row = {"id": i, "name": name, "search_name": name.casefold(), "role": pick(rng, ROLES),
                   "category": pick(rng, CATEGORIES), "tags": rng.sample(TAGS, rng.choice((0, 0, 0, 1, 2))),
                   "fields": {"Quelle": "Messe"} if rng.random() < 0.1 else {}, "origin": "bench",
                   "created_at": created, "updated_at": created,
                   "company_id": rng.randint(1, n_companies) if at_company else None,
                   "postcode": None, "city": None, "country": None}
            if not at_company:
                row.update(address(rng))
            yield row

    interaction_id = 0
    links: list[dict[str, Any]] = []

    def interactions() -> Iterator[dict[str, Any]]:
        nonlocal interaction_id
        for contact_id in range(1, n_contacts + 1):
            if rng.random() >= 0.4:
                continue
            for _ in range(rng.randint(1, 3)):
                interaction_id += 1
                when = NOW - timedelta(days=rng.randint(0, 730), seconds=rng.randint(0, 86_399))
                links.append({"interaction_id": interaction_id, "contact_id": contact_id, "occurred_at": when,
                              "role": "from"})
                yield {"id": interaction_id, "kind": pick(rng, KINDS), "direction": rng.choice(("in", "out")),
                       "occurred_at": when, "details": {}, "created_at": when}

    def emails() -> Iterator[dict[str, Any]]:
        for contact_id in range(1, n_contacts + 1, 2):
            counts["emails"] += 1
            yield {"contact_id": contact_id, "email": f"person{contact_id}@example.com",
                   "bouncing": rng.random() < 0.02}

    def consent() -> Iterator[dict[str, Any]]:
        for contact_id in range(1, n_contacts + 1, 10):
            counts["consent"] += 1
            yield {"contact_id": contact_id, "channel": "email", "proof": {}, "source": "import",
                   "state": "opted_out" if rng.random() < 0.2 else "opted_in", "legal_basis": "consent",
                   "occurred_at": NOW - timedelta(days=rng.randint(1, 900)), "created_at": NOW}

    with engine.begin() as conn:
        for name, table, rows in (("companies", Company, companies()), ("contacts", Contact, contacts()),
                                  ("interactions", Interaction, interactions()),
                                  ("addresses", ContactEmail, emails()), ("consent", ConsentRecord, consent())):
            progress(f"inserting {name}")
            for batch in chunks(rows):
                conn.execute(insert(table.__table__), batch)
            if table is Interaction:
                progress("inserting timeline links")
                for start in range(0, len(links), CHUNK):
                    conn.execute(insert(InteractionContact.__table__), links[start:start + CHUNK])
        counts["interactions"] = interaction_id
        if engine.dialect.name == "postgresql":
            for table_name in ("companies", "contacts", "interactions"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table_name}', 'id'), "
                                  f"(SELECT max(id) FROM {table_name}))"))
    with engine.connect() as conn:  # ANALYZE outside the load's transaction
        conn.execute(text("ANALYZE"))
        conn.commit()
    engine.dispose()
    return counts


def timed(factory: Any, definition: dict[str, Any], runs: int = RUNS) -> tuple[int, list[float]]:
    with factory() as session:
        found = segments.count(session, definition, now=NOW)  # warm-up
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            assert segments.count(session, definition, now=NOW) == found
            times.append(time.perf_counter() - started)
    return found, times


def explain(factory: Any, definition: dict[str, Any]) -> str:
    with factory() as session:
        statement = select(func.count()).select_from(Contact).where(segments.matches(session, definition, now=NOW))
        try:
            compiled = statement.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        except CompileError as exc:  # JSONB values have no literal form
            return f"    (no plan: {exc})"
        prefix = "EXPLAIN ANALYZE" if session.get_bind().dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
        rows = session.execute(text(f"{prefix} {compiled}")).all()
    return "\n".join("    " + " | ".join(str(c) for c in row) for row in rows)


def run(db: Any, n_contacts: int, show_plans: bool) -> list[tuple[str, str, int, float, float]]:
    url = db.fresh()
    progress(f"{db.name}: filling {n_contacts:,} contacts")
    started = time.perf_counter()
    counts = fill(url, n_contacts)
    progress(f"{db.name}: filled in {time.perf_counter() - started:.0f} s: {counts}")
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    out = []
    measured = [("4 conditions (target)", TARGET, RUNS), ("+ consent, bouncing", CAMPAIGN, RUNS),
                *((label, definition, BROAD_RUNS) for label, definition in BROAD)]
    for label, definition, runs in measured:
        found, times = timed(factory, definition, runs)
        out.append((f"{db.name} {db.version().split()[0]}, {n_contacts:,} contacts", label, found, median(times),
                    percentile(times, 95)))
        if show_plans:
            print(f"{db.name}, {label}:\n{explain(factory, definition)}")
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ten times smaller")
    parser.add_argument("--postgres", default=DEFAULT_PG_URL, help="PostgreSQL server URL")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    sizes = {"SQLite": 100_000 // scale, "PostgreSQL": 1_000_000 // scale}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        print(environment(tmp))
        postgres = None if args.no_postgres else pg_url(args.postgres, "bench_segments")
        with backends(postgres, Path(tmp)) as dbs:
            for db in dbs:
                results.extend(run(db, sizes[db.name], args.explain))
    print(f"\nSegment count, {RUNS} runs each ({BROAD_RUNS} for one broad condition alone); target: p95 under "
          f"{TARGET_S * 1000:.0f} ms for the 4 conditions")
    print(f"{'database':<36} {'segment':<30} {'matches':>8} {'p50 ms':>8} {'p95 ms':>8}  target")
    for where, label, found, p50, p95 in results:
        verdict = f"< {TARGET_S * 1000:.0f}: " + ("ok" if p95 < TARGET_S else "MISSED") if "target" in label else "-"
        print(f"{where:<36} {label:<30} {found:>8,} {p50 * 1000:>8.1f} {p95 * 1000:>8.1f}  {verdict}")
    if any(p95 >= TARGET_S for _, label, _, _, p95 in results if "target" in label):
        sys.exit(1)


if __name__ == "__main__":
    main()

"""How fast does an address book import, with duplicate checks against a full database, and in how much memory?

Fills a fresh database with SQLAlchemy Core bulk inserts: 100,000 contacts (each with an e-mail address, a
phone number and a customer number) at 20,000 companies (with mail domains). Writes an Excel CSV export
(cp1252, ";", German Outlook headers) of 100,000 rows: 70 % new people at 15,000 new companies, 20 % existing
people found by e-mail (half of them with a new title: updates), 10 % existing people found by customer number
(unchanged). Then, in a fresh process (so the peak RSS is the import's own), times on the real core functions:

1. ``read_table`` + ``suggest_mapping``: reading and decoding the file;
2. ``preview_import``: the whole import, rolled back (what the web preview and ``--dry-run`` do);
3. ``run_import``: the import, committed;

and prints rows/s, wall time and the process's peak RSS (VmHWM) for SQLite and PostgreSQL side by side, with
the targets (100,000 rows under 60 s, under 500 MB) and a baseline: a naive importer that calls the ORM's
``create_contact`` once per row in its own transaction (no duplicate checks), over 2,000 rows, extrapolated to
the file's size. Afterwards it checks the counts in the database.

    .venv/bin/python bench/import.py [--quick] [--rows N] [--existing N] [--postgres URL] [--no-postgres]

``--quick`` is ten times smaller. SQLite runs in a temporary directory; PostgreSQL in the database
``bench_import``, which the script creates and drops.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import DEFAULT_PG_URL, backends, bench_settings, environment, memory_status, pg_url, progress
from crm_inbox.db import make_engine, make_sessionmaker
from crm_inbox.models import Company, CompanyDomain, Contact, ContactEmail, ContactPhone, Role
from crm_inbox.models.base import utcnow

CHUNK = 10_000
FIRST = ("Jürgen", "Änne", "Sören", "Heike", "Björn", "Gülay", "André", "Maike", "Klaus", "Petra", "Uwe", "Jana")
LAST = ("Groß", "Weiß", "Köhler", "Schröder", "Jäger", "Müller", "Straßer", "Öztürk", "Becker", "Krause")
FORMS = ("GmbH", "AG", "KG", "GmbH & Co. KG", "e.K.", "OHG")
HEADER = ("Firma;Anrede;Titel;Vorname;Nachname;E-Mail-Adresse;Telefon geschäftlich;Mobiltelefon;"
          "Straße geschäftlich;Postleitzahl geschäftlich;Ort geschäftlich;Kundennummer")


def _bulk(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        conn.execute(insert(table), rows[start:start + CHUNK])


def fill(url: str, existing: int) -> None:
    """``existing`` contacts at ``existing // 5`` companies; contact i: e{i}@firma{i % companies}.example,
    +49 30 1{i:07d}, customer number K{i}."""
    companies = max(1, existing // 5)
    now = utcnow()
    engine = make_engine(url)
    with engine.begin() as conn:
        _bulk(conn, Company.__table__, [
            {"id": j + 1, "name": f"Firma {j} {FORMS[j % len(FORMS)]}", "search_name": f"firma {j}", "tags": [],
             "fields": {}, "origin": "bench", "created_at": now, "updated_at": now} for j in range(companies)])
        _bulk(conn, CompanyDomain.__table__, [{"company_id": j + 1, "domain": f"firma{j}.example"}
                                              for j in range(companies)])
        _bulk(conn, Contact.__table__, [
            {"id": i + 1, "name": f"{FIRST[i % 12]} {LAST[i % 10]}", "company_id": i % companies + 1,
             "role": Role.CUSTOMER, "customer_number": f"K{i}", "tags": [], "fields": {}, "origin": "bench",
             "created_at": now, "updated_at": now} for i in range(existing)])
        _bulk(conn, ContactEmail.__table__, [{"contact_id": i + 1, "email": f"e{i}@firma{i % companies}.example",
                                              "bouncing": False} for i in range(existing)])
        _bulk(conn, ContactPhone.__table__, [{"contact_id": i + 1, "raw": f"030 1{i:07d}", "e164": f"+49301{i:07d}"}
                                             for i in range(existing)])
        if engine.dialect.name == "postgresql":
            for table in ("companies", "company_domains", "contacts", "contact_emails", "contact_phones"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
                conn.execute(text(f"ANALYZE {table}"))
    engine.dispose()


def write_file(path: Path, rows: int, existing: int) -> dict[str, int]:
    """The CSV described above; returns the expected counts."""
    companies = max(1, existing // 5)
    new_companies = max(1, rows * 15 // 100)
    lines = [HEADER]
    expected = {"new": 0, "update": 0, "unchanged": 0}
    for n in range(rows):
        first, last, salutation = FIRST[n % 12], LAST[n % 10], ("Herr", "Frau")[n % 2]
        kind = n % 10
        if kind < 7 or existing == 0:  # a new person
            j = n % new_companies
            firm = f"Neu {j} {FORMS[j % len(FORMS)]}"
            lines.append(f"{firm};{salutation};;{first};{last};p{n}@neu{j}.example;040 2{n:07d};0171 3{n:07d};"
                         f"Hafenstraße {n % 200};2{n % 10000:04d};Hamburg;N{n}")
            expected["new"] += 1
        elif kind < 9:  # someone we have, found by e-mail; every other one with a new title
            i = n % existing
            title = "Dr." if kind == 7 else ""
            lines.append(f"Firma {i % companies} {FORMS[(i % companies) % len(FORMS)]};;{title};"
                         f"{FIRST[i % 12]};{LAST[i % 10]};e{i}@firma{i % companies}.example;;;;;;")
            expected["update" if title else "unchanged"] += 1
        else:  # someone we have, found by customer number
            i = (n * 7) % existing
            lines.append(f";;;{FIRST[i % 12]};{LAST[i % 10]};;;;;;;K{i}")
            expected["unchanged"] += 1
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return expected


def _child(url: str, path: str, instance: str, results: Any) -> None:
    """In a fresh process: read, preview and import the file; the timings and this process's peak memory."""
    from crm_inbox.imports.mapping import suggest_mapping
    from crm_inbox.imports.readers import read_table
    from crm_inbox.imports.service import preview_import, run_import

    settings = bench_settings(url, instance)
    factory = make_sessionmaker(make_engine(url))
    start_mb = memory_status()["vmrss_mb"]
    started = time.perf_counter()
    table = read_table(Path(path).name, Path(path).read_bytes())
    mapping = suggest_mapping(table.headers)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    preview_counts = preview_import(factory, settings, table, mapping, filename=Path(path).name, actor=None).counts
    preview_s = time.perf_counter() - started  # the preview's rows are dropped, as the CLI drops them
    started = time.perf_counter()
    done = run_import(factory, settings, table, mapping, filename=Path(path).name, actor=None)
    import_s = time.perf_counter() - started
    results.put({"read_s": read_s, "preview_s": preview_s, "import_s": import_s, "counts": done.counts,
                 "preview_counts": preview_counts, "peak_mb": memory_status()["vmhwm_mb"], "start_mb": start_mb})


def naive_rate(url: str, rows: int) -> float:
    """Rows per second of a per-row ORM importer: company_named + create_contact, one transaction per row."""
    from crm_inbox.contacts.inputs import ContactChanges
    from crm_inbox.contacts.service import company_named, create_contact
    from crm_inbox.db import unit_of_work

    factory = make_sessionmaker(make_engine(url))
    started = time.perf_counter()
    for n in range(rows):
        with unit_of_work(factory) as session:
            company, _ = company_named(session, f"Naiv {n % 300} GmbH", None)
            create_contact(session, ContactChanges(name=f"Naiv {n}", emails=(f"naiv{n}@naiv{n % 300}.example",),
                                                   phones=(f"089 4{n:07d}",), company_id=company.id), "DE", None)
    return rows / (time.perf_counter() - started)


def run(db: Any, rows: int, existing: int, tmp: Path) -> dict[str, Any]:
    url = db.fresh()
    progress(f"{db.name}: filling {existing:,} contacts")
    started = time.perf_counter()
    fill(url, existing)
    progress(f"{db.name}: filled in {time.perf_counter() - started:.1f} s; writing {rows:,} rows")
    path = tmp / "Adressen.csv"
    expected = write_file(path, rows, existing)
    progress(f"{db.name}: importing in a fresh process")
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    child = ctx.Process(target=_child, args=(url, str(path), str(tmp / "instance"), results))
    child.start()
    figures = results.get()
    child.join()
    counts = figures["counts"]
    assert figures["preview_counts"] == counts, (figures["preview_counts"], counts)
    assert {k: counts[k] for k in expected} == expected, (counts, expected)
    engine = make_engine(url)
    with engine.connect() as conn:
        contacts = conn.execute(select(func.count()).select_from(Contact.__table__)).scalar_one()
    engine.dispose()
    assert contacts == existing + expected["new"], contacts
    progress(f"{db.name}: baseline (naive per-row ORM import of 2,000 rows)")
    figures["naive_rows_s"] = naive_rate(url, min(2000, rows))
    figures["size_mb"] = path.stat().st_size / 2**20
    return figures


def report(name: str, version: str, rows: int, f: dict[str, Any]) -> None:
    total = f["read_s"] + f["import_s"]
    naive_s = rows / f["naive_rows_s"]
    print(f"{name} {version}: {rows:,} rows ({f['size_mb']:.1f} MB CSV)\n"
          f"  read + map      {f['read_s']:7.1f} s\n"
          f"  preview         {f['preview_s']:7.1f} s  ({rows / f['preview_s']:,.0f} rows/s)\n"
          f"  import          {f['import_s']:7.1f} s  ({rows / f['import_s']:,.0f} rows/s); read + import "
          f"{total:.1f} s (target < 60 s)\n"
          f"  peak RSS        {f['peak_mb']:7.0f} MB (process start {f['start_mb']:.0f} MB; target < 500 MB)\n"
          f"  counts          {f['counts']}\n"
          f"  baseline        naive per-row ORM: {f['naive_rows_s']:,.0f} rows/s → {naive_s:,.0f} s for {rows:,} rows "
          f"(no duplicate checks); the import is {naive_s / total:.0f}× faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ten times smaller")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--existing", type=int, default=100_000)
    parser.add_argument("--postgres", default=DEFAULT_PG_URL, help="PostgreSQL server URL")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    rows, existing = (args.rows // 10, args.existing // 10) if args.quick else (args.rows, args.existing)
    with tempfile.TemporaryDirectory() as tmp:
        print(environment(tmp))
        postgres = None if args.no_postgres else pg_url(args.postgres, "bench_import")
        results: dict[str, dict[str, Any]] = {}
        with backends(postgres, Path(tmp)) as dbs:
            for db in dbs:
                results[db.name] = run(db, rows, existing, Path(tmp))
                report(db.name, db.version(), rows, results[db.name])
        side_by_side(rows, existing, results)


def side_by_side(rows: int, existing: int, results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    lines = [("read + import (target < 60 s)", lambda f: f"{f['read_s'] + f['import_s']:.1f} s"),
             ("rows/s (import)", lambda f: f"{rows / f['import_s']:,.0f}"),
             ("preview (rolled back)", lambda f: f"{f['preview_s']:.1f} s"),
             ("peak RSS (target < 500 MB)", lambda f: f"{f['peak_mb']:.0f} MB"),
             ("naive per-row ORM, extrapolated", lambda f: f"{rows / f['naive_rows_s']:,.0f} s")]
    print(f"\n{rows:,} rows against {existing:,} contacts" + "".join(f" | {n:>12}" for n in names))
    for label, cell in lines:
        print(f"{label:<{len(f'{rows:,} rows against {existing:,} contacts')}}"
              + "".join(f" | {cell(results[n]):>12}" for n in names))


if __name__ == "__main__":
    main()

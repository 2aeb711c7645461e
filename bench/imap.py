"""IMAP import throughput: 5,000 typical 2–5 KB business mails from a local Dovecot, as ``crm-inbox imap fetch``
imports them (fetch with BODY.PEEK[] in batches, store + advance the folder in one commit, move to
CRM/Imported, and process what is stored), on SQLite and PostgreSQL side by side.

Two passes per database. First, in this process: the import (fetch + store + move: the message is safe in the
CRM and gone from the mailbox), then processing with ``pipeline.pool.process_all`` (the same pipeline as SMTP
mail, see bench/ingest.py; ``[worker] processes`` side by side on PostgreSQL), timed apart, in wall-clock
seconds and in this process's CPU seconds (the latter hardly depends on what else runs on a shared machine).
Then, on a fresh database with the messages put back, end to end: the real ``crm-inbox imap fetch`` as a
subprocess, which processes beside the fetching (seconds, and CPU seconds of the command and its worker
processes). Baseline in the same run: fetching the same messages with IMAPClient alone (no database). Target:
import ≥ 200 messages/s on SQLite.

Run from the repository root: ``.venv/bin/python bench/imap.py [--messages N] [--json] [--no-postgres]``.
Needs Debian's dovecot-imapd (``/usr/sbin/dovecot``); a private instance on a free port is started and removed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import (
    CRM,
    DEFAULT_PG_URL,
    OWN_DOMAIN,
    ROOT,
    SUPPORT,
    backends,
    bench_settings,
    environment,
    insert_contacts,
    pg_url,
    progress,
    setup_logging,
)
from ingest import ProcessingData

from crm_inbox.config import ImapAccount
from crm_inbox.db import make_engine, make_sessionmaker
from crm_inbox.pipeline.pool import process_all
from handlers.imap import Mailbox

sys.path.insert(0, str(ROOT))
from tests.imap_server import Dovecot, dovecot_available  # the throw-away Dovecot of the tests

TARGET = 200.0  # messages/s imported (fetch + store + move) on SQLite
USER, PASSWORD = "crm", "bench-password"


def seed(server: Dovecot, mails: list[bytes]) -> float:
    """APPEND every message to INBOX (MULTIAPPEND, 250 per command); returns the seconds taken."""
    t0 = time.perf_counter()
    with server.client(USER) as conn:
        for start in range(0, len(mails), 250):
            conn.multiappend("INBOX", mails[start:start + 250])
    return time.perf_counter() - t0


def put_back(server: Dovecot, folder: str) -> None:
    """Move the imported messages back to INBOX for the next backend (new UIDs; its database is fresh)."""
    with server.client(USER) as conn:
        conn.select_folder(folder)
        uids = conn.search("ALL")
        if uids:
            conn.move(uids, "INBOX")


def baseline(server: Dovecot, batch: int) -> dict[str, float]:
    """IMAPClient alone: SEARCH, then FETCH BODY.PEEK[] in the same batches, nothing stored."""
    t0 = time.perf_counter()
    total = 0
    with server.client(USER) as conn:
        conn.select_folder("INBOX", readonly=True)
        uids = conn.search(["UID", "1:*"])
        for start in range(0, len(uids), batch):
            for data in conn.fetch(uids[start:start + batch], ["BODY.PEEK[]"]).values():
                total += len(data[b"BODY[]"])
    seconds = time.perf_counter() - t0
    return {"messages": len(uids), "seconds": seconds, "rate": len(uids) / seconds, "bytes": total}


def run_backend(databases: Any, data: ProcessingData, server: Dovecot, password_file: Path, tmp: Path,
                profile: bool) -> dict[str, Any]:
    url = databases.fresh()
    account = ImapAccount(name="bench", host="127.0.0.1", port=server.port, tls="none", username=USER,
                          password_file=str(password_file))
    settings = bench_settings(url, tmp / "instance", imap={"accounts": (account,)})
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    insert_contacts(engine, data.firms, data.people)
    profiler = cProfile.Profile() if profile else None
    try:
        progress(f"{databases.name}: fetching and storing {len(data.mails)} messages")
        if profiler:
            profiler.enable()
        children_before = _children_cpu()
        t0, c0 = time.perf_counter(), time.process_time()
        mailbox = Mailbox(account, settings, factory)
        mailbox.open()
        try:
            result = mailbox.sync()
        finally:
            mailbox.close()
        t1, c1 = time.perf_counter(), time.process_time()
        progress(f"{databases.name}: processing {len(result.new)} messages")
        # processed as the CLI does: pipeline.pool.process_all (worker processes on PostgreSQL)
        states: Counter[str] = Counter()
        for outcome in process_all(settings, result.new):
            states[str(outcome.state.value if outcome.state else outcome.error)] += 1
        t2, c2 = time.perf_counter(), time.process_time()
        # what the worker processes spent (this process's own CPU time does not include theirs)
        c2 += _children_cpu() - children_before
        if profiler:
            profiler.disable()
    finally:
        engine.dispose()
    n = len(result.new)
    out: dict[str, Any] = {
        "messages": n, "duplicates": result.duplicates, "skipped": result.skipped,
        "import_seconds": t1 - t0, "import_rate": n / (t1 - t0), "import_cpu_rate": n / (c1 - c0),
        "processing_seconds": t2 - t1, "processing_rate": n / (t2 - t1), "processing_cpu_rate": n / (c2 - c1),
        "seconds": t2 - t0, "rate": n / (t2 - t0), "cpu_rate": n / (c2 - c0), "states": dict(states),
    }
    if databases.name == "SQLite":
        out.update(target_rate=TARGET, met=out["import_rate"] >= TARGET)
    if profiler:
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(25)
        out["profile"] = buf.getvalue().replace(str(ROOT) + "/", "")
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_command(databases: Any, data: ProcessingData, server: Dovecot, password_file: Path, tmp: Path,
                batch: int) -> dict[str, Any]:
    """End to end: ``crm-inbox imap fetch`` as a subprocess on a fresh database (the mail put back first)."""
    url = databases.fresh()
    engine = make_engine(url)
    try:
        insert_contacts(engine, data.firms, data.people)
    finally:
        engine.dispose()
    config = tmp / "fetch.toml"
    config.write_text(f"[service]\ninstance_dir = '{tmp / 'instance'}'\n[database]\nurl = '{url}'\n"
                      f"[mail]\ncrm_addresses = ['{CRM}']\nsupport_addresses = ['{SUPPORT}']\n"
                      f"staff_domains = ['{OWN_DOMAIN}']\n[imap]\nbatch_size = {batch}\n"
                      f"[[imap.accounts]]\nname = 'bench'\nhost = '127.0.0.1'\nport = {server.port}\ntls = 'none'\n"
                      f"username = '{USER}'\npassword_file = '{password_file}'\n")
    progress(f"{databases.name}: crm-inbox imap fetch of {len(data.mails)} messages")
    before = _children_cpu()
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "crm_inbox", "--config", str(config), "imap", "fetch"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ})
    seconds = time.perf_counter() - t0
    cpu = _children_cpu() - before
    if done.returncode != 0:
        raise SystemExit(f"crm-inbox imap fetch failed ({done.returncode}):\n{done.stderr[-3000:]}")
    n = len(data.mails)
    return {"seconds": seconds, "rate": n / seconds, "cpu_rate": n / cpu, "summary": done.stdout.strip()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=5000, help="messages in the mailbox (default 5,000)")
    parser.add_argument("--contacts", type=int, default=5000, help="contacts in the database (default 5,000)")
    parser.add_argument("--batch", type=int, default=200, help="[imap] batch_size (default 200)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--postgres", default=DEFAULT_PG_URL, metavar="URL",
                        help=f"PostgreSQL server to use (database 'bench_imap'; default {DEFAULT_PG_URL})")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--profile", action="store_true", help="cProfile the SQLite run and print it")
    args = parser.parse_args(argv)
    if not dovecot_available():
        print("bench/imap.py needs Dovecot: apt-get install dovecot-imapd", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-imap-"))
    setup_logging(tmp / "bench.log", "WARNING")
    server = Dovecot()
    server.add_user(USER, PASSWORD)
    password_file = tmp / "password"
    password_file.write_text(PASSWORD)
    results: dict[str, Any] = {"environment": environment(tmp)}
    try:
        server.start()
        progress(f"building {args.messages} messages")
        data = ProcessingData(args.contacts, args.messages)
        results["mean_message_bytes"] = round(data.mean_bytes)
        results["seed_seconds"] = seed(server, [raw for _, raw in data.mails])
        results["baseline"] = baseline(server, args.batch)
        postgres = None if args.no_postgres else pg_url(args.postgres, "bench_imap")
        with backends(postgres, tmp) as opened:
            for databases in opened:
                results[databases.name] = run_backend(databases, data, server, password_file, tmp,
                                                      args.profile and databases.name == "SQLite")
                put_back(server, "CRM.Imported")
                results[databases.name]["command"] = run_command(databases, data, server, password_file, tmp,
                                                                 args.batch)
                put_back(server, "CRM.Imported")
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return 0
    base = results["baseline"]
    print(f"IMAP import of {args.messages} messages (mean {results['mean_message_bytes']} bytes) from a local "
          f"Dovecot, batches of {args.batch}")
    print(f"  baseline, IMAPClient fetch only (no database): {base['rate']:8.0f} msg/s  ({base['seconds']:.1f} s)")
    names = [n for n in ("SQLite", "PostgreSQL") if n in results]
    rows = [("import (fetch + store + move)", "import_rate", "import_seconds", "import_cpu_rate"),
            ("processing (process_all)", "processing_rate", "processing_seconds", "processing_cpu_rate"),
            ("one after the other", "rate", "seconds", "cpu_rate")]
    print(f"  {'msg/s (seconds; msg per CPU second)':44}" + "".join(f"{n:>28}" for n in names))
    for label, rate, seconds, cpu in rows:
        print(f"  {label:44}" + "".join(
            f"{results[n][rate]:>10.0f} ({results[n][seconds]:6.1f}; {results[n][cpu]:5.0f})" for n in names))
    print(f"  {'end to end: crm-inbox imap fetch':44}" + "".join(
        f"{results[n]['command']['rate']:>10.0f} ({results[n]['command']['seconds']:6.1f}; "
        f"{results[n]['command']['cpu_rate']:5.0f})" for n in names))
    for name in names:
        r = results[name]
        verdict = ""
        if "target_rate" in r:
            verdict = f"; import target ≥ {TARGET:.0f} msg/s: {'met' if r['met'] else 'NOT met'}"
        print(f"  {name}: states {r['states']}, duplicates: {r['duplicates']}, skipped: {r['skipped']}{verdict}")
        print(f"    {r['command']['summary']}")
        if "profile" in r:
            print(r["profile"])
    print(f"  environment: {results['environment']}")
    return 0 if results.get("SQLite", {}).get("met", True) else 1


if __name__ == "__main__":
    sys.exit(main())

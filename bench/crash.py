"""Crash benchmark: SMTP load from several client processes and call events from a phone system while
`crm-inbox serve` is killed with SIGKILL again and again and restarted; then counts what was acknowledged,
what is in the database, duplicates and losses (target: 0 lost, 0 duplicates). The harness is the one
tests/test_crash.py uses (tests/crashload.py), with bigger numbers.

Run from the repository root: ``.venv/bin/python bench/crash.py [--quick] [--kills N] [--clients N]
[--messages N] [--nodes N] [--sigterm] [--no-postgres] [--postgres URL] [--keep]``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from _common import DEFAULT_PG_URL, ROOT, backends, environment, pg_url, progress

sys.path.insert(0, str(ROOT))  # the harness lives in tests/

from tests import crashload


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 clients × 100 messages, 5 kills")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--messages", type=int, default=500, help="messages per client")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--nodes", type=int, default=1, help="serve processes on one database (PostgreSQL only "
                                                             "for more than one)")
    parser.add_argument("--sigterm", action="store_true", help="graceful stops (SIGTERM) instead of SIGKILL")
    parser.add_argument("--postgres", default=DEFAULT_PG_URL, help="server to use (its database crash_bench)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (configs, logs)")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.messages, args.kills, args.calls = 3, 100, 5, 12
    plan = crashload.Plan(clients=args.clients, messages_per_client=args.messages, kills=args.kills,
                          calls=args.calls, nodes=args.nodes, timeout=900,
                          stop_signal=signal.SIGTERM if args.sigterm else signal.SIGKILL)
    work = Path(tempfile.mkdtemp(prefix="crm-crash-"))
    print(f"environment: {environment(work)}")
    failed = False
    postgres = None if args.no_postgres else pg_url(args.postgres, "crash_bench")
    with backends(postgres, work) as databases:
        for db in databases:
            if plan.nodes > 1 and db.name == "SQLite":
                print("SQLite: skipped (several nodes share a database only on PostgreSQL)")
                continue
            folder = work / db.name
            folder.mkdir()
            progress(f"{db.name}: {plan.clients} clients × {plan.messages_per_client} messages, {plan.kills} stops")
            report = crashload.run(plan, db.fresh(), folder)
            print(f"\n{db.name} {db.version()}")
            for line in report.lines():
                print(f"  {line}")
            failed |= not report.ok
    if args.keep:
        print(f"work folder: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

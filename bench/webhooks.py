"""How fast do outbound webhooks arrive, and how many can one ``serve`` process deliver?

For SQLite (a file in a temporary directory) and PostgreSQL (the database ``bench_webhooks``, created and
dropped by the script) side by side, with one subscription to ``*`` pointing at a receiver on 127.0.0.1 that
answers 204 at once:

1. Latency: N events, one per transaction as a service records them (``crm_inbox.events.record``), each
   recorded once the previous one arrived; the delivery runner of ``serve`` (``Deliverer``) runs in this
   process and is woken after commit as in ``serve``. The time from the end of the commit to the request's
   arrival at the receiver, p50/p95/max in ms (target: p95 under 100 ms).
2. Throughput: M events (100 per transaction, each about another contact) recorded while the runner is
   stopped, then one runner started: delivered events per second until the last arrived (each once, checked).
3. The cost ``events.record`` adds to a transaction: µs per event without any subscription and with ten
   (one INSERT, one SELECT of the subscriptions, one INSERT of the deliveries).

    .venv/bin/python bench/webhooks.py [--quick] [--postgres URL] [--no-postgres]

``--quick``: 100 events for latency and 1,000 for throughput (default 500 and 5,000).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _common import DEFAULT_PG_URL, backends, bench_settings, environment, percentile, pg_url, progress
from sqlalchemy import select

from crm_inbox import events
from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work
from crm_inbox.models import DeliveryState, WebhookDelivery
from crm_inbox.webhooks import subscriptions
from crm_inbox.webhooks.delivery import Deliverer

LATENCY_TARGET_MS = 100.0


class Receiver:
    """Answers 204 at once and notes when each webhook-id first arrived (and how often)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.count = 0
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.perf_counter()
                with receiver.changed:
                    receiver.arrived.setdefault(self.headers["webhook-id"], now)
                    receiver.count += 1
                    receiver.changed.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, webhook_id: str | None = None, count: int = 0, timeout: float = 120) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: (webhook_id in self.arrived) if webhook_id else
                                         len(self.arrived) >= count, timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_backend(name: str, url: str, tmp: Path, latency_events: int, throughput_events: int) -> dict[str, Any]:
    settings = bench_settings(url, tmp / "instance", webhooks={"allowed_private_networks": ["127.0.0.1/32"]})
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    receiver = Receiver()
    out: dict[str, Any] = {"database": name}
    try:
        # 3 first (no subscription yet): what recording an event costs a transaction.
        out["record_us_without_subscriptions"] = _record_cost(factory, 1000)
        with unit_of_work(factory) as session:
            subscriptions.create(session, settings, url=receiver.url, event_types=["*"], actor=None)
        # 1. latency, with serve's runner woken after commit
        runner = Deliverer(factory, settings)
        unhook = events.on_committed(runner.wake)
        runner.start()
        latencies = []
        progress(f"{name}: latency, {latency_events} events one by one")
        for n in range(latency_events):
            with unit_of_work(factory) as session:
                event_id = events.record(session, "contact.updated", "contact", n, {"id": n, "name": "Anna"}).id
            committed = time.perf_counter()
            if not receiver.wait(f"evt_{event_id}"):
                raise SystemExit(f"{name}: event {event_id} did not arrive")
            latencies.append((receiver.arrived[f"evt_{event_id}"] - committed) * 1000)
        unhook()
        runner.stop()
        out |= {"latency_ms_p50": round(percentile(latencies, 50), 2),
                "latency_ms_p95": round(percentile(latencies, 95), 2), "latency_ms_max": round(max(latencies), 2)}
        # 2. throughput: a backlog, then one runner drains it
        progress(f"{name}: throughput, {throughput_events} events")
        before = len(receiver.arrived)
        for start in range(0, throughput_events, 100):
            with unit_of_work(factory) as session:
                for n in range(start, min(start + 100, throughput_events)):
                    events.record(session, "contact.created", "contact", 100_000 + n, {"id": 100_000 + n})
        runner = Deliverer(factory, settings)
        began = time.perf_counter()
        runner.start()
        done = receiver.wait(count=before + throughput_events, timeout=600)
        elapsed = time.perf_counter() - began
        runner.stop()
        with factory() as session:
            delivered = session.execute(select(WebhookDelivery.id).where(
                WebhookDelivery.state == DeliveryState.DELIVERED)).scalars().all()
        out |= {"throughput_events_per_s": round(throughput_events / elapsed, 1), "all_arrived": done,
                "requests": receiver.count, "distinct_ids": len(receiver.arrived),
                "rows_delivered": len(delivered)}
        with unit_of_work(factory) as session:
            for _ in range(9):
                subscriptions.create(session, settings, url=receiver.url + "2", event_types=["order.*"],
                                     actor=None)
            subscriptions.create(session, settings, url=receiver.url + "3", event_types=["contact.*"], actor=None)
        out["record_us_with_ten_subscriptions"] = _record_cost(factory, 1000)
    finally:
        receiver.close()
        engine.dispose()
    return out


def _record_cost(factory: Any, count: int) -> float:
    """µs per ``events.record`` inside one transaction (the transaction's own commit not counted)."""
    with unit_of_work(factory) as session:
        began = time.perf_counter()
        for n in range(count):
            events.record(session, "order.created", "order", n, {"id": n, "total": "1234.50"})
        elapsed = time.perf_counter() - began
        session.rollback()  # the benchmark's rows need not stay (nor be delivered)
    return round(elapsed / count * 1e6, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", default=DEFAULT_PG_URL)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    latency_events, throughput_events = (100, 1_000) if args.quick else (500, 5_000)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp_name:
        tmp = Path(tmp_name)
        print(json.dumps(environment(tmp)))
        postgres = None if args.no_postgres else pg_url(args.postgres, "bench_webhooks")
        with backends(postgres, tmp) as dbs:
            for db in dbs:
                results.append(run_backend(db.name, db.fresh(), tmp, latency_events, throughput_events))
    keys = [k for k in results[0] if k != "database"]
    print(f"{'':36}" + "".join(f"{r['database']:>14}" for r in results))
    for key in keys:
        print(f"{key:36}" + "".join(f"{r[key]!s:>14}" for r in results))
    ok = all(r["latency_ms_p95"] < LATENCY_TARGET_MS and r["all_arrived"] and r["distinct_ids"] == r["requests"]
             for r in results)
    print("all targets met" if ok else "some targets MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

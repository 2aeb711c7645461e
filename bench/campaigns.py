"""Campaigns: how fast the send ledger is written, whether the send rate holds, and what kill -9 does.

1. **Ledger**: 50,000 recipients (plus 2,000 left out: opted out or bouncing) rendered and queued by
   ``campaigns.service.start`` in a process of its own — its wall time and its peak memory (VmHWM, the whole
   process with the interpreter; and what it gained over its state before the start). Targets: under 60 s,
   under 300 MB.
2. **Rate**: 300 mails at ``[campaigns] per_minute = 600`` (a realistic setting; the default is 60) sent by a
   ``crm-inbox serve`` process to a local aiosmtpd sink in the benchmark's process; the spacing measured at the
   sink (least-squares slope of the arrival times, and first to last) against the configured 100 ms, with the
   releases' spacing and the gate's schedule beside it. Target: within 5 %.
   **Capacity**: the same with 300 mails at 3000 a minute (20 ms), no target: how many mails a minute one serve
   process releases and sends on this machine (when the configured rate holds, at least that many).
3. **kill -9**: real ``crm-inbox serve`` processes (two on PostgreSQL, one on SQLite) send a campaign of 300;
   three times the sink takes a mail and holds its answer, the serve process that sent it is killed with
   SIGKILL (the worst moment: the relay has the mail, the CRM does not know) and started again. Counted at the
   sink: recipients skipped (target 0), duplicates (target at most one per kill and worker), and whether each
   duplicate's outbox row is reported uncertain.

    .venv/bin/python bench/campaigns.py [--quick] [--no-postgres] [--postgres URL] [--only ledger|rate|kill]

``--quick`` is ten times smaller for the ledger. PostgreSQL runs in the database ``bench_campaigns``, which the
script creates and drops (``test`` is never touched).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    CRM,
    DEFAULT_PG_URL,
    FIRST_DE,
    LAST_DE,
    ROOT,
    backends,
    bench_settings,
    environment,
    pg_url,
    progress,
)
from crm_inbox.config import Settings, replace
from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work
from crm_inbox.models import (
    Campaign,
    CampaignRecipient,
    CampaignState,
    ConsentRecord,
    Contact,
    ContactEmail,
    OutgoingMail,
    Segment,
    utcnow,
)

LEDGER_N, LEDGER_LEFT_OUT = 50_000, 2_000
LEDGER_TARGET_S, LEDGER_TARGET_MB = 60.0, 300.0
RATE_N, RATE_PER_MINUTE = 300, 600
CAPACITY_N, CAPACITY_PER_MINUTE = 300, 3000
KILL_N, KILL_PER_MINUTE, KILL_AT = 300, 1200, (60, 140, 220)
TOLERANCE = 0.05
BASE = "https://crm.beispiel-firma.de"
SECRET = "bench-campaign-secret"
SUBJECT = "{{ first_name }}, unsere Neuheiten im Frühjahr"
BODY = """{{ greeting }}

wir haben unser Sortiment für {{ company or "Sie" }} erweitert: neue Antriebe, kürzere Lieferzeiten und ein
Wartungsangebot, das sich nach Ihren Maschinenstunden richtet. Wenn Sie möchten, stellt Ihnen {{ owner }} die
Neuheiten in einem kurzen Termin vor – bei Ihnen vor Ort in {{ city or "Ihrer Nähe" }} oder per Video.

Antworten Sie einfach auf diese Mail, wir melden uns innerhalb eines Arbeitstages.

Mit freundlichen Grüßen
{{ owner }}
Beispiel Firma GmbH"""


def settings_for(url: str, instance: Path, **sections: dict[str, Any]) -> Settings:
    return replace(bench_settings(url, instance), web={"port": 0, "secret_key": SECRET, "base_url": BASE},
                   **sections)


# --- data ---------------------------------------------------------------------------------------------------

def fill(url: str, included: int, left_out: int, tag: str = "Newsletter") -> None:
    """``included`` people with e-mail consent and ``left_out`` more (half opted out, half bouncing), all tagged;
    Core bulk inserts."""
    engine = make_engine(url)
    now = utcnow()
    total = included + left_out
    chunk = 5_000
    with engine.begin() as conn:
        start_id = (conn.execute(select(func.max(Contact.id))).scalar() or 0) + 1
        for first in range(start_id, start_id + total, chunk):
            ids = range(first, min(first + chunk, start_id + total))
            conn.execute(insert(Contact.__table__), [
                {"id": i, "name": f"{FIRST_DE[i % len(FIRST_DE)]} {LAST_DE[i % len(LAST_DE)]}",
                 "search_name": f"{FIRST_DE[i % len(FIRST_DE)]} {LAST_DE[i % len(LAST_DE)]}".casefold(),
                 "role": "customer", "tags": [tag], "fields": {}, "origin": "bench", "city": "München",
                 "salutation": "frau" if i % 2 else "herr", "created_at": now, "updated_at": now} for i in ids])
            conn.execute(insert(ContactEmail.__table__), [
                {"contact_id": i, "email": f"person{i}@example.com",
                 "bouncing": i - start_id >= included and i % 2 == 0} for i in ids])
            conn.execute(insert(ConsentRecord.__table__), [
                {"contact_id": i, "channel": "email", "proof": {}, "source": "import", "created_at": now,
                 "occurred_at": now, **({"state": "opted_out", "legal_basis": None}
                                        if i - start_id >= included and i % 2 else
                                        {"state": "opted_in", "legal_basis": "consent"})} for i in ids])
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('contacts', 'id'), "
                              "(SELECT max(id) FROM contacts))"))
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    engine.dispose()


def create_campaign(url: str, settings: Settings, name: str, tag: str = "Newsletter") -> tuple[int, int]:
    """A segment of the tag and a draft campaign to it; (campaign id, admin id)."""
    from crm_inbox.campaigns import service
    from crm_inbox.staff.service import add_staff

    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    with unit_of_work(factory) as session:
        admin = add_staff(session, f"admin-{name.lower()}@beispiel-firma.de", "Clara Chefin", "admin")
        segment = Segment(name=f"Segment {name}", definition={"field": "tags", "op": "has", "value": tag})
        session.add(segment)
        session.flush()
        campaign = service.create(session, settings, name=name, segment_id=segment.id, channel="email",
                                  subject=SUBJECT, body=BODY, sender_name="Beispiel Vertrieb", actor=admin.id)
        ids = campaign.id, admin.id
    engine.dispose()
    return ids


def start(url: str, settings: Settings, campaign_id: int, admin: int) -> None:
    from crm_inbox.campaigns import service

    engine = make_engine(url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        service.start(session, settings, campaign_id, actor=admin)
    engine.dispose()


# --- 1. the ledger --------------------------------------------------------------------------------------------

def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ledger_child(url: str, instance: str, campaign_id: int, admin: int) -> None:
    """In a fresh process: start the campaign; print seconds and memory as JSON."""
    from crm_inbox.campaigns import service  # imported before the baseline, as serve has it

    settings = settings_for(url, Path(instance))
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    with factory() as session:  # connected, as a serve process is
        session.execute(select(1))
    before = _status_mb("VmRSS")
    started = time.perf_counter()
    with unit_of_work(factory) as session:
        campaign = service.start(session, settings, campaign_id, actor=admin)
        recipients, left_out = campaign.recipient_count, dict(campaign.left_out)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "before_mb": before, "peak_mb": _status_mb("VmHWM"),
                      "recipients": recipients, "left_out": left_out}))
    engine.dispose()


def bench_ledger(db: Any, tmp: Path, included: int, left_out: int) -> dict[str, Any]:
    url = db.fresh()
    progress(f"{db.name}: {included + left_out:,} contacts")
    fill(url, included, left_out)
    settings = settings_for(url, tmp / "instance")
    campaign_id, admin = create_campaign(url, settings, "Ledger")
    progress(f"{db.name}: writing the ledger of {included:,} recipients")
    out = subprocess.run([sys.executable, __file__, "--ledger-child", url, str(tmp / "instance"), str(campaign_id),
                          str(admin)], capture_output=True, text=True, check=True, env={**os.environ,
                                                                                         "PYTHONPATH": str(ROOT)})
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    engine = make_engine(url)
    with engine.connect() as conn:
        result["held"] = conn.execute(select(func.count()).select_from(OutgoingMail)
                                      .where(OutgoingMail.state == "held")).scalar_one()
    engine.dispose()
    return result


# --- a sink that notes arrivals ------------------------------------------------------------------------------

@dataclass
class Sink:
    """The relay: keeps (arrival time, To, peer port) per message. ``hold`` counts: the message making the
    count this big is held (no answer) until ``release`` is set; ``held`` tells the bench its client's port."""

    hold: tuple[int, ...] = ()
    arrivals: list[tuple[float, str]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    held: list[int] = field(default_factory=list)  # client ports of held messages, in order
    release: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    closing: bool = False
    port: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        at = time.monotonic()
        to = str(envelope.rcpt_tos[0])  # not parsed: the sink shares the service's process in part 2
        with self.changed:
            self.arrivals.append((at, to))
            hold = len(self.arrivals) in self.hold
            if hold:
                self.release.clear()
                self.held.append(int(session.peer[1]))
            self.changed.notify_all()
        if hold:
            await asyncio.to_thread(self.release.wait, 60)
        return "250 2.0.0 Ok"

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)


def run_sink(sink: Sink) -> Any:
    from handlers.smtp import SmtpServer

    server = SmtpServer(sink, "127.0.0.1", 0, max_message_bytes=1_000_000)  # type: ignore[arg-type]
    sink.port = server.start()
    return server


# --- 2. the rate ------------------------------------------------------------------------------------------------

def bench_rate(db: Any, tmp: Path, per_minute: int, n: int) -> dict[str, Any]:
    """A real serve process (its own interpreter: the sink's work does not share its GIL) sends a campaign of
    ``n`` at ``per_minute``."""
    from tests.serveproc import config_file, serve

    url = db.fresh()
    sink = Sink()
    server = run_sink(sink)
    settings = settings_for(url, tmp / f"instance-rate-{db.name}-{per_minute}")
    fill(url, 1, 0, tag="Vorab")
    fill(url, n, 0)
    warm_up, admin = create_campaign(url, settings, "Vorab", tag="Vorab")
    campaign_id, admin2 = create_campaign(url, settings, "Rate")
    folder = tmp / f"rate-{db.name}-{per_minute}"
    folder.mkdir()
    config = config_file(folder, "serve", url, web={"port": 0, "secret_key": SECRET, "base_url": BASE},
                         smtp={"enabled": False}, notifications={
                             "smtp_host": "127.0.0.1", "smtp_port": sink.port, "timeout_seconds": 5,
                             "from_address": CRM},
                         campaigns={"per_minute": per_minute, "poll_seconds": 1})
    proc = serve(config, folder / "serve.log")
    try:
        start(url, settings, warm_up, admin)  # a service that has sent before (its statements compiled)
        sink.wait_for(lambda: len(sink.arrivals) >= 1, 30)
        sink.arrivals.clear()
        progress(f"{db.name}: {n} mails at {per_minute} a minute")
        start(url, settings, campaign_id, admin2)  # found within [campaigns] poll_seconds
        sink.wait_for(lambda: len(sink.arrivals) >= n, n * 60 / per_minute + 120)
    finally:
        proc.stop()
        server.stop()
    times = [at for at, _ in sink.arrivals]
    expected = 60 / per_minute
    engine = make_engine(url)
    with engine.connect() as conn:
        released = [t.timestamp() for t in conn.execute(
            select(CampaignRecipient.released_at).where(CampaignRecipient.campaign_id == campaign_id)
            .order_by(CampaignRecipient.released_at)).scalars() if t is not None]
        gate = conn.execute(select(Campaign.next_send_at).where(Campaign.id == campaign_id)).scalar_one()
    engine.dispose()
    return {"arrived": len(times), "expected_ms": expected * 1000,
            "slope_ms": statistics.linear_regression(range(len(times)), times).slope * 1000,
            "end_to_end_ms": (times[-1] - times[0]) / (len(times) - 1) * 1000,
            "released_ms": (released[-1] - released[0]) / (len(released) - 1) * 1000,
            # The gate's own schedule: where it stands after the last release, per release since the first
            # (the start is found within poll_seconds by a serve process that did not start it).
            "gate_ms": (gate.timestamp() - released[0]) / len(released) * 1000 if gate and released else float("nan"),
            "per_minute_at_sink": 60 * (len(times) - 1) / (times[-1] - times[0])}


# --- 3. kill -9 ---------------------------------------------------------------------------------------------------

def _owner_of(client_port: int, pids: list[int]) -> int | None:
    """Which of the processes holds the TCP connection from local port ``client_port`` (via /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if int(parts[1].rsplit(":", 1)[1], 16) == client_port:
                inodes.add(parts[9])
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return pid
        except OSError:
            continue
    return None


def bench_kill(db: Any, tmp: Path, nodes: int) -> dict[str, Any]:
    from tests.serveproc import config_file, serve

    url = db.fresh()
    sink = Sink(hold=KILL_AT)
    server = run_sink(sink)
    settings = settings_for(url, tmp / f"instance-kill-{db.name}")
    fill(url, KILL_N, 0)
    campaign_id, admin = create_campaign(url, settings, "Kill")
    folder = tmp / f"kill-{db.name}"
    folder.mkdir()
    configs = [config_file(folder, f"node{i}", url, web={"port": 0, "secret_key": SECRET, "base_url": BASE},
                           smtp={"enabled": False}, notifications={
                               "smtp_host": "127.0.0.1", "smtp_port": sink.port, "timeout_seconds": 1,
                               "from_address": CRM},
                           campaigns={"per_minute": KILL_PER_MINUTE, "poll_seconds": 1}) for i in range(nodes)]
    procs = [serve(config, folder / f"node{i}.log") for i, config in enumerate(configs)]
    kills: list[int] = []
    try:
        progress(f"{db.name}: {KILL_N} mails at {KILL_PER_MINUTE} a minute, {nodes} serve process(es)")
        start(url, settings, campaign_id, admin)
        for round_ in range(len(KILL_AT)):
            if not sink.wait_for(lambda r=round_: len(sink.held) > r, 120):
                raise SystemExit(f"{db.name}: the sink never got mail number {KILL_AT[round_]}")
            victim = _owner_of(sink.held[round_], [p.proc.pid for p in procs])
            index = next((i for i, p in enumerate(procs) if p.proc.pid == victim), None)
            if index is None:
                raise SystemExit(f"{db.name}: no serve process holds the held connection")
            procs[index].kill()
            kills.append(index)
            sink.release.set()
            progress(f"{db.name}: killed node {index} at mail {KILL_AT[round_]}, starting it again")
            procs[index] = serve(configs[index], folder / f"node{index}.log")
        engine = make_engine(url)

        def all_sent() -> bool:
            with engine.connect() as conn:
                return conn.execute(select(func.count()).select_from(OutgoingMail)
                                    .where(OutgoingMail.state == "sent")).scalar_one() == KILL_N

        deadline = time.monotonic() + 180
        while not all_sent() and time.monotonic() < deadline:
            time.sleep(0.5)
        with engine.connect() as conn:
            uncertain = set(conn.execute(select(OutgoingMail.to_address).where(OutgoingMail.uncertain.is_(True)))
                            .scalars())
            state = conn.execute(select(Campaign.state).where(Campaign.id == campaign_id)).scalar_one()
            sent = conn.execute(select(func.count()).select_from(OutgoingMail)
                                .where(OutgoingMail.state == "sent")).scalar_one()
        engine.dispose()
    finally:
        for proc in procs:
            proc.ensure_gone()
        sink.release.set()
        server.stop()
    per_address = Counter(to for _, to in sink.arrivals)
    twice = {a for a, c in per_address.items() if c > 1}
    return {"nodes": nodes, "kills": len(kills), "recipients": KILL_N, "sent": sent,
            "skipped": KILL_N - len(per_address), "duplicates": sum(per_address.values()) - len(per_address),
            "duplicates_reported": len(twice & uncertain), "uncertain": len(uncertain),
            "done": state == CampaignState.DONE}


# --- the report ---------------------------------------------------------------------------------------------------

def ok(flag: bool) -> str:
    return "ok" if flag else "MISSED"


def main() -> int:
    global RATE_PER_MINUTE  # part 2's rate: --per-minute
    if len(sys.argv) > 1 and sys.argv[1] == "--ledger-child":
        ledger_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a ledger of 5,000")
    parser.add_argument("--postgres", default=DEFAULT_PG_URL, help="PostgreSQL server URL")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--only", choices=("ledger", "rate", "kill"))
    parser.add_argument("--per-minute", type=int, default=RATE_PER_MINUTE, help="the rate of part 2")
    args = parser.parse_args()
    RATE_PER_MINUTE = args.per_minute
    scale = 10 if args.quick else 1
    failed = False
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"environment: {environment(tmp)}")
        postgres = None if args.no_postgres else pg_url(args.postgres, "bench_campaigns")
        with backends(postgres, tmp) as dbs:
            for db in dbs:
                label = f"{db.name} {db.version().split()[0]}"
                if args.only in (None, "ledger"):
                    r = bench_ledger(db, tmp, LEDGER_N // scale, LEDGER_LEFT_OUT // scale)
                    good = r["seconds"] < LEDGER_TARGET_S and r["peak_mb"] < LEDGER_TARGET_MB \
                        and r["held"] == LEDGER_N // scale
                    failed |= not good
                    print(f"{label}: ledger of {r['recipients']:,} recipients (left out {r['left_out']}), "
                          f"{r['held']:,} held mails: {r['seconds']:.1f} s (target < {LEDGER_TARGET_S:.0f} s), "
                          f"peak memory {r['peak_mb']:.0f} MB (target < {LEDGER_TARGET_MB:.0f} MB; "
                          f"{r['peak_mb'] - r['before_mb']:.0f} MB more than before the start) {ok(good)}")
                if args.only in (None, "rate"):
                    r = bench_rate(db, tmp, RATE_PER_MINUTE, RATE_N)
                    off = abs(r["slope_ms"] - r["expected_ms"]) / r["expected_ms"]
                    good = r["arrived"] == RATE_N and off < TOLERANCE
                    failed |= not good
                    print(f"{label}: send rate {RATE_PER_MINUTE}/min over {r['arrived']} mails at the sink: "
                          f"spacing {r['slope_ms']:.2f} ms (slope; first to last {r['end_to_end_ms']:.2f} ms, "
                          f"released {r['released_ms']:.2f} ms, gate schedule {r['gate_ms']:.2f} ms) vs "
                          f"{r['expected_ms']:.2f} ms configured: {off:.1%} off (target < {TOLERANCE:.0%}) "
                          f"{ok(good)}")
                    r = bench_rate(db, tmp, CAPACITY_PER_MINUTE, CAPACITY_N)
                    held = abs(r["slope_ms"] - r["expected_ms"]) / r["expected_ms"] < TOLERANCE
                    limit = (f"at least: the configured {CAPACITY_PER_MINUTE}/min held" if held else
                             f"the machine's limit: {CAPACITY_PER_MINUTE}/min configured")
                    print(f"{label}: capacity: one serve process releases and sends up to "
                          f"{r['per_minute_at_sink']:,.0f} mails/min on this machine ({limit}; {r['arrived']} "
                          f"mails, spacing at the sink {r['slope_ms']:.2f} ms, released {r['released_ms']:.2f} ms, "
                          f"gate schedule {r['gate_ms']:.2f} ms, configured {r['expected_ms']:.2f} ms)")
                if args.only in (None, "kill"):
                    nodes = 2 if db.name == "PostgreSQL" else 1
                    r = bench_kill(db, tmp, nodes)
                    good = r["skipped"] == 0 and r["duplicates"] <= r["kills"] \
                        and r["duplicates_reported"] == r["duplicates"] and r["done"]
                    failed |= not good
                    print(f"{label}: {r['kills']} × kill -9 of {r['nodes']} serve process(es) sending "
                          f"{r['recipients']}: skipped {r['skipped']} (target 0), duplicates {r['duplicates']} "
                          f"(target ≤ {r['kills']}: one per kill and worker), reported uncertain "
                          f"{r['duplicates_reported']} of them ({r['uncertain']} rows uncertain), campaign done: "
                          f"{r['done']} {ok(good)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The first day: ``crm-inbox ingest`` of ten years of a shared mailbox, on SQLite and PostgreSQL side by side.

An mbox of N typical business mails (default 100,000; ``--quick`` 5,000) is written to a temporary folder, one
message at a time (never the whole mailbox in memory): customers' mail to crm@ and support@ (70 % from the
10,000 contacts inserted beforehand, 30 % from unknown senders who become leads), their replies in earlier
threads (In-Reply-To/References), staff replies from the Sent folder, 5 % with an attachment, delivery failure
reports and out-of-office replies. Then the real command runs as a subprocess, with a configuration file that
points at the benchmark database, and the table shows end-to-end messages per second (read + store + process),
messages per CPU second of the command's processes, their peak memory (one process's, the largest), and
what the import made of the mail. Target: 100,000 messages on PostgreSQL in under 5 minutes (≥ 333 msg/s end
to end).

``--statements`` runs the command with ``[worker] processes = 1`` inside a wrapper that counts the SQL
statements and commits it sends (SQLAlchemy events): statements and commits per message, the evidence that
does not depend on what else runs on the machine.

Run from the repository root: ``.venv/bin/python bench/history.py [--quick] [--messages N] [--no-postgres]
[--postgres URL] [--processes N] [--statements [--profile]] [--json]``. PostgreSQL uses its own database
``bench_history`` (created and dropped here; ``test`` is never touched), so it cannot collide with another
benchmark's ``bench``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, BinaryIO

from _common import (
    CRM,
    DEFAULT_PG_URL,
    OWN_DOMAIN,
    ROOT,
    SUPPORT,
    MailMaker,
    People,
    Person,
    backends,
    environment,
    insert_contacts,
    pg_url,
    progress,
)
from sqlalchemy import func, select

from crm_inbox.db import make_engine
from crm_inbox.models import Contact, InboundMessage, Interaction, Ticket

TARGET_MESSAGES = 100_000
TARGET_SECONDS = 300.0  # 100,000 mails on PostgreSQL in under 5 minutes
STAFF = (("Anna Berger", "anna.berger"), ("Jonas Keller", "jonas.keller"), ("Miriam Roth", "miriam.roth"),
         ("Felix Brandt", "felix.brandt"), ("Leonie Vogt", "leonie.vogt"), ("Tim Seidel", "tim.seidel"))
ATTACHMENTS = (("Angebot_{n}.pdf", "application/pdf"), ("Rechnung_{n}.pdf", "application/pdf"),
               ("Zeichnung_{n}.pdf", "application/pdf"), ("Bestellung_{n}.xlsx",
               "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), ("Foto_{n}.jpg", "image/jpeg"))
TEN_YEARS = timedelta(days=3652)


@dataclass
class Thread:
    customer: Person
    subject: str  # the Subject header's value as sent (maybe encoded words), without a reply prefix
    refs: list[str]  # Message-IDs in the thread, oldest first


@dataclass
class Written:
    """What the generated mailbox holds."""

    messages: int = 0
    bytes: int = 0
    kinds: Counter[str] = field(default_factory=Counter)


class History:
    """A seeded shared mailbox of ten years: who writes, and which earlier mail a reply answers."""

    def __init__(self, contacts: int, messages: int, seed: int = 21) -> None:
        people = People(seed)
        self.rng = rng = people.rng
        self.firms, self.people = people.population(contacts, max(1, contacts // 5))
        new_firms = [people.firm() for _ in range(max(1, messages // 20))]
        self.unknown = []
        for _ in range(max(1, int(messages * 0.3 * 0.8))):  # some unknown senders write more than once
            roll = rng.random()
            firm = rng.choice(new_firms) if roll < 0.4 else rng.choice(self.firms) if roll < 0.7 else None
            self.unknown.append(people.person(firm))
        self.staff = [Person(name, f"{local}@{OWN_DOMAIN}", "Beispiel Firma GmbH") for name, local in STAFF]
        self.maker = MailMaker(seed + 1)
        self.threads: deque[Thread] = deque(maxlen=3000)  # recent conversations; replies answer these
        self.start = datetime(2016, 1, 4, 7, 0, tzinfo=UTC)

    def write(self, out: BinaryIO, messages: int) -> Written:
        written = Written()
        step = TEN_YEARS / messages
        for i in range(messages):
            when = self.start + step * i + timedelta(seconds=self.rng.randint(0, 600))
            kind, sender, raw = self.message(when)
            line = f"From {sender} {when.strftime('%a %b %d %H:%M:%S %Y')}\n".encode()
            body = raw.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From ")  # mbox: LF, escaped "From "
            out.write(line + body + (b"\n" if body.endswith(b"\n") else b"\n\n"))
            written.messages += 1
            written.bytes += len(raw)
            written.kinds[kind] += 1
        return written

    def message(self, when: datetime) -> tuple[str, str, bytes]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.02 and self.threads:
            return "bounce", "MAILER-DAEMON", self.bounce(rng.choice(self.threads), when)
        if roll < 0.04 and self.threads:
            thread = self._recent()
            return "auto-reply", thread.customer.email, self.auto_reply(thread, when)
        if roll < 0.16 and self.threads:
            staff = rng.choice(self.staff)
            return "staff reply", staff.email, self.reply(self._recent(), staff, when)
        if roll < 0.32 and self.threads:
            thread = self._recent()
            return "customer reply", thread.customer.email, self.reply(thread, thread.customer, when)
        known = rng.random() < 0.7
        sender = rng.choice(self.people if known else self.unknown)
        to_support = rng.random() < 0.25
        raw = self.maker.mail(sender, date=when, attachment=self._attachment())
        if to_support:
            raw = _set_headers(raw, {"To": f"Kundenservice <{SUPPORT}>"})
        self.threads.append(Thread(sender, _reply_stripped(_header(raw, b"Subject")), [_header(raw, b"Message-ID")]))
        return ("new, known sender" if known else "new, unknown sender") + (" to support" if to_support else ""), \
            sender.email, raw

    def _recent(self) -> Thread:
        """Mostly a conversation of the last weeks, sometimes an old one."""
        recent = min(len(self.threads), 300)
        if self.rng.random() < 0.9:
            return self.threads[-1 - self.rng.randrange(recent)]
        return self.rng.choice(self.threads)

    def _attachment(self) -> tuple[str, str, bytes] | None:
        rng = self.rng
        if rng.random() >= 0.05:
            return None
        name, ctype = rng.choice(ATTACHMENTS)
        data = b"%PDF-1.4\n" + rng.randbytes(rng.randint(15_000, 150_000))
        return name.format(n=rng.randint(10000, 99999)), ctype, data

    def reply(self, thread: Thread, sender: Person, when: datetime) -> bytes:
        """A reply in ``thread`` by ``sender`` (the customer, or staff answering the customer)."""
        staff = sender.email.endswith("@" + OWN_DOMAIN)
        german = thread.customer.german if staff else sender.german
        raw = self.maker.mail(sender, date=when, attachment=self._attachment())
        headers: dict[str, str] = {"Subject": ("AW: " if german else "RE: ") + thread.subject,
                                   "In-Reply-To": thread.refs[-1], "References": " ".join(thread.refs[-8:])}
        if staff:  # from the Sent folder: to the customer, the CRM in copy
            headers["To"] = _address(thread.customer)
            headers["Cc"] = f"CRM <{CRM}>"
        raw = _set_headers(raw, headers)
        thread.refs.append(_header(raw, b"Message-ID"))
        return raw

    def auto_reply(self, thread: Thread, when: datetime) -> bytes:
        customer = thread.customer
        mid = self.maker.message_id(customer.email.rpartition("@")[2])
        back = (when + timedelta(days=self.rng.randint(3, 21))).strftime("%d.%m.%Y")
        text = (f"Vielen Dank für Ihre Nachricht. Ich bin bis einschließlich {back} nicht im Büro und habe keinen "
                "Zugriff auf meine E-Mails. In dringenden Fällen wenden Sie sich bitte an unsere Zentrale.\n"
                if customer.german else
                f"Thank you for your message. I am out of the office until {back} with no access to e-mail.\n")
        subject = ("Abwesenheitsnotiz: " if customer.german else "Automatic reply: ") + thread.subject
        head = [f"Return-Path: <{customer.email}>", f"Message-ID: {mid}", f"Date: {format_datetime(when)}",
                f"From: {_address(customer)}", f"To: CRM <{CRM}>", f"Subject: {subject}",
                f"In-Reply-To: {thread.refs[-1]}", f"References: {thread.refs[-1]}",
                "Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: All", "MIME-Version: 1.0",
                "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64"]
        return _message(head, base64.encodebytes(text.encode()).decode())

    def bounce(self, thread: Thread, when: datetime) -> bytes:
        """A delivery failure report for a staff mail to ``thread``'s customer (who has left the company)."""
        rng = self.rng
        staff = rng.choice(self.staff)
        failed = thread.customer.email
        mid = self.maker.message_id("mx1." + OWN_DOMAIN)
        boundary = hashlib.md5(mid.encode()).hexdigest()[:12] + "/mx1." + OWN_DOMAIN
        date = format_datetime(when)
        head = ["Return-Path: <>", f"Message-ID: {mid}", f"Date: {date}",
                f"From: Mail Delivery System <MAILER-DAEMON@mx1.{OWN_DOMAIN}>", f"To: {staff.email}",
                "Subject: Undelivered Mail Returned to Sender", "Auto-Submitted: auto-replied", "MIME-Version: 1.0",
                f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"']
        body = (f"This is a MIME-encapsulated message.\n\n--{boundary}\nContent-Type: text/plain; charset=us-ascii\n\n"
                f"This is the mail system at host mx1.{OWN_DOMAIN}.\n\nI'm sorry to have to inform you that your "
                f"message could not be delivered to one or more recipients.\n\n<{failed}>: host "
                f"mx.{failed.rpartition('@')[2]} said: 550 5.1.1 <{failed}>: Recipient address rejected: User "
                f"unknown in virtual mailbox table\n\n--{boundary}\nContent-Type: message/delivery-status\n\n"
                f"Reporting-MTA: dns; mx1.{OWN_DOMAIN}\nArrival-Date: {date}\n\nFinal-Recipient: rfc822; {failed}\n"
                f"Original-Recipient: rfc822;{failed}\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 "
                f"5.1.1 <{failed}>: Recipient address rejected: User unknown\n\n--{boundary}\n"
                f"Content-Type: text/rfc822-headers\n\nFrom: {_address(staff)}\nTo: {failed}\n"
                f"Subject: AW: {thread.subject}\nMessage-ID: {thread.refs[-1]}\n\n--{boundary}--\n")
        return _message(head, body)


def _address(person: Person) -> str:
    from email.utils import formataddr

    return formataddr((person.name, person.email), charset="utf-8")


def _message(head: list[str], body: str) -> bytes:
    return ("\r\n".join(head) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


def _split(raw: bytes) -> tuple[list[bytes], bytes]:
    """The header fields (each with its folded lines) and the rest of the message."""
    head, _, body = raw.partition(b"\r\n\r\n")
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields, body


def _header(raw: bytes, name: bytes) -> str:
    prefix = name.lower() + b":"
    for value in _split(raw)[0]:
        if value.lower().startswith(prefix):
            return " ".join(value[len(prefix):].decode("ascii").split())
    return ""


def _set_headers(raw: bytes, values: dict[str, str]) -> bytes:
    """``raw`` with the named header fields replaced."""
    fields, body = _split(raw)
    names = {name.lower().encode() for name in values}
    kept = [f for f in fields if f.split(b":", 1)[0].lower() not in names]
    added = [f"{name}: {value}".encode() for name, value in values.items()]
    return b"\r\n".join(kept + added) + b"\r\n\r\n" + body


def _reply_stripped(subject: str) -> str:
    for prefix in ("AW: ", "RE: "):
        if subject.startswith(prefix):
            return subject[len(prefix):]
    return subject


# --- running the command ---

def write_config(path: Path, url: str, instance: Path, processes: int | None) -> None:
    lines = [f"[service]\ninstance_dir = '{instance}'", f"[database]\nurl = '{url}'",
             f"[mail]\ncrm_addresses = ['{CRM}']\nsupport_addresses = ['{SUPPORT}']\nstaff_domains = ['{OWN_DOMAIN}']"]
    if processes is not None:
        lines.append(f"[worker]\nprocesses = {processes}")
    path.write_text("\n".join(lines) + "\n")


def counted_main(out: str, argv: list[str], profile: bool = False) -> int:
    """The command in this process, counting SQL statements (by their first word) and commits; with
    ``profile``, under cProfile too (the report beside the counts)."""
    import cProfile
    import io
    import pstats

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from crm_inbox.cli import main

    counts: Counter[str] = Counter()
    texts: Counter[str] = Counter()

    def statement(conn: Any, cursor: Any, text: str, params: Any, context: Any, executemany: bool) -> None:
        counts["statements"] += 1
        counts[text.lstrip().split(None, 1)[0].upper()] += 1
        texts[" ".join(text.split())[:150]] += 1

    def commit(conn: Any) -> None:
        counts["commits"] += 1

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", commit)
    # CPU time, not wall-clock: what the command itself costs, however busy the machine (and the server) is.
    profiler = cProfile.Profile(time.process_time) if profile else None
    if profiler:
        profiler.enable()
    code = main(argv)
    if profiler:
        profiler.disable()
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(50)
        Path(out + ".profile").write_text(buf.getvalue().replace(str(ROOT) + "/", ""))
    Path(out).write_text(json.dumps(counts))
    Path(out + ".texts").write_text(json.dumps(texts.most_common(25)))
    return code


def run_backend(databases: Any, history: History, mbox: Path, messages: int, tmp: Path, processes: int | None,
                statements: bool, profile: bool = False) -> dict[str, Any]:
    url = databases.fresh()
    engine = make_engine(url)
    try:
        insert_contacts(engine, history.firms, history.people)
        config = tmp / f"crm-{databases.name}.toml"
        write_config(config, url, tmp / "instance", 1 if statements else processes)
        counts_file = tmp / "counts.json"
        command = [sys.executable, "-m", "crm_inbox", "--config", str(config), "ingest", str(mbox)]
        if statements:
            command = [sys.executable, str(Path(__file__).resolve()), "--profiled-run" if profile else "--counted-run",
                       str(counts_file), "--", *command[3:]]
        progress(f"{databases.name}: crm-inbox ingest of {messages} messages")
        out_file, err_file = tmp / "ingest.out", tmp / "ingest.err"
        t0 = time.perf_counter()
        with out_file.open("wb") as out, err_file.open("wb") as err:
            proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err)
            # wait4: this command's own CPU time and peak memory, its worker processes included
            _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
        if code not in (0, 1):
            raise SystemExit(f"crm-inbox ingest failed ({code}):\n{err_file.read_text()[-3000:]}")
        with engine.connect() as conn:
            states = {state: n for state, n in conn.execute(
                select(InboundMessage.state, func.count()).group_by(InboundMessage.state))}
            stored = sum(states.values())
            interactions = conn.scalar(select(func.count()).select_from(Interaction)  # mail, not tickets' lines
                                       .where(Interaction.inbound_message_id.is_not(None))) or 0
            leads = (conn.scalar(select(func.count()).select_from(Contact)) or 0) - len(history.people)
            tickets = conn.scalar(select(func.count()).select_from(Ticket)) or 0
    finally:
        engine.dispose()
    result: dict[str, Any] = {
        "messages": messages, "stored": stored, "seconds": seconds, "rate": messages / seconds,
        "cpu_seconds": cpu, "cpu_rate": messages / cpu if cpu else None,
        "states": {getattr(k, "value", k): v for k, v in states.items()}, "interactions": interactions,
        "leads": leads, "tickets": tickets, "summary": out_file.read_text().strip().splitlines()[-1:] or "",
        "exit": code, "peak_mb": usage.ru_maxrss / 1024,
    }
    if statements:
        counted = json.loads(counts_file.read_text())
        result["statements_per_message"] = counted["statements"] / messages
        result["commits_per_message"] = counted["commits"] / messages
        result["statement_kinds"] = {k: round(v / messages, 2) for k, v in counted.items()
                                     if k not in ("statements", "commits")}
        result["frequent_statements"] = [(round(n / messages, 3), text) for text, n in
                                         json.loads(Path(str(counts_file) + ".texts").read_text())]
        if profile:
            result["profile"] = Path(str(counts_file) + ".profile").read_text()
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["--counted-run"], ["--profiled-run"]):
        return counted_main(argv[1], argv[3:], profile=argv[0] == "--profiled-run")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=TARGET_MESSAGES, help="mails in the mbox (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="5,000 mails")
    parser.add_argument("--contacts", type=int, default=10_000, help="contacts in the database (default 10,000)")
    parser.add_argument("--processes", type=int, default=None,
                        help="[worker] processes for the command (default: the configuration's default)")
    parser.add_argument("--statements", action="store_true",
                        help="count SQL statements and commits per message (runs with [worker] processes = 1)")
    parser.add_argument("--profile", action="store_true",
                        help="with --statements: cProfile the command too and print the report")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--postgres", default=DEFAULT_PG_URL, metavar="URL",
                        help=f"PostgreSQL server (database 'bench_history'; default {DEFAULT_PG_URL})")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args(argv)
    messages = 5000 if args.quick else args.messages
    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-history-"))
    results: dict[str, Any] = {"environment": environment(tmp)}
    try:
        progress(f"writing an mbox of {messages} messages")
        history = History(args.contacts, messages)
        mbox = tmp / "shared-mailbox.mbox"
        t0 = time.perf_counter()
        with mbox.open("wb") as out:
            written = history.write(out, messages)
        results["mbox"] = {"messages": written.messages, "megabytes": mbox.stat().st_size / 1e6,
                           "mean_message_bytes": written.bytes / written.messages, "kinds": dict(written.kinds),
                           "seconds_to_write": time.perf_counter() - t0}
        postgres = None if args.no_postgres else pg_url(args.postgres, "bench_history")
        with backends(postgres, tmp) as opened:
            for databases in opened:
                if args.no_sqlite and databases.name == "SQLite":
                    continue
                results[databases.name] = run_backend(databases, history, mbox, messages, tmp, args.processes,
                                                      args.statements or args.profile, args.profile)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return 0
    return print_table(results, messages)


def print_table(results: dict[str, Any], messages: int) -> int:
    box = results["mbox"]
    print(f"crm-inbox ingest of an mbox of {messages:,} mails ({box['megabytes']:.0f} MB, mean "
          f"{box['mean_message_bytes']:.0f} bytes), 10 years of a shared mailbox")
    print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(box["kinds"].items(), key=lambda kv: -kv[1])))
    names = [n for n in ("SQLite", "PostgreSQL") if n in results]
    rows = [("seconds", "{seconds:.1f}"), ("msg/s end to end", "{rate:.0f}"), ("msg per CPU second", "{cpu_rate:.0f}"),
            ("peak memory MB", "{peak_mb:.0f}"),
            ("stored", "{stored}"), ("interactions", "{interactions}"), ("leads", "{leads}"), ("tickets", "{tickets}"),
            ("failed", "{failed}"), ("ignored", "{ignored}")]
    if any("statements_per_message" in results[n] for n in names):
        rows += [("statements / message", "{statements_per_message:.1f}"),
                 ("commits / message", "{commits_per_message:.2f}")]
    print(f"  {'':24}" + "".join(f"{n:>14}" for n in names))
    for label, fmt in rows:
        cells = []
        for n in names:
            r = results[n]
            cells.append(fmt.format(**r, failed=r["states"].get("failed", 0), ignored=r["states"].get("ignored", 0)))
        print(f"  {label:24}" + "".join(f"{c:>14}" for c in cells))
    for n in names:
        if "statement_kinds" in results[n]:
            print(f"  {n} statements per message: {results[n]['statement_kinds']}")
    for n in names:
        if "frequent_statements" in results[n]:
            print(f"  {n}, the most frequent statements (per message):")
            for per_message, text in results[n]["frequent_statements"]:
                print(f"    {per_message:6.3f}  {text}")
    for n in names:
        if "profile" in results[n]:
            print(f"  {n}, cProfile of the command:\n{results[n]['profile']}")
    met = None
    if "PostgreSQL" in results:
        pg = results["PostgreSQL"]
        projected = pg["seconds"] * TARGET_MESSAGES / messages
        met = projected < TARGET_SECONDS
        scope = "" if messages == TARGET_MESSAGES else f" (projected from {messages:,}: {projected:.0f} s)"
        print(f"  target 100,000 on PostgreSQL < 5 min{scope}: {'met' if met else 'MISSED'}")
    print(f"  environment: {results['environment']}")
    return 0 if met in (None, True) else 1


if __name__ == "__main__":
    sys.exit(main())

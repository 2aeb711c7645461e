"""Analytics kept apart (issue 20): the speed of the analytical store and what it costs the operative CRM.

1. Builds the big benchmark database with bulk loads (SQLite: executemany on the driver; PostgreSQL: COPY):
   100,000 contacts at 10,000 companies (A/B/C categories, a third customers), 1,000,000 interactions over three
   years (mail in and out, calls, notes, ticket and deal entries) with their ``interaction_contacts`` links,
   200,000 calls (some missed, most of those called back, missed-call reminders), 50,000 tickets with their
   events (staff replies, state changes, reopenings), 100,000 reminders, 20,000 opportunities whose stage changes
   are in the audit log as ``crm_inbox.sales.opportunities`` writes them, quotes, orders, ERP invoices, campaign
   recipients, and 40 staff in teams (two teams under five people).
2. A full refresh (``crm_inbox.analytics.refresh.refresh(settings, full=True)``) in a process of its own:
   seconds and peak RSS — target under 60 s.
3. An incremental refresh after 1,000 new mails went through the real pipeline (``intake.store`` +
   ``pipeline.runner.process``, 70 % from known contacts, 30 % from strangers who become leads) — target under 5 s.
4. Every report through ``catalog.run`` on the store (``StoreReader``, as the page reads it) for the last 12
   months, with and without a team filter, and the same through the page over HTTP (Flask's test client,
   logged in) — target p95 under 300 ms.
5. Side by side: mail processing throughput (``pipeline.runner.process`` over stored mails, as
   ``bench/ingest.py`` part 2) and the customer page's p95 (``GET /contacts/<id>`` of the busiest contact) with
   and without a full refresh running at the same time as ``serve`` runs it (``nice -n 19 python -m crm_inbox
   analytics refresh --full``, its own process) — targets: at least 90 % of the throughput, p95 not worse.

    .venv/bin/python bench/analytics.py [--quick] [--postgres URL | --no-postgres] [--keep DIR] [--json]

``--quick`` is ten times smaller. ``--keep DIR`` keeps the built SQLite database there and reuses it on the
next run (copied, never changed). PostgreSQL runs in the database ``bench_analytics``, created and dropped by the
script (``test`` is never touched). The machine's load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import (
    CRM,
    DEFAULT_PG_URL,
    ROOT,
    SUPPORT,
    MailMaker,
    People,
    Person,
    bench_settings,
    environment,
    median,
    memory_status,
    percentile,
    postgres_available,
    progress,
    setup_logging,
)
from sqlalchemy import Table, select
from sqlalchemy.engine import make_url

from crm_inbox.analytics.model import Filters, StaffPolicy
from crm_inbox.config import Settings
from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work, upgrade
from crm_inbox.intake.store import Envelope
from crm_inbox.intake.store import store as store_message
from crm_inbox.models import (
    AuditEntry,
    Call,
    Campaign,
    CampaignRecipient,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    ContactPhone,
    Interaction,
    InteractionContact,
    Invoice,
    Opportunity,
    Order,
    Quote,
    Reminder,
    StaffEmail,
    StaffUser,
    Ticket,
    TicketEvent,
)
from crm_inbox.models.tickets import NUMBER_OFFSET
from crm_inbox.pipeline.runner import process
from crm_inbox.staff.service import add_staff

PG_DATABASE = "bench_analytics"
CHUNK = 50_000
GENERATOR_VERSION = 1  # a kept database of another version is built again

TEAMS = (("Vertrieb", 12), ("Service", 14), ("Innendienst", 8), ("Marketing", 3), ("Geschäftsführung", 2),
         (None, 1))
STAGES = (("qualified", 10), ("needs_analysis", 25), ("quote_sent", 50), ("negotiation", 75))
LOST_REASONS = ("Preis zu hoch", "Wettbewerber gewählt", "Projekt verschoben", "Kein Budget",
                "Lieferzeit zu lang", "no decision", "went with a competitor")
SUBJECTS = ("Anfrage Angebot", "Bestellung", "Rückfrage zu Ihrer Rechnung", "Liefertermin", "Reklamation",
            "Terminvorschlag", "Request for quotation", "Order confirmation", "Question about invoice")


@dataclass(frozen=True)
class Scale:
    contacts: int
    companies: int
    interactions: int
    calls: int
    tickets: int
    reminders: int  # manual ones; rules add missed-call and ticket reminders
    opportunities: int
    invoices: int
    recipients: int


FULL = Scale(100_000, 10_000, 1_000_000, 200_000, 50_000, 80_000, 20_000, 30_000, 100_000)
QUICK = Scale(10_000, 1_000, 100_000, 20_000, 5_000, 8_000, 2_000, 3_000, 10_000)


# --- writing rows fast ---

def ts(value: datetime) -> str:
    """A naive UTC time as SQLAlchemy stores it on SQLite (and PostgreSQL parses it, session zone UTC)."""
    return value.isoformat(" ", "microseconds")


def _default_value(column: Any, now: str) -> Any:
    """What the model's Python-side default would have written (bulk loads bypass the ORM)."""
    default = column.default
    if default is None:
        return None
    if default.is_callable:  # utcnow, dict or list (SQLAlchemy wraps them, keeping the name)
        return {"dict": "{}", "list": "[]"}.get(getattr(default.arg, "__name__", ""), now)
    value = default.arg
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return getattr(value, "value", value)


class Loader:
    """Bulk writes into one backend: the driver's executemany on SQLite (no SQLAlchemy type processing per
    value), COPY on PostgreSQL. Rows are tuples of plain values: str times (``ts``), int booleans, str money,
    JSON as text. NOT NULL columns the caller leaves out get the model's default."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = make_url(url).get_backend_name() == "sqlite"
        self.now = ts(datetime.now(UTC).replace(tzinfo=None))
        self.rows: dict[str, int] = {}
        if self.sqlite:
            self.db = sqlite3.connect(make_url(url).database or "")
            self.db.execute("PRAGMA foreign_keys=OFF")
            self.db.execute("PRAGMA synchronous=OFF")  # a bulk load: durability does not matter here
        else:
            import psycopg

            plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            self.pg = psycopg.connect(plain)
            self.pg.execute("SET TIME ZONE 'UTC'")
            try:  # no foreign-key triggers during the load (the rows are written in a consistent order anyway)
                self.pg.execute("SET session_replication_role = replica")
            except psycopg.Error:
                self.pg.rollback()
                self.pg.execute("SET TIME ZONE 'UTC'")

    def write(self, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        extra = [(c.name, _default_value(c, self.now)) for c in table.columns
                 if c.name not in columns and not c.nullable and not c.primary_key]
        names = [*columns, *(name for name, _ in extra)]
        tail = tuple(value for _, value in extra)
        full = [row + tail for row in rows] if tail else list(rows)
        if self.sqlite:
            self.db.executemany(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES "
                                f"({', '.join('?' * len(names))})", full)
        else:
            with self.pg.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                for row in full:
                    copy.write_row(row)
        self.rows[table.name] = self.rows.get(table.name, 0) + len(full)

    def finish(self) -> float:
        """Commit, fix the id sequences (PostgreSQL), ANALYZE; the seconds ANALYZE took."""
        started = time.perf_counter()
        if self.sqlite:
            self.db.commit()
            self.db.execute("ANALYZE")
            self.db.commit()
            self.db.close()
        else:
            for name in self.rows:
                self.pg.execute(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                f"(SELECT max(id) FROM {name}))" if name != "interaction_contacts" else "SELECT 1")
            self.pg.commit()
            self.pg.autocommit = True
            self.pg.execute("VACUUM ANALYZE")
            self.pg.close()
        return time.perf_counter() - started


# --- the data ---

@dataclass
class Built:
    """What later parts need to know about the data."""

    rows: dict[str, int]
    seconds: float
    analyze_seconds: float
    busiest_contact: int
    senders: list[tuple[str, str]]  # (name, address) of contacts, for mail from known people
    staff_login: tuple[str, str] = ("lena.vogt@beispiel-firma.de", "bench-analytics-password")
    teams: dict[str, int] = field(default_factory=dict)


def build(url: str, scale: Scale, seed: int = 20) -> Built:
    """Fill the migrated, empty database at ``url``."""
    rng = random.Random(seed)
    started = time.perf_counter()
    loader = Loader(url)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    first = now - timedelta(days=3 * 365)
    span = (now - first).total_seconds()

    def at(fraction: float) -> datetime:
        return first + timedelta(seconds=int(span * fraction))

    # Staff: teams of 12, 14, 8, 3, 2 and one without a team; one has left (inactive).
    progress("staff, companies and contacts")
    staff: list[tuple[Any, ...]] = []
    team_of: dict[int, str | None] = {}
    for team, size in TEAMS:
        for _ in range(size):
            sid = len(staff) + 1
            team_of[sid] = team
            staff.append((sid, f"Mitarbeiter {sid}", "staff", team, int(sid != 5), ts(first)))
    loader.write(StaffUser.__table__, ("id", "name", "role", "team", "active", "created_at"), staff)
    by_team = {team: [sid for sid, t in team_of.items() if t == team] for team, _ in TEAMS}
    sales_staff, service_staff = by_team["Vertrieb"] + by_team["Innendienst"], by_team["Service"]

    firms, people = People(seed).population(scale.contacts, scale.companies)
    firm_ids = {f.name: i for i, f in enumerate(firms, 1)}
    categories = ("A",) * 10 + ("B",) * 25 + ("C",) * 40 + (None,) * 25
    company_rows = []
    for i, f in enumerate(firms, 1):
        created = at(rng.random() * 0.8)
        company_rows.append((i, f.name, f.name.casefold(), "B2B", rng.choice(categories), "bench",
                             f"K{10000 + i}" if rng.random() < 0.6 else None, ts(created), ts(created)))
    loader.write(Company.__table__, ("id", "name", "search_name", "customer_type", "category", "origin",
                                     "customer_number", "created_at", "updated_at"), company_rows)
    loader.write(CompanyDomain.__table__, ("company_id", "domain"), [(i, f.domain) for i, f in enumerate(firms, 1)])
    n = len(people)
    company_of: list[int | None] = [None, *(firm_ids.get(p.company or "") for p in people)]
    roles = ("customer",) * 35 + ("lead",) * 30 + ("prospect",) * 20 + ("supplier",) * 5 + ("other",) * 10
    origins = ("mail",) * 50 + ("call",) * 15 + ("import",) * 20 + ("manual",) * 10 + ("web_form",) * 5
    contact_rows = []
    for cid, p in enumerate(people, 1):
        created = at(rng.random() ** 0.7)  # more new contacts lately
        contact_rows.append((cid, p.name, p.name.casefold(), company_of[cid], rng.choice(roles),
                             rng.choice(categories) if company_of[cid] is None else None,
                             rng.choice(sales_staff) if rng.random() < 0.3 else None, rng.choice(origins),
                             ts(created), ts(created)))
    loader.write(Contact.__table__, ("id", "name", "search_name", "company_id", "role", "category", "owner_id",
                                     "origin", "created_at", "updated_at"), contact_rows)
    loader.write(ContactEmail.__table__, ("contact_id", "email", "bouncing"),
                 [(cid, p.email, 0) for cid, p in enumerate(people, 1)])
    phone_of = {cid: f"+4971{1000000 + cid * 7:08d}" for cid in range(1, n + 1) if rng.random() < 0.5}
    loader.write(ContactPhone.__table__, ("contact_id", "raw", "e164"),
                 [(cid, e164, e164) for cid, e164 in phone_of.items()])
    customers = [cid for cid, row in enumerate(contact_rows, 1) if row[4] == "customer"]
    del contact_rows, company_rows

    # Interactions in time order (as they arrive), calls and ticket openings among them.
    progress(f"{scale.interactions:,} interactions, {scale.calls:,} calls, {scale.tickets:,} tickets")
    others = list(range(1, n + 1))
    rng.shuffle(others)  # who is busy is unrelated to the id
    busiest = others[0]
    call_share = scale.calls / scale.interactions
    mail_in = 0.7 * 0.55
    ticket_share = scale.tickets / (scale.interactions * mail_in)
    i_cols = ("id", "kind", "direction", "occurred_at", "subject", "excerpt", "source_ref", "company_id",
              "ticket_id", "created_by_id", "created_at", "details")
    l_cols = ("interaction_id", "contact_id", "occurred_at", "role")
    c_cols = ("id", "source", "call_id", "direction", "state", "from_raw", "to_raw", "remote_e164", "started_at",
              "answered_at", "ended_at", "cause", "missed", "callback_needed", "staff_id", "contact_id",
              "company_id", "interaction_id", "events", "updated_at")
    t_cols = ("id", "number", "subject", "state", "priority", "contact_id", "company_id", "assignee_id",
              "opened_by_email", "opened_at", "updated_at", "last_customer_reply_at", "last_staff_reply_at",
              "closed_at")
    e_cols = ("ticket_id", "at", "kind", "staff_id", "interaction_id", "details")
    r_cols = ("id", "due_at", "title", "reason", "state", "contact_id", "company_id", "ticket_id", "call_id",
              "assignee_id", "rule_key", "created_at", "fire_at", "fired_at", "completed_at", "updated_at")
    pending_callbacks: deque[tuple[int, str, datetime]] = deque()
    call_id = ticket_id = reminder_id = 0
    for low in range(1, scale.interactions + 1, CHUNK):
        items: list[tuple[Any, ...]] = []
        links: list[tuple[Any, ...]] = []
        calls: list[tuple[Any, ...]] = []
        tickets: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        reminders: list[tuple[Any, ...]] = []
        for iid in range(low, min(low + CHUNK, scale.interactions + 1)):
            when = at((iid - 0.5) / scale.interactions)
            cid = others[int(n * rng.random() ** 2)]  # few contacts get most of the traffic
            company = company_of[cid]
            roll = rng.random()
            ticket = None
            by = None
            if roll < call_share:
                kind = "call"
                callback = None
                if pending_callbacks and pending_callbacks[0][2] <= when and rng.random() < 0.8:
                    callback = pending_callbacks.popleft()
                    direction = "out"
                    cid, company = callback[0], company_of[callback[0]]
                else:
                    direction = "in" if rng.random() < 0.65 else "out"
                number = phone_of.get(cid) or f"+4989{rng.randint(1000000, 9999999)}"
                missed = direction == "in" and rng.random() < 0.15
                taker = rng.choice(service_staff if rng.random() < 0.6 else sales_staff)
                call_id += 1
                ring = rng.randint(3, 40)
                answered = None if missed else when + timedelta(seconds=ring)
                ended = when + timedelta(seconds=ring + (0 if missed else rng.randint(20, 1500)))
                calls.append((call_id, "sipgate", f"c{call_id}", direction, "ended",
                              number if direction == "in" else "+4971112345620",
                              "+4971112345620" if direction == "in" else number, number, ts(when),
                              ts(answered) if answered else None, ts(ended), "noAnswer" if missed else "normalClearing",
                              int(missed), 0, None if missed else taker, cid, company, iid, "[]", ts(ended)))
                by = None if missed else taker
                subject = f"{'Incoming' if direction == 'in' else 'Outgoing'} call {number}"
                if missed:
                    back = when + timedelta(minutes=int(rng.expovariate(1 / 240)) + 3)
                    if rng.random() < 0.85:
                        pending_callbacks.append((cid, number, back))
                    reminder_id += 1
                    done = back if back < now else None
                    reminders.append((reminder_id, ts(when + timedelta(minutes=30)), f"Rückruf {number}",
                                      "missed_call", "done" if done else "open", cid, company, None, call_id,
                                      rng.choice(service_staff), f"missed_call:{call_id}", ts(when),
                                      None if done else ts(when + timedelta(minutes=30)),
                                      ts(when + timedelta(minutes=30)), ts(done) if done else None,
                                      ts(done or when)))
            elif roll < call_share + 0.7:
                kind = "email"
                direction = "in" if rng.random() < 0.55 else "out"
                subject = rng.choice(SUBJECTS)
                if direction == "out":
                    by = rng.choice(sales_staff + service_staff)
                elif rng.random() < ticket_share:
                    ticket_id += 1
                    ticket = ticket_id
                    tickets_events = _ticket(rng, ticket, when, now, cid, company, iid, service_staff)
                    tickets.append(tickets_events[0])
                    events.extend(tickets_events[1])
                    if tickets_events[2]:
                        reminder_id += 1
                        due = when + timedelta(days=2)
                        reminders.append((reminder_id, ts(due), f"Ticket #{ticket + NUMBER_OFFSET} unbeantwortet",
                                          "ticket_no_reply", "done", cid, company, ticket, None,
                                          tickets_events[0][7], f"ticket_no_reply:{ticket}", ts(when), None,
                                          ts(due), ts(due + timedelta(hours=3)), ts(due + timedelta(hours=3))))
            else:
                kind = rng.choice(("note",) * 50 + ("ticket",) * 30 + ("deal",) * 10 + ("document",) * 10)
                direction = "internal" if kind != "document" else "out"
                subject = f"{kind} {iid}"
                by = rng.choice(sales_staff + service_staff)
            items.append((iid, kind, direction, ts(when), subject, subject, f"<{iid}@bench>" if kind == "email"
                          else None, company, ticket, by, ts(when), "{}"))
            links.append((iid, cid, ts(when), "from" if direction == "in" else "to" if direction == "out"
                          else "party"))
            if kind == "email" and company and rng.random() < 0.12:
                mate = others[int(n * rng.random() ** 2)]
                if mate != cid:
                    links.append((iid, mate, ts(when), "cc"))
        loader.write(Ticket.__table__, t_cols, tickets)
        loader.write(Interaction.__table__, i_cols, items)
        loader.write(InteractionContact.__table__, l_cols, links)
        loader.write(Call.__table__, c_cols, calls)
        loader.write(TicketEvent.__table__, e_cols, events)
        loader.write(Reminder.__table__, r_cols, reminders)
        progress(f"  {min(low + CHUNK - 1, scale.interactions):,} interactions "
                 f"({time.perf_counter() - started:.0f} s)")

    progress(f"{scale.reminders:,} manual reminders, {scale.opportunities:,} opportunities, quotes, orders, "
             f"invoices, {scale.recipients:,} campaign recipients")
    reminders = []
    for _ in range(scale.reminders):
        reminder_id += 1
        cid = others[int(n * rng.random() ** 2)]
        created = at(rng.random())
        due = created + timedelta(days=rng.randint(1, 60))
        state = "done" if due < now and rng.random() < 0.85 else "cancelled" if rng.random() < 0.05 else "open"
        done = due + timedelta(hours=rng.randint(0, 72)) if state == "done" else None
        reminders.append((reminder_id, ts(due), "Wiedervorlage", "manual", state, cid, company_of[cid], None, None,
                          rng.choice(sales_staff + service_staff), None, ts(created),
                          ts(due) if state == "open" else None, ts(due) if due < now and state != "cancelled"
                          else None, ts(done) if done else None, ts(done or created)))
    loader.write(Reminder.__table__, r_cols, reminders)
    del reminders

    _sales(loader, rng, scale, now, at, customers, company_of, sales_staff)
    _campaigns(loader, rng, scale, now, at, n)
    analyze = loader.finish()
    senders = [(p.name, p.email) for p in people[:5000]]
    return Built(dict(loader.rows), time.perf_counter() - started, analyze, busiest, senders,
                 teams={str(t): s for t, s in TEAMS})


def _ticket(rng: random.Random, tid: int, opened: datetime, now: datetime, cid: int, company: int | None,
            iid: int, service_staff: list[int]) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], bool]:
    """A ticket opened by mail ``iid`` and what happened to it: (ticket row, its events, whether it got a
    no-reply reminder)."""
    assignee = rng.choice(service_staff) if rng.random() < 0.9 else None
    events: list[tuple[Any, ...]] = [(tid, ts(opened), "opened", None, iid, "{}")]
    t = opened
    state = "new"
    last_staff = last_customer = closed = None
    late = rng.random() < 0.1

    def step(minutes: float) -> datetime | None:
        nonlocal t
        nxt = t + timedelta(minutes=minutes)
        if nxt >= now:
            return None
        t = nxt
        return t

    first = step(rng.expovariate(1 / (3000 if late else 300)))
    if first:
        last_staff = first
        events.append((tid, ts(first), "staff_reply", assignee, None, "{}"))
        events.append((tid, ts(first), "state", assignee, None, json.dumps({"before": state, "after": "open"})))
        state = "open"
        rounds = 1 + (rng.random() < 0.3) + (rng.random() < 0.1)
        for r in range(rounds):
            if r:
                reply = step(rng.expovariate(1 / 1440))
                if not reply:
                    break
                last_customer = reply
                events.append((tid, ts(reply), "customer_reply", None, None, "{}"))
                events.append((tid, ts(reply), "state", None, None, json.dumps({"before": state, "after": "open"})))
                state = "open"
            solved = step(rng.expovariate(1 / 2880))
            if not solved:
                break
            events.append((tid, ts(solved), "state", assignee, None, json.dumps({"before": state, "after": "solved"})))
            state = "solved"
            closed = solved
        if state == "solved" and (done := step(60 * 24 * 7)):
            events.append((tid, ts(done), "state", None, None, json.dumps({"before": "solved", "after": "closed"})))
            state, closed = "closed", done
    priority = rng.choice(("normal",) * 7 + ("high",) * 2 + ("low", "urgent"))
    row = (tid, tid + NUMBER_OFFSET, rng.choice(SUBJECTS), state, priority, cid, company, assignee, None,
           ts(opened), ts(t), ts(last_customer) if last_customer else None, ts(last_staff) if last_staff else None,
           ts(closed) if closed else None)
    return row, events, late


def _sales(loader: Loader, rng: random.Random, scale: Scale, now: datetime, at: Callable[[float], datetime],
           customers: list[int], company_of: list[int | None], sales_staff: list[int]) -> None:
    """Opportunities moving through the stages (audited as ``sales.opportunities.update_opportunity`` does),
    quotes for those that got one, orders for the won ones, and ERP invoices."""
    probability = dict(STAGES) | {"won": 100, "lost": 0}
    opps: list[tuple[Any, ...]] = []
    audit: list[tuple[Any, ...]] = []
    quotes: list[tuple[Any, ...]] = []
    orders: list[tuple[Any, ...]] = []
    invoices: list[tuple[Any, ...]] = []
    quote_id = order_id = invoice_id = 0
    numbers: dict[tuple[str, int], int] = {}

    def number(series: str, year: int) -> str:
        numbers[series, year] = numbers.get((series, year), 0) + 1
        return f"{series}-{year}-{numbers[series, year]:05d}"

    for oid in range(1, scale.opportunities + 1):
        cid = rng.choice(customers) if rng.random() < 0.6 else rng.randint(1, len(company_of) - 1)
        company = company_of[cid]
        owner = rng.choice(sales_staff)
        created = at(rng.random())
        amount = f"{rng.choice((800, 2500, 6000, 12000, 25000, 60000)) * rng.uniform(0.5, 1.5):.2f}"
        source = rng.choice(("mail",) * 4 + ("call",) * 3 + ("web_form", "campaign", "manual"))
        audit.append((ts(created), owner, "opportunity.create", "opportunity", oid,
                      json.dumps({"title": f"Projekt {oid}", "stage": "qualified", "amount": amount,
                                  "probability": 10})))
        stage, t, closed, lost_reason, quote = "qualified", created, None, None, None
        # How far it gets: the open stages in order, then won or lost (or still open at the end).
        path = [s for s, _ in STAGES[1:]][:rng.choice((0, 1, 2, 3, 3))]
        ending = rng.choice(("won", "lost", "lost", "open"))
        for nxt in [*path, *([] if ending == "open" else [ending])]:
            t2 = t + timedelta(days=rng.expovariate(1 / 12) + 0.1)
            if t2 >= now:
                break
            t = t2
            diff = {"stage": {"from": stage, "to": nxt}, "probability": {"from": probability[stage],
                                                                            "to": probability[nxt]}}
            if nxt == "lost":
                lost_reason = rng.choice(LOST_REASONS)
                diff["lost_reason"] = {"from": None, "to": lost_reason}
            audit.append((ts(t), owner, "opportunity.update", "opportunity", oid, json.dumps(diff)))
            stage = nxt
            if stage in ("won", "lost"):
                closed = t
            if stage == "quote_sent":
                versions = 1 + (rng.random() < 0.2)
                qnumber = number("AN", t.year)
                for v in range(1, versions + 1):
                    quote_id += 1
                    sent = t + timedelta(days=(v - 1) * 5)
                    quote = quote_id
                    quotes.append((quote_id, oid, qnumber, v, "superseded" if v < versions else "sent", cid, company,
                                   sent.date().isoformat(), ts(sent), None, amount, f"{float(amount) * 0.19:.2f}",
                                   f"{float(amount) * 1.19:.2f}", owner, ts(sent)))
        if quote is not None and stage in ("won", "lost"):
            last = list(quotes[-1])
            last[4], last[9] = ("accepted" if stage == "won" else "declined"), ts(t)
            quotes[-1] = tuple(last)
        if stage == "won":
            order_id += 1
            handed = t + timedelta(days=1) < now
            orders.append((order_id, number("AB", t.year), quote, oid, cid, company,
                           "handed_off" if handed else "open", t.date().isoformat(), amount,
                           f"{float(amount) * 0.19:.2f}", f"{float(amount) * 1.19:.2f}", owner, ts(t), ts(t)))
            if handed:
                invoice_id += 1
                issued = (t + timedelta(days=rng.randint(3, 20))).date()
                invoices.append(_invoice(rng, invoice_id, order_id, cid, company, issued, now, amount))
        close_date = (created + timedelta(days=rng.randint(20, 120))).date()
        opps.append((oid, f"Projekt {oid}", cid, company, owner, amount, close_date.isoformat(), stage,
                     probability[stage], source, lost_reason, ts(created), owner, ts(t), ts(closed) if closed
                     else None))
    # ERP invoices without a CRM order: the bulk of the revenue the ABC analysis ranks, skewed by customer.
    while invoice_id < scale.invoices:
        invoice_id += 1
        cid = customers[int(len(customers) * rng.random() ** 3)]
        issued = at(rng.random()).date()
        amount = f"{rng.lognormvariate(7.5, 1.2):.2f}"
        invoices.append(_invoice(rng, invoice_id, None, cid, company_of[cid], issued, now, amount))
    loader.write(Opportunity.__table__, ("id", "title", "contact_id", "company_id", "owner_id", "amount",
                                         "close_date", "stage", "probability", "source", "lost_reason", "created_at",
                                         "created_by_id", "updated_at", "closed_at"), opps)
    loader.write(AuditEntry.__table__, ("at", "staff_id", "action", "object_type", "object_id", "details"), audit)
    loader.write(Quote.__table__, ("id", "opportunity_id", "number", "version", "state", "contact_id",
                                   "company_id", "quote_date", "sent_at", "decided_at", "net_total", "vat_total",
                                   "gross_total", "created_by_id", "created_at"), quotes)
    loader.write(Order.__table__, ("id", "number", "quote_id", "opportunity_id", "contact_id", "company_id",
                                   "state", "order_date", "net_total", "vat_total", "gross_total", "created_by_id",
                                   "created_at", "updated_at"), orders)
    loader.write(Invoice.__table__, ("id", "number", "order_id", "contact_id", "company_id", "issued_on", "due_on",
                                     "net", "gross", "paid", "status", "created_at", "updated_at"), invoices)


def _invoice(rng: random.Random, iid: int, order: int | None, cid: int, company: int | None, issued: date,
             now: datetime, net: str) -> tuple[Any, ...]:
    gross = f"{float(net) * 1.19:.2f}"
    due = issued + timedelta(days=30)
    paid = due < now.date() and rng.random() < 0.93
    status = "paid" if paid else "overdue" if due < now.date() else "open"
    stamp = ts(datetime.combine(issued, datetime.min.time()))
    return (iid, f"RE-{iid:07d}", order, cid, company, issued.isoformat(), due.isoformat(), net, gross,
            gross if paid else "0.00", status, stamp, stamp)


def _campaigns(loader: Loader, rng: random.Random, scale: Scale, now: datetime, at: Callable[[float], datetime],
               n: int) -> None:
    count = 8
    per = scale.recipients // count
    campaigns: list[tuple[Any, ...]] = []
    recipients: list[tuple[Any, ...]] = []
    rid = 0
    for camp in range(1, count + 1):
        started = at(camp / (count + 1))
        campaigns.append((camp, f"Newsletter {camp}", "email", "done", f"Neuigkeiten {camp}", "Hallo", per,
                          ts(started), ts(started + timedelta(hours=6)), ts(started)))
        for cid in rng.sample(range(1, n + 1), per):
            rid += 1
            if rng.random() < 0.05:
                recipients.append((rid, camp, cid, None, "left_out", rng.choice(("opted_out", "bouncing",
                                                                                  "no_basis")), None, None, None,
                                   None))
                continue
            sent = started + timedelta(seconds=rid % 20000)
            roll = rng.random()
            recipients.append((rid, camp, cid, f"r{rid}@bench.example", "released", None, ts(sent),
                               ts(sent + timedelta(hours=rng.randint(1, 96))) if roll < 0.03 else None,
                               ts(sent + timedelta(minutes=5)) if 0.03 <= roll < 0.05 else None,
                               ts(sent + timedelta(days=1)) if 0.05 <= roll < 0.055 else None))
    loader.write(Campaign.__table__, ("id", "name", "channel", "state", "subject", "body", "recipient_count",
                                      "started_at", "finished_at", "created_at"), campaigns)
    loader.write(CampaignRecipient.__table__, ("id", "campaign_id", "contact_id", "address", "state", "reason",
                                               "released_at", "replied_at", "bounced_at", "opted_out_at"),
                 recipients)


# --- databases ---

def sqlite_database(tmp: Path, keep: Path | None, scale: Scale, quick: bool) -> tuple[str, Built]:
    """A working copy of the (kept) SQLite database, built when there is none."""
    name = f"analytics-{'quick' if quick else 'full'}-v{GENERATOR_VERSION}"
    home = keep or tmp
    db, meta = home / f"{name}.db", home / f"{name}.json"
    if not (db.exists() and meta.exists()):
        home.mkdir(parents=True, exist_ok=True)
        building = home / f"{name}.building.db"
        building.unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{building}")
        upgrade(engine)
        engine.dispose()
        built = build(f"sqlite:///{building}", scale)
        building.rename(db)
        meta.write_text(json.dumps(built.__dict__))
    else:
        progress(f"reusing the kept database {db}")
    built = Built(**json.loads(meta.read_text()))
    work = tmp / "operative.db"
    if work != db:
        shutil.copy(db, work)
    return f"sqlite:///{work}", built


def postgres_database(url: str, scale: Scale) -> tuple[str, Built]:
    import psycopg

    target = make_url(url).set(database=PG_DATABASE).render_as_string(hide_password=False)
    admin = make_url(target).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    engine = make_engine(target)
    upgrade(engine)
    engine.dispose()
    return target, build(target, scale)


def drop_postgres(url: str) -> None:
    import psycopg

    admin = make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


# --- settings, child processes ---

def settings_for(url: str, instance: Path, store: Path) -> Settings:
    return bench_settings(url, instance, analytics={"path": str(store), "refresh_minutes": 0})


def config_file(url: str, instance: Path, store: Path) -> Path:
    """A config file for ``python -m crm_inbox`` (the refresh as ``serve`` starts it)."""
    path = instance.parent / "bench-analytics.toml"
    path.write_text(
        f'[service]\ninstance_dir = "{instance}"\n[database]\nurl = "{url}"\n'
        f'[web]\nport = 0\nsecret_key = "bench-secret"\n[smtp]\nport = 0\n'
        f'[mail]\ncrm_addresses = ["{CRM}"]\nsupport_addresses = ["{SUPPORT}"]\n'
        f'[analytics]\npath = "{store}"\nrefresh_minutes = 0\n')
    return path


def _refresh_child(conn: Any, url: str, instance: str, store: str, full: bool) -> None:
    """In a process of its own: one refresh, then (result, seconds, peak RSS before and after in MB)."""
    from crm_inbox.analytics.refresh import refresh  # type: ignore[import-not-found,unused-ignore]

    settings = settings_for(url, Path(instance), Path(store))
    before = memory_status().get("vmhwm_mb", 0.0)
    started = time.perf_counter()
    try:
        result = refresh(settings, full=full)
        outcome: Any = {"mode": result.mode, "seconds": result.seconds, "rows": dict(result.rows),
                        "skipped": result.skipped}
    except Exception as exc:  # reported, not raised: the parent prints it beside the other figures
        import traceback

        outcome = {"error": f"{exc.__class__.__name__}: {exc}", "traceback": traceback.format_exc()}
    outcome["wall_seconds"] = time.perf_counter() - started
    outcome["rss_before_mb"] = before
    outcome["peak_rss_mb"] = memory_status().get("vmhwm_mb", 0.0)
    conn.send(outcome)


def refresh_in_child(url: str, instance: Path, store: Path, full: bool) -> dict[str, Any]:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_refresh_child, args=(child, url, str(instance), str(store), full))
    proc.start()
    if not parent.poll(1800):
        proc.kill()
        return {"error": "no answer in 30 minutes"}
    out: dict[str, Any] = parent.recv()
    proc.join(30)
    return out


def refresh_available() -> str | None:
    try:
        from crm_inbox.analytics import refresh  # type: ignore[attr-defined,unused-ignore]  # noqa: F401
    except ImportError as exc:
        return f"crm_inbox.analytics.refresh not there yet ({exc})"
    return None


def profile_refresh(settings: Settings, full: bool) -> dict[str, Any]:
    """One refresh in this process with its time taken apart: per staged source (read from the operative
    database and appended to DuckDB), per rebuilt store table, the slowest DuckDB statements, and a cProfile
    summary — the findings for a missed target."""
    import cProfile
    import io
    import pstats

    from crm_inbox.analytics import extract, load
    from crm_inbox.analytics import refresh as refresh_module  # type: ignore[attr-defined,unused-ignore]

    staged: list[tuple[float, str, Any]] = []
    rebuilt: list[tuple[float, str]] = []
    statements: list[tuple[float, str]] = []

    class TimedDuck:
        """The refresh's DuckDB connection with every ``execute`` timed."""

        def __init__(self, con: Any) -> None:
            self._con = con

        def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = self._con.execute(query, *args, **kwargs)
            statements.append((time.perf_counter() - started, " ".join(str(query).split())[:200]))
            return result

        def __getattr__(self, name: str) -> Any:
            return getattr(self._con, name)

    real_connect, real_stage, real_replace = refresh_module.connect_file, extract.stage, load.replace_table

    def connect(path: Path) -> Any:
        return TimedDuck(real_connect(path))

    def stage(conn: Any, duck: Any, source: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        rows = real_stage(conn, duck, source, *args, **kwargs)
        staged.append((time.perf_counter() - started, f"{source.name}{' (where …)' if args else ''}", rows))
        return rows

    def replace(duck: Any, table: str, select: str) -> None:
        started = time.perf_counter()
        real_replace(duck, table, select)
        rebuilt.append((time.perf_counter() - started, table))

    refresh_module.connect_file, extract.stage, load.replace_table = connect, stage, replace
    profiler = cProfile.Profile()
    started = time.perf_counter()
    try:
        profiler.enable()
        result = refresh_module.refresh(settings, full=full)
        profiler.disable()
    finally:
        refresh_module.connect_file, extract.stage, load.replace_table = real_connect, real_stage, real_replace
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(12)
    return {"mode": result.mode, "seconds": time.perf_counter() - started,
            "staged": [(round(t, 2), name, rows) for t, name, rows in sorted(staged, key=lambda x: -x[0])],
            "rebuilt": [(round(t, 2), name) for t, name in sorted(rebuilt, reverse=True)],
            "statements": [(round(t, 2), sql) for t, sql in sorted(statements, reverse=True)[:12]],
            "cprofile": buf.getvalue()}


def print_profile(title: str, prof: dict[str, Any]) -> None:
    print(f"\n  {title}: {prof['mode']} refresh in {prof['seconds']:.1f} s (in this process, profiled)")
    print(f"    staged from the operative database (s, source, rows): "
          f"{sum(t for t, _, _ in prof['staged']):.1f} s in all")
    for t, name, rows in prof["staged"][:10]:
        print(f"      {t:>7.2f}  {name:<32} {rows}")
    print(f"    store tables rebuilt (s, table): {sum(t for t, _ in prof['rebuilt']):.1f} s in all")
    for t, name in prof["rebuilt"][:10]:
        print(f"      {t:>7.2f}  {name}")
    print("    slowest DuckDB statements (s):")
    for t, sql in prof["statements"][:8]:
        print(f"      {t:>7.2f}  {sql[:150]}")


# --- mail through the real pipeline ---

class Mailbag:
    """Stored mails waiting to be processed: 70 % from contacts of the database, 30 % from strangers."""

    def __init__(self, url: str, senders: Sequence[tuple[str, str]], seed: int = 7) -> None:
        self.engine = make_engine(url, durable=False)
        self.factory = make_sessionmaker(self.engine)
        self.processing = make_sessionmaker(make_engine(url, durable=False))
        self.known = [Person(name, email) for name, email in senders]
        self.people = People(seed + 1000)
        self.rng = random.Random(seed)
        self.maker = MailMaker(seed)
        self.waiting: deque[int] = deque()

    def store(self, count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            sender = self.rng.choice(self.known) if self.rng.random() < 0.7 else self.people.person(
                self.people.firm() if self.rng.random() < 0.5 else None)
            raw = self.maker.mail(sender)
            envelope = Envelope(mail_from=sender.email, rcpt_to=(CRM,), peer="127.0.0.1", source="smtp")
            self.waiting.append(store_message(self.factory, raw, envelope).inbound_id)
        return time.perf_counter() - started

    def process(self, *, count: int | None = None, seconds: float | None = None,
                settings: Settings) -> tuple[int, float]:
        """Process stored mails (``count`` of them, or for ``seconds``): (processed, seconds)."""
        done = 0
        started = time.perf_counter()
        while self.waiting and (count is None or done < count) and (
                seconds is None or time.perf_counter() - started < seconds):
            process(self.processing, settings, self.waiting.popleft())
            done += 1
        return done, time.perf_counter() - started


# --- reports ---

def report_cases(teams: dict[str, int]) -> list[tuple[str, Filters]]:
    today = date.today()
    start = today.replace(year=today.year - 1) + timedelta(days=1)
    end = today + timedelta(days=1)
    team = {"service": "Service", "phone": "Service", "sales": "Vertrieb", "customers": "Vertrieb"}
    cases: list[tuple[str, Filters]] = []
    for name in ("service", "phone", "sales", "customers"):
        cases.append((name, Filters(start, end)))
        cases.append((name, Filters(start, end, team=team[name])))
    return cases


def time_reports(store: Path, cases: list[tuple[str, Filters]], runs: int) -> list[dict[str, Any]]:
    from crm_inbox.analytics.reports import catalog
    from crm_inbox.analytics.store import StoreReader

    reader = StoreReader(store)
    policy = StaffPolicy()
    out = []
    for name, filters in cases:
        times: list[float] = []
        error = None
        figures = rows = 0
        for i in range(runs + 2):
            started = time.perf_counter()
            try:
                with reader.cursor() as con:
                    report = catalog.run(name, con, filters, policy)
            except Exception as exc:
                error = f"{exc.__class__.__name__}: {exc}"
                break
            if i >= 2:  # two warm-up runs
                times.append((time.perf_counter() - started) * 1000)
            figures = len(report.figures)
            rows = sum(len(f.rows) for f in report.figures)
        out.append({"report": name, "team": filters.team, "p50_ms": median(times), "p95_ms": percentile(times, 95),
                    "max_ms": max(times) if times else float("nan"), "figures": figures, "rows": rows,
                    "error": error})
    return out


def slowest_queries(store: Path, cases: list[tuple[str, Filters]], explain: int = 2) -> list[dict[str, Any]]:
    """The reports' statements by time (DuckDB), to point at the one to fix; EXPLAIN ANALYZE of the slowest."""
    import duckdb

    from crm_inbox.analytics.reports import catalog
    from crm_inbox.analytics.store import StoreReader

    timed: list[tuple[float, str, str, Any]] = []
    reader = StoreReader(store)

    class Timing:
        """The cursor, with every ``execute`` timed."""

        def __init__(self, con: duckdb.DuckDBPyConnection, report: str) -> None:
            self._con = con
            self._report = report

        def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = self._con.execute(query, *args, **kwargs)
            timed.append(((time.perf_counter() - started) * 1000, self._report, query, args[0] if args else None))
            return result

        def __getattr__(self, name: str) -> Any:
            return getattr(self._con, name)

    for name, filters in cases:
        with reader.cursor() as con:
            catalog.run(name, Timing(con, name), filters, StaffPolicy())  # type: ignore[arg-type]
    out: list[dict[str, Any]] = []
    for rank, (ms, report, query, params) in enumerate(sorted(timed, key=lambda t: -t[0])[:8]):
        entry: dict[str, Any] = {"ms": round(ms, 1), "report": report, "sql": " ".join(query.split())}
        if rank < explain:
            try:
                with reader.cursor() as con:
                    plan = con.execute("EXPLAIN ANALYZE " + query, params).fetchall()
                entry["plan"] = "\n".join(str(row[-1]) for row in plan)
            except duckdb.Error as exc:  # e.g. it reads a TEMP table its report run built and dropped
                entry["plan"] = f"(not explained: {exc})"
        out.append(entry)
    return out


# --- the web app ---

def logged_in_client(settings: Settings, url: str, login: tuple[str, str]) -> Any:
    from pages import csrf_token

    from web import create_app

    factory = make_sessionmaker(make_engine(url))
    with unit_of_work(factory) as session:
        if session.scalar(select(StaffUser.id).join(StaffEmail).where(StaffEmail.email == login[0])) is None:
            add_staff(session, login[0], "Lena Vogt", "staff", password=login[1])
    app = create_app(settings, factory)
    client = app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    answer = client.post("/login", data={"email": login[0], "password": login[1], "csrf_token": token})
    if answer.status_code != 302 or "/login" in answer.headers.get("Location", ""):
        raise RuntimeError(f"logging in failed: POST /login {answer.status_code}")
    return client


def time_report_page(client: Any, report: str, filters: Filters, runs: int) -> dict[str, Any]:
    """A report page as a browser loads it: the HTML, then every chart image it links. The web app caches a
    report per (filters, snapshot), so each run asks for another period ending a day earlier: every run is a
    first view (a cached repeat would measure the cache)."""
    page_times: list[float] = []
    view_times: list[float] = []
    charts = 0
    for i in range(runs + 2):
        end = filters.end - timedelta(days=i)
        query = f"from={(end - (filters.end - filters.start)).isoformat()}&to={end.isoformat()}"
        if filters.team:
            query += f"&team={filters.team}"
        path = f"/reports/{report}?{query}"
        started = time.perf_counter()
        response = client.get(path)
        page_ms = (time.perf_counter() - started) * 1000
        body = response.get_data(as_text=True)
        if response.status_code != 200:
            return {"path": path, "error": f"HTTP {response.status_code}", "p95_ms": float("nan"),
                    "view_p95_ms": float("nan")}
        images = [html.unescape(src) for src in re.findall(r'<img class="chart" src="([^"]+)"', body)]
        for src in images:
            answer = client.get(src)
            if answer.status_code != 200:
                return {"path": src, "error": f"HTTP {answer.status_code}", "p95_ms": float("nan"),
                        "view_p95_ms": float("nan")}
        view_ms = (time.perf_counter() - started) * 1000
        charts = len(images)
        if i >= 2:  # two warm-up views
            page_times.append(page_ms)
            view_times.append(view_ms)
    return {"path": f"/reports/{report}", "p50_ms": median(page_times), "p95_ms": percentile(page_times, 95),
            "view_p95_ms": percentile(view_times, 95), "charts": charts, "error": None}


def page_window(client: Any, path: str, seconds: float) -> list[float]:
    times = []
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status_code}")
    return times


# --- 5. side by side ---

def _lowest_priority() -> None:
    os.nice(19)  # as serve starts its refresh child (crm_inbox.store_refresh), between fork and exec


def side_by_side(settings: Settings, config: Path, mailbag: Mailbag, client: Any, page: str, window: float,
                 rounds: int) -> dict[str, Any]:
    """Mail processing and the customer page, alternately without and with a full refresh running beside them
    as ``serve`` starts it (``store_refresh.refresh_command``: ionice idle where there is ionice, nice 19),
    each for half a window. A refresh still running when its window ends is stopped (SIGTERM): only the
    overlap is measured, and the next round starts from the same state."""
    from crm_inbox.store_refresh import refresh_command

    command = [*refresh_command(str(config)), "--full"]
    probe = subprocess.run([sys.executable, "-m", "crm_inbox", "--config", str(config), "analytics", "--help"],
                           cwd=ROOT, capture_output=True, text=True)
    if probe.returncode != 0:  # the CLI has no analytics command yet: the same refresh through this script
        progress("`crm-inbox analytics refresh` is not there yet: the refresh runs through this script instead")
        command = [*command[:command.index(sys.executable)], sys.executable, str(Path(__file__).resolve()),
                   "--refresh-only", settings.database.url, settings.service.instance_dir,
                   settings.analytics.path]
    mailbag.store(150)
    mailbag.process(count=150, settings=settings)  # warm-up: imports, caches
    page_window(client, page, 1.0)
    rate = 200.0
    out: dict[str, Any] = {"window_seconds": window, "command": command,
                           "without": {"rates": [], "cpu_ms": [], "pages": [], "load": []},
                           "with": {"rates": [], "cpu_ms": [], "pages": [], "load": [], "refresh": []}}
    for condition in ["without", "with"] * rounds:
        backlog = int(rate * window / 2 * 1.3) + 100
        if len(mailbag.waiting) < backlog:
            progress(f"storing {backlog - len(mailbag.waiting):,} mails for the next window")
            mailbag.store(backlog - len(mailbag.waiting))
        proc = None
        started = time.perf_counter()
        if condition == "with":
            proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    preexec_fn=_lowest_priority)
            time.sleep(2.0)  # past its imports: the refresh itself is reading
        progress(f"side by side: {condition} a full refresh, {window:.0f} s")
        cpu = time.process_time()
        done, seconds = mailbag.process(seconds=window / 2, settings=settings)
        cpu = time.process_time() - cpu
        rate = done / seconds
        times = page_window(client, page, window / 2)
        side = out[condition]
        side["rates"].append(round(rate, 1))
        side["cpu_ms"].append(round(cpu / max(done, 1) * 1000, 2))
        side["pages"].extend(times)
        side["load"].append(round(os.getloadavg()[0], 1))
        if proc is not None:
            still = proc.poll() is None
            if still:
                proc.terminate()
            try:
                output, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
            side["refresh"].append({"running_through_window": still, "seconds": round(time.perf_counter() - started, 1),
                                    "exit": proc.returncode, "output": output.strip().splitlines()[-1:]})
    for side in (out["without"], out["with"]):
        side["rate"] = statistics.median(side["rates"])
        side["cpu_ms_per_mail"] = statistics.median(side["cpu_ms"])
        side["page_p50_ms"] = median(side["pages"])
        side["page_p95_ms"] = percentile(side["pages"], 95)
        side["requests"] = len(side.pop("pages"))
    out["ratio"] = out["with"]["rate"] / out["without"]["rate"]
    return out


# --- one backend ---

@dataclass
class Row:
    backend: str
    figure: str
    measured: str
    target: str
    ok: bool | None
    load: str = ""


def run_backend(name: str, url: str, built: Built, tmp: Path, quick: bool, rows: list[Row],
                results: dict[str, Any], profile: bool) -> None:
    instance = tmp / f"instance-{name}"
    instance.mkdir(exist_ok=True)
    store = instance / "analytics.duckdb"
    settings = settings_for(url, instance, store)
    res: dict[str, Any] = results.setdefault(name, {})

    def load() -> str:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())

    missing = refresh_available()
    if missing:
        rows.append(Row(name, "full refresh", "—", "< 60 s", None, missing))
        return
    progress(f"{name}: full refresh")
    full = refresh_in_child(url, instance, store, full=True)
    res["full_refresh"] = full
    if "error" in full:
        rows.append(Row(name, "full refresh", "ERROR", "< 60 s", False, full["error"][:80]))
        print(full.get("traceback", ""), file=sys.stderr)
        return
    rows.append(Row(name, f"full refresh ({full['mode']}), s", f"{full['seconds']:.1f}", "< 60", full["seconds"] < 60,
                    load()))
    rows.append(Row(name, "  its peak RSS, MB (before the refresh)",
                    f"{full['peak_rss_mb']:.0f} ({full['rss_before_mb']:.0f})", "—", None))
    size = store.stat().st_size / 2**20 if store.exists() else 0
    rows.append(Row(name, "  store file, MB / fact_interaction rows", f"{size:.0f} / "
                    f"{full['rows'].get('fact_interaction', 0):,}", "—", None))

    # 4. reports, through the catalog and through the page
    cases = report_cases(built.teams)
    runs = 10 if quick else 20
    progress(f"{name}: reports, {runs} runs each")
    timed = time_reports(store, cases, runs)
    res["reports"] = timed
    for t in timed:
        label = f"report {t['report']}{' team ' + t['team'] if t['team'] else ''} p95 ms (catalog)"
        if t["error"]:
            rows.append(Row(name, label, "ERROR", "< 300", False, t["error"][:80]))
        else:
            rows.append(Row(name, label, f"{t['p95_ms']:.0f}", "< 300", t["p95_ms"] < 300,
                            f"p50 {t['p50_ms']:.0f}; {t['figures']} figures, {t['rows']} rows; {load()}"))
    if any(t["p95_ms"] >= 300 for t in timed if not t["error"]):
        res["slowest_queries"] = slowest_queries(store, [c for c, t in zip(cases, timed, strict=True)
                                                         if not t["error"] and t["p95_ms"] >= 300])
    client = logged_in_client(settings, url, built.staff_login)
    if client.get("/reports").status_code == 200:
        pages = [time_report_page(client, report, filters, runs) for report, filters in cases]
        res["report_pages"] = pages
        for (report, filters), p in zip(cases, pages, strict=True):
            label = f"page /reports/{report}{' team ' + str(filters.team) if filters.team else ''} p95 ms"
            rows.append(Row(name, label, p["error"] or f"{p['p95_ms']:.0f}", "< 300",
                            not p["error"] and p["p95_ms"] < 300,
                            "" if p["error"] else f"p50 {p['p50_ms']:.0f}; with its {p['charts']} charts "
                            f"{p['view_p95_ms']:.0f}; {load()}"))
    else:
        rows.append(Row(name, "report pages over HTTP", "—", "< 300 ms", None, "GET /reports is not 200 yet"))

    # 3. incremental after 1,000 new mails through the real pipeline
    progress(f"{name}: 1,000 mails through the pipeline, then an incremental refresh")
    mailbag = Mailbag(url, built.senders)
    mailbag.store(1000)
    mailbag.process(count=1000, settings=settings)
    incremental = refresh_in_child(url, instance, store, full=False)
    res["incremental_refresh"] = incremental
    if "error" in incremental:
        rows.append(Row(name, "incremental refresh", "ERROR", "< 5 s", False, incremental["error"][:80]))
    else:
        rows.append(Row(name, f"incremental ({incremental['mode']}) after 1,000 mails, s",
                        f"{incremental['seconds']:.1f}", "< 5", incremental["seconds"] < 5
                        and incremental["mode"] == "incremental", load()))
    if profile or "error" in incremental or incremental["seconds"] >= 5:
        progress(f"{name}: 1,000 more mails, then a profiled incremental refresh")
        mailbag.store(1000)
        mailbag.process(count=1000, settings=settings)
        res["profile_incremental"] = profile_refresh(settings, full=False)
    if profile or full["seconds"] >= 60:
        progress(f"{name}: a profiled full refresh")
        res["profile_full"] = profile_refresh(settings, full=True)

    # 5. side by side
    config = config_file(url, instance, store)
    window = max(8.0, min(30.0, full["seconds"] - 3)) if not quick else 6.0
    side = side_by_side(settings, config, mailbag, client, f"/contacts/{built.busiest_contact}", window,
                        rounds=2 if quick else 3)
    res["side_by_side"] = side
    w, wo = side["with"], side["without"]
    covered = sum(r["running_through_window"] for r in w["refresh"])
    rows.append(Row(name, "mail processing msg/s without / with refresh", f"{wo['rate']:.0f} / {w['rate']:.0f}",
                    "≥ 90 %", side["ratio"] >= 0.9,
                    f"{side['ratio']:.0%} (medians of {wo['rates']} / {w['rates']}); CPU ms/mail "
                    f"{wo['cpu_ms_per_mail']:.1f} / {w['cpu_ms_per_mail']:.1f}; load {wo['load']} / {w['load']}; "
                    f"refresh ran through {covered} of {len(w['refresh'])} windows"))
    rows.append(Row(name, "customer page p95 ms without / with refresh",
                    f"{wo['page_p95_ms']:.0f} / {w['page_p95_ms']:.0f}", "not worse",
                    w["page_p95_ms"] <= wo["page_p95_ms"] * 1.05,
                    f"p50 {wo['page_p50_ms']:.0f} / {w['page_p50_ms']:.0f}; {wo['requests']}/{w['requests']} requests"))


def print_table(rows: list[Row]) -> None:
    print(f"\n  {'backend':<10} {'figure':<58} {'measured':>16} {'target':>10}  {'':<6} notes (load 1/5/15 min)")
    for r in rows:
        verdict = "" if r.ok is None else "ok" if r.ok else "MISSED"
        print(f"  {r.backend:<10} {r.figure:<58} {r.measured:>16} {r.target:>10}  {verdict:<6} {r.load}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="ten times smaller")
    parser.add_argument("--postgres", default=DEFAULT_PG_URL, help="server URL (the database is bench_analytics)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the built SQLite database in DIR")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="take a full and an incremental refresh apart (also done for one that misses)")
    parser.add_argument("--plans", action="store_true", help="print EXPLAIN ANALYZE of the slowest report statements")
    parser.add_argument("--refresh-only", nargs=3, metavar=("URL", "INSTANCE", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.refresh_only:  # the side-by-side's refresh process while the CLI has no analytics command
        from crm_inbox.analytics.refresh import refresh  # type: ignore[import-not-found,unused-ignore]

        url, instance, store = args.refresh_only
        print(refresh(settings_for(url, Path(instance), Path(store)), full=True))
        return 0
    scale = QUICK if args.quick else FULL
    setup_logging(None)
    rows: list[Row] = []
    results: dict[str, Any] = {"scale": scale.__dict__}
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as name:
        tmp = Path(name)
        results["environment"] = environment(tmp)
        if not args.no_sqlite:
            url, built = sqlite_database(tmp, args.keep, scale, args.quick)
            rows.append(Row("SQLite", "database built, rows / s",
                            f"{sum(built.rows.values()):,} / {built.seconds:.0f}", "—", None,
                            "(kept)" if args.keep else ""))
            run_backend("SQLite", url, built, tmp, args.quick, rows, results, args.profile)
        if not args.no_postgres:
            reason = postgres_available(args.postgres)
            if reason:
                rows.append(Row("PostgreSQL", "skipped", "—", "—", None, reason))
            else:
                target = make_url(args.postgres).set(database=PG_DATABASE).render_as_string(hide_password=False)
                try:
                    progress("building the PostgreSQL database")
                    target, pg_built = postgres_database(args.postgres, scale)
                    rows.append(Row("PostgreSQL", "database built, rows / s",
                                    f"{sum(pg_built.rows.values()):,} / {pg_built.seconds:.0f}", "—", None))
                    run_backend("PostgreSQL", target, pg_built, tmp, args.quick, rows, results, args.profile)
                finally:
                    drop_postgres(target)
    results["rows"] = [r.__dict__ for r in rows]
    if args.json:
        print(json.dumps(results, indent=1, default=str))
    else:
        print(f"\nAnalytics benchmark ({'quick' if args.quick else 'full'}): {scale.contacts:,} contacts, "
              f"{scale.interactions:,} interactions; {results['environment']['cpus']} CPUs, "
              f"load at start {results['environment']['load_avg']}")
        print_table(rows)
        for backend in ("SQLite", "PostgreSQL"):
            for kind in ("incremental", "full"):
                if f"profile_{kind}" in results.get(backend, {}):
                    print_profile(f"{backend}, where the {kind} refresh's time goes",
                                  results[backend][f"profile_{kind}"])
            slow = results.get(backend, {}).get("slowest_queries")
            if slow:
                print(f"\n  {backend}: the slowest report statements (reports that missed the target)")
                for q in slow:
                    print(f"    {q['ms']:>8.1f} ms  {q['report']:<10} {q['sql'][:150]}")
                    if "plan" in q and args.plans:
                        print("      " + q["plan"].replace("\n", "\n      "))
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""How fast are the staff pages on a big database? The customer page and the contact search, server side.

Fills a fresh database with SQLAlchemy Core bulk inserts (chunks of 10,000 rows): 100,000 contacts at ~10,000
companies (names with their case-folded ``search_name``, one or two addresses each, a third with a phone number
stored as typed plus its E.164 from ``crm_inbox.phone.to_e164``), 1,000,000 interactions over five years (85 %
mail in and out with realistic subjects, text, excerpt, Message-ID and details, 10 % calls, 5 % notes; 4 % of the
mail with a small attachment) linked through ``interaction_contacts`` (``occurred_at`` copied, 12 % of the mail
also on a second contact), some tickets and reminders, then ANALYZE (VACUUM ANALYZE on PostgreSQL, the state
autovacuum keeps a live database in). One "big" contact has 10,000 of the interactions (45 % of its mail with an
HTML part), the others share the rest unevenly.

Then it builds the real app (``web.create_app``), logs a staff user in through ``/login`` (CSRF token from the
form) and times requests through Flask's test client, i.e. the server's time without a network:

1. ``GET /contacts/<big>``: the customer page (master data, side panels, the newest 25 of the timeline),
   its second page and a deep page (items 9,001–9,025), both by the "Older →" cursor link the page renders;
2. ``GET /contacts?q=…`` at 100,000 contacts: a common name fragment ("müller", thousands of matches), a
   fragment only a handful of people have, a full e-mail address, a phone number typed otherwise than stored
   (stored "+49 171 2345678", searched "0171/2345678") and a term that matches nothing.

Before timing, the whole timeline of the big contact is walked by its "Older →" links and compared with the
interactions loaded (every one, once, newest first), and every search result is checked (the searched contact
is listed; every row of the common search matches it). 20 warm-up rounds, then ~200 rounds in which every
request kind runs once (interleaved, so background load spreads evenly); every timed response must be 200 and
name what it should. Prints p50/p95/p99/max in ms per kind, the SQL statements one request runs (count, time in
the database, the slowest), and the targets: customer page p95 under 150 ms, search p95 under 100 ms, on SQLite
(also shown for PostgreSQL, for comparison). A kind that misses its target gets the plan of its slowest
statement printed (``--plans``: for every kind): EXPLAIN QUERY PLAN on SQLite, EXPLAIN ANALYZE on PostgreSQL.

    .venv/bin/python bench/pages.py [--quick] [--postgres URL] [--no-postgres] [--requests N] [--plans]

``--quick`` is ten times smaller (10,000 contacts, 100,000 interactions, a big contact with 1,000). SQLite runs
in a temporary directory; PostgreSQL in the database ``bench_pages``, which the script creates and drops (the
database in the URL only names the server; ``test`` and ``postgres`` are never touched).
"""

from __future__ import annotations

import argparse
import hashlib
import html
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import (
    CRM,
    DE_CLOSINGS,
    DE_GREETINGS,
    DE_SENTENCES,
    DE_SUBJECTS,
    DEFAULT_PG_URL,
    EN_CLOSINGS,
    EN_GREETINGS,
    EN_SENTENCES,
    EN_SUBJECTS,
    FREE_MAIL,
    ROOT,
    People,
    backends,
    bench_settings,
    environment,
    percentile,
    pg_url,
    progress,
    setup_logging,
)
from sqlalchemy import Engine, event, insert, text
from sqlalchemy.engine import make_url

from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work
from crm_inbox.models import (
    Attachment,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    ContactPhone,
    Interaction,
    InteractionContact,
    Reminder,
    Ticket,
)
from crm_inbox.models.contacts import search_key
from crm_inbox.models.tickets import NUMBER_OFFSET
from crm_inbox.phone import to_e164
from crm_inbox.staff.service import add_staff
from crm_inbox.timeline.service import excerpt_of
from web import create_app

PG_DATABASE = "bench_pages"
CHUNK = 10_000
TARGET_MS = {"customer": 150.0, "search": 100.0}
STAFF_EMAIL, STAFF_PASSWORD = "jonas.becker@beispiel-firma.de", "bench-pages-password"
BIG_NAME = "Sevgi Özdemir"
RARE_FRAGMENT = "özdem"  # typed lower-case: matched on the case-folded copy
COMMON_FRAGMENT = "müller"
STORED_PHONE, TYPED_PHONE = "+49 171 2345678", "0171/2345678"
NO_MATCH = "Quastenflosser"
MOBILE = ("151", "152", "157", "160", "162", "170", "171", "172", "173", "175", "176", "177", "178", "179")
AREA = ("30", "40", "69", "89", "211", "221", "228", "341", "351", "421", "511", "711", "721", "911")
ROLES = ["customer"] * 60 + ["lead"] * 25 + ["prospect"] * 10 + ["supplier"] * 5


# --- databases ---

# --- the data ---

@dataclass(frozen=True)
class Scale:
    contacts: int
    firms: int
    interactions: int
    big: int  # interactions of the big contact


@dataclass
class Loaded:
    """What the checks need to know about the data, and how long loading took."""

    big_id: int
    big_timeline: list[int]  # the big contact's interaction ids, newest first
    email_target: tuple[int, str]  # (contact id, its address)
    phone_target: int
    rare_ids: set[int]  # everyone whose name holds RARE_FRAGMENT
    common_matches: int  # contacts whose name or company name holds COMMON_FRAGMENT
    rows: dict[str, int] = field(default_factory=dict)
    load_s: float = 0.0
    analyze_s: float = 0.0


def mail_texts(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    """(text, excerpt, html) of ``n`` plausible German and English business mails, 300–2,500 characters."""
    out = []
    for _ in range(n):
        german = rng.random() < 0.75
        greeting = rng.choice(DE_GREETINGS if german else EN_GREETINGS).format(
            name="Jonas Becker", first="Jonas", last="Becker")
        sentences = DE_SENTENCES if german else EN_SENTENCES
        paragraphs = [" ".join(rng.choice(sentences) for _ in range(rng.randint(1, 4)))
                      for _ in range(rng.randint(1, 3))]
        body = "\n\n".join([greeting, *paragraphs, rng.choice(DE_CLOSINGS if german else EN_CLOSINGS)
                            + "\nSevgi Özdemir"])
        quoted = ""
        if rng.random() < 0.4:  # a reply quotes the earlier mail
            quoted = "\n\n" + ("Am 03.03.2025 schrieb CRM:" if german else "On Monday, CRM wrote:") + "\n" + "\n".join(
                "> " + rng.choice(sentences) for _ in range(rng.randint(2, 12)))
        full = body + quoted
        markup = "<div>" + "".join(f"<p>{html.escape(line)}</p>" for line in full.split("\n")) + "</div>"
        out.append((full, excerpt_of(body), markup))
    return out


def phone_number(rng: random.Random, english: bool) -> str:
    """A number as people type it into a CRM: national or international, assorted separators."""
    if english:
        return f"+44 {rng.choice(('20 7946', '7700 900', '113 496'))} {rng.randint(0, 999):03d}"
    mobile = rng.random() < 0.5
    prefix = rng.choice(MOBILE if mobile else AREA)
    rest = str(rng.randint(10**6, 10**7 - 1)) if mobile else str(rng.randint(10**4, 10**6 - 1))
    style = rng.randrange(6)
    if style == 0:
        return f"+49 {prefix} {rest}"
    if style == 1:
        return f"0{prefix} {rest}"
    if style == 2:
        return f"0{prefix}/{rest}"
    if style == 3:
        return f"+49 (0){prefix} {rest}"
    if style == 4:
        return f"(0{prefix}) {rest[:-2]}-{rest[-2:]}"
    return f"0049 {prefix} {rest}"


def bulk(conn: Any, table: Any, rows: list[dict[str, Any]]) -> int:
    for start in range(0, len(rows), CHUNK):
        conn.execute(insert(table), rows[start:start + CHUNK])
    return len(rows)


def load(engine: Engine, scale: Scale, staff_id: int, seed: int) -> Loaded:
    rng = random.Random(seed)
    started = time.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)
    firms, people = People(seed).population(scale.contacts, scale.firms)
    n = len(people)
    big_id = n // 3
    email_id, phone_id = (2 * n) // 3, (3 * n) // 4
    rare_ids = {big_id, *rng.sample(range(1, n + 1), 5)} - {email_id, phone_id}
    firm_ids = {f.name: i for i, f in enumerate(firms, 1)}
    rows: dict[str, int] = {}

    # Contacts 1…n, companies 1…len(firms): explicit ids, so links need no reading back.
    names = [""] + [p.name for p in people]
    emails = [""] + [p.email for p in people]
    company_of: list[int | None] = [None] + [firm_ids.get(p.company or "") for p in people]
    for cid in rare_ids:
        first = names[cid].split()[0] if cid != big_id else "Sevgi"
        names[cid] = f"{first} Özdemir"
    if company_of[big_id] is None:  # the big customer works somewhere: the page shows the colleagues too
        company_of[big_id] = 1
    colleagues: dict[int, list[int]] = {}
    for cid in range(1, n + 1):
        if company_of[cid] is not None:
            colleagues.setdefault(company_of[cid], []).append(cid)  # type: ignore[arg-type]
    common = sum(1 for cid in range(1, n + 1) if COMMON_FRAGMENT in (search_key(names[cid]) or "")
                 or (company_of[cid] and COMMON_FRAGMENT in (search_key(firms[company_of[cid] - 1].name) or "")))

    created = now - timedelta(days=5 * 365 + 30)
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA synchronous=OFF")  # a bulk load: durability does not matter here
        progress(f"loading {len(firms):,} companies and {n:,} contacts")
        rows["companies"] = bulk(conn, Company.__table__, [
            {"id": i, "name": f.name, "search_name": search_key(f.name), "industry": None, "size": None,
             "customer_type": "B2B", "category": rng.choice(("A", "B", "C", None)), "tags": [], "fields": {},
             "origin": "bench", "created_at": created, "updated_at": created} for i, f in enumerate(firms, 1)])
        bulk(conn, CompanyDomain.__table__, [{"company_id": i, "domain": f.domain} for i, f in enumerate(firms, 1)])
        rows["contacts"] = bulk(conn, Contact.__table__, [
            {"id": cid, "name": names[cid], "search_name": search_key(names[cid]), "company_id": company_of[cid],
             "role": rng.choice(ROLES), "category": rng.choice(("A", "B", "C", None, None)),
             "tags": ["Messe 2024"] if rng.random() < 0.1 else [],
             "fields": {"Kundennummer": f"K-{100000 + cid}"} if rng.random() < 0.3 else {}, "owner_id": None,
             "origin": "mail", "origin_detail": None, "created_at": created, "updated_at": created}
            for cid in range(1, n + 1)])
        addresses = [{"contact_id": cid, "email": emails[cid], "label": None, "bouncing": False}
                     for cid in range(1, n + 1)]
        addresses += [{"contact_id": cid, "email": f"{emails[cid].split('@')[0]}.{cid}@{rng.choice(FREE_MAIL)}",
                       "label": "privat", "bouncing": rng.random() < 0.05}
                      for cid in range(1, n + 1) if rng.random() < 0.1]
        rows["contact_emails"] = bulk(conn, ContactEmail.__table__, addresses)
        target_e164 = to_e164(STORED_PHONE)
        phones = [{"contact_id": phone_id, "label": "mobil", "raw": STORED_PHONE, "e164": target_e164}]
        for cid in range(1, n + 1):
            if cid != phone_id and rng.random() < 0.3:
                raw = phone_number(rng, english=not people[cid - 1].german)
                e164 = to_e164(raw)
                if e164 != target_e164:
                    phones.append({"contact_id": cid, "label": rng.choice((None, "mobil", "Büro")), "raw": raw,
                                   "e164": e164})
        rows["contact_phones"] = bulk(conn, ContactPhone.__table__, phones)

    # Interactions 1…N in time order (as they arrive); the big contact's are a random sample of them.
    progress(f"loading {scale.interactions:,} interactions")
    texts = mail_texts(rng, 1000)
    subjects = []
    for _ in range(2000):
        german = rng.random() < 0.75
        subject = rng.choice(DE_SUBJECTS if german else EN_SUBJECTS).format(
            n=rng.randint(10000, 99999), d=f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.2024")
        subjects.append((("AW: " if german else "RE: ") + subject) if rng.random() < 0.35 else subject)
    blobs = [rng.randbytes(rng.randint(1000, 4000)) for _ in range(16)]
    blob_sha = [hashlib.sha256(b).hexdigest() for b in blobs]
    big_set = set(rng.sample(range(1, scale.interactions + 1), scale.big))
    others = [cid for cid in range(1, n + 1) if cid != big_id]
    rng.shuffle(others)  # who is busy is unrelated to the id
    first_at = now - timedelta(days=5 * 365)
    span = (now - timedelta(hours=2) - first_at).total_seconds()  # the jitter below is at most an hour
    big_items: list[tuple[datetime, int]] = []
    links_total = attachments_total = 0
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            conn.commit()
        for low in range(1, scale.interactions + 1, CHUNK):
            items: list[dict[str, Any]] = []
            links: list[dict[str, Any]] = []
            files: list[dict[str, Any]] = []
            for iid in range(low, min(low + CHUNK, scale.interactions + 1)):
                at = first_at + timedelta(seconds=int(span * iid / scale.interactions + rng.uniform(-3600, 3600)))
                is_big = iid in big_set
                # Few contacts get most of the mail (density ~ 1/sqrt), as in a real customer base.
                cid = big_id if is_big else others[int(len(others) * rng.random() ** 2)]
                if is_big:
                    big_items.append((at, iid))
                roll = rng.random()
                second = None
                details: dict[str, Any]
                if roll < 0.85:
                    kind, direction = "email", "in" if rng.random() < 0.55 else "out"
                    body, excerpt, markup = rng.choice(texts)
                    mid = f"<{iid:08X}.{rng.getrandbits(40):010x}@{emails[cid].rpartition('@')[2]}>"
                    sender = f"{names[cid]} <{emails[cid]}>" if direction == "in" else f"Jonas Becker <{STAFF_EMAIL}>"
                    to = [CRM] if direction == "in" else [f"{names[cid]} <{emails[cid]}>"]
                    details = {"from": sender, "to": to, "cc": [], "envelope_to": [CRM], "automatic": False,
                               "spoof_suspected": False, "new_contact_ids": [],
                               "sender_email": emails[cid]}
                    item = {"subject": rng.choice(subjects), "text": body, "excerpt": excerpt,
                            "html": markup if is_big and rng.random() < 0.45 else None, "source_ref": mid,
                            "attribution_reason": "sender address" if direction == "in" else "recipient address"}
                    mates = colleagues.get(company_of[cid] or 0, ())
                    if rng.random() < 0.12 and len(mates) > 1:
                        second = rng.choice(mates)
                        if second in (cid, big_id):
                            second = None
                    if rng.random() < 0.04:
                        k = rng.randrange(len(blobs))
                        files.append({"interaction_id": iid, "filename": f"Angebot_{iid}.pdf",
                                      "content_type": "application/pdf", "size": len(blobs[k]),
                                      "sha256": blob_sha[k], "content": blobs[k]})
                elif roll < 0.95:
                    kind, direction = "call", "in" if rng.random() < 0.6 else "out"
                    answered = rng.random() < 0.7
                    talk = rng.randint(20, 1500) if answered else None
                    number = f"+49711{rng.randint(100000, 999999)}"
                    status = f"answered, {talk // 60}:{talk % 60:02d} min" if talk else "missed (no answer)"
                    details = {"call_id": None, "source": "sipgate", "external_call_id": f"c{iid}", "from": number,
                               "to": "+4971112345620", "number": number, "withheld": False, "answered": answered,
                               "missed": not answered, "cause": "normalClearing" if answered else "noAnswer",
                               "state": "ended", "ring_seconds": rng.randint(2, 30), "talk_seconds": talk,
                               "staff_id": staff_id, "staff_hint": None, "closed_by_timeout": False,
                               "orig_call_id": None, "diversion": None}
                    item = {"subject": f"{'Incoming' if direction == 'in' else 'Outgoing'} call {number}: {status}",
                            "text": status, "excerpt": status, "html": None, "source_ref": f"sipgate:c{iid}",
                            "attribution_reason": "phone number"}
                else:
                    kind, direction = "note", "internal"
                    note = rng.choice(DE_SENTENCES)
                    details = {}
                    item = {"subject": "Note", "text": note, "excerpt": excerpt_of(note), "html": None,
                            "source_ref": None, "attribution_reason": None}
                items.append({"id": iid, "kind": kind, "direction": direction, "occurred_at": at,
                              "inbound_message_id": None, "company_id": company_of[cid], "ticket_id": None,
                              "details": details, "created_by_id": staff_id if kind == "note" else None,
                              "created_at": at + timedelta(seconds=rng.randint(1, 90)), **item})
                role = {"email": "from" if direction == "in" else "to", "call": "party", "note": "about"}[kind]
                links.append({"interaction_id": iid, "contact_id": cid, "occurred_at": at, "role": role})
                if second is not None:
                    links.append({"interaction_id": iid, "contact_id": second, "occurred_at": at, "role": "cc"})
            with conn.begin():
                conn.execute(insert(Interaction.__table__), items)
                conn.execute(insert(InteractionContact.__table__), links)
                if files:
                    conn.execute(insert(Attachment.__table__), files)
            links_total += len(links)
            attachments_total += len(files)
            if (low // CHUNK) % 20 == 19:
                progress(f"{low + CHUNK - 1:,} interactions")
    rows["interactions"] = scale.interactions
    rows["interaction_contacts"] = links_total
    rows["attachments"] = attachments_total

    # Tickets and reminders: a few open ones on the big contact (its side panels), the rest spread out.
    with engine.begin() as conn:
        n_side = max(200, n // 5)
        tickets = []
        for k in range(n_side):
            cid = big_id if k < 6 else rng.randint(1, n)
            state = ("new", "open", "pending", "closed", "closed", "solved")[k] if k < 6 else rng.choice(
                ("closed",) * 7 + ("solved", "open", "pending"))
            opened = now - timedelta(days=rng.uniform(1, 900))
            tickets.append({"number": None, "subject": rng.choice(subjects), "state": state, "priority": "normal",
                            "contact_id": cid, "company_id": company_of[cid], "assignee_id": staff_id,
                            "opened_by_email": emails[cid], "opened_at": opened, "updated_at": opened,
                            "last_customer_reply_at": opened, "last_staff_reply_at": None,
                            "closed_at": opened + timedelta(days=2) if state == "closed" else None,
                            "merged_into_id": None, "previous_ticket_id": None})
        rows["tickets"] = bulk(conn, Ticket.__table__, tickets)
        conn.execute(text("UPDATE tickets SET number = id + :offset"), {"offset": NUMBER_OFFSET})
        reminders = []
        for k in range(n_side):
            cid = big_id if k < 5 else rng.randint(1, n)
            state = ("open", "open", "snoozed", "done", "cancelled")[k] if k < 5 else rng.choice(
                ("done",) * 6 + ("open", "cancelled"))
            due = now + timedelta(days=rng.uniform(-400, 60))
            finished = state in ("done", "cancelled")
            reminders.append({"due_at": due, "title": f"Angebot {rng.randint(10000, 99999)} nachfassen",
                              "note": None, "reason": "manual", "state": state, "contact_id": cid,
                              "company_id": company_of[cid], "ticket_id": None, "interaction_id": None,
                              "call_id": None, "assignee_id": staff_id, "rule_key": None, "created_at": due,
                              "created_by_id": staff_id, "fire_at": None if finished or due < now else due,
                              "fired_at": due if finished or due < now else None,
                              "completed_at": due if finished else None, "completed_by_id": None,
                              "completion": "done by staff" if finished else None, "updated_at": due})
        rows["reminders"] = bulk(conn, Reminder.__table__, reminders)
        if conn.dialect.name == "postgresql":  # explicit ids were inserted: move the sequences past them
            for table in ("companies", "contacts", "interactions"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    load_s = time.perf_counter() - started

    progress("ANALYZE")
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("VACUUM ANALYZE")  # the visibility map autovacuum keeps: index-only scans
        else:
            conn.exec_driver_sql("ANALYZE")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    analyze_s = time.perf_counter() - started
    big_items.sort(reverse=True)
    return Loaded(big_id=big_id, big_timeline=[iid for _, iid in big_items], email_target=(email_id, emails[email_id]),
                  phone_target=phone_id, rare_ids=rare_ids, common_matches=common, rows=rows, load_s=load_s,
                  analyze_s=analyze_s)


# --- pages ---

_TIMELINE_ID = re.compile(r'href="/interactions/(\d+)"')
_OLDER = re.compile(r'<a href="([^"]*\?cursor=[^"#]*)#timeline">Older')
_ROW = re.compile(r"<tr>(.*?)</tr>", re.S)


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    return match.group(1) if match else ""


def code_version() -> str:
    """The commit measured (the working tree may hold more)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (head or "?") + (" + uncommitted changes" if dirty else "")


def timeline_ids(page: str) -> list[int]:
    part = page.split('id="timeline"', 1)[-1]
    return list(dict.fromkeys(int(i) for i in _TIMELINE_ID.findall(part)))


def older_link(page: str) -> str | None:
    match = _OLDER.search(page)
    return html.unescape(match.group(1)) if match else None


def result_rows(page: str) -> list[tuple[int, str]]:
    """(contact id, the row's text, case-folded) of the search result table."""
    if "<tbody>" not in page:
        return []
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    out = []
    for row in _ROW.findall(body):
        ident = re.search(r'href="/contacts/(\d+)"', row)
        out.append((int(ident.group(1)) if ident else 0, html.unescape(re.sub(r"<[^>]+>", " ", row)).casefold()))
    return out


@dataclass
class Kind:
    """One request to time: its URL, its target group, and a check of the body."""

    label: str
    group: str  # "customer" or "search"
    url: str
    check: Callable[[str], str | None]  # None when right, else what is wrong
    quick_check: Callable[[str], bool]  # cheap, run on every timed response
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # this process's CPU time: the wall time minus waiting
    failures: int = 0
    sql: list[tuple[float, str, Any]] = field(default_factory=list)  # (ms, statement, parameters)


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[float, str, Any]]]:
    """Every SQL statement the engine runs inside the block, with its time in ms and its parameters."""
    seen: list[tuple[float, str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append(((time.perf_counter() - conn.info.pop("bench_started")) * 1000, statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def recorded_sql(engine: Engine, request: Callable[[], Any], times: int = 5) -> list[tuple[float, str, Any]]:
    """The statements one request runs, each with the median of its time over ``times`` requests (one
    request alone is at the mercy of the scheduler on a busy machine)."""
    runs = []
    for _ in range(times):
        with statements(engine) as seen:
            request()
        runs.append(seen)
    if any(len(run) != len(runs[-1]) for run in runs):
        return runs[-1]
    return [(statistics.median(run[k][0] for run in runs), *runs[-1][k][1:]) for k in range(len(runs[-1]))]


def query_plan(engine: Engine, statement: str, parameters: Any, costs: bool = True) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            options = "ANALYZE, BUFFERS" if costs else "ANALYZE, COSTS OFF"
            rows = conn.exec_driver_sql(f"EXPLAIN ({options}) " + statement, parameters).all()
            return [str(r[0]) for r in rows]
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        return [f"{'  ' * _depth(rows, r)}{r[-1]}" for r in rows]


def _depth(rows: list[Any], row: Any) -> int:
    parents = {r[0]: r[1] for r in rows}
    depth, parent = 0, row[1]
    while parent in parents:
        depth, parent = depth + 1, parents[parent]
    return depth


def one_line(statement: str, width: int = 110) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def bench_pages(db: Any, tmp: Path, scale: Scale, n_requests: int, seed: int, all_plans: bool) -> bool:
    url = db.fresh()
    engine = make_engine(url)
    try:
        factory = make_sessionmaker(engine)
        settings = bench_settings(url, tmp / "instance")
        with unit_of_work(factory) as session:
            staff_id = add_staff(session, STAFF_EMAIL, "Jonas Becker", "staff", password=STAFF_PASSWORD).id
        data = load(engine, scale, staff_id, seed)
        size = ""
        if engine.dialect.name == "sqlite":
            size = f", file {Path(make_url(url).database or '').stat().st_size / 2**20:,.0f} MB"
        else:
            with engine.connect() as conn:
                mb = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one() / 2**20
            size = f", database {mb:,.0f} MB"
        total_rows = sum(data.rows.values())
        print(f"\n{db.name} {db.version()}: {data.rows['contacts']:,} contacts, {data.rows['companies']:,} companies, "
              f"{data.rows['interactions']:,} interactions ({data.rows['interaction_contacts']:,} contact links, "
              f"{data.rows['attachments']:,} attachments), {data.rows['tickets']:,} tickets, "
              f"{data.rows['reminders']:,} reminders; the big contact has {len(data.big_timeline):,} interactions")
        print(f"  loaded {total_rows:,} rows in {data.load_s:.1f} s ({total_rows / data.load_s:,.0f} rows/s), "
              f"ANALYZE {data.analyze_s:.1f} s{size}; load average now {environment(tmp)['load_avg']}", flush=True)

        app = create_app(settings, factory)
        client = app.test_client()
        login = client.get("/login")
        token = csrf_token(login.get_data(as_text=True))
        answer = client.post("/login", data={"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": token})
        if not token or answer.status_code != 302 or "/login" in answer.headers.get("Location", ""):
            print(f"  WRONG: logging in failed (GET /login {login.status_code}, CSRF field "
                  f"{'found' if token else 'missing'}, POST /login {answer.status_code})")
            return False

        # Walk the whole timeline by its "Older →" links: every interaction once, newest first.
        progress(f"{db.name}: walking the big contact's timeline")
        page_urls: list[str] = []
        seen: list[int] = []
        walk_ms: list[float] = []
        next_url: str | None = f"/contacts/{data.big_id}"
        while next_url:
            page_urls.append(next_url)
            started = time.perf_counter()
            response = client.get(next_url)
            walk_ms.append((time.perf_counter() - started) * 1000)
            body = response.get_data(as_text=True)
            if response.status_code != 200:
                print(f"  WRONG: {next_url} answered {response.status_code}")
                return False
            seen += timeline_ids(body)
            next_url = older_link(body)
        walk_ok = seen == data.big_timeline
        deep = min(len(page_urls) - 1, round(len(page_urls) * 0.9))
        big_name = html.escape(BIG_NAME)

        def customer_check(expected: list[int]) -> Callable[[str], str | None]:
            def check(body: str) -> str | None:
                if f"<h1>{big_name}</h1>" not in body:
                    return "the contact's name is missing"
                got = timeline_ids(body)
                return None if got == expected else f"timeline shows {got[:3]}…, expected {expected[:3]}…"
            return check

        def listed(ids: set[int], exactly: bool = False) -> Callable[[str], str | None]:
            def check(body: str) -> str | None:
                got = {cid for cid, _ in result_rows(body)}
                if exactly and got != ids:
                    return f"listed {sorted(got)[:8]}, expected {sorted(ids)[:8]}"
                return None if ids <= got else f"contact(s) {sorted(ids - got)} not listed"
            return check

        def common_check(body: str) -> str | None:
            rows = result_rows(body)
            wrong = [cid for cid, row in rows if COMMON_FRAGMENT not in row]
            if len(rows) != min(50, data.common_matches) or wrong:
                return f"{len(rows)} rows (expected {min(50, data.common_matches)}), not matching: {wrong[:5]}"
            return None

        def nothing_check(body: str) -> str | None:
            return None if not result_rows(body) and "No contacts match" in body else "something was listed"

        email_id, email = data.email_target

        def search(term: str) -> str:
            return "/contacts?" + urllib.parse.urlencode({"q": term})  # "+49 …" must not arrive as " 49 …"

        kinds = [
            Kind("customer page, newest 25", "customer", page_urls[0], customer_check(data.big_timeline[:25]),
                 lambda b: big_name in b),
            Kind("customer page 2 (cursor)", "customer", page_urls[1], customer_check(data.big_timeline[25:50]),
                 lambda b: big_name in b),
            Kind(f"customer page {deep + 1} (deep)", "customer", page_urls[deep],
                 customer_check(data.big_timeline[deep * 25:deep * 25 + 25]), lambda b: big_name in b),
            Kind(f"search {COMMON_FRAGMENT!r} (common)", "search", search(COMMON_FRAGMENT), common_check,
                 lambda b: b.count('href="/contacts/') >= 50),
            Kind(f"search {RARE_FRAGMENT!r} (few)", "search", search(RARE_FRAGMENT),
                 listed(data.rare_ids, exactly=True), lambda b: f'href="/contacts/{data.big_id}"' in b),
            Kind("search full e-mail address", "search", search(email), listed({email_id}),
                 lambda b: f'href="/contacts/{email_id}"' in b),
            Kind(f"search phone {TYPED_PHONE!r}", "search", search(TYPED_PHONE), listed({data.phone_target}),
                 lambda b: f'href="/contacts/{data.phone_target}"' in b),
            Kind(f"search {NO_MATCH!r} (no match)", "search", search(NO_MATCH), nothing_check,
                 lambda b: "No contacts match" in b),
        ]
        wrong: list[str] = []
        for kind in kinds:
            response = client.get(kind.url)
            problem = (f"status {response.status_code}" if response.status_code != 200
                       else kind.check(response.get_data(as_text=True)))
            if problem:
                wrong.append(f"{kind.label}: {problem}")
        for _ in range(20):  # warm-up: pool, statement caches, pages in memory
            for kind in kinds:
                client.get(kind.url)
        for kind in kinds:  # its SQL, recorded outside the timed rounds
            kind.sql = recorded_sql(engine, lambda url=kind.url: client.get(url))
        progress(f"{db.name}: timing {n_requests} rounds of {len(kinds)} requests")
        for _ in range(n_requests):
            for kind in kinds:
                cpu_started, started = time.thread_time(), time.perf_counter()
                response = client.get(kind.url)
                body = response.get_data(as_text=True)
                kind.times.append((time.perf_counter() - started) * 1000)
                kind.cpu.append((time.thread_time() - cpu_started) * 1000)
                if response.status_code != 200 or not kind.quick_check(body):
                    kind.failures += 1

        print(f"  timeline walk: {len(page_urls)} pages by 'Older →', {len(seen):,} items: "
              + ("every interaction once, newest first: OK" if walk_ok else
                 f"WRONG ({len(set(seen)):,} distinct of {len(data.big_timeline):,})")
              + f"; per page p50 {percentile(walk_ms, 50):.1f} ms, p95 {percentile(walk_ms, 95):.1f} ms, "
                f"max {max(walk_ms):.1f} ms")
        print(f"  {'ms':<34}{'n':>5}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}{'cpu p95':>8}{'SQL':>5}{'in DB':>7}"
              f"{'slowest':>8}   target (p95)")
        ok = walk_ok and not wrong
        slow: list[Kind] = []
        for kind in kinds:
            p95 = percentile(kind.times, 95)
            target = TARGET_MS[kind.group]
            met = p95 < target
            if not met:
                slow.append(kind)
            if db.name == "SQLite":
                ok = ok and met
            ok = ok and kind.failures == 0
            in_db = sum(ms for ms, _, _ in kind.sql)
            slowest = max((ms for ms, _, _ in kind.sql), default=0.0)
            print(f"  {kind.label:<34}{len(kind.times):>5}{percentile(kind.times, 50):>8.1f}{p95:>8.1f}"
                  f"{percentile(kind.times, 99):>8.1f}{max(kind.times):>8.1f}{percentile(kind.cpu, 95):>8.1f}"
                  f"{len(kind.sql):>5}{in_db:>7.1f}"
                  f"{slowest:>8.1f}   < {target:.0f}: {'met' if met else 'MISSED'}"
                  + (f"; {kind.failures} wrong responses" if kind.failures else ""))
        print("  (cpu p95: this process's CPU time, i.e. without waiting for a core; SQL: statements per request, "
              "in DB: their ms, slowest: the slowest one's ms, each the median of 5 requests)")
        if db.name != "SQLite":
            print("  (the targets are for SQLite: here they are for comparison and do not fail the run)")
        for problem in wrong:
            print(f"  WRONG: {problem}")
        # The timeline query of the deep page, always: "one index range scan" is the claim it has to keep.
        deep_sql = next((s for s in kinds[2].sql if "FROM interaction_contacts" in s[1]), None)
        if deep_sql is not None:
            plan = query_plan(engine, deep_sql[1], deep_sql[2], costs=False)
            print(f"  plan of the deep page's timeline query ({deep_sql[0]:.1f} ms): "
                  + " | ".join(" ".join(line.replace("->", "").split()) for line in plan))
        for kind in kinds if all_plans else slow:
            ms, statement, parameters = max(kind.sql, key=lambda s: s[0])
            print(f"\n  {kind.label}: slowest statement ({ms:.1f} ms of {sum(s[0] for s in kind.sql):.1f} ms "
                  f"in {len(kind.sql)} statements): {one_line(statement, 400)}")
            print(f"    parameters: {parameters!r}"[:300])
            for line in query_plan(engine, statement, parameters):
                print(f"    {line}")
        return ok
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10,000 contacts, 100,000 interactions")
    parser.add_argument("--postgres", default=DEFAULT_PG_URL, metavar="URL",
                        help=f"PostgreSQL server to use (database {PG_DATABASE}, created and dropped)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per kind (default 200)")
    parser.add_argument("--plans", action="store_true", help="print the plan of every kind's slowest statement")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tmpdir", default=None, help="where the SQLite files go (default: the system temp dir)")
    args = parser.parse_args(argv)
    scale = Scale(10_000, 1_000, 100_000, 1_000) if args.quick else Scale(100_000, 10_000, 1_000_000, 10_000)
    started = time.perf_counter()
    setup_logging(None)

    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-", dir=args.tmpdir))
    env = environment(tmp)
    results: list[bool] = []
    try:
        with backends(None if args.no_postgres else pg_url(args.postgres, PG_DATABASE), tmp) as dbs:
            pg = next((db for db in dbs if db.name == "PostgreSQL"), None)
            print(f"CRM Inbox staff pages benchmark ({'quick' if args.quick else 'full'}) — Python {env['python']}, "
                  f"{env['cpus']} CPUs, SQLite {env['sqlite']}"
                  + (f", PostgreSQL {pg.version()}" if pg else "")
                  + f"; code {code_version()}; {env['platform']}; SQLite files in {env['tmp_dir']} ({env['tmp_fs']}); "
                    f"load average at start {env['load_avg']}")
            if not args.no_postgres and pg is None:
                results.append(False)
            for db in dbs:
                results.append(bench_pages(db, tmp, scale, args.requests, args.seed, args.plans))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average at the end {environment(tmp)['load_avg']}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

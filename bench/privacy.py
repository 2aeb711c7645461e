"""How long do a data-protection export and an erasure take on a big database?

Fills a fresh database with SQLAlchemy Core bulk inserts: 20,000 other contacts with 200,000 timeline
entries (mail with text, HTML and header details) and 100,000 audit entries, and one person with 300 mails of
their own (each with its 6 KB raw message, every tenth with a 50 KB attachment), 50 mails shared with a
colleague, 20 calls, 10 tickets with events and 20 reminders; some other records mention the person's name.
Then times, on the real core functions (no web layer):

1. ``privacy.write_export``: the zip of everything about the person (into memory), and its size;
2. ``privacy.erase_contact`` and its commit: the person gone everywhere, mentions redacted, audit scrubbed.

Afterwards it checks that the person's address is in no table. Erasure scans the free-text columns of the
timeline and the audit log with a LIKE prefilter, so its time grows with the database, not with the person.

    .venv/bin/python bench/privacy.py [--quick] [--postgres URL] [--no-postgres]

``--quick`` is ten times smaller. SQLite runs in a temporary directory; PostgreSQL in the database
``bench_privacy``, which the script creates and drops.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import DEFAULT_PG_URL, backends, environment, pg_url, progress
from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work
from crm_inbox.intake.store import content_hash
from crm_inbox.models import (
    Attachment,
    AuditEntry,
    Base,
    Call,
    Contact,
    ContactEmail,
    ContactPhone,
    InboundMessage,
    Interaction,
    InteractionContact,
    Reminder,
    Ticket,
    TicketEvent,
)
from crm_inbox.privacy import service as privacy

PERSON_EMAIL = "petra.privat@privat-mail.example"
PERSON_NAME = "Petra Privat"
CHUNK = 10_000


def _bulk(conn, table, rows) -> None:  # type: ignore[no-untyped-def]
    for start in range(0, len(rows), CHUNK):
        conn.execute(insert(table), rows[start:start + CHUNK])


def _raw(n: int) -> bytes:
    body = (f"Guten Tag,\r\n\r\nAnfrage Nummer {n}. " + "Lorem ipsum dolor sit amet. " * 200 + "\r\n").encode()
    return (f"From: {PERSON_NAME} <{PERSON_EMAIL}>\r\nTo: crm@beispiel-firma.de\r\nSubject: Anfrage {n}\r\n"
            f"Message-ID: <p{n}@privat-mail.example>\r\n\r\n").encode() + body


def fill(url: str, scale: float) -> int:
    """The database described above; returns the person's contact id."""
    rnd = random.Random(7)
    engine = make_engine(url)
    now = datetime.now(UTC)
    others, entries, audits = int(20_000 * scale), int(200_000 * scale), int(100_000 * scale)
    with engine.begin() as conn:
        _bulk(conn, Contact.__table__, [{"id": i, "name": f"Kunde {i}", "search_name": f"kunde {i}", "role": "customer",
                                         "tags": [], "fields": {}, "origin": "bench", "created_at": now,
                                         "updated_at": now} for i in range(1, others + 1)])
        _bulk(conn, ContactEmail.__table__, [{"contact_id": i, "email": f"kunde{i}@firma{i % 500}.example",
                                              "bouncing": False} for i in range(1, others + 1)])
        person = others + 1
        conn.execute(insert(Contact.__table__), {"id": person, "name": PERSON_NAME, "search_name": "petra privat",
                                                 "role": "customer", "tags": ["vip"], "fields": {"Hobby": "Segeln"},
                                                 "origin": "bench", "created_at": now, "updated_at": now})
        conn.execute(insert(ContactEmail.__table__), {"contact_id": person, "email": PERSON_EMAIL, "bouncing": False})
        conn.execute(insert(ContactPhone.__table__), {"contact_id": person, "raw": "0171 5550123",
                                                      "e164": "+491715550123"})
        rows, links = [], []
        for i in range(1, entries + 1):
            when = now - timedelta(minutes=i)
            mentions = i % 2000 == 0  # a few other records name the person
            rows.append({"id": i, "kind": "email", "direction": "in", "occurred_at": when, "subject": f"Anfrage {i}",
                         "text": ("Guten Tag, " + ("wie mit Petra Privat besprochen " if mentions else "")
                                  + "bitte um ein Angebot. " * 20),
                         "excerpt": "bitte um ein Angebot.", "html": "<p>bitte um ein Angebot</p>" * 10,
                         "source_ref": f"<m{i}@firma.example>",
                         "details": {"from": f"Kunde <kunde{i % others + 1}@firma.example>", "to": ["crm@x"]},
                         "created_at": when})
            links.append({"interaction_id": i, "contact_id": rnd.randint(1, others), "occurred_at": when,
                          "role": "from"})
        _bulk(conn, Interaction.__table__, rows)
        _bulk(conn, InteractionContact.__table__, links)
        # The person's own mail, with raw messages and some attachments, and mail shared with contact 1.
        next_id = entries + 1
        for n in range(350):
            raw = _raw(n)
            inbound = conn.execute(insert(InboundMessage.__table__).returning(InboundMessage.id), {
                "raw": raw, "size": len(raw), "content_hash": content_hash(raw),
                "message_id": f"<p{n}@privat-mail.example>",
                "message_id_conflict": False, "envelope_from": PERSON_EMAIL, "envelope_to": ["crm@beispiel-firma.de"],
                "source": "smtp", "deliveries": 1, "received_at": now, "state": "processed", "attempts": 1,
            }).scalar_one()
            when = now - timedelta(hours=n)
            conn.execute(insert(Interaction.__table__), {
                "id": next_id, "kind": "email", "direction": "in", "occurred_at": when, "subject": f"Anfrage {n}",
                "text": raw.decode(), "excerpt": "Anfrage", "source_ref": f"<p{n}@privat-mail.example>",
                "inbound_message_id": inbound, "details": {"from": f"{PERSON_NAME} <{PERSON_EMAIL}>"},
                "created_at": when})
            conn.execute(insert(InteractionContact.__table__), {"interaction_id": next_id, "contact_id": person,
                                                                "occurred_at": when, "role": "from"})
            if n >= 300:
                conn.execute(insert(InteractionContact.__table__), {"interaction_id": next_id, "contact_id": 1,
                                                                    "occurred_at": when, "role": "cc"})
            elif n % 10 == 0:
                data = rnd.randbytes(50_000)
                conn.execute(insert(Attachment.__table__), {"interaction_id": next_id, "filename": f"a{n}.pdf",
                                                            "content_type": "application/pdf", "size": len(data),
                                                            "sha256": "0" * 64, "content": data})
            next_id += 1
        for n in range(20):
            conn.execute(insert(Call.__table__), {
                "source": "bench", "call_id": f"c{n}", "state": "ended", "from_raw": "0171 5550123",
                "remote_e164": "+491715550123", "remote_withheld": False, "started_at": now - timedelta(days=n),
                "missed": False, "callback_needed": False, "closed_by_timeout": False, "contact_id": person,
                "events": [{"kind": "hangup", "from": "0171 5550123"}], "updated_at": now})
        for n in range(10):
            ticket = conn.execute(insert(Ticket.__table__).returning(Ticket.id), {
                "subject": f"Problem {n}", "state": "open", "priority": "normal", "contact_id": person,
                "opened_by_email": PERSON_EMAIL, "opened_at": now, "updated_at": now}).scalar_one()
            conn.execute(insert(TicketEvent.__table__), {"ticket_id": ticket, "at": now, "kind": "opened",
                                                         "details": {}})
        _bulk(conn, Reminder.__table__, [{"due_at": now, "title": f"Petra anrufen {n}", "reason": "manual",
                                          "state": "open", "contact_id": person, "created_at": now,
                                          "updated_at": now} for n in range(20)])
        _bulk(conn, AuditEntry.__table__, [{"at": now, "action": "update", "object_type": "contact",
                                            "object_id": rnd.randint(1, others),
                                            "details": {"name": ["Alt", f"Kunde {i}"]}} for i in range(audits)])
        if engine.dialect.name == "postgresql":
            for table in Base.metadata.sorted_tables:
                conn.execute(text(f"ANALYZE {table.name}"))
        else:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return person


def run(db, scale: float) -> None:  # type: ignore[no-untyped-def]
    url = db.fresh()
    progress(f"{db.name}: filling")
    started = time.perf_counter()
    person = fill(url, scale)
    progress(f"{db.name}: filled in {time.perf_counter() - started:.1f} s")
    factory = make_sessionmaker(make_engine(url))
    with factory() as session:
        started = time.perf_counter()
        buffer = io.BytesIO()
        counts = privacy.write_export(session, person, buffer)
        export_s = time.perf_counter() - started
    names = zipfile.ZipFile(io.BytesIO(buffer.getvalue())).namelist()
    assert counts["interactions"] == 350 and counts["raw_messages"] == 350 and len(names) == 1 + 350 + 30
    started = time.perf_counter()
    with unit_of_work(factory) as session:
        erased = privacy.erase_contact(session, person, None)
    erase_s = time.perf_counter() - started
    with factory() as session:
        left = session.execute(select(ContactEmail.id).where(ContactEmail.email == PERSON_EMAIL)).first()
        raw_left = session.execute(select(InboundMessage.id)
                                   .where(InboundMessage.envelope_from == PERSON_EMAIL)).first()
    assert left is None and raw_left is None
    size_mb = len(buffer.getvalue()) / 2**20
    print(f"{db.name} {db.version()}: export {export_s * 1000:.0f} ms ({size_mb:.1f} MB zip, "
          f"{counts['interactions']} entries, {counts['attachments']} attachments, "
          f"{counts['raw_messages']} raw mails); erase {erase_s * 1000:.0f} ms (deleted {erased['interactions']} "
          f"entries, kept {erased['shared_interactions_kept']} shared, {erased['mentions_redacted']} mentions "
          f"redacted, {erased['audit_entries_scrubbed']} audit entries scrubbed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ten times smaller")
    parser.add_argument("--postgres", default=DEFAULT_PG_URL, help="PostgreSQL server URL")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    with tempfile.TemporaryDirectory() as tmp:
        print(environment(tmp))
        postgres = None if args.no_postgres else pg_url(args.postgres, "bench_privacy")
        with backends(postgres, Path(tmp)) as dbs:
            for db in dbs:
                run(db, scale)


if __name__ == "__main__":
    main()

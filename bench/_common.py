"""Shared helpers for the benchmark scripts in bench/: settings, fresh databases, realistic mail, contacts.

Nothing here depends on tests/; the mail builder writes raw RFC 5322 bytes (CRLF) directly, which is
fast enough to make tens of thousands of messages in a few seconds.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import platform
import quopri
import random
import resource
import shutil
import sqlite3
import statistics
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from crm_inbox.config import Settings, replace
from crm_inbox.db import make_engine, upgrade
from crm_inbox.models import Base, Company, CompanyDomain, Contact, ContactEmail, Role

ROOT = Path(__file__).resolve().parents[1]
CRM = "crm@beispiel-firma.de"
SUPPORT = "support@beispiel-firma.de"
OWN_DOMAIN = "beispiel-firma.de"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench"
# Never created, emptied or dropped by a benchmark, whatever URL is given.
PROTECTED_DATABASES = frozenset({"test", "postgres", "template0", "template1"})


# --- settings, logging, measurements ---

def bench_settings(database_url: str, instance_dir: Path | str, **sections: dict[str, Any]) -> Settings:
    """Settings as a small production install would have them, on free ports (0)."""
    base = replace(
        Settings(),
        service={"instance_dir": str(instance_dir)},
        database={"url": database_url},
        smtp={"port": 0},
        web={"port": 0, "secret_key": "bench-secret"},
        mail={"crm_addresses": (CRM,), "support_addresses": (SUPPORT,), "staff_domains": (OWN_DOMAIN,)},
    )
    return replace(base, **sections) if sections else base


def setup_logging(log_file: Path | str | None, level: str = "INFO") -> None:
    """Log as ``crm-inbox serve`` does (INFO, same format), but into a file instead of the terminal."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    if log_file is None:
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.WARNING)
        return
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))


def memory_status(pid: int | None = None) -> dict[str, float]:
    """A process's memory in MB (this one's by default): VmHWM (peak) and VmRSS (now) from /proc; for this
    process also ru_maxrss (peak)."""
    out = {"ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024} if pid is None else {}
    try:
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key.lower() + "_mb"] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 200 values is the 190th smallest)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), -(-len(ordered) * pct // 100)))
    return ordered[int(rank) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def environment(tmp_root: Path | str) -> dict[str, Any]:
    fs = "?"
    try:
        best = ""
        tmp = str(Path(tmp_root).resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, kind, *_ = line.split()
            if tmp.startswith(mount) and len(mount) > len(best):
                best, fs = mount, kind
    except OSError:
        pass
    return {
        "python": platform.python_version(), "cpus": os.cpu_count(), "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(terse=True), "tmp_dir": str(tmp_root), "tmp_fs": fs,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


# --- databases ---

class SqliteDatabases:
    """Migrates one template file once; every ``fresh()`` is a copy of it (an empty, current schema)."""

    name = "SQLite"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.template = directory / "template.db"
        self._n = 0
        engine = make_engine(f"sqlite:///{self.template}")
        upgrade(engine)
        engine.dispose()

    def fresh(self) -> str:
        self._n += 1
        path = self.directory / f"crm-{self._n}.db"
        shutil.copy(self.template, path)
        return f"sqlite:///{path}"

    def version(self) -> str:
        return sqlite3.sqlite_version

    def close(self) -> None:
        pass


class PostgresDatabases:
    """Creates the benchmark database (dropping a leftover one), migrates it; ``fresh()`` empties it."""

    name = "PostgreSQL"

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        sa_url = make_url(url)
        self.dbname = sa_url.database or ""
        if not self.dbname or self.dbname in PROTECTED_DATABASES:
            raise SystemExit(f"bench: refusing to use PostgreSQL database {self.dbname!r}; pick another name")
        self._admin = sa_url.set(drivername="postgresql", database="postgres").render_as_string(
            hide_password=False)
        with psycopg.connect(self._admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
            self._version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        self._dirty = False

    def fresh(self) -> str:
        if self._dirty:
            engine = make_engine(self.url)
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            with engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            engine.dispose()
        self._dirty = True
        return self.url

    def version(self) -> str:
        return self._version

    def close(self) -> None:
        import psycopg

        with psycopg.connect(self._admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')


def postgres_available(url: str) -> str | None:
    """None when the server answers, else the reason (one line)."""
    import psycopg

    sa_url = make_url(url)
    admin = sa_url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, connect_timeout=5):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__


# --- people ---

FIRST_DE = ("Klaus", "Sabine", "Jürgen", "Petra", "Thomas", "Andrea", "Michael", "Claudia", "Stefan", "Birgit",
            "Andreas", "Monika", "Frank", "Ute", "Uwe", "Katrin", "Jörg", "Susanne", "Matthias", "Anja",
            "Günter", "Heike", "Björn", "Jana", "Tobias", "Nadine", "Sören", "Maike", "Lukas", "Lea")
LAST_DE = ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
           "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
           "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner",
           "Krause", "Meier", "Lehmann", "Köhler", "Groß", "Weiß", "Jäger", "Vogel", "Günther", "Böhm")
FIRST_EN = ("James", "Emma", "Oliver", "Sophie", "William", "Charlotte", "Henry", "Amelia", "George", "Olivia",
            "Jack", "Grace", "Daniel", "Emily", "Samuel", "Lucy")
LAST_EN = ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
           "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood")
COMPANY_WORDS = ("Maschinenbau", "Elektro", "Logistik", "Metallbau", "Haustechnik", "Kunststoff",
                 "Antriebstechnik", "Verpackung", "Software", "Medizintechnik", "Holzbau", "Stahlhandel",
                 "Industries", "Systems", "Engineering", "Solutions", "Trading", "Consulting")
COMPANY_FORMS = ("GmbH", "GmbH & Co. KG", "AG", "KG", "e.K.", "Ltd", "SE")
FREE_MAIL = ("gmx.de", "web.de", "t-online.de", "gmail.com", "outlook.de", "posteo.de", "freenet.de")
TLDS = ("de", "de", "de", "com", "at", "ch", "eu", "co.uk")
_ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})


@contextlib.contextmanager
def backends(postgres_url: str | None, tmp: Path) -> Iterator[list[Any]]:
    """SQLite (a migrated template) and, if asked for and reachable, PostgreSQL at ``postgres_url``; the
    PostgreSQL database is dropped on the way out, also after errors and Ctrl-C."""
    opened: list[Any] = []
    try:
        progress("migrating the SQLite template")
        opened.append(SqliteDatabases(tmp))
        if postgres_url is not None:
            reason = postgres_available(postgres_url)
            if reason is None:
                progress(f"creating and migrating the PostgreSQL database {make_url(postgres_url).database}")
                opened.append(PostgresDatabases(postgres_url))
            else:
                print(f"PostgreSQL skipped: {reason}")
        yield opened
    finally:
        for db in opened:
            db.close()


def pg_url(url: str, database: str) -> str:
    """The server of ``url``, with the benchmark's own ``database`` (never one of the protected ones)."""
    name = make_url(url).database
    if name and name != database:
        print(f"note: the run uses the database {database!r}, not {name!r} from the URL")
    target = make_url(url).set(database=database)
    assert target.database not in PROTECTED_DATABASES
    return target.render_as_string(hide_password=False)


def ascii_slug(value: str) -> str:
    return "".join(ch for ch in value.translate(_ASCII).lower() if ch.isalnum() or ch in ".-")


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    company: str | None = None
    german: bool = True


@dataclass(frozen=True)
class Firm:
    name: str
    domain: str


class People:
    """Deterministic (seeded) companies and people with unique, plausible addresses."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self._emails: set[str] = set()
        self._domains: set[str] = set()

    def firm(self) -> Firm:
        rng = self.rng
        while True:
            owner = rng.choice(LAST_DE + LAST_EN)
            word = rng.choice(COMPANY_WORDS)
            name = f"{owner} {word} {rng.choice(COMPANY_FORMS)}"
            domain = f"{ascii_slug(owner)}-{ascii_slug(word)}.{rng.choice(TLDS)}"
            if domain in self._domains:
                domain = f"{ascii_slug(owner)}{rng.randint(2, 999)}-{ascii_slug(word)}.{rng.choice(TLDS)}"
            if domain not in self._domains:
                self._domains.add(domain)
                return Firm(name, domain)

    def person(self, firm: Firm | None) -> Person:
        rng = self.rng
        german = rng.random() < 0.75
        first = rng.choice(FIRST_DE if german else FIRST_EN)
        last = rng.choice(LAST_DE if german else LAST_EN)
        domain = firm.domain if firm else rng.choice(FREE_MAIL)
        local = rng.choice((f"{first}.{last}", f"{first[0]}.{last}", f"{last}", f"{first}{last}"))
        local = ascii_slug(local)
        email = f"{local}@{domain}"
        n = 1
        while email in self._emails:
            n += 1
            email = f"{local}{n}@{domain}"
        self._emails.add(email)
        return Person(f"{first} {last}", email, firm.name if firm else None, german)

    def population(self, n_people: int, n_firms: int, free_mail_share: float = 0.25
                   ) -> tuple[list[Firm], list[Person]]:
        firms = [self.firm() for _ in range(n_firms)]
        people = [self.person(None if self.rng.random() < free_mail_share or not firms else self.rng.choice(firms))
                  for _ in range(n_people)]
        return firms, people


def insert_contacts(engine: Any, firms: Sequence[Firm], people: Sequence[Person]) -> list[int]:
    """Bulk-insert companies (with domains) and contacts (with one address each); the contact ids, in order."""
    with engine.begin() as conn:
        company_ids: dict[str, int] = {}
        if firms:
            conn.execute(insert(Company.__table__), [
                {"name": f.name, "tags": [], "fields": {}, "origin": "bench"} for f in firms])
            rows = conn.execute(select(Company.id).order_by(Company.id)).scalars().all()
            ids = rows[-len(firms):]
            company_ids = {f.name: i for f, i in zip(firms, ids, strict=True)}
            conn.execute(insert(CompanyDomain.__table__), [
                {"company_id": company_ids[f.name], "domain": f.domain} for f in firms])
        if not people:
            return []
        conn.execute(insert(Contact.__table__), [
            {"name": p.name, "company_id": company_ids.get(p.company or ""), "role": Role.CUSTOMER, "tags": [],
             "fields": {}, "origin": "bench"} for p in people])
        contact_ids = list(conn.execute(select(Contact.id).order_by(Contact.id)).scalars().all())[-len(people):]
        conn.execute(insert(ContactEmail.__table__), [
            {"contact_id": cid, "email": p.email, "bouncing": False}
            for cid, p in zip(contact_ids, people, strict=True)])
    return contact_ids


# --- mail ---

DE_GREETINGS = ("Sehr geehrte Damen und Herren,", "Guten Tag {name},", "Hallo {first},", "Liebe Frau {last},",
                "Sehr geehrter Herr {last},", "Moin {first},")
EN_GREETINGS = ("Dear Sir or Madam,", "Hello {first},", "Hi {first},", "Dear {name},", "Good morning,")
DE_SUBJECTS = ("Anfrage Angebot {n}", "Bestellung Nr. {n}", "Rückfrage zu Ihrer Rechnung {n}",
               "Liefertermin Auftrag {n}", "Reklamation Lieferung vom {d}", "Terminvorschlag für nächste Woche",
               "Preisanfrage Ersatzteile", "Änderung unserer Lieferadresse", "Wartungsvertrag {n}",
               "Bitte um Rückruf", "Angebot Nr. {n} – Rückfragen", "Muster und Prüfbericht")
EN_SUBJECTS = ("Request for quotation {n}", "Order confirmation {n}", "Question about invoice {n}",
               "Delivery date for order {n}", "Meeting next week", "Spare parts pricing", "Follow-up: our call",
               "Updated delivery address", "Service contract {n}")
DE_SENTENCES = (
    "vielen Dank für Ihr Angebot vom letzten Dienstag, das wir intern besprochen haben.",
    "Wir benötigen bis Ende des Monats 250 Stück der Ausführung B in verzinkter Ausführung.",
    "Könnten Sie uns bitte einen verbindlichen Liefertermin nennen?",
    "Die Rechnung weicht leider vom vereinbarten Preis ab; bitte prüfen Sie die Positionen 3 und 7.",
    "Anbei finden Sie unsere Bestellung mit den gewünschten Änderungen an der Stückliste.",
    "Unser Einkauf bittet um eine Auftragsbestätigung mit Angabe der Zahlungsbedingungen.",
    "Für Rückfragen stehe ich Ihnen gerne telefonisch unter 0711 123456-20 zur Verfügung.",
    "Die letzte Lieferung kam mit zwei Tagen Verspätung und einer beschädigten Palette an.",
    "Wir möchten den Wartungstermin gerne auf Donnerstag, 14 Uhr, verschieben.",
    "Bitte schicken Sie uns außerdem das aktuelle Datenblatt und die Konformitätserklärung.",
    "Gemäß unserem Telefonat übersende ich Ihnen die technischen Zeichnungen zur Prüfung.",
    "Über eine kurze Rückmeldung bis Freitag würden wir uns sehr freuen.",
    "Die Mengen für das zweite Quartal können wir voraussichtlich um zehn Prozent erhöhen.",
    "Leider ist die Ware nicht wie besprochen kommissioniert worden.",
)
EN_SENTENCES = (
    "thank you for your quotation from last Tuesday, which we have discussed internally.",
    "We would need 250 units of version B by the end of the month.",
    "Could you please confirm a binding delivery date?",
    "The invoice unfortunately differs from the agreed price; please check items 3 and 7.",
    "Please find our purchase order with the requested changes to the bill of materials below.",
    "Our purchasing department asks for an order confirmation stating the payment terms.",
    "Feel free to call me on +44 20 7946 0018 if you have any questions.",
    "The last delivery arrived two days late and one pallet was damaged.",
    "We would like to move the maintenance appointment to Thursday at 2 pm.",
    "Please also send us the current data sheet and the declaration of conformity.",
    "A short reply by Friday would be much appreciated.",
)
DE_CLOSINGS = ("Mit freundlichen Grüßen", "Viele Grüße", "Beste Grüße", "Freundliche Grüße")
EN_CLOSINGS = ("Kind regards,", "Best regards,", "Many thanks,", "Best wishes,")
MAILERS = ("Microsoft Outlook 16.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 "
           "Thunderbird/115.9.0", "Apple Mail (2.3774.500.171.1.1)", "Roundcube Webmail/1.6.6",
           "Open-Xchange Mailer v7.10.6-Rev58")


def _header_value(name: str, value: str) -> str:
    """A header value, as RFC 2047 encoded words (folded) when not plain ASCII."""
    if value.isascii():
        return value
    return Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


def _fold(name: str, value: str, width: int = 76) -> str:
    """``Name: value`` folded at spaces (for long References and DKIM lines)."""
    line = f"{name}: "
    out: list[str] = []
    for word in value.split(" "):
        if len(line) + len(word) + 1 > width and line.strip():
            out.append(line.rstrip())
            line = "\t"
        line += word + " "
    out.append(line.rstrip())
    return "\r\n".join(out)


def _qp(body: str) -> str:
    return quopri.encodestring(body.replace("\r\n", "\n").encode("utf-8")).decode("ascii").replace("\n", "\r\n")


def _b64(data: bytes) -> str:
    enc = base64.b64encode(data).decode("ascii")
    return "\r\n".join(enc[i:i + 76] for i in range(0, len(enc), 76))


class MailMaker:
    """Deterministic (seeded) business mail: German or English, realistic headers, 2–5 KB by default."""

    def __init__(self, seed: int = 1, to: str = CRM) -> None:
        self.rng = random.Random(seed)
        self.to = to
        self.n = 0
        self.seed = seed
        self.start = datetime(2025, 3, 3, 7, 30, tzinfo=UTC)

    def message_id(self, domain: str) -> str:
        self.n += 1
        token = hashlib.sha1(f"{self.seed}-{self.n}".encode()).hexdigest()[:20].upper()
        return f"<{token}.{self.n}@{domain}>"

    def mail(self, sender: Person, *, size: int | None = None, date: datetime | None = None,
             message_id: str | None = None, attachment: tuple[str, str, bytes] | None = None,
             html: bool | None = None) -> bytes:
        """One message from ``sender`` to the CRM address of about ``size`` bytes (random 2–5 KB)."""
        rng = self.rng
        target = size if size is not None else rng.randint(2000, 4800)
        domain = sender.email.rpartition("@")[2]
        mid = message_id or self.message_id(domain)
        when = date or (self.start + timedelta(seconds=self.n * 37 + rng.randint(0, 30)))
        first, _, last = sender.name.partition(" ")
        german = sender.german
        subject = rng.choice(DE_SUBJECTS if german else EN_SUBJECTS).format(
            n=rng.randint(10000, 99999), d=(when - timedelta(days=3)).strftime("%d.%m.%Y"))
        reply = rng.random() < 0.35
        if reply:
            subject = ("AW: " if german else "RE: ") + subject
        greeting = rng.choice(DE_GREETINGS if german else EN_GREETINGS).format(name=sender.name, first=first,
                                                                               last=last)
        sentences = DE_SENTENCES if german else EN_SENTENCES
        closing = rng.choice(DE_CLOSINGS if german else EN_CLOSINGS)
        signature = [closing, sender.name]
        if sender.company:
            signature += [sender.company, "Industriestraße 12, 70565 Stuttgart" if german else "12 High Street, Leeds",
                          "Tel. +49 711 123456-0" if german else "Phone +44 113 496 0000", f"www.{domain}"]
        if german and sender.company:
            signature += ["", "Geschäftsführer: " + sender.name + " · Amtsgericht Stuttgart HRB 123456",
                          "Diese E-Mail kann vertrauliche Informationen enthalten. Wenn Sie nicht der richtige "
                          "Adressat sind, informieren Sie bitte sofort den Absender."]
        cc = None
        if rng.random() < 0.2:
            cc = formataddr(("Einkauf" if german else "Purchasing", f"einkauf@{domain}"))
        mailer = rng.choice(MAILERS)
        html_part = html if html is not None else rng.random() < 0.45
        ip = f"{rng.randint(80, 212)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"

        def headers() -> list[str]:
            date_s = format_datetime(when)
            dkim_b = base64.b64encode(hashlib.sha512(mid.encode()).digest() * 4).decode()
            out = [
                f"Return-Path: <{sender.email}>",
                f"Delivered-To: {self.to}",
                _fold("Received", f"from mail.{domain} (mail.{domain} [{ip}]) by mx1.{OWN_DOMAIN} (Postfix) "
                                  f"with ESMTPS id 4W{rng.randint(10**9, 10**10)}Kz for <{self.to}>; {date_s}"),
                _fold("Received", f"from [192.168.{rng.randint(0, 20)}.{rng.randint(2, 250)}] "
                                  f"(p5b0c{rng.randint(1000, 9999)}.dip0.t-ipconnect.de [{ip}]) by mail.{domain} "
                                  f"(Postfix) with ESMTPSA id {rng.randint(10**9, 10**10)}; {date_s}"),
                _fold("Authentication-Results", f"mx1.{OWN_DOMAIN}; dkim=pass header.d={domain} "
                                                f"header.s=mail2024; spf=pass smtp.mailfrom={sender.email}; "
                                                f"dmarc=pass header.from={domain}"),
                _fold("DKIM-Signature", f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=mail2024; "
                                        f"t={int(when.timestamp())}; h=From:To:Subject:Date:Message-ID; "
                                        f"bh={dkim_b[:44]}; b=" + " ".join(dkim_b[i:i + 60]
                                                                          for i in range(0, 344, 60))),
                f"Message-ID: {mid}",
                f"Date: {date_s}",
                "From: " + formataddr((sender.name, sender.email), charset="utf-8"),
                f"To: CRM <{self.to}>",
            ]
            if cc:
                out.append(f"Cc: {cc}")
            out.append("Subject: " + _header_value("Subject", subject))
            if reply:
                refs = [f"<{rng.randint(10**8, 10**9)}.{k}@{OWN_DOMAIN}>" for k in range(rng.randint(1, 4))]
                out.append(f"In-Reply-To: {refs[-1]}")
                out.append(_fold("References", " ".join(refs)))
            out += ["MIME-Version: 1.0", f"User-Agent: {mailer}",
                    f"Content-Language: {'de-DE' if german else 'en-GB'}",
                    f"X-Originating-IP: [{ip}]"]
            return out

        head = headers()
        paragraphs: list[str] = []
        quoted: list[str] = []
        if reply:
            quoted = ["", f"Am {(when - timedelta(days=1)).strftime('%d.%m.%Y')} schrieb CRM:" if german
                      else "On Monday, CRM wrote:"]

        def body_text() -> str:
            lines = [greeting, "", *paragraphs, "", *signature, *quoted]
            return "\n".join(lines) + "\n"

        def assemble() -> bytes:
            text = body_text()
            parts_head = list(head)
            boundary = f"----=_Part_{hashlib.md5(mid.encode()).hexdigest()[:16]}"
            if not html_part and attachment is None:
                parts_head += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"]
                return ("\r\n".join(parts_head) + "\r\n\r\n" + _qp(text)).encode("ascii")
            plain = ("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
                     "\r\n\r\n" + _qp(text))
            alt = plain
            if html_part:
                esc = (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
                html_doc = ("<html><head><meta charset=\"utf-8\"></head><body style=\"font-family:Calibri,"
                            "sans-serif;font-size:11pt\">" + "".join(f"<p>{line or '&nbsp;'}</p>"
                                                                    for line in esc.split("\n"))
                            + "</body></html>\n")
                inner = f"{boundary}_alt"
                alt = (f"Content-Type: multipart/alternative; boundary=\"{inner}\"\r\n\r\n"
                       f"--{inner}\r\n{plain}\r\n--{inner}\r\nContent-Type: text/html; charset=utf-8\r\n"
                       f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{_qp(html_doc)}\r\n--{inner}--\r\n")
            if attachment is None:
                parts_head.append(alt.split("\r\n\r\n", 1)[0])
                return ("\r\n".join(parts_head) + "\r\n\r\n" + alt.split("\r\n\r\n", 1)[1]).encode("ascii")
            filename, ctype, data = attachment
            parts_head.append(f"Content-Type: multipart/mixed; boundary=\"{boundary}\"")
            body = (f"This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n{alt}\r\n"
                    f"--{boundary}\r\nContent-Type: {ctype}; name=\"{filename}\"\r\n"
                    f"Content-Disposition: attachment; filename=\"{filename}\"\r\n"
                    f"Content-Transfer-Encoding: base64\r\n\r\n{_b64(data)}\r\n--{boundary}--\r\n")
            return ("\r\n".join(parts_head) + "\r\n\r\n" + body).encode("ascii")

        raw = assemble()
        # Grow the body (paragraphs, then a quoted earlier mail) until the message reaches its target size.
        while len(raw) < target:
            sentence = rng.choice(sentences)
            if quoted and rng.random() < 0.3:
                quoted.append("> " + sentence)
            elif paragraphs and paragraphs[-1] and rng.random() < 0.7:
                paragraphs[-1] += " " + sentence
            else:
                paragraphs += ["", sentence] if paragraphs else [sentence]
            raw = assemble()
        return raw


def big_attachment_mail(sender: Person, attachment_bytes: int, seed: int = 7) -> bytes:
    """A small text mail with one binary (incompressible) attachment of ``attachment_bytes``, base64."""
    data = random.Random(seed).randbytes(attachment_bytes)
    return MailMaker(seed).mail(sender, size=1500, html=False,
                                attachment=("Pruefbericht_Anlage_2025.pdf", "application/pdf", data))


def progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


# --- SMTP load: client processes ---

def _smtp_client_main(conn: Any, index: int, per_client: int, warmup: int, size: int, seed: int) -> None:
    """One client process: builds its messages once, then on each ("run", port) connects, sends the
    warm-up messages, reports ready, waits for "go", sends its messages over one connection."""
    import smtplib
    import time

    people = People(seed + index)
    firms = [people.firm() for _ in range(20)]
    senders = [people.person(people.rng.choice(firms) if people.rng.random() < 0.7 else None) for _ in range(100)]
    maker = MailMaker(seed * 1000 + index)
    mails = [(s.email, maker.mail(s, size=size + maker.rng.randint(-150, 150)))
             for s in (senders[k % len(senders)] for k in range(per_client + warmup))]
    conn.send(("built", sum(len(m) for _, m in mails[warmup:])))
    while True:
        cmd = conn.recv()
        if cmd is None:
            return
        _, port = cmd
        failures: list[str] = []
        with smtplib.SMTP("127.0.0.1", port, timeout=300) as client:
            client.ehlo("client.bench.example")
            for sender, raw in mails[:warmup]:
                client.sendmail(sender, [CRM], raw)
            conn.send("ready")
            assert conn.recv() == "go"
            ok = 0
            t0 = time.monotonic()
            for sender, raw in mails[warmup:]:
                try:
                    client.sendmail(sender, [CRM], raw)
                    ok += 1
                except smtplib.SMTPException as exc:
                    failures.append(str(exc)[:200])
            t1 = time.monotonic()
        conn.send((t0, t1, ok, failures[:5], len(failures)))


@dataclass
class LoadResult:
    rate: float
    elapsed: float
    accepted: int
    failed: int
    failures: list[str]


class SmtpClientPool:
    """``clients`` processes (spawned once, reused for every round), each with one smtplib connection."""

    def __init__(self, clients: int, per_client: int, *, warmup: int = 5, size: int = 3000, seed: int = 42) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # no fork of a process that runs server threads
        self.conns = []
        self.procs = []
        for index in range(clients):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_smtp_client_main, args=(child, index, per_client, warmup, size, seed),
                               daemon=True, name=f"bench-smtp-client-{index}")
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        self.message_bytes = 0
        for conn in self.conns:
            _, nbytes = self._recv(conn, 120)
            self.message_bytes += nbytes
        self.messages = clients * per_client

    def _recv(self, conn: Any, timeout: float) -> Any:
        if not conn.poll(timeout):
            raise RuntimeError("an SMTP client process did not answer in time")
        return conn.recv()

    def run(self, port: int) -> LoadResult:
        for conn in self.conns:
            conn.send(("run", port))
        for conn in self.conns:
            if self._recv(conn, 120) != "ready":
                raise RuntimeError("SMTP client not ready")
        for conn in self.conns:
            conn.send("go")
        results = [self._recv(conn, 900) for conn in self.conns]
        start = min(r[0] for r in results)
        end = max(r[1] for r in results)
        accepted = sum(r[2] for r in results)
        failures = [f for r in results for f in r[3]]
        failed = sum(r[4] for r in results)
        return LoadResult(accepted / (end - start), end - start, accepted, failed, failures)

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(None)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


class SinkServer:
    """A bare aiosmtpd SMTP server whose handler answers 250 at once: the ceiling for any SMTP listener
    written on aiosmtpd. Same shape as CRM Inbox's listener: own event loop in a background thread."""

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    def __init__(self, host: str = "127.0.0.1", max_message_bytes: int = 26_214_400) -> None:
        import asyncio
        import threading

        self.host = host
        self.max_message_bytes = max_message_bytes
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bench-sink", daemon=True)
        self._server: Any = None
        self.port = 0

    def start(self) -> int:
        import asyncio

        from aiosmtpd.smtp import SMTP

        handler = self.Handler()

        def factory() -> SMTP:
            return SMTP(handler, data_size_limit=self.max_message_bytes, enable_SMTPUTF8=True, decode_data=False,
                        timeout=300)

        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            self.loop.create_server(factory, self.host, 0), self.loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def stop(self) -> None:
        import asyncio

        async def shutdown() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

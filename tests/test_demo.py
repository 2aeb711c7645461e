"""The demo: believable data through the real core, every part of the CRM shown, one language per demo, a
login that works, and a command line that says what it does."""

from __future__ import annotations

import argparse
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work, upgrade
from crm_inbox.demo import (
    CALL_SUBJECTS_DE,
    CALL_SUBJECTS_EN,
    COMPANIES,
    COMPANIES_EN,
    REMINDER_TITLES_DE,
    REMINDER_TITLES_EN,
    DemoLogin,
    build_demo,
    is_empty,
    language_from_environment,
)
from crm_inbox.models import (
    Attachment,
    Call,
    Company,
    CompanyPhone,
    Contact,
    ContactPhone,
    InboundMessage,
    InboundState,
    Interaction,
    InteractionContact,
    InteractionKind,
    Reminder,
    Ticket,
    TicketState,
)
from tests.conftest import make_settings, make_token
from tests.serveproc import ROOT, config_file


def count(session, *where, model=Interaction) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(model).where(*where))


@dataclass
class Demo:
    settings: Settings
    factory: sessionmaker[Session]
    login: DemoLogin
    took: float
    records: list[logging.LogRecord]  # what was logged at INFO and above while the demo was built


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _database(pg_url: str | None, directory: Path, name: str) -> Iterator[str]:
    """A database of this module's own (built once, read by many tests): a SQLite file, or a schema of its
    own on PostgreSQL (the per-test fixtures empty the shared one)."""
    if not pg_url:
        yield f"sqlite:///{directory / f'{name}.db'}"
        return
    schema = f"crm_demo_{os.getpid()}_{name}"
    admin = make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"}) \
        .render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


def _built(pg_url: str | None, directory: Path, language: str) -> Iterator[Demo]:
    for url in _database(pg_url, directory, language):
        settings = make_settings(url, directory / f"instance-{language}")
        engine = make_engine(url)
        upgrade(engine)
        factory = make_sessionmaker(engine)
        with factory() as session:
            assert is_empty(session)
        # As `serve` runs it: INFO and above reach the log (pytest alone would leave the root at WARNING).
        root, keep = logging.getLogger(), _Keep()
        level = root.level
        root.setLevel(logging.INFO)
        root.addHandler(keep)
        try:
            started = time.monotonic()
            login = build_demo(factory, settings, language=language)
            took = time.monotonic() - started
        finally:
            root.removeHandler(keep)
            root.setLevel(level)
        yield Demo(settings, factory, login, took, keep.records)
        engine.dispose()


@pytest.fixture(scope="module")
def german(pg_url: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    yield from _built(pg_url, tmp_path_factory.mktemp("demo-de"), "de")


@pytest.fixture(scope="module")
def english(pg_url: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    if pg_url:
        pytest.skip("runs in the SQLite pass: the English demo differs from the German in its words, not in what "
                    "it asks of the database")
    yield from _built(pg_url, tmp_path_factory.mktemp("demo-en"), "en")


@pytest.fixture(params=["de", "en"])
def demo(request: pytest.FixtureRequest, pg_url: str | None) -> Demo:
    # pg_url: the demo is built on this pass's database (named here, as getfixturevalue hides it from pytest)
    return request.getfixturevalue({"de": "german", "en": "english"}[request.param])


def api_client(demo: Demo):  # type: ignore[no-untyped-def]
    from web import create_app

    app = create_app(demo.settings, demo.factory)
    app.config["TESTING"] = True
    token = make_token(demo.factory, f"reader-{time.monotonic_ns()}@beispiel-firma.de", "readonly")
    return app.test_client(), {"Authorization": f"Bearer {token}"}


def test_demo_fills_an_empty_database_and_its_login_works(german: Demo):
    login, settings = german.login, german.settings
    assert isinstance(login, DemoLogin)
    assert login.email.endswith("@" + settings.mail.staff_domains[0])
    assert german.took < 90  # about 5 s on SQLite; generous for slow CI disks and PostgreSQL

    with german.factory() as session:
        assert not is_empty(session)
        assert count(session, model=Company) >= 12
        assert count(session, model=Contact) >= 45
        mails = count(session, Interaction.kind == InteractionKind.EMAIL, Interaction.inbound_message_id.is_not(None))
        assert mails >= 250
        # every mail went through intake and processing; one fails on purpose (see the triage test)
        assert count(session, model=InboundMessage) == mails + 1
        assert count(session, InboundMessage.state != InboundState.PROCESSED, model=InboundMessage) == 1
        assert count(session, Interaction.kind == InteractionKind.EMAIL, Interaction.inbound_message_id.is_(None)) == 0
        assert count(session, Interaction.kind == InteractionKind.CALL) >= 60
        assert count(session, Interaction.kind == InteractionKind.NOTE) >= 20
        assert count(session, Interaction.html.is_not(None)) >= 1
        assert count(session, model=Attachment) >= 5
        # everything about a person shows up on somebody's timeline; what does not waits in triage
        busiest = session.execute(
            select(InteractionContact.contact_id).group_by(InteractionContact.contact_id)
            .order_by(func.count().desc(), InteractionContact.contact_id).limit(1)).scalar_one()
        some_company = session.execute(select(Company.id).order_by(Company.id).limit(1)).scalar_one()

    from web import create_app

    client = create_app(settings, german.factory).test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post("/login", data={"email": login.email, "password": login.password,
                                           "csrf_token": token.group(1)})
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard"

    listing = client.get("/contacts").get_data(as_text=True)
    assert "Katrin Vogel" in listing  # the admin is logged in
    assert "Next" in listing  # more than one page of people
    assert "Müller Maschinenbau GmbH" in client.get(f"/companies/{some_company}").get_data(as_text=True)

    timeline = client.get(f"/contacts/{busiest}").get_data(as_text=True)
    assert "email" in timeline and "Full mail" in timeline
    assert timeline.count('class="item kind-') >= 10  # a busy contact has a real history

    # the umlauts and free-mail people are there, and phone numbers are findable however typed
    assert "gmx.de" in client.get("/contacts", query_string={"q": "gmx.de"}).get_data(as_text=True)


def test_demo_has_open_tickets_mail_waiting_in_triage_and_a_failed_message(demo: Demo):
    with demo.factory() as session:
        states = dict(session.execute(select(Ticket.state, func.count()).group_by(Ticket.state)).all())
    assert states.get(TicketState.NEW, 0) + states.get(TicketState.OPEN, 0) > 0  # waiting for staff
    assert states.get(TicketState.PENDING, 0) > 0  # a staff reply (BCC) made it pending
    assert states.get(TicketState.SOLVED, 0) == 1

    client, auth = api_client(demo)
    waiting = client.get("/api/v1/interactions", query_string={"unassigned": "1"}, headers=auth).get_json()
    forwards = [item for item in waiting["items"] if item["kind"] == "email"]
    assert len(forwards) >= 2
    reasons = " ".join(item["attribution_reason"] for item in forwards)
    assert "2 contact(s) named" in reasons  # namesakes at two companies: the CRM does not guess
    assert "left for triage" in reasons

    failed = client.get("/api/v1/inbound", query_string={"state": "failed"}, headers=auth).get_json()["items"]
    assert [item["error"] for item in failed] == [
        f"message has more than {demo.settings.mail.max_parts} MIME parts"]


def test_demo_has_a_sales_pipeline_with_quotes_and_an_order(demo: Demo):
    from crm_inbox.models import Opportunity, Order, Product, Quote, QuoteState

    with demo.factory() as session:
        assert session.scalar(select(func.count()).select_from(Product)) >= 5
        stages = set(session.scalars(select(Opportunity.stage)))
        assert {"qualified", "needs_analysis", "won"} <= stages
        quotes = session.scalars(select(Quote)).all()
        assert {QuoteState.DRAFT, QuoteState.FINAL, QuoteState.SUPERSEDED, QuoteState.ACCEPTED} <= \
            {q.state for q in quotes}
        assert any(q.version == 2 and q.label.endswith("-2") for q in quotes)
        numbered = sorted(q.number for q in quotes if q.number and q.version == 1)
        assert numbered and all(n.startswith("AN-") for n in numbered)
        assert all(q.document_id for q in quotes if q.state != QuoteState.DRAFT)  # each has its PDF
        order = session.scalars(select(Order)).first()
        assert order is not None and order.number.startswith("AB-") and order.gross_total > 0


def test_demo_calls_come_from_phone_events_like_a_webhook_makes_them(demo: Demo):
    client, auth = api_client(demo)
    calls = client.get("/api/v1/calls", query_string={"limit": "500"}, headers=auth).get_json()["items"]
    assert len(calls) >= 80
    assert all(c["source"] == "demo" and c["interaction_id"] for c in calls)
    assert len({c["external_call_id"] for c in calls}) == len(calls)
    assert any(c["answered"] and c["talk_seconds"] for c in calls)
    assert any(c["staff_id"] for c in calls)  # the extension tells who took it
    owed = client.get("/api/v1/calls", query_string={"callback": "1"}, headers=auth).get_json()["items"]
    assert owed and all(c["missed"] for c in owed)
    unknown = client.get("/api/v1/calls", query_string={"unassigned": "1"}, headers=auth).get_json()["items"]
    assert unknown

    with demo.factory() as session:
        # every call on a timeline has its call behind it
        assert count(session, Interaction.kind == InteractionKind.CALL,
                     ~Interaction.id.in_(select(Call.interaction_id).where(Call.interaction_id.is_not(None)))) == 0
        # a missed call owes a call-back reminder
        assert count(session, Reminder.reason == "missed_call", model=Reminder) >= len(owed)


def test_every_person_has_a_direct_number_of_their_own(demo: Demo):
    with demo.factory() as session:
        numbers = session.execute(select(ContactPhone.contact_id, ContactPhone.raw, ContactPhone.e164)).all()
        switchboards = set(session.execute(select(CompanyPhone.e164)).scalars())
        people_with_company = set(session.execute(
            select(Contact.id).where(Contact.company_id.is_not(None))).scalars())
    assert all(e164 for _, _, e164 in numbers), [raw for _, raw, e164 in numbers if not e164]
    owners: dict[str, set[int]] = {}
    for contact_id, _, e164 in numbers:
        owners.setdefault(e164, set()).add(contact_id)
    assert {e164: ids for e164, ids in owners.items() if len(ids) > 1} == {}
    assert not switchboards & set(owners)
    with_number = {contact_id for contact_id, _, _ in numbers}
    assert people_with_company <= with_number  # everybody at a company has a direct dial


def test_one_language_per_demo(german: Demo, english: Demo):
    def texts(demo: Demo) -> tuple[list[str], list[str], list[str], list[str]]:
        with demo.factory() as session:
            return (list(session.execute(select(Interaction.subject).where(
                        Interaction.kind == InteractionKind.CALL)).scalars()),
                    list(session.execute(select(Reminder.title).where(Reminder.reason == "manual")).scalars()),
                    list(session.execute(select(Company.name)).scalars()),
                    list(session.execute(select(Interaction.subject).where(
                        Interaction.kind == InteractionKind.EMAIL)).scalars()))

    def starts(subjects: list[str], templates: dict[tuple[bool, bool], str]) -> list[str]:
        prefixes = tuple(t.split("{")[0] for t in templates.values() if not t.startswith("{"))
        suffixes = tuple(t.split("}")[1] for t in templates.values() if t.startswith("{"))
        return [s for s in subjects if s.startswith(prefixes) or s.endswith(suffixes)]

    calls, reminders, companies, mails = texts(german)
    assert len(starts(calls, CALL_SUBJECTS_DE)) == len(calls) > 0
    assert starts(calls, CALL_SUBJECTS_EN) == []
    assert reminders and all(r.startswith(REMINDER_TITLES_DE) for r in reminders)
    assert not any(r.startswith(REMINDER_TITLES_EN) for r in reminders)
    assert not set(companies) & {c[0] for c in COMPANIES_EN}
    assert not [m for m in mails if m and re.search(r"\b(Quotation|Invoice|Delivery status|Complaint)\b", m)]

    calls, reminders, companies, mails = texts(english)
    assert len(starts(calls, CALL_SUBJECTS_EN)) == len(calls) > 0
    assert starts(calls, CALL_SUBJECTS_DE) == []
    assert reminders and all(r.startswith(REMINDER_TITLES_EN) for r in reminders)
    assert not any(r.startswith(REMINDER_TITLES_DE) for r in reminders)
    assert not set(companies) & {c[0] for c in COMPANIES}
    assert not [m for m in mails if m and re.search(r"\b(Anfrage|Bestellung|Rechnung|Lieferung|AW:|WG:)", m)]
    with english.factory() as session:
        names = " ".join(session.execute(select(Contact.name)).scalars())
    assert not re.search("[äöüßÄÖÜ]", names)


def test_seeding_logs_no_line_per_message(demo: Demo):
    """Intake, worker, tickets and calls log each message at INFO: while seeding they keep quiet, so the
    service's start-up lines and the demo's block are not buried. Warnings still show."""
    info = [r.getMessage() for r in demo.records if r.levelno == logging.INFO and r.name.startswith("crm_inbox")]
    assert info == []
    warnings = [r.getMessage() for r in demo.records if r.levelno == logging.WARNING]
    assert any("MIME parts" in w for w in warnings)  # the message that fails on purpose
    assert logging.getLogger("crm_inbox").level == logging.NOTSET  # restored: serve logs as always


def test_the_same_seed_gives_the_same_people_and_mail(english: Demo, settings, tmp_path):
    from crm_inbox.config import replace

    def snapshot(some_factory):  # type: ignore[no-untyped-def]
        with some_factory() as session:
            return (sorted(session.execute(select(Contact.name)).scalars(), key=str),
                    sorted(session.execute(select(Interaction.subject)).scalars(), key=str))

    # The module's English demo was built with the default seed; a second one with that seed matches it.
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = make_engine(other_url)
    try:
        upgrade(engine)
        second = build_demo(make_sessionmaker(engine), replace(settings, database={"url": other_url}),
                            language="en")
        assert snapshot(english.factory) == snapshot(make_sessionmaker(engine))
    finally:
        engine.dispose()
    assert english.login.email == second.email
    assert english.login.password != second.password  # never a well-known demo password


# --- the command line -------------------------------------------------------------------------------------

def test_demo_language_follows_the_environment_unless_chosen():
    assert language_from_environment({"LANG": "de_DE.UTF-8"}) == "de"
    assert language_from_environment({"LANG": "de_AT.UTF-8", "LC_ALL": "en_GB.UTF-8"}) == "en"  # LC_ALL wins
    assert language_from_environment({"LC_ALL": "de_CH"}) == "de"
    assert language_from_environment({"LANG": "C.UTF-8"}) == "en"
    assert language_from_environment({}) == "en"


def test_the_english_demo_office_is_in_london_unless_configured_otherwise(settings: Settings):
    from crm_inbox.config import replace
    from crm_inbox.demo import regional_settings

    english = regional_settings(settings, "en")
    assert (english.phone.default_region, english.reminders.timezone) == ("GB", "Europe/London")
    german = regional_settings(settings, "de")
    assert (german.phone.default_region, german.reminders.timezone) == ("DE", "Europe/Berlin")
    chosen = replace(settings, phone={"default_region": "IE"}, reminders={"timezone": "Europe/Dublin"},
                     company={"name": "Dublin Tools Ltd"})
    assert regional_settings(chosen, "en") == chosen  # the configuration's choice stands
    # Without a configured company, the demo's own prints the quotes' letterhead, in the demo's country.
    assert (english.company.name, english.company.country) == ("Example Engineering Ltd", "GB")
    assert german.company.register_court == "Amtsgericht München"


def _read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float) -> list[str]:
    """Output lines up to the one containing ``marker``; read from the descriptor itself, since a buffered
    reader may hold several lines that the selector no longer reports."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    received = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline and selector.select(deadline - time.monotonic()):
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            received += chunk
            lines = received.decode(errors="replace").splitlines()
            done = [i for i, line in enumerate(lines) if marker in line]
            if done:
                return lines[:done[0] + 1]
    raise AssertionError(f"no {marker!r} within {timeout} s:\n" + received.decode(errors="replace"))


def test_demo_prints_its_block_last_once_the_service_is_up(tmp_path: Path):
    """The login, the web address, the SMTP port and how to stop come after serve's start-up lines."""
    config = config_file(tmp_path, "demo", "sqlite:///unused.db", web={"host": "127.0.0.1"})
    instance = tmp_path / "demo"
    instance.mkdir()
    engine = make_engine(f"sqlite:///{instance / 'demo-en.db'}")  # an existing demo: served as it is
    upgrade(engine)
    with unit_of_work(make_sessionmaker(engine)) as session:
        session.add(Company(name="Thompson & Hale Ltd", origin="demo"))
    engine.dispose()
    (instance / "demo-en-login.txt").write_text("kate.morgan@example-trading.co.uk\nsecret-demo-pw\n")

    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANG": "en_GB.UTF-8", "LC_ALL": ""}
    proc = subprocess.Popen([sys.executable, "-m", "crm_inbox", "--config", str(config), "demo"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        lines = _read_until(proc, "Ctrl-C stops it.", 120)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert lines[0].startswith("Demo language: en (from the LANG/LC_ALL environment")
    listening = [i for i, line in enumerate(lines) if "listening on" in line]
    block = next(i for i, line in enumerate(lines) if line.startswith("CRM Inbox demo (English data"))
    assert len(listening) == 2 and max(listening) < block  # web and SMTP said they listen, then the block
    assert lines[block + 1] == "  Login:  kate.morgan@example-trading.co.uk / secret-demo-pw"
    assert re.fullmatch(r"  Web:    http://127\.0\.0\.1:\d+/\?lang=en", lines[block + 2])
    assert re.match(r"  SMTP:   127\.0\.0\.1:\d+ \(staff BCC to crm@beispiel-firma\.de", lines[block + 3])
    assert lines[block + 4:] == ["Ctrl-C stops it."]
    assert proc.returncode == 0


def _actions(parser: argparse.ArgumentParser, path: str = "crm-inbox") -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        yield path, action
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")


def test_every_command_line_argument_has_help():
    from crm_inbox.cli import _parser

    missing = [f"{path}: {action.dest}" for path, action in _actions(_parser())
               if not action.help or action.help == argparse.SUPPRESS]
    assert missing == []
    # and every subcommand says what it is for in the list of commands
    unexplained = [f"{path}: {choice.dest}" for path, action in _actions(_parser())
                   if isinstance(action, argparse._SubParsersAction)
                   for choice in action._choices_actions if not choice.help]
    assert unexplained == []


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crm_inbox", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)


def test_serve_help_says_what_it_starts_and_which_settings_matter():
    out = _run("serve", "--help").stdout
    for part in ("SMTP listener", "web app", "REST API", "worker", "reminder scheduler", "IMAP poller",
                 "retention"):
        assert part in out
    for key in ("[smtp] host, port", "[web] host, port, base_url", "[database] url", "[mail] crm_addresses",
                "[mail] support_addresses", "[mail] staff_domains", "[[imap.accounts]]"):
        assert key in out


def test_version_prints_the_installed_version():
    from importlib.metadata import version

    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"crm-inbox {version('crm-inbox')}"


def test_user_add_says_what_password_the_user_gets(settings: Settings, tmp_path: Path):
    usage = " ".join(_run("user", "add", "--help").stdout.split())
    assert "cannot log in to the web app until an admin sets one" in usage
    config = config_file(tmp_path, "users", settings.database.url)
    result = _run("--config", str(config), "user", "add", "paula.neu@beispiel-firma.de", "--name", "Paula Neu")
    assert result.returncode == 0, result.stderr
    assert "no password: cannot log in to the web app until an admin sets one" in result.stdout


def test_the_demo_fills_every_report_with_believable_figures(german: Demo):
    """Issue #20's "done when" on the demo: refreshed into its store, each report's default view (as the page
    opens it) shows its figures, staff-work ones included (the demo's teams are big enough), and a few
    figures read as a person would check them."""
    from crm_inbox.analytics.model import StaffPolicy
    from crm_inbox.analytics.refresh import refresh
    from crm_inbox.analytics.reports.catalog import run
    from crm_inbox.analytics.store import open_store
    from crm_inbox.erp.overdue import today
    from web.reports.filters import default_period, parse_filters

    settings = german.settings
    assert refresh(settings, full=True).mode == "full"
    con = open_store(settings.analytics.store_path(settings.service.instance_dir))
    try:
        reports = {name: run(name, con, parse_filters(name, {}, today(settings)), StaffPolicy())
                   for name in ("service", "phone", "sales", "customers")}
    finally:
        con.close()
    for name, report in reports.items():
        assert report.filters.start == default_period(name, today(settings))[0]
        withheld = [f.key for f in report.figures if f.suppressed]
        empty = [f.key for f in report.figures if not f.rows]
        assert not withheld and not empty, (name, withheld, empty)

    def column(report: str, figure: str, key: str) -> list[object]:
        fig = reports[report].figure(figure)
        index = [c.key for c in fig.columns].index(key)
        return [row[index] for row in fig.rows]

    assert sum(v for v in column("service", "tickets_per_week", "opened") if isinstance(v, int)) > 10
    rates = [v for v in column("phone", "answer_rate", "answer_rate") if isinstance(v, float)]
    assert rates and all(50 <= v <= 100 for v in rates)  # a staffed hotline answers most calls
    assert "A" in column("customers", "abc_classes", "abc_class")
    sent = column("customers", "campaign_responses", "sent")
    assert sent and all(isinstance(v, int) and v > 0 for v in sent)

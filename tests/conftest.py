"""Fixtures: a fresh database per test (SQLite by default, PostgreSQL when
CRM_INBOX_TEST_DATABASE_URL is set), settings, the Flask app and an API token."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jinja2 import BytecodeCache, Environment
from jinja2.bccache import Bucket
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import Settings, replace
from crm_inbox.db import make_engine, make_sessionmaker, unit_of_work, upgrade
from crm_inbox.models import Base
from crm_inbox.staff.service import add_staff, create_token

PG_URL_ENV = "CRM_INBOX_TEST_DATABASE_URL"

try:  # the fuzz tests' budget: bounded, so every CI run stops by itself in about a minute per database
    from hypothesis import HealthCheck
    from hypothesis import settings as hypothesis_settings

    hypothesis_settings.register_profile(
        "ci", max_examples=150, deadline=None, database=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much])
    # A longer local hunt: HYPOTHESIS_PROFILE=long pytest tests/test_fuzz_*.py
    hypothesis_settings.register_profile("long", parent=hypothesis_settings.get_profile("ci"), max_examples=5000)
    hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis comes with the test extra; without it only the fuzz tests cannot run
    pass

def _cheap_password_hashes() -> None:
    """Argon2 at its lowest cost in the test processes (one pass over 8 KiB, one thread; salt and hash keep
    their full length). The production cost (RFC 9106 low-memory: 64 MiB, three passes, four threads) takes
    0.3-0.4 s of both cores per hash and again per login, and hundreds of tests add staff with passwords and
    log in: what they check is who gets in, never how long hashing takes. A hash names its own parameters,
    so a serve subprocess (with the production hasher) verifies these too."""
    from argon2 import PasswordHasher

    import crm_inbox.staff.service as staff_service

    staff_service._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


_cheap_password_hashes()


def _reuse_url_builders() -> None:
    """Each test's Flask app compiles the same ~270 URL rules, and werkzeug generates and compiles Python code
    for each rule's two URL builders: half of ``create_app``'s 90 ms, in 600 tests per pass. Without
    defaults a builder is made from the rule's parsed parts alone (it reads the rule's converters when
    called), so one made for an equal rule of an earlier app is the same function. Rules with defaults are
    built as werkzeug builds them."""
    from werkzeug.routing import Rule

    build = Rule._compile_builder
    built: dict[tuple[Any, ...], Any] = {}

    def compile_builder(rule: Rule, append_unknown: bool = True) -> Any:
        if rule.defaults:
            return build(rule, append_unknown)
        key = (type(rule), rule.rule, tuple(rule._trace), append_unknown)
        if key not in built:
            built[key] = build(rule, append_unknown)
        return built[key]

    Rule._compile_builder = compile_builder  # type: ignore[method-assign]


_reuse_url_builders()
SHARED = Path(__file__).resolve().parents[2] / "shared"
MAIL_SAMPLES = SHARED / "mail-samples" / "mail-parser"


def shared_samples() -> list[Path]:
    """The mail samples in ../shared/ beside the checkout. They add tests; everything the suite needs is in the
    repository, so where they are absent a test skips with the reason, and fails only in CI (CI=true), which
    always has them."""
    samples = sorted(MAIL_SAMPLES.glob("*.eml"))
    if len(samples) < 20:
        reason = f"the shared mail samples are not checked out beside the repository ({MAIL_SAMPLES})"
        if os.environ.get("CI"):
            pytest.fail(reason + ": CI must run these tests")
        pytest.skip(reason)
    return samples

CRM = "crm@beispiel-firma.de"
SUPPORT = "support@beispiel-firma.de"


# The files that take longest (measured: their tests start serve processes, build demo data or fuzz), run
# first. With two workers each taking whole files (--dist loadfile), a long file dealt out last keeps one
# worker busy for minutes while the other idles; dealt out first, the short files fill in around it.
# scripts/test passes --no-loadscope-reorder, or xdist would deal files out by their number of tests instead.
SLOW_FILES_FIRST = (  # by their measured total, the larger of the SQLite and the PostgreSQL pass
    "test_crash.py", "test_demo.py", "test_imap.py", "test_fuzz_atheris.py", "test_smtp.py",
    "test_openapi_fuzz.py", "test_tickets.py", "test_pages.py", "test_serve_limits.py", "test_outage.py",
    "test_reminders_serve.py", "test_fuzz_webhooks.py", "test_robots.py", "test_web_security.py",
    "test_search.py", "test_smtp_limits.py", "test_intake_process.py", "test_calls.py", "test_hostile.py",
    "test_sessions.py", "test_api.py", "test_serve.py", "test_fuzz_mail.py", "test_ingest.py",
)


# A test that uses none of these touches no database (a parser, the totals, a PDF, a policy table).
DATABASE_FIXTURES = frozenset({"database_url", "pg_url", "_schema"})
# Tests that use a database, but check what does not depend on which: they run in the SQLite pass only.
SQLITE_PASS_ONLY = {
    "browser": "the browser's side of the pages (scripts, CSP, what renders); each page's database side is "
               "checked in both passes by the Flask page tests",
    "test_serve_limits.py": "the listeners' connection and descriptor limits, the same on either database",
    "test_the_same_seed_gives_the_same_people_and_mail": "the demo's seeding is deterministic whatever the "
                                                         "database; the demo itself is built in both passes",
    # 16 services started and stopped: the DATA reader refuses a false end of data before anything is stored;
    # storing SMTP mail is checked in both passes by the rest of test_smtp.py.
    "test_no_false_end_of_data_ends_the_message": "SMTP smuggling is the DATA reader's, the same on either "
                                                  "database",
    **dict.fromkeys(
        ("test_sessions_beyond_the_cap_get_421_and_a_freed_slot_is_used_again",
         "test_one_client_address_cannot_take_every_session", "test_a_trusted_relay_is_capped_only_by_the_total",
         "test_an_idle_client_gets_421_and_is_closed", "test_a_slow_sender_is_not_cut_off_while_data_keeps_coming",
         "test_more_than_100_recipients_get_452"),
        "the SMTP listener's session, idle and recipient limits, the same on either database (running out of "
        "descriptors is tested in both: database connections use them too)"),
    **dict.fromkeys(
        ("test_wrong_password_is_one_clear_line", "test_starttls_against_a_server_without_it_is_one_clear_line",
         "test_tls_against_a_plain_text_port_is_one_clear_line", "test_missing_folder_is_one_clear_line",
         "test_implicit_tls_and_starttls_with_a_private_certificate",
         "test_a_silently_dead_connection_during_idle_is_noticed_within_bounded_time",
         "test_the_connection_killed_during_idle_is_re_established", "test_without_idle_the_poller_polls",
         "test_the_server_restarted_while_the_poller_runs"),
        "the IMAP connection (TLS, login, IDLE, reconnecting), the same on either database; storing and processing "
        "fetched mail, restarts and crashes of the import are tested in both passes by the rest of test_imap.py"),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
    if os.environ.get(PG_URL_ENV):
        # The PostgreSQL pass is for what the database changes: a test without one ran in the SQLite pass
        # already, on the same code, and would only repeat itself (the MIME fuzzers alone cost two minutes).
        skip = pytest.mark.skip(reason="needs no database: it runs in the SQLite pass")
        for item in items:
            if not DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
                item.add_marker(skip)
            why = next((w for key, w in SQLITE_PASS_ONLY.items()
                        if key in (item.path.parent.name, item.path.name, item.originalname)), None)
            if why:
                item.add_marker(pytest.mark.skip(reason=f"runs in the SQLite pass: {why}"))


def pytest_report_header(config: pytest.Config) -> str:
    import os

    return f"database: {os.environ.get(PG_URL_ENV) or 'SQLite (a fresh file per test)'}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str | None]:
    """The PostgreSQL URL, pointed at a schema of this run's own, so parallel runs never collide."""
    import os

    base = os.environ.get(PG_URL_ENV)
    if not base:
        yield None
        return
    schema = f"crm_test_{os.getpid()}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    # synchronous_commit=off: a commit need not wait for the WAL's fsync (10 ms and more on a busy disk).
    # Only a crash of the PostgreSQL server itself could lose such a commit, which no test does; what every
    # process sees after a commit stays the same.
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema} -csynchronous_commit=off"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(scope="session")
def _schema(tmp_path_factory: pytest.TempPathFactory, pg_url: str | None) -> Iterator[str]:
    """Migrate once per run: a template SQLite file, or this run's PostgreSQL schema."""
    if pg_url:
        engine = make_engine(pg_url)
        upgrade(engine)
        engine.dispose()
        yield pg_url
    else:
        template = tmp_path_factory.mktemp("schema") / "template.db"
        engine = make_engine(f"sqlite:///{template}")
        upgrade(engine)
        engine.dispose()
        yield str(template)


@pytest.fixture(scope="session")
def _pg_cleaner(_schema: str, pg_url: str | None) -> Iterator[Engine | None]:
    """One connection per worker that empties the schema before each test."""
    if not pg_url:
        yield None
        return
    engine = make_engine(pg_url, pool_size=1)
    yield engine
    engine.dispose()


def _empty_pg_schema(engine: Engine) -> None:
    """Every table empty and every id sequence back at its start, as a fresh schema would be.

    DELETE rather than TRUNCATE: TRUNCATE gives each of the ~30 tables and their indexes new files (0.2-0.6 s
    per test on a busy machine); deleting the few rows a test wrote takes milliseconds. Children before
    parents, so no foreign key is violated; if one still is (a cycle of a later model), TRUNCATE does it.
    """
    deletes = "; ".join(f"DELETE FROM {t.name}" for t in reversed(Base.metadata.sorted_tables))
    restart = ("SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false)"
               " FROM pg_sequences WHERE schemaname = current_schema()")
    dbapi_integrity_error = engine.dialect.loaded_dbapi.IntegrityError
    try:
        with engine.begin() as conn:
            # Through the driver's cursor without parameters: psycopg sends it as one simple query then,
            # all statements in one round trip.
            cursor = conn.connection.cursor()
            cursor.execute(f"{deletes}; {restart}")
            cursor.close()
    except (IntegrityError, dbapi_integrity_error):
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def database_url(_schema: str, pg_url: str | None, _pg_cleaner: Engine | None, tmp_path: Path) -> str:
    if pg_url:
        assert _pg_cleaner is not None
        _empty_pg_schema(_pg_cleaner)
        return pg_url
    db = tmp_path / "crm.db"
    shutil.copy(_schema, db)
    return f"sqlite:///{db}"


def make_settings(database_url: str, instance: Path, **sections: dict[str, Any]) -> Settings:
    base = replace(
        Settings(),
        service={"instance_dir": str(instance)},
        database={"url": database_url},
        smtp={"port": 0},
        mail={"crm_addresses": (CRM,), "support_addresses": (SUPPORT,), "staff_domains": ("beispiel-firma.de",)},
        analytics={"refresh_minutes": 0},  # no refresh process unless a test asks for one
    )
    return replace(base, **sections) if sections else base


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "instance")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database.url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def app(settings: Settings, factory: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    from web import create_app

    app = create_app(settings, factory)
    app.config["TESTING"] = True
    app.jinja_env.bytecode_cache = _COMPILED_TEMPLATES
    return app


class _TemplatesInMemory(BytecodeCache):
    """Compiled templates shared by the tests' apps: each app has a Jinja environment of its own, which compiled
    every template a test renders again (60 of the 90 ms CPU of seven pages). Keyed by the template's source
    (Jinja checks its checksum) and by the environment's settings that shape the compiled code, so an app
    configured otherwise never gets another's code."""

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def get_bucket(self, environment: Environment, name: str, filename: str | None, source: str) -> Bucket:
        shape = (sorted(environment.extensions), environment.autoescape, environment.finalize, environment.undefined,
                 environment.optimized, environment.block_start_string, environment.block_end_string,
                 environment.variable_start_string, environment.variable_end_string,
                 environment.comment_start_string, environment.comment_end_string,
                 environment.line_statement_prefix, environment.line_comment_prefix, environment.trim_blocks,
                 environment.lstrip_blocks, environment.newline_sequence, environment.keep_trailing_newline)
        key = hashlib.sha1(repr((name, filename, shape)).encode()).hexdigest()
        bucket = Bucket(environment, key, self.get_source_checksum(source))
        self.load_bytecode(bucket)
        return bucket

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


_COMPILED_TEMPLATES = _TemplatesInMemory()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


def make_token(factory: sessionmaker[Session], email: str, role: str = "admin", name: str = "Test User") -> str:
    with unit_of_work(factory) as session:
        return create_token(session, add_staff(session, email, name, role))


@pytest.fixture
def token(factory: sessionmaker[Session]) -> str:
    return make_token(factory, "anna.schmidt@beispiel-firma.de")


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def service(settings: Settings) -> Iterator[Any]:
    """``serve``'s SMTP listener and worker in this process (no web app), stopped after the test."""
    from crm_inbox.runtime import Service

    service = Service(settings, web=False)
    service.start()
    yield service
    service.stop()

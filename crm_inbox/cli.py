"""The ``crm-inbox`` command line (also ``python -m crm_inbox``)."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from crm_inbox import log_masking
from crm_inbox.config import ConfigError, Settings, load_settings, replace
from crm_inbox.db import SchemaOutdated, check_schema, make_engine, make_sessionmaker, schema_revisions, upgrade

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


class CliError(Exception):
    """An error worded for the operator; printed as one line, exit status 2."""


SERVE_DESCRIPTION = """\
Runs CRM Inbox until Ctrl-C or SIGTERM, in one process:
  - the SMTP listener: staff BCC or forward mail to the CRM addresses, customers write to the support
    addresses (your mail server relays copies there);
  - the web app and the REST API (/api/v1, with the phone webhooks);
  - the worker that processes stored mail (attribution, timeline, tickets);
  - the reminder scheduler (due reminders, call-backs) and the outbox that sends the CRM's own mail;
  - one IMAP poller per configured mailbox;
  - daily retention ([retention]).

Configuration keys that matter (TOML file from --config or $CRM_INBOX_CONFIG; see config/default.toml):
  [smtp] host, port                where the SMTP listener accepts mail
  [web] host, port, base_url       where the web app listens, and the address links in mail point to
  [database] url                   SQLite file or PostgreSQL (several serve processes may share one)
  [mail] crm_addresses             addresses staff BCC or forward to
  [mail] support_addresses         addresses that open support tickets
  [mail] staff_domains             your own mail domains: senders there are staff
  [[imap.accounts]]                mailboxes to fetch from instead of (or besides) SMTP
"""

USER_ADD_PASSWORD_HELP = ("ask for a password (or read one line from stdin). Without it the user gets no password "
                          "and cannot log in to the web app until an admin sets one on the staff page "
                          "(/admin/users); API tokens (crm-inbox token create) work either way")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crm-inbox")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm-inbox", description="CRM Inbox: a CRM that records customer "
                                     "contact by itself (mail, calls, tickets, reminders).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="print the installed version and exit")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration (default: $CRM_INBOX_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")

    sub.add_parser("serve", help="run the SMTP listener, the web app and API, the worker and the schedulers",
                   description=SERVE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo = sub.add_parser("demo", help="serve a demo database filled with believable demo data",
                          description="Creates instance/demo.db (German) or instance/demo-en.db (English) with "
                          "demo companies, people, mail, tickets, calls and reminders, then serves it like "
                          "`serve`. An existing demo database is served as it is.")
    demo.add_argument("--no-serve", action="store_true", help="only create the demo database")
    demo.add_argument("--language", choices=["de", "en"],
                      help="language of the demo data: de (German companies and texts, instance/demo.db) or en "
                      "(English-speaking companies, instance/demo-en.db); default: de if LC_ALL or LANG starts "
                      "with de, else en")

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True,
                                                                       metavar="ACTION", help="what to do")
    db.add_parser("upgrade", help="migrate the database to the newest schema")
    db.add_parser("status", help="show the database's schema revision")
    revision = db.add_parser("revision", help="(developers) generate a migration from the model changes")
    revision.add_argument("message", help="what the migration does (its file name and docstring)")

    ingest = sub.add_parser("ingest", help="import .eml files, mbox files and Maildir folders")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="an .eml file, an mbox file or a Maildir folder (several allowed)")
    ingest.add_argument("--json", action="store_true", help="print one JSON object per message")

    imap = sub.add_parser("imap", help="IMAP mailboxes").add_subparsers(dest="imap_command", required=True,
                                                                         metavar="ACTION", help="what to do")
    fetch = imap.add_parser("fetch", help="import what is new in the configured mailboxes once")
    fetch.add_argument("account", nargs="?", help="only this account (its name in [[imap.accounts]])")
    status = imap.add_parser("status", help="what was imported from each folder, and the last error")
    status.add_argument("--json", action="store_true", help="print one JSON object per folder")

    inbox = sub.add_parser("inbox", help="stored inbound mail").add_subparsers(
        dest="inbox_command", required=True, metavar="ACTION", help="what to do")
    failed = inbox.add_parser("failed", help="list messages that failed to process")
    failed.add_argument("--json", action="store_true", help="print one JSON object per message")
    retry = inbox.add_parser("retry", help="process failed messages again")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="inbound message ids (see `inbox failed`)")
    retry.add_argument("--all", action="store_true", help="retry every failed message")

    user = sub.add_parser("user", help="staff users").add_subparsers(dest="user_command", required=True,
                                                                      metavar="ACTION", help="what to do")
    add = user.add_parser("add", help="add a staff user", description="Adds a staff user. " +
                          USER_ADD_PASSWORD_HELP[0].upper() + USER_ADD_PASSWORD_HELP[1:] + ".")
    add.add_argument("email", help="the user's e-mail address (also their login)")
    add.add_argument("--name", required=True, help="the user's full name")
    add.add_argument("--role", choices=["admin", "staff", "readonly"], default="staff",
                     help="admin: also manages users and settings; staff: works with the data; readonly: only "
                     "reads (default: staff)")
    add.add_argument("--extension", help="phone extension")
    add.add_argument("--team", help="the team reports group this person's work under (never shown per person; "
                     "a team's figures show from [analytics] min_group_size people)")
    add.add_argument("--password", action="store_true", help=USER_ADD_PASSWORD_HELP)

    imp = sub.add_parser("import", help="import an address book (CSV, XLSX, vCard): preview, then confirm",
                         description="Imports contacts and companies from a CSV (any delimiter and encoding), "
                         "XLSX or vCard file. Shows the preview first (new / updates / duplicate / error per row) "
                         "and asks before writing; the whole import can be undone later (crm-inbox import --undo).")
    imp.add_argument("file", type=Path, nargs="?", metavar="FILE", help="the file to import")
    imp.add_argument("--mapping", type=Path, metavar="FILE",
                     help="a JSON column mapping (as the web page saves it); default: suggested from the headers")
    imp.add_argument("--dry-run", action="store_true", help="only show what would happen (nothing is written)")
    imp.add_argument("--yes", action="store_true", help="do not ask before writing")
    imp.add_argument("--undo", type=int, metavar="BATCH", help="undo the import with this number")

    privacy = sub.add_parser("privacy", help="data protection: export or erase a person, apply retention") \
        .add_subparsers(dest="privacy_command", required=True, metavar="ACTION", help="what to do")
    export = privacy.add_parser("export", help="everything stored about a person as a zip (JSON + files)")
    export.add_argument("contact", metavar="CONTACT", help="contact id or e-mail address")
    export.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="where to write the zip (default: contact-ID-export.zip here)")
    erase = privacy.add_parser("erase", help="erase a person everywhere (asks for confirmation)")
    erase.add_argument("contact", metavar="CONTACT", help="contact id or e-mail address")
    erase.add_argument("--yes", action="store_true", help="do not ask")
    privacy.add_parser("purge", help="apply [retention] now (serve does it daily)")

    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="token_command", required=True,
                                                                       metavar="ACTION", help="what to do")
    create = token.add_parser("create", help="create an API token (printed as the last line)")
    create.add_argument("email", help="the staff user the token acts as")
    create.add_argument("--name", help="what the token is for")

    from crm_inbox.analytics.command import add_parser as add_analytics  # the analytics package, kept apart
    add_analytics(sub)
    return parser


def _factory(settings: Settings, *, check: bool = True) -> sessionmaker[Session]:
    engine = make_engine(settings.database.url, echo=settings.database.echo)
    if check:
        check_schema(engine)
    return make_sessionmaker(engine)


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _block_stop_signals() -> None:
    """Call before any thread starts: threads inherit the mask, so SIGTERM/SIGINT reach only
    ``sigwait`` in the main thread. (A Python handler would not run while the main thread waits and
    the kernel hands the signal to another thread: the process would never stop.)"""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


SERVE_STOP_AFTER_DEATH_SECONDS = 60


def cmd_serve(settings: Settings, config_path: str | None = None) -> int:
    """Runs until SIGTERM/SIGINT (exit 0 after a clean stop) or until a component thread dies (exit 1 after
    stopping the rest, so that the supervisor, e.g. systemd, restarts a whole service)."""
    from crm_inbox.runtime import Service, Supervisor, raise_open_files_limit

    _block_stop_signals()
    raise_open_files_limit()
    supervisor = Supervisor()
    supervisor.install()
    service = Service(settings, config_path=config_path)  # the analytics refresh child reads the same file
    service.start()
    supervisor.watch_running()
    print(f"CRM Inbox: web http://{settings.web.host}:{service.web_port}/ · "
          f"SMTP {settings.smtp.host}:{service.smtp_port}", flush=True)
    death = supervisor.wait(STOP_SIGNALS)
    supervisor.uninstall()
    if death is None:
        service.stop()
        _leave(0)
    log = logging.getLogger("crm_inbox.serve")
    log.error("%s; stopping the rest, exit status 1", death)
    # The dead component may leave the stop waiting for it: bounded, and the exit happens regardless.
    stopping = threading.Thread(target=service.stop, name="serve-stop", daemon=True)
    stopping.start()
    stopping.join(SERVE_STOP_AFTER_DEATH_SECONDS)
    if stopping.is_alive():
        log.error("stopping did not finish within %d s; exiting anyway", SERVE_STOP_AFTER_DEATH_SECONDS)
        logging.shutdown()
        os._exit(1)
    _leave(1)


def _leave(status: int) -> NoReturn:
    """Exit once everything is stopped and flushed, without the interpreter's teardown (clearing modules,
    collecting the web app, SQLAlchemy, Babel: a second or two of a restart's or a test's time, doing nothing
    that matters: every thread has stopped and every engine is disposed)."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(status)


def demo_files(instance: Path, language: str) -> tuple[Path, Path]:
    """(database, login file) of the demo in ``language``: one file per language, so a German and an
    English demo never mix and each keeps its data."""
    suffix = "" if language == "de" else f"-{language}"
    return instance / f"demo{suffix}.db", instance / f"demo{suffix}-login.txt"


def demo_block(*, language: str, db_file: Path, login: list[str], web: str | None, smtp: str | None,
               crm_addresses: Sequence[str], support_addresses: Sequence[str]) -> str:
    """What a newcomer needs, printed last: the login, where to look and where to send mail, how to stop."""
    name = {"de": "German", "en": "English"}[language]
    lines = [f"CRM Inbox demo ({name} data, {db_file}; --language de|en for the other, in its own file)"]
    lines.append(f"  Login:  {login[0]} / {login[1]}" if len(login) == 2
                 else f"  Login:  see {db_file.with_name(db_file.stem + '-login.txt')}")
    if web:
        lines.append(f"  Web:    {web}?lang={language}")
    if smtp:
        lines.append(f"  SMTP:   {smtp} (staff BCC to {', '.join(crm_addresses)}; customers write to "
                     f"{', '.join(support_addresses) or 'no support address'})")
    if web or smtp:
        lines.append("Ctrl-C stops it.")
    return "\n".join(lines)


def cmd_demo(settings: Settings, no_serve: bool, language: str | None = None,
             config_path: str | None = None) -> int:
    from crm_inbox.db import unit_of_work
    from crm_inbox.demo import build_demo, is_empty, language_from_environment, regional_settings

    if language is None:
        language = language_from_environment(dict(os.environ))
        print(f"Demo language: {language} (from the LANG/LC_ALL environment; --language de|en to choose)",
              flush=True)
    db_file, login_file = demo_files(settings.instance_path, language)
    # Migrations and the scheduler's every-30-seconds job lines would push the demo's block out of sight.
    for noisy in ("alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # Demo addresses are made up: reminders show on the dashboard but mail nobody.
    # The demo's analytics store lies beside its database: never the file a real serve (or the other
    # language's demo) reports from.
    own_store = {} if settings.analytics.path else {
        "analytics": {"path": str(db_file.with_name(db_file.stem + "-analytics.duckdb"))}}
    settings = replace(regional_settings(settings, language), database={"url": f"sqlite:///{db_file}"},
                       reminders={"notify_by_mail": False}, **own_store)
    if not settings.web.base_url and settings.web.port:
        # campaign mail needs an absolute opt-out link; on the demo machine that is the local address
        settings = replace(settings, web={"base_url": f"http://{settings.web.host}:{settings.web.port}"})
    engine = make_engine(settings.database.url)
    upgrade(engine)  # the demo may upgrade its own file
    factory = make_sessionmaker(engine)
    with unit_of_work(factory) as session:
        empty = is_empty(session)
    if empty:
        print(f"Creating demo data in {db_file} … (one message fails on purpose: it has more MIME parts than "
              "[mail] max_parts allows; triage shows it)", flush=True)
        login = build_demo(factory, settings, language=language)
        login_file.touch(mode=0o600)  # the password is for this machine's user only
        login_file.write_text(f"{login.email}\n{login.password}\n")
    login_text = login_file.read_text().split() if login_file.exists() else []
    engine.dispose()
    block = partial(demo_block, language=language, db_file=db_file, login=login_text,
                    crm_addresses=settings.mail.crm_addresses, support_addresses=settings.mail.support_addresses)
    if no_serve:
        print(block(web=None, smtp=None), flush=True)
        return 0
    from crm_inbox.runtime import Service

    _block_stop_signals()
    service = Service(settings, config_path=config_path)
    service.start()
    # Last, after the service's start-up log lines: what the newcomer needs stays at the bottom.
    web = f"http://{settings.web.host}:{service.web_port}/" if service.web_port else None
    smtp = f"{settings.smtp.host}:{service.smtp_port}" if service.smtp_port else None
    print(block(web=web, smtp=smtp), flush=True)
    signal.sigwait(STOP_SIGNALS)
    service.stop()
    return 0


def cmd_db(settings: Settings, what: str, message: str | None = None) -> int:
    engine = make_engine(settings.database.url)
    if what == "revision":
        from alembic import command

        from crm_inbox.db import alembic_config

        check_schema(engine)  # autogenerate compares against an up-to-date database
        command.revision(alembic_config(engine), message=message, autogenerate=True)
        return 0
    if what == "upgrade":
        upgrade(engine)
    current, head = schema_revisions(engine)
    print(f"schema: {current or 'none'} (newest: {head})")
    return 0


def cmd_ingest(settings: Settings, paths: list[Path], as_json: bool) -> int:
    """Store the messages in batches (one commit each; a re-run finds what is stored by its content hash and
    processes what an interrupted run left unprocessed), process them with ``pipeline.pool.process_all`` as
    they are stored, and report each message in the order read, with its final state."""
    import queue
    from collections import deque
    from collections.abc import Iterator

    from sqlalchemy import select
    from sqlalchemy.exc import InterfaceError, OperationalError
    from tqdm import tqdm

    from crm_inbox.intake.store import Accepted, Envelope, commit_batch
    from crm_inbox.models import InboundMessage, InboundState
    from crm_inbox.pipeline.pool import process_all, processes_for_batch
    from crm_inbox.pipeline.runner import Outcome
    from handlers.files import UnreadableSource, batches, count_messages, read_messages

    for path in paths:  # before anything is stored: a typo in the last path must not leave a half import
        if not path.exists():
            raise CliError(f"{path}: no such file or folder")
    engine = _factory(settings).kw["bind"]
    envelope = Envelope(rcpt_to=settings.mail.crm_addresses[:1], source="file")
    counts = {"processed": 0, "duplicates": 0, "failed": 0, "ignored": 0}
    lock = threading.Lock()  # the pool may report outcomes from another thread than the one storing
    # Messages read but not yet reported: (source, what storing said, whether it awaits an outcome).
    unreported: deque[tuple[str, Accepted | Exception, bool]] = deque()
    outcomes: dict[int, Outcome] = {}
    queued: set[int] = set()  # ids handed to processing in this run (a message twice in the file: once)
    total = count_messages(paths)
    bar = tqdm(total=total, unit="msg", disable=as_json or not sys.stderr.isatty(), file=sys.stderr)
    processes = processes_for_batch(settings, total)

    def ready(stored: Accepted | Exception, awaited: bool) -> bool:
        return not awaited or (isinstance(stored, Accepted) and stored.inbound_id in outcomes)

    def report_ready() -> None:  # under ``lock``: each message in the order read, once its outcome is known
        while unreported and ready(*unreported[0][1:]):
            label, stored, awaited = unreported.popleft()
            result: dict[str, object]
            if isinstance(stored, Exception):
                counts["failed"] += 1
                result = {"source": label, "inbound_id": None, "duplicate": False, "state": "failed",
                          "interaction_id": None, "error": f"not stored: {stored}"}
            else:
                result = {"source": label, "inbound_id": stored.inbound_id, "duplicate": stored.duplicate}
                outcome = outcomes.pop(stored.inbound_id) if awaited else None
                elsewhere = outcome is not None and outcome.state is None and outcome.error is None
                if outcome is None or (stored.duplicate and elsewhere):
                    counts["duplicates"] += 1  # stored and processed before (or meanwhile by `serve`)
                elif elsewhere:  # a running `serve` took it first: processed once all the same
                    counts["elsewhere"] = counts.get("elsewhere", 0) + 1
                    result.update(state=None, interaction_id=None, error=None, processed_by="serve")
                else:
                    state = outcome.state.value if outcome.state else "received"
                    counts[state] = counts.get(state, 0) + 1
                    result.update(state=state, interaction_id=outcome.interaction_id, error=outcome.error)
            if as_json:
                print(json.dumps(result, ensure_ascii=False), flush=True)
            bar.update(1)

    def ended(outcome: Outcome) -> None:
        with lock:
            outcomes[outcome.inbound_id] = outcome
            report_ready()

    def stored_batches() -> Iterator[list[int]]:
        for batch in batches(read_messages(paths)):
            results = commit_batch(engine, [(raw, envelope) for _, raw in batch])
            for (label, _), stored in zip(batch, results, strict=True):
                if isinstance(stored, OperationalError | InterfaceError):  # the database, not the message
                    raise CliError(f"{label}: not stored, database error: {stored.orig}; run the import again "
                                   "(what is stored is recognised and not stored twice)")
            earlier = [r.inbound_id for r in results if isinstance(r, Accepted) and r.duplicate
                       and r.inbound_id not in queued]
            if earlier:  # stored by an interrupted run and never processed: processed now
                with engine.connect() as connection:
                    waiting = set(connection.execute(select(InboundMessage.id).where(
                        InboundMessage.id.in_(earlier), InboundMessage.state == InboundState.RECEIVED)).scalars())
            else:
                waiting = set()
            ids = []
            with lock:
                for (label, _), stored in zip(batch, results, strict=True):
                    awaited = isinstance(stored, Accepted) and stored.inbound_id not in queued and (
                        not stored.duplicate or stored.inbound_id in waiting)
                    if awaited and isinstance(stored, Accepted):
                        queued.add(stored.inbound_id)
                        ids.append(stored.inbound_id)
                    unreported.append((label, stored, awaited))
                report_ready()
            del batch, results  # hold one batch of raw mail at a time
            yield ids

    # Reading and storing run a few batches ahead in a thread of their own: the pool hands out ids without
    # waiting for a batch's hashing and commit, and processing never waits for the disk.
    ahead: queue.Queue[list[int] | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def hand_over(item: list[int] | BaseException | None) -> None:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.5)  # bounded: never more than a few batches stored ahead
                return
            except queue.Full:
                continue

    def storing() -> None:
        try:
            for ids in stored_batches():
                hand_over(ids)
                if stop.is_set():
                    return
            hand_over(None)
        except OSError as exc:  # a file that cannot be read: what came before it is imported
            hand_over(CliError(f"{exc.filename or 'reading'}: {exc.strerror or exc}; the messages before it are "
                               "imported, run the import again once it can be read"))
        except BaseException as exc:  # raised where the ids are taken, so the import stops with it
            hand_over(exc)

    def stored_ids() -> Iterator[int]:
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield from item

    storer = threading.Thread(target=storing, name="crm-inbox-ingest-store", daemon=True)
    storer.start()
    try:
        process_all(settings, stored_ids(), processes=processes, on_outcome=ended)
    except UnreadableSource as exc:
        raise CliError(str(exc)) from None
    finally:
        stop.set()
        storer.join()
        engine.dispose()
    with lock:
        for _, stored, awaited in unreported:  # not reported by the pool (it stopped early): still waiting
            if awaited and isinstance(stored, Accepted):
                outcomes.setdefault(stored.inbound_id, Outcome(stored.inbound_id, None, error="not processed"))
        report_ready()
    bar.close()
    summary = (f"processed: {counts['processed']}, duplicates: {counts['duplicates']}, "
               f"failed: {counts['failed']}, ignored: {counts['ignored']}")
    if counts.get("elsewhere"):
        summary += f", processed by a running serve: {counts['elsewhere']}"
    if counts.get("received"):
        summary += f", not processed (run the import again): {counts['received']}"
    print(summary, file=sys.stderr if as_json else sys.stdout)
    return 1 if counts["failed"] or counts.get("received") else 0


def cmd_imap_fetch(settings: Settings, account_name: str | None) -> int:
    """One pass over each account (or the named one): store, move/flag, and process what is stored while the
    next batches are fetched (``pipeline.pool.process_all``); a summary line each. A broken account gets one
    error line and does not stop the others."""
    import itertools
    import queue
    from collections import Counter
    from collections.abc import Iterator

    from tqdm import tqdm

    from crm_inbox.intake.store import Accepted
    from crm_inbox.pipeline.pool import process_all, processes_for_batch
    from crm_inbox.pipeline.runner import Outcome, waiting_ids
    from handlers.imap import Mailbox, describe

    accounts = settings.imap.accounts
    if account_name is not None:
        accounts = tuple(a for a in accounts if a.name == account_name)
        if not accounts:
            known = ", ".join(a.name for a in settings.imap.accounts) or "none configured"
            raise CliError(f"imap fetch: no account {account_name!r} in [[imap.accounts]] ({known})")
    if not accounts:
        raise CliError("imap fetch: no [[imap.accounts]] in the configuration")
    factory = _factory(settings)
    problems = 0

    def state(outcome: Outcome) -> str:
        return outcome.state.value if outcome.state else "received"

    # Stored by an earlier run that was stopped before processing them (without `serve`, nobody else will);
    # first, as they arrived first: a reply fetched now then threads into its original stored then.
    with factory() as session:
        waiting = waiting_ids(session, limit=100_000)
    if waiting:
        left = Counter(state(o) for o in process_all(settings, waiting,
                                                     processes=processes_for_batch(settings, len(waiting))))
        problems += left["failed"]
        print(f"stored earlier, processed now: {left['processed']}, failed: {left['failed']}, "
              f"ignored: {left['ignored']}", flush=True)
    for account in accounts:
        counts: Counter[str] = Counter()
        stored: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        crashed: list[BaseException] = []
        planned = [0]  # the folder's new messages: known (from ``progress``) before its first batch is stored

        def to_process(queued: queue.SimpleQueue[int | None] = stored) -> Iterator[int]:
            while (inbound_id := queued.get()) is not None:
                yield inbound_id

        def processing(counts: Counter[str] = counts, queued: queue.SimpleQueue[int | None] = stored,
                       crashed: list[BaseException] = crashed, planned: list[int] = planned) -> None:
            try:
                first = queued.get()
                if first is None:
                    return
                process_all(settings, itertools.chain([first], to_process(queued)),
                            processes=processes_for_batch(settings, planned[0]),
                            on_outcome=lambda o: counts.update([state(o)]))
            except BaseException as exc:  # re-raised by the main thread once fetching has stopped
                crashed.append(exc)

        def on_stored(accepted: Accepted, queued: queue.SimpleQueue[int | None] = stored) -> None:
            if not accepted.duplicate:
                queued.put(accepted.inbound_id)

        # Processing runs beside the fetching: a mailbox's history is fetched while its first batches are processed.
        processor = threading.Thread(target=processing, name="crm-inbox-imap-processing", daemon=True)
        processor.start()
        bar = tqdm(total=0, unit="msg", desc=account.name, disable=not sys.stderr.isatty(), file=sys.stderr)

        def progress(done: int, total: int, bar: Any = bar, planned: list[int] = planned) -> None:
            planned[0] = total
            bar.total = total
            bar.n = done
            bar.refresh()

        mailbox = Mailbox(account, settings, factory, on_stored=on_stored)
        try:
            mailbox.open()
            result = mailbox.sync(progress=progress)
        except Exception as exc:
            bar.close()
            print(f"crm-inbox: imap {account.name}: {describe(exc)}", file=sys.stderr)
            problems += 1
            continue
        finally:
            mailbox.close()
            stored.put(None)  # what was stored before any error is still processed
            processor.join()
            if crashed:
                raise crashed[0]
        bar.close()
        problems += counts["failed"]
        print(f"{account.name}: new: {len(result.new)}, duplicates: {result.duplicates}, skipped: {result.skipped}"
              f" · processed: {counts['processed']}, failed: {counts['failed']}, ignored: {counts['ignored']}"
              + (" · UIDVALIDITY changed, folder scanned again" if result.rescanned else ""), flush=True)
    return 1 if problems else 0


def cmd_imap_status(settings: Settings, as_json: bool) -> int:
    from sqlalchemy import select

    from crm_inbox.models import ImapFolder

    factory = _factory(settings)
    with factory() as session:
        rows = session.execute(select(ImapFolder).order_by(ImapFolder.account, ImapFolder.folder)).scalars().all()
    configured = {a.name for a in settings.imap.accounts}
    for row in rows:
        fields = {"account": row.account, "folder": row.folder, "configured": row.account in configured,
                  "uidvalidity": row.uidvalidity, "last_uid": row.last_uid, "imported": row.imported,
                  "uidvalidity_changes": row.uidvalidity_changes,
                  "last_success_at": row.last_success_at.isoformat() if row.last_success_at else None,
                  "last_error_at": row.last_error_at.isoformat() if row.last_error_at else None,
                  "last_error": row.last_error}
        if as_json:
            print(json.dumps(fields, ensure_ascii=False))
            continue
        ok = f"{row.last_success_at:%Y-%m-%d %H:%M}" if row.last_success_at else "never"
        error = f"\tlast error {row.last_error_at:%Y-%m-%d %H:%M}: {row.last_error}" if row.last_error_at else ""
        print(f"{row.account}\t{row.folder}\timported {row.imported}\tlast UID {row.last_uid}\t"
              f"UIDVALIDITY {row.uidvalidity or '-'}\tlast complete pass {ok}{error}")
    return 0


def cmd_inbox(settings: Settings, args: argparse.Namespace) -> int:
    from crm_inbox.pipeline.runner import failed_messages, retry_now

    factory = _factory(settings)
    if args.inbox_command == "failed":
        with factory() as session:
            rows = session.execute(failed_messages()).scalars().all()
            for m in rows:
                if args.json:
                    print(json.dumps({"id": m.id, "message_id": m.message_id, "received_at":
                                      m.received_at.isoformat(), "failed_step": m.failed_step,
                                      "error": m.error}, ensure_ascii=False))
                else:
                    print(f"{m.id}\t{m.received_at:%Y-%m-%d %H:%M}\t{m.message_id or '-'}\t"
                          f"{m.failed_step or '-'}\t{m.error}")
        if not args.json:
            print(f"{len(rows)} failed", file=sys.stderr)
        return 0
    if not args.ids and not args.all:
        raise CliError("inbox retry: name message ids or use --all")
    outcomes = retry_now(factory, settings, None if args.all else args.ids, None)
    if args.ids and {o.inbound_id for o in outcomes} != set(args.ids):
        missing = sorted(set(args.ids) - {o.inbound_id for o in outcomes})
        print(f"not failed or unknown, skipped: {', '.join(map(str, missing))}", file=sys.stderr)
    still_failed = 0
    for outcome in outcomes:
        state = outcome.state.value if outcome.state else "received"
        still_failed += state == "failed"
        print(f"{outcome.inbound_id}\t{state}\t{outcome.error or ''}".rstrip())
    return 1 if still_failed else 0


def cmd_user_add(settings: Settings, args: argparse.Namespace) -> int:
    from crm_inbox.db import unit_of_work
    from crm_inbox.errors import StaffExists, ValidationError
    from crm_inbox.staff.service import add_staff

    password = None
    if args.password:
        password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        if len(password) < 8:
            raise CliError("the password must have at least 8 characters")
    factory = _factory(settings)
    try:
        with unit_of_work(factory) as session:
            user = add_staff(session, args.email, args.name, args.role, args.extension, password,
                             team=args.team, actor=None)
            print(f"staff user {user.id}: {user.name} <{user.primary_email}> ({user.role.value})")
            if password is None:
                print("no password: cannot log in to the web app until an admin sets one on the staff page "
                      "(/admin/users); `crm-inbox token create` gives API access")
    except (StaffExists, ValidationError) as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    from crm_inbox.db import unit_of_work
    from crm_inbox.staff.service import create_token, find_staff

    factory = _factory(settings)
    with unit_of_work(factory) as session:
        user = find_staff(session, args.email)
        if user is None:
            raise CliError(f"no staff user with the address {args.email}")
        token = create_token(session, user, args.name, actor=None)
    print(f"API token for {args.email} (shown once, keep it safe):", file=sys.stderr)
    print(token)
    return 0


def cmd_privacy(settings: Settings, args: argparse.Namespace) -> int:
    from crm_inbox.db import unit_of_work, write_lock
    from crm_inbox.privacy import service as privacy
    from crm_inbox.private_files import open_private

    factory = _factory(settings)
    if args.privacy_command == "purge":
        from crm_inbox.privacy.retention import purge

        counts = purge(factory, settings)
        print(f"raw messages emptied: {counts['raw_messages']}, calls deleted: {counts['calls']}")
        return 0
    try:
        if args.privacy_command == "export":
            with unit_of_work(factory) as session:
                contact = privacy.find_contact(session, args.contact)
                path = args.output or Path(f"contact-{contact.id}-export.zip")
                partial = path.with_name(path.name + ".part")
                try:
                    with open_private(partial) as out:  # personal data: for this user's eyes only
                        privacy.write_export(session, contact.id, out, None, via="cli", settings=settings)
                    partial.replace(path)  # never a half-written archive under the real name
                except OSError as exc:  # a missing folder, no permission, a full disk: one line; the rollback
                    # takes the export's audit entry with it
                    partial.unlink(missing_ok=True)
                    raise CliError(f"privacy export: cannot write {path}: {exc.strerror or exc}") from None
            print(path)
            return 0
        with factory() as session:
            contact = privacy.find_contact(session, args.contact)
            contact_id, label = contact.id, contact.display_name
        if not args.yes:
            if not sys.stdin.isatty():
                raise CliError("privacy erase: confirm with --yes (no terminal to ask on)")
            answer = input(f"Erase contact {contact_id} ({label}) and everything about them? This cannot be "
                           "undone. Type yes: ")
            if answer.strip().lower() != "yes":
                print("nothing erased", file=sys.stderr)
                return 1
        with write_lock(factory), unit_of_work(factory) as session:
            counts = privacy.erase_contact(session, contact_id, None, settings=settings)
    except privacy.NotFound as exc:
        raise CliError(str(exc)) from None
    print(f"contact {contact_id} erased: " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log_masking.install()  # webhook and feed secrets in request paths never reach the log
    if args.command not in {"serve", "demo"}:
        logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        settings = load_settings(args.config)
        match args.command:
            case "serve":
                return cmd_serve(settings, args.config)
            case "demo":
                return cmd_demo(settings, args.no_serve, args.language, args.config)
            case "db":
                return cmd_db(settings, args.db_command, getattr(args, "message", None))
            case "ingest":
                return cmd_ingest(settings, args.paths, args.json)
            case "imap":
                if args.imap_command == "status":
                    return cmd_imap_status(settings, args.json)
                return cmd_imap_fetch(settings, args.account)
            case "inbox":
                return cmd_inbox(settings, args)
            case "user":
                return cmd_user_add(settings, args)
            case "token":
                return cmd_token_create(settings, args)
            case "privacy":
                return cmd_privacy(settings, args)
            case "import":
                from crm_inbox.imports.command import cmd_import  # only this command needs the readers
                return cmd_import(settings, args)
            case "analytics":
                from crm_inbox.analytics.command import cmd_analytics
                return cmd_analytics(settings, args)
    except (ConfigError, SchemaOutdated, CliError) as exc:
        print(f"crm-inbox: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())

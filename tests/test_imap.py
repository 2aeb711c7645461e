"""IMAP import against a real Dovecot (started per test on a free port, see tests/imap_server.py): every
message once, across restarts, reconnects and server-side changes."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_inbox.cli import main
from crm_inbox.config import ConfigError, Settings, load_settings, replace
from crm_inbox.intake.store import Envelope, commit_batch
from crm_inbox.models import ImapFolder, InboundMessage, InboundState, Interaction
from crm_inbox.pipeline.runner import process
from handlers.imap import ImapError, Mailbox
from handlers.imap_poller import Poller, reconnect_delay
from tests.conftest import CRM, SUPPORT
from tests.imap_server import Dovecot, Proxy, dovecot_available, self_signed_cert
from tests.mailfactory import make_mail

PASSWORD = "geheim-123"


def need_dovecot() -> None:
    """Skip without Dovecot on a developer's machine; fail in CI, where it must be installed."""
    if not dovecot_available():
        if os.environ.get("CI"):
            pytest.fail("Dovecot (/usr/sbin/dovecot, Debian package dovecot-imapd) is required in CI")
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd)")


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    need_dovecot()
    server = Dovecot()
    server.add_user("crm", PASSWORD)
    server.start()
    yield server
    server.cleanup()


def account(dovecot: Dovecot, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    secret = tmp_path / "imap-password"
    if not secret.exists():
        secret.write_text(PASSWORD + "\n")
    values = {"name": "crm-box", "host": "127.0.0.1", "port": dovecot.port, "tls": "none", "username": "crm",
              "password_file": str(secret)}
    values.update(overrides)
    return values


def with_accounts(settings: Settings, *accounts: dict[str, Any], **imap: Any) -> Settings:
    """The test settings plus ``[[imap.accounts]]``, read through the real config loader."""
    from crm_inbox.config import settings_from_mapping

    parsed = settings_from_mapping({"imap": {"accounts": list(accounts), **imap},
                                    "mail": {"crm_addresses": [CRM], "support_addresses": [SUPPORT]}}, {})
    return replace(settings, imap={"accounts": parsed.imap.accounts, **imap})


def seed(dovecot: Dovecot, mails: list[bytes], folder: str = "INBOX", when: datetime | None = None) -> None:
    with dovecot.client("crm") as conn:
        if not conn.folder_exists(folder):
            conn.create_folder(folder)
        for raw in mails:
            conn.append(folder, raw, msg_time=when)


def folder_uids(dovecot: Dovecot, folder: str) -> list[int]:
    with dovecot.client("crm") as conn:
        if not conn.folder_exists(folder):
            return []
        conn.select_folder(folder, readonly=True)
        return list(conn.search("ALL"))


def stored(factory: Any) -> int:
    with factory() as session:
        return session.execute(select(func.count()).select_from(InboundMessage)).scalar_one()


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def mails(n: int, prefix: str = "Anfrage") -> list[bytes]:
    return [make_mail(sender=f"Kunde {i} <kunde{i}@kunde-{i % 7}.example>", subject=f"{prefix} {i}",
                      body=f"Guten Tag,\n\nAnfrage Nummer {i}.\n\nGruß\nKunde {i}\n") for i in range(n)]


def one_pass(settings: Settings, factory: Any, **kwargs: Any) -> Any:
    box = Mailbox(settings.imap.accounts[0], settings, factory)
    box.open()
    try:
        return box.sync(**kwargs)
    finally:
        box.close()


@pytest.fixture
def running() -> Iterator[list[Poller]]:
    pollers: list[Poller] = []
    yield pollers
    for poller in pollers:
        poller.stop()


def start_poller(settings: Settings, factory: Any, running: list[Poller]) -> Poller:
    poller = Poller(settings.imap.accounts[0], settings, factory)
    running.append(poller)
    poller.start()
    return poller


# --- importing ---


def test_a_mailbox_of_500_messages_is_imported_in_batches_processed_and_moved(dovecot, settings, factory,
                                                                                tmp_path, capsys):
    seed(dovecot, mails(500))
    config = tmp_path / "crm.toml"
    config.write_text(f"""
[database]
url = '{settings.database.url}'
[mail]
crm_addresses = ['{CRM}']
support_addresses = ['{SUPPORT}']
[imap]
batch_size = 120
[[imap.accounts]]
name = "crm-box"
host = "127.0.0.1"
port = {dovecot.port}
tls = "none"
username = "crm"
password_file = "{account(dovecot, tmp_path)['password_file']}"
""")
    assert main(["--config", str(config), "imap", "fetch"]) == 0
    out = capsys.readouterr().out
    assert "crm-box: new: 500, duplicates: 0, skipped: 0 · processed: 500, failed: 0" in out
    with factory() as session:
        states = dict(session.execute(select(InboundMessage.state, func.count()).group_by(InboundMessage.state)).all())
        assert states == {InboundState.PROCESSED: 500}
        assert session.execute(select(func.count()).select_from(Interaction)).scalar_one() == 500
        assert set(session.execute(select(InboundMessage.source)).scalars()) == {"imap"}
        folder = session.execute(select(ImapFolder)).scalar_one()
        assert (folder.account, folder.folder, folder.last_uid, folder.imported) == ("crm-box", "INBOX", 500, 500)
    assert folder_uids(dovecot, "INBOX") == []
    assert len(folder_uids(dovecot, "CRM.Imported")) == 500  # "CRM/Imported" in the server's own separator
    assert main(["--config", str(config), "imap", "status"]) == 0
    assert re.match(r"crm-box\tINBOX\timported 500\tlast UID 500\tUIDVALIDITY \d+\tlast complete pass 20",
                    capsys.readouterr().out)
    # Fetched with BODY.PEEK[]: nobody's "unread" mark was taken away.
    with dovecot.client("crm") as conn:
        conn.select_folder("CRM.Imported", readonly=True)
        assert len(conn.search("UNSEEN")) == 500


def test_progress_is_reported_per_batch(dovecot, settings, factory, tmp_path):
    seed(dovecot, mails(25))
    settings = with_accounts(settings, account(dovecot, tmp_path), batch_size=10)
    seen: list[tuple[int, int]] = []
    one_pass(settings, factory, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 25), (10, 25), (20, 25), (25, 25)]  # the total first, before anything is fetched


def test_a_restart_in_the_middle_of_an_import_continues_where_it_stopped(dovecot, settings, factory, tmp_path):
    seed(dovecot, mails(60))
    settings = with_accounts(settings, account(dovecot, tmp_path), batch_size=20)
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done >= 20:
            stop.set()  # the service is stopped after the first batch

    first = one_pass(settings, factory, stop=stop, progress=progress)
    assert len(first.new) == 20 and stored(factory) == 20
    second = one_pass(settings, factory)
    assert (len(second.new), second.duplicates) == (40, 0)
    assert stored(factory) == 60
    assert folder_uids(dovecot, "INBOX") == []


def test_imap_fetch_killed_mid_import_and_run_again_stores_and_processes_everything_once(dovecot, settings,
                                                                                         factory, tmp_path):
    seed(dovecot, mails(150))
    config = tmp_path / "crm.toml"
    config.write_text(f"[database]\nurl = '{settings.database.url}'\n[mail]\ncrm_addresses = ['{CRM}']\n"
                      "[imap]\nbatch_size = 25\n[[imap.accounts]]\n" + "".join(
                          f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v}\n"
                          for k, v in account(dovecot, tmp_path).items()))
    command = [sys.executable, "-m", "crm_inbox", "--config", str(config), "imap", "fetch"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: stored(factory) > 0 or proc.poll() is not None, what="the first stored batch")
    finally:
        proc.kill()  # SIGKILL: no clean-up of any kind
        proc.wait(30)
    with factory() as session:  # it died with work undone: mail left to fetch, or stored mail not processed
        processed = session.execute(select(func.count()).select_from(InboundMessage)
                                    .where(InboundMessage.state == InboundState.PROCESSED)).scalar_one()
    assert stored(factory) > 0 and processed < 150
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    with factory() as session:
        rows = session.execute(select(InboundMessage.state, InboundMessage.deliveries)).all()
    assert len(rows) == 150
    assert {(state, deliveries) for state, deliveries in rows} == {(InboundState.PROCESSED, 1)}
    assert folder_uids(dovecot, "INBOX") == []
    assert len(folder_uids(dovecot, "CRM.Imported")) == 150


def fetch_config(settings: Settings, tmp_path: Path, acc: dict[str, Any], extra: str = "") -> Path:
    config = tmp_path / "crm.toml"
    config.write_text(f"[database]\nurl = '{settings.database.url}'\n[mail]\ncrm_addresses = ['{CRM}']\n"
                      f"support_addresses = ['{SUPPORT}']\n{extra}[[imap.accounts]]\n" + "".join(
                          f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v}\n" for k, v in acc.items()))
    return config


def requests_and_answers(n: int) -> list[bytes]:
    """``n`` requests to support, each answered by its customer right after it (likely the same batch)."""
    out = []
    for i in range(n):
        mid = f"<anfrage-{i}@kunde-{i}.example>"
        sender = f"Kunde {i} <kunde{i}@kunde-{i}.example>"
        out.append(make_mail(sender=sender, to=SUPPORT, subject=f"Anfrage {i}", message_id=mid))
        out.append(make_mail(sender=sender, to=SUPPORT, subject=f"AW: Anfrage {i}",
                             headers={"In-Reply-To": mid, "References": mid}))
    return out


def ticket_of(factory: Any, subject: str) -> int | None:
    with factory() as session:
        return session.execute(select(Interaction.ticket_id).where(Interaction.subject == subject)).scalar_one()


@pytest.mark.parametrize("processes", [1, 2])
def test_imap_fetch_of_a_mailbox_history_threads_each_answer_into_its_requests_ticket(dovecot, settings, factory,
                                                                                        tmp_path, capsys, processes):
    seed(dovecot, requests_and_answers(40))
    config = fetch_config(settings, tmp_path, account(dovecot, tmp_path),
                          f"[worker]\nprocesses = {processes}\n[imap]\nbatch_size = 15\n")
    assert main(["--config", str(config), "imap", "fetch"]) == 0
    assert "crm-box: new: 80, duplicates: 0, skipped: 0 · processed: 80, failed: 0" in capsys.readouterr().out
    for i in range(40):
        assert ticket_of(factory, f"Anfrage {i}") is not None
        assert ticket_of(factory, f"AW: Anfrage {i}") == ticket_of(factory, f"Anfrage {i}"), i


def test_mail_an_interrupted_fetch_left_unprocessed_goes_first_so_an_answer_fetched_now_threads_into_it(
        dovecot, settings, factory, engine, tmp_path, capsys):
    request, answer = requests_and_answers(1)
    # What a kill -9 after the commit of the request's batch leaves: stored, not processed.
    [stored_request] = commit_batch(engine, [(request, Envelope(rcpt_to=(CRM,), source="imap"))])
    seed(dovecot, [answer])
    config = fetch_config(settings, tmp_path, account(dovecot, tmp_path))
    assert main(["--config", str(config), "imap", "fetch"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "stored earlier, processed now: 1, failed: 0, ignored: 0"
    assert out[1].startswith("crm-box: new: 1, duplicates: 0, skipped: 0 · processed: 1, failed: 0")
    assert ticket_of(factory, "Anfrage 0") is not None
    assert ticket_of(factory, "AW: Anfrage 0") == ticket_of(factory, "Anfrage 0")
    with factory() as session:
        assert session.get(InboundMessage, stored_request.inbound_id).state == InboundState.PROCESSED


class Crash(BaseException):
    """The process dies (nothing catches a BaseException that is not an Exception)."""


def test_a_crash_between_commit_and_move_repeats_nothing_and_the_move_is_made_up(dovecot, settings, factory,
                                                                                 tmp_path):
    seed(dovecot, mails(5))
    settings = with_accounts(settings, account(dovecot, tmp_path))

    class CrashingBeforeMove(Mailbox):
        def _after_import(self, uids: list[int]) -> None:
            raise Crash

    box = CrashingBeforeMove(settings.imap.accounts[0], settings, factory)
    box.open()
    with pytest.raises(Crash):
        box.sync()
    box.close()
    assert stored(factory) == 5
    assert len(folder_uids(dovecot, "INBOX")) == 5  # committed, not moved

    again = one_pass(settings, factory)
    assert (again.new, again.duplicates) == ([], 0)
    with factory() as session:
        assert set(session.execute(select(InboundMessage.deliveries)).scalars()) == {1}
    assert folder_uids(dovecot, "INBOX") == []
    assert len(folder_uids(dovecot, "CRM.Imported")) == 5


def test_a_poll_with_nothing_new_imports_nothing_not_even_the_last_message(dovecot, settings, factory, tmp_path):
    seed(dovecot, mails(3))
    settings = with_accounts(settings, account(dovecot, tmp_path, after_import="flag"))
    assert len(one_pass(settings, factory).new) == 3
    # UID 4:* still answers UID 3 (RFC 3501): it must not come back as a duplicate delivery.
    again = one_pass(settings, factory)
    assert (again.new, again.duplicates, again.skipped) == ([], 0, 0)
    with factory() as session:
        assert set(session.execute(select(InboundMessage.deliveries)).scalars()) == {1}


def test_flag_mode_flags_and_leaves_the_messages(dovecot, settings, factory, tmp_path):
    seed(dovecot, mails(4))
    settings = with_accounts(settings, account(dovecot, tmp_path, after_import="flag"))
    one_pass(settings, factory)
    with dovecot.client("crm") as conn:
        conn.select_folder("INBOX", readonly=True)
        assert len(conn.search("SEEN")) == 4
        assert not conn.folder_exists("CRM.Imported")


def test_move_target_is_created_in_the_servers_hierarchy(dovecot, settings, factory, tmp_path):
    seed(dovecot, mails(2))
    settings = with_accounts(settings, account(dovecot, tmp_path, move_to="Archiv/CRM/Erledigt"))
    assert len(one_pass(settings, factory).new) == 2
    assert len(folder_uids(dovecot, "Archiv.CRM.Erledigt")) == 2
    assert folder_uids(dovecot, "INBOX") == []


def test_duplicate_messages_in_the_mailbox_are_stored_once(dovecot, settings, factory, tmp_path):
    original = make_mail(subject="Doppelt", message_id="<doppelt@kunde.example>")
    relayed = b"Received: from mx2.example by imap.example; Sat, 28 Nov 2026 10:00:00 +0000\r\n" + original
    seed(dovecot, [original, relayed, *mails(1)])
    settings = with_accounts(settings, account(dovecot, tmp_path))
    result = one_pass(settings, factory)
    assert (len(result.new), result.duplicates) == (2, 1)
    with factory() as session:
        row = session.execute(select(InboundMessage).where(InboundMessage.message_id == "<doppelt@kunde.example>")
                              ).scalar_one()
        assert row.deliveries == 2
    assert folder_uids(dovecot, "INBOX") == []  # both copies are done with


def test_uidvalidity_change_rescans_without_importing_twice_and_tells_the_operator(dovecot, settings, factory,
                                                                                   tmp_path, caplog):
    first = mails(3, "Erste")
    seed(dovecot, first, folder="Support")
    settings = with_accounts(settings, account(dovecot, tmp_path, folder="Support", after_import="flag",
                                               role="support"))
    assert len(one_pass(settings, factory).new) == 3
    with factory() as session:
        before = session.execute(select(ImapFolder.uidvalidity)).scalar_one()
    # The server rebuilds the folder (as Exchange does): same mail, new UIDs, new UIDVALIDITY.
    with dovecot.client("crm") as conn:
        conn.delete_folder("Support")
    seed(dovecot, [*first, *mails(1, "Neu")], folder="Support")

    with caplog.at_level(logging.WARNING, logger="handlers.imap"):
        result = one_pass(settings, factory)
    assert result.rescanned
    assert (len(result.new), result.duplicates) == (1, 3)
    assert stored(factory) == 4
    assert any("UIDVALIDITY" in r.getMessage() and "changed" in r.getMessage() for r in caplog.records)
    with factory() as session:
        folder = session.execute(select(ImapFolder)).scalar_one()
        assert folder.uidvalidity != before
        assert folder.uidvalidity_changes == 1
        assert "UIDVALIDITY changed" in (folder.last_error or "")
        assert folder.last_uid == 4
        assert all(to == [SUPPORT] for to in session.execute(select(InboundMessage.envelope_to)).scalars())


def test_first_import_can_be_limited_by_date_and_older_mail_is_never_picked_up(dovecot, settings, factory,
                                                                               tmp_path):
    seed(dovecot, mails(2, "Alt"), when=datetime(2020, 3, 1, tzinfo=UTC))
    seed(dovecot, mails(3, "Neu"))
    seed(dovecot, mails(1, "Alt, spät verschoben"), when=datetime(2020, 3, 2, tzinfo=UTC))
    settings = with_accounts(settings, account(dovecot, tmp_path, since="2025-01-01", after_import="flag"))
    assert len(one_pass(settings, factory).new) == 3
    assert one_pass(settings, factory).new == []
    seed(dovecot, mails(1, "Wirklich neu"))
    assert len(one_pass(settings, factory).new) == 1


def test_an_unparseable_message_is_kept_as_failed_and_not_fetched_again(dovecot, settings, factory, tmp_path):
    inner = EmailMessage()
    inner.set_content("tief")
    for _ in range(30):
        outer = EmailMessage()
        outer["Subject"] = "Verschachtelt"
        outer.make_mixed()
        outer.attach(inner)
        inner = outer
    inner["From"] = "kunde@kunde.example"
    inner["Message-ID"] = "<tief@kunde.example>"
    seed(dovecot, [inner.as_bytes().replace(b"\n", b"\r\n"), *mails(1)])
    settings = with_accounts(settings, account(dovecot, tmp_path, after_import="flag"))
    result = one_pass(settings, factory)
    outcomes = [process(factory, settings, i) for i in result.new]
    assert sorted(o.state.value for o in outcomes) == ["failed", "processed"]
    again = one_pass(settings, factory)
    assert (again.new, again.duplicates) == ([], 0)


def test_a_message_expunged_between_search_and_fetch_does_not_stop_the_batch(dovecot, settings, factory, tmp_path):
    seed(dovecot, mails(5))
    settings = with_accounts(settings, account(dovecot, tmp_path))

    class Racing(Mailbox):
        def _fetch_bodies(self, uids: list[int]) -> dict[int, bytes]:
            with dovecot.client("crm") as other:  # somebody deletes one message just now
                other.select_folder("INBOX")
                other.delete_messages([uids[2]])
                other.expunge()
            return super()._fetch_bodies(uids)

    box = Racing(settings.imap.accounts[0], settings, factory)
    box.open()
    try:
        result = box.sync()
    finally:
        box.close()
    assert (len(result.new), result.skipped) == (4, 1)
    assert len(folder_uids(dovecot, "CRM.Imported")) == 4


# --- the poller: IDLE, reconnects ---


def test_a_message_appended_while_idling_is_imported_within_seconds(dovecot, settings, factory, tmp_path, running):
    settings = with_accounts(settings, account(dovecot, tmp_path), idle_seconds=600)
    poller = start_poller(settings, factory, running)
    wait_until(lambda: poller.connects == 1, what="the poller to connect")
    with factory() as session:  # the first pass is done when the folder's row says so
        wait_until(lambda: session.execute(select(ImapFolder.last_success_at)).scalar() is not None)
    started = time.monotonic()
    seed(dovecot, mails(1))
    wait_until(lambda: stored(factory) == 1, timeout=30, what="the new message")
    assert time.monotonic() - started < 10
    assert poller.connects == 1  # IDLE told us; no reconnect, no renewal needed
    wait_until(lambda: folder_uids(dovecot, "INBOX") == [], what="the move")


def test_the_connection_killed_during_idle_is_re_established(dovecot, settings, factory, tmp_path, running):
    proxy = Proxy(dovecot.port)
    try:
        settings = with_accounts(settings, account(dovecot, tmp_path, port=proxy.port), idle_seconds=600)
        poller = start_poller(settings, factory, running)
        seed(dovecot, mails(1))
        wait_until(lambda: stored(factory) == 1, what="the first message")
        proxy.cut()
        wait_until(lambda: poller.connects == 2, timeout=30, what="the reconnect")
        seed(dovecot, mails(1, "Danach"))
        wait_until(lambda: stored(factory) == 2, timeout=30, what="the message after the reconnect")
    finally:
        proxy.close()


def test_a_silently_dead_connection_during_idle_is_noticed_within_bounded_time(dovecot, settings, factory, tmp_path,
                                                                               running):
    proxy = Proxy(dovecot.port)
    try:
        # Renew IDLE every 2 s, give a silent server 2 s: a dead path is noticed within about 4 s.
        settings = with_accounts(settings, account(dovecot, tmp_path, port=proxy.port), idle_seconds=2,
                                 timeout_seconds=2)
        poller = start_poller(settings, factory, running)
        wait_until(lambda: poller.connects == 1, what="the poller to connect")
        proxy.freeze()  # no FIN, no RST: the bytes just stop
        seed(dovecot, mails(1))
        started = time.monotonic()
        wait_until(lambda: stored(factory) == 1, timeout=30, what="the message over a new connection")
        assert time.monotonic() - started < 15
        assert poller.connects >= 2
    finally:
        proxy.close()


def test_the_server_restarted_while_the_poller_runs(dovecot, settings, factory, tmp_path, running, caplog):
    settings = with_accounts(settings, account(dovecot, tmp_path), reconnect_max_seconds=2)
    with caplog.at_level(logging.INFO, logger="handlers.imap"):
        poller = start_poller(settings, factory, running)
        seed(dovecot, mails(1))
        wait_until(lambda: stored(factory) == 1, what="the first message")
        dovecot.stop()
        wait_until(lambda: poller.last_error is not None, timeout=30, what="the poller to notice")
        dovecot.start()
        seed(dovecot, mails(1, "Nach dem Neustart"))
        wait_until(lambda: stored(factory) == 2, timeout=60, what="the message after the restart")
    assert poller.connects >= 2
    retries = [r.getMessage() for r in caplog.records if "trying again in" in r.getMessage()]
    assert retries and all(r.startswith("imap crm-box: ") for r in retries)
    assert len(retries) < 20  # backoff, not a spin


def test_without_idle_the_poller_polls(settings, factory, tmp_path, running):
    need_dovecot()
    server = Dovecot(extra_config="imap_capability = IMAP4rev1 UIDPLUS MOVE NAMESPACE")  # no IDLE
    server.add_user("crm", PASSWORD)
    server.start()
    try:
        with server.client("crm") as conn:
            assert not conn.has_capability("IDLE")
        settings = with_accounts(settings, account(server, tmp_path, poll_seconds=1))
        poller = start_poller(settings, factory, running)
        wait_until(lambda: poller.connects == 1, what="the poller to connect")
        seed(server, mails(2))
        wait_until(lambda: stored(factory) == 2, timeout=30, what="the next poll")
        seed(server, mails(1, "Später"))
        wait_until(lambda: stored(factory) == 3, timeout=30, what="the poll after that")
        assert poller.connects == 1 and poller.last_error is None
    finally:
        for poller in running:
            poller.stop()
        server.cleanup()


def test_backoff_doubles_up_to_the_cap():
    assert [reconnect_delay(n, 60) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert reconnect_delay(10_000, 300) == 300


# --- errors: one clear line per account ---


def run_fetch(settings: Settings, tmp_path: Path, accounts: list[dict[str, Any]], capsys: Any) -> tuple[int, str, str]:
    lines = [f"[database]\nurl = '{settings.database.url}'\n[mail]\ncrm_addresses = ['{CRM}']\n"
             "[imap]\ntimeout_seconds = 5\n"]
    for acc in accounts:
        lines.append("[[imap.accounts]]\n" + "".join(
            f"{k} = {v!r}\n" if isinstance(v, str) else f"{k} = {v}\n" for k, v in acc.items()))
    config = tmp_path / "fetch.toml"
    config.write_text("".join(lines).replace("'", '"'))
    code = main(["--config", str(config), "imap", "fetch"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_wrong_password_is_one_clear_line(dovecot, settings, tmp_path, capsys):
    wrong = tmp_path / "wrong"
    wrong.write_text("falsch")
    code, _, err = run_fetch(settings, tmp_path, [account(dovecot, tmp_path, password_file=str(wrong))], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        "crm-inbox: imap crm-box: login as crm at 127.0.0.1 failed: [AUTHENTICATIONFAILED] Authentication failed."]


def test_missing_folder_is_one_clear_line(dovecot, settings, tmp_path, capsys):
    code, _, err = run_fetch(settings, tmp_path, [account(dovecot, tmp_path, folder="Gibt/Es/Nicht")], capsys)
    assert code == 1
    assert err.strip().splitlines() == ["crm-inbox: imap crm-box: the folder 'Gibt/Es/Nicht' does not exist on "
                                        "127.0.0.1"]


def test_tls_against_a_plain_text_port_is_one_clear_line(dovecot, settings, tmp_path, capsys):
    code, _, err = run_fetch(settings, tmp_path, [account(dovecot, tmp_path, tls="tls")], capsys)
    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith(f"crm-inbox: imap crm-box: TLS handshake with 127.0.0.1:{dovecot.port} failed (")
    assert "Check tls = 'tls'" in line


def test_starttls_against_a_server_without_it_is_one_clear_line(dovecot, settings, tmp_path, capsys):
    code, _, err = run_fetch(settings, tmp_path, [account(dovecot, tmp_path, tls="starttls")], capsys)
    assert code == 1
    assert err.strip() == (f"crm-inbox: imap crm-box: 127.0.0.1:{dovecot.port} does not offer STARTTLS; "
                           'check tls = "starttls"')


def test_two_accounts_one_broken_the_other_imports(dovecot, settings, factory, tmp_path, capsys):
    seed(dovecot, mails(3))
    broken = account(dovecot, tmp_path, name="kaputt", port=dovecot.port, username="niemand")
    code, out, err = run_fetch(settings, tmp_path, [broken, account(dovecot, tmp_path)], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        "crm-inbox: imap kaputt: login as niemand at 127.0.0.1 failed: [AUTHENTICATIONFAILED] Authentication failed."]
    assert "crm-box: new: 3, duplicates: 0, skipped: 0 · processed: 3" in out
    assert stored(factory) == 3


def test_serve_runs_one_poller_per_account_and_a_broken_one_does_not_stop_the_other(dovecot, settings, factory,
                                                                                     tmp_path):
    good, broken = account(dovecot, tmp_path), account(dovecot, tmp_path, name="kaputt", username="niemand")
    accounts = "".join("[[imap.accounts]]\n" + "".join(f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v}\n"
                                                       for k, v in acc.items()) for acc in (broken, good))
    config = tmp_path / "serve.toml"
    config.write_text(f"[service]\ninstance_dir = '{tmp_path / 'instance'}'\n[database]\nurl = "
                      f"'{settings.database.url}'\n[web]\nport = 0\n[smtp]\nport = 0\n[mail]\n"
                      f"crm_addresses = ['{CRM}']\n[imap]\nreconnect_max_seconds = 2\n{accounts}")
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "crm_inbox", "--config", str(config), "serve"],
                                stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None and "CRM Inbox: web" in proc.stdout.readline()
        seed(dovecot, mails(2))

        def processed() -> bool:
            with factory() as session:
                return session.execute(select(func.count()).select_from(InboundMessage)
                                       .where(InboundMessage.state == InboundState.PROCESSED)).scalar_one() == 2

        wait_until(processed, timeout=60, what="both messages processed by serve")
        wait_until(lambda: "imap kaputt: login as niemand" in log_path.read_text(), what="the broken account's line")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert time.monotonic() - started < 20  # IDLE does not hold up the stop
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log_path.read_text()
    assert re.search(r"imap kaputt: login as niemand at 127\.0\.0\.1 failed: .*; trying again in \d+ s", text)
    assert "imap crm-box: stopped" in text and "Traceback" not in text


def test_implicit_tls_and_starttls_with_a_private_certificate(settings, factory, tmp_path):
    need_dovecot()
    cert, key = self_signed_cert(tmp_path)
    server = Dovecot(tls_cert=(cert, key))
    server.add_user("crm", PASSWORD)
    server.start()
    try:
        seed(server, mails(2))
        implicit = with_accounts(settings, account(server, tmp_path, tls="tls", port=server.tls_port,
                                                   ca_file=str(cert), after_import="flag"))
        assert len(one_pass(implicit, factory).new) == 2
        seed(server, mails(1, "Über STARTTLS"))
        starttls = with_accounts(settings, account(server, tmp_path, tls="starttls", ca_file=str(cert),
                                                   after_import="flag"))
        assert len(one_pass(starttls, factory).new) == 1
        untrusted = with_accounts(settings, account(server, tmp_path, tls="tls", port=server.tls_port))
        with pytest.raises(ImapError, match=r"TLS certificate of 127\.0\.0\.1:\d+ is not trusted"):
            one_pass(untrusted, factory)
    finally:
        server.cleanup()


# --- configuration ---


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


ACCOUNT = '[[imap.accounts]]\nname = "support"\nhost = "imap.example.com"\nusername = "support@example.com"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ACCOUNT + 'password = "x"\n', "config: [[imap.accounts]] 'support' password: a password must not be "
                                       "written in the config file; use password_env"),
        (ACCOUNT, "config: [[imap.accounts]] 'support': give exactly one of password_env or password_file"),
        (ACCOUNT + 'password_env = "A"\npassword_file = "/b"\n', "give exactly one of password_env or password_file"),
        (ACCOUNT + 'password_env = "A"\ntls = "ssl"\n',
         "config: [[imap.accounts]] 'support' tls: expected one of tls, starttls, none, got 'ssl'"),
        (ACCOUNT + 'password_env = "A"\nrole = "sales"\n', "role: expected one of crm, support, got 'sales'"),
        (ACCOUNT + 'password_env = "A"\nafter_import = "delete"\n', "after_import: expected one of move, flag"),
        (ACCOUNT + 'password_env = "A"\nport = "x"\n', "config: [[imap.accounts]] 'support' port: expected a whole"),
        (ACCOUNT + 'password_env = "A"\nsince = "yesterday"\n', "since: expected a date like 2026-01-31"),
        (ACCOUNT + 'password_env = "A"\nprot = 1\n', "config: unknown key [[imap.accounts]] 'support' prot"),
        (ACCOUNT + 'password_env = "A"\n' + ACCOUNT + 'password_env = "B"\n', "the name is used by another account"),
        ('[[imap.accounts]]\nhost = "h"\nusername = "u"\npassword_env = "A"\n',
         "config: [[imap.accounts]] #1: name is required"),
        (ACCOUNT + 'password_env = "A"\nmove_to = "INBOX"\nfolder = "INBOX"\n', "move_to must differ from folder"),
        (ACCOUNT + 'password_env = "A"\nafter_import = "flag"\nflag = ""\n', "flag is required with after_import"),
        ("[imap]\naccounts = 1\n", "config: [imap] accounts: expected [[imap.accounts]] tables"),
        ("[imap]\nidle_seconds = 0\n", "config: [imap] idle_seconds must be at least 1"),
        ("[mail]\nsupport_addresses = []\n" + ACCOUNT + 'password_env = "A"\nrole = "support"\n',
         "role = 'support' needs at least one address in [mail] support_addresses"),
    ],
)
def test_bad_imap_config_names_the_account_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ={})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_password_comes_from_the_environment_or_a_file_when_connecting(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("aus-datei\n")
    settings = load_settings(write(tmp_path, ACCOUNT + 'password_env = "SUPPORT_IMAP_PW"\n' + ACCOUNT.replace(
        '"support"', '"crm"') + f'password_file = "{secret}"\n'), environ={})
    env_account, file_account = settings.imap.accounts
    assert env_account.password({"SUPPORT_IMAP_PW": "aus-env"}) == "aus-env"
    assert file_account.password({}) == "aus-datei"
    with pytest.raises(ConfigError, match=r"the environment variable SUPPORT_IMAP_PW \(password_env\) is not set"):
        env_account.password({})
    assert (env_account.folder, env_account.after_import, env_account.move_to, env_account.effective_port) == (
        "INBOX", "move", "CRM/Imported", 993)


def test_accounts_cannot_come_from_the_environment(tmp_path):
    with pytest.raises(ConfigError, match="can only be set in the config file"):
        load_settings(None, environ={"CRM_INBOX_IMAP_ACCOUNTS": "x"})
    assert load_settings(None, environ={"CRM_INBOX_IMAP_IDLE_SECONDS": "120"}).imap.idle_seconds == 120

"""IMAP adapter (IMAPClient): import the mail of a mailbox the CRM is given, every message exactly once.

``Mailbox`` is one connection to one account: connect (implicit TLS, STARTTLS or plain), log in, select
the folder, import what is new in batches (``BODY.PEEK[]``, so nothing is marked seen before it is stored;
store and advance the folder's ``last_uid`` in one commit; only then move or flag), and wait for news with
IDLE, or by polling when the server has no IDLE. ``Poller`` runs that in a thread for ``crm-inbox serve``
and reconnects with capped exponential backoff after any error. The decisions (which UIDs, what a changed
UIDVALIDITY means) are pure functions in ``crm_inbox.intake.imap_folders``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.config import ConfigError, ImapAccount, ImapSettings, Settings
from crm_inbox.intake.imap_folders import (
    batches,
    begin_pass,
    load_state,
    plan_sync,
    record_success,
    store_batch,
    uids_to_fetch,
)
from crm_inbox.intake.store import Accepted, Envelope

log = logging.getLogger(__name__)

BATCH_BYTES = 32 << 20  # at most this much mail per FETCH round trip and commit
IDLE_TICK = 1.0  # IDLE is checked this often for a stop request
Progress = Callable[[int, int], None]  # (messages done, messages to do in this pass)


class ImapError(Exception):
    """An account's problem, worded for the operator in one line (login failed, no such folder, TLS)."""


def recipient_for(account: ImapAccount, settings: Settings) -> str:
    """The CRM address a mailbox stands for: its role's first address in ``[mail]``."""
    addresses = settings.mail.support_addresses if account.role == "support" else settings.mail.crm_addresses
    return addresses[0]


def describe(exc: BaseException) -> str:
    """One line for any connection-level error."""
    if isinstance(exc, ImapError | ConfigError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "the server did not answer in time (connection given up)"
    if isinstance(exc, IMAPClientAbortError):
        return f"connection lost: {exc}"
    if isinstance(exc, OSError):
        return f"connection lost: {exc.strerror or exc}"
    if isinstance(exc, SQLAlchemyError):
        return f"database error: {getattr(exc, 'orig', None) or exc}"
    text = str(exc).strip() or exc.__class__.__name__
    return " ".join(text.split())


@dataclass
class PassResult:
    """What one pass over a folder did."""

    new: list[int] = field(default_factory=list)  # inbound ids stored for the first time
    duplicates: int = 0  # already stored (a rescan, a copy of a message, a crash before the move)
    skipped: int = 0  # gone before FETCH, returned without a body, or larger than allowed
    rescanned: bool = False


class Mailbox:
    """One connection to one account's folder."""

    def __init__(self, account: ImapAccount, settings: Settings, factory: sessionmaker[Session], *,
                 on_stored: Callable[[Accepted], None] | None = None) -> None:
        self.account = account
        self.imap: ImapSettings = settings.imap
        self.factory = factory
        self.on_stored = on_stored
        self.max_message_bytes = settings.smtp.max_message_bytes
        self.envelope = Envelope(rcpt_to=(recipient_for(account, settings),), source="imap")
        self.client: IMAPClient | None = None
        self.folder = account.folder
        self.move_to = account.move_to
        self.uidvalidity = 0

    @property
    def name(self) -> str:
        return self.account.name

    # --- connecting ---

    def open(self) -> None:
        account = self.account
        host, port = account.host, account.effective_port
        context = None
        if account.tls != "none":
            try:
                context = ssl.create_default_context(cafile=account.ca_file or None)
            except OSError as exc:
                raise ImapError(f"cannot read ca_file {account.ca_file}: {exc.strerror or exc}") from None
        try:
            client = IMAPClient(host, port=port, ssl=account.tls == "tls", ssl_context=context,
                                timeout=self.imap.timeout_seconds)
        except ssl.SSLCertVerificationError as exc:
            raise ImapError(f"the TLS certificate of {host}:{port} is not trusted ({exc.verify_message}); "
                            "set ca_file for a private CA") from None
        except ssl.SSLError as exc:
            raise ImapError(f"TLS handshake with {host}:{port} failed ({exc.reason or exc}); does this port "
                            f"speak implicit TLS? Check tls = {account.tls!r}") from None
        except TimeoutError:
            hint = " (an implicit TLS port? then tls = \"tls\")" if account.tls != "tls" else ""
            raise ImapError(f"no IMAP greeting from {host}:{port} within {self.imap.timeout_seconds} s{hint}") from None
        except OSError as exc:
            raise ImapError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        except IMAPClientError as exc:
            raise ImapError(f"{host}:{port} does not answer like an IMAP server: {exc}") from None
        self.client = client
        _keepalive(client)
        if account.tls == "starttls":
            if not client.has_capability("STARTTLS"):
                raise ImapError(f"{host}:{port} does not offer STARTTLS; check tls = \"starttls\"")
            try:
                client.starttls(context)
            except ssl.SSLError as exc:
                raise ImapError(f"STARTTLS with {host}:{port} failed ({exc.reason or exc})") from None
        try:
            client.login(account.username, account.password())
        except LoginError as exc:
            raise ImapError(f"login as {account.username} at {host} failed: {_text(exc)}") from None
        self._resolve_folders()
        if account.after_import == "move":
            self._ensure_folder(self.move_to)
        self._select()

    def _resolve_folders(self) -> None:
        """Folders are configured with "/" between levels; the server may use another separator and put
        personal folders under a prefix ("INBOX." on Courier and Cyrus)."""
        assert self.client is not None
        prefix, delimiter = "", "/"
        try:
            personal = self.client.namespace().personal
            if personal:
                prefix, sep = personal[0]
                delimiter = sep.decode() if isinstance(sep, bytes) else (sep or "/")
        except IMAPClientError:  # no NAMESPACE: ask LIST for the separator
            listed = self.client.list_folders("", "")
            if listed and listed[0][1]:
                delimiter = listed[0][1].decode()
        prefix = prefix.decode() if isinstance(prefix, bytes) else (prefix or "")

        def server_name(name: str) -> str:
            name = name.strip("/")
            if name.upper() == "INBOX":
                return "INBOX"
            translated = delimiter.join(name.split("/"))
            if prefix and not translated.startswith(prefix) and not translated.upper().startswith("INBOX" + delimiter):
                translated = prefix + translated
            return translated

        self.folder = server_name(self.account.folder)
        self.move_to = server_name(self.account.move_to)

    def _ensure_folder(self, folder: str) -> None:
        assert self.client is not None
        if self.client.folder_exists(folder):
            return
        try:
            self.client.create_folder(folder)
        except IMAPClientError as exc:
            if not self.client.folder_exists(folder):  # another process may have just created it
                raise ImapError(f"cannot create the folder {folder!r} for imported mail: {_text(exc)}") from None
        log.info("imap %s: created the folder %r for imported mail", self.name, folder)

    def _select(self) -> None:
        assert self.client is not None
        try:
            selected = self.client.select_folder(self.folder)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            if not self.client.folder_exists(self.folder):
                raise ImapError(f"the folder {self.account.folder!r} does not exist on {self.account.host}") from None
            raise ImapError(f"cannot open the folder {self.account.folder!r}: {_text(exc)}") from None
        self.uidvalidity = int(selected[b"UIDVALIDITY"])
        # imaplib keeps every untagged response it was not asked for (EXPUNGE after each move, …); start each
        # pass clean, so the dict does not grow and an EXISTS seen later means mail arrived during the pass.
        self.client._imap.untagged_responses.clear()

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.socket().settimeout(5)  # a dead server must not hold up a shutdown
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):  # already gone
                client.shutdown()

    # --- importing ---

    def sync(self, stop: threading.Event | None = None, progress: Progress | None = None) -> PassResult:
        """Import everything new in the folder; returns what was done. Stops between batches on ``stop``."""
        client = self.client
        assert client is not None
        self._select()  # fresh UIDVALIDITY and a fresh view of the folder
        result = PassResult()
        with self.factory() as session:
            state = load_state(session, self.name, self.account.folder)
        plan = plan_sync(state, self.uidvalidity)
        if plan.rescan:
            log.warning("imap %s: UIDVALIDITY of %r changed from %s to %s; scanning the folder again "
                        "(messages already stored are not stored twice)", self.name, self.account.folder,
                        plan.previous_uidvalidity, self.uidvalidity)
            result.rescanned = True
        if state is None or plan.rescan or state.uidvalidity is None:
            begin_pass(self.factory, self.name, self.account.folder, plan, self.uidvalidity)
        criteria: list[object] = ["UID", f"{plan.after_uid + 1}:*"]
        limited = plan.first_import and bool(self.account.since)
        if limited:
            criteria += ["SINCE", date.fromisoformat(self.account.since)]
        uids = uids_to_fetch(client.search(criteria), plan.after_uid)
        if uids:
            log.info("imap %s: %d new message(s) in %r", self.name, len(uids), self.account.folder)
            self._import(uids, result, stop, progress)
        if self.account.after_import == "move" and plan.after_uid and (stop is None or not stop.is_set()):
            self._move_leftovers(plan.after_uid)
        if limited and (stop is None or not stop.is_set()):
            # Older mail left behind by ``since`` may have higher UIDs than the newest imported one: the
            # first import covers the whole folder as it is now, so later passes never pick it up.
            everything = uids_to_fetch(client.search(["UID", f"{plan.after_uid + 1}:*"]), plan.after_uid)
            if everything:
                store_batch(self.factory, self.name, self.account.folder, self.uidvalidity, [], self.envelope,
                            up_to_uid=max(everything))
        if stop is None or not stop.is_set():
            record_success(self.factory, self.name, self.account.folder)
        return result

    def _import(self, uids: list[int], result: PassResult, stop: threading.Event | None,
                progress: Progress | None) -> None:
        client = self.client
        assert client is not None
        sizes: dict[int, int] = {}
        for chunk in _chunks(uids):  # servers limit the command line (Dovecot: 64 KB)
            sizes.update((uid, int(data.get(b"RFC822.SIZE", 0)))
                         for uid, data in client.fetch(chunk, ["RFC822.SIZE"]).items())
        done = 0
        if progress is not None:
            progress(0, len(uids))  # the total before the first batch: how ``imap fetch`` sizes its processing
        for batch in batches(uids, sizes, self.imap.batch_size, BATCH_BYTES):
            if stop is not None and stop.is_set():
                return
            too_big = [uid for uid in batch if sizes.get(uid, 0) > self.max_message_bytes]
            for uid in too_big:
                log.warning("imap %s: message UID %d has %d bytes, more than [smtp] max_message_bytes; "
                            "left in the folder, not imported", self.name, uid, sizes[uid])
            bodies = self._fetch_bodies([uid for uid in batch if uid not in too_big and uid in sizes])
            stored_uids = sorted(bodies)
            result.skipped += len(batch) - len(stored_uids)
            # Commit first (messages + last_uid in one transaction), only then touch the server.
            accepted = store_batch(self.factory, self.name, self.account.folder, self.uidvalidity,
                                   [bodies[uid] for uid in stored_uids], self.envelope, up_to_uid=max(batch))
            bodies.clear()
            for item in accepted:
                if item.duplicate:
                    result.duplicates += 1
                else:
                    result.new.append(item.inbound_id)
            if stored_uids:
                self._after_import(stored_uids)
            if self.on_stored is not None:
                for item in accepted:
                    self.on_stored(item)
            done += len(batch)
            if progress is not None:
                progress(done, len(uids))

    def _move_leftovers(self, last_uid: int) -> None:
        """Messages at or below ``last_uid`` are stored; one still here was not moved (a crash between the
        commit and the move, or a failed move): move it now. Too large ones stay, as they were skipped."""
        client = self.client
        assert client is not None
        criteria: list[object] = ["UID", f"1:{last_uid}", "NOT", "LARGER", self.max_message_bytes]
        if self.account.since:
            criteria += ["SINCE", date.fromisoformat(self.account.since)]
        leftovers = [uid for uid in client.search(criteria) if uid <= last_uid]
        if leftovers:
            log.info("imap %s: moving %d message(s) stored earlier but not yet moved", self.name, len(leftovers))
            for chunk in _chunks(leftovers):
                self._after_import(chunk)

    def _fetch_bodies(self, uids: list[int]) -> dict[int, bytes]:
        """The raw messages of ``uids`` (one round trip). A message expunged meanwhile is simply not in the
        answer; if the server refuses the whole FETCH, the messages are fetched one by one so one bad
        message does not stop the rest; one without a body is asked for once more, then skipped."""
        client = self.client
        assert client is not None
        if not uids:
            return {}
        try:
            answer = client.fetch(uids, ["BODY.PEEK[]"])
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            if len(uids) == 1:
                log.warning("imap %s: UID %d cannot be fetched (%s); skipped", self.name, uids[0], _text(exc))
                return {}
            log.warning("imap %s: FETCH of %d messages refused (%s); fetching them one by one", self.name,
                        len(uids), _text(exc))
            bodies: dict[int, bytes] = {}
            for uid in uids:
                bodies.update(self._fetch_bodies([uid]))
            return bodies
        bodies = {}
        missing: list[int] = []
        for uid in uids:
            raw = answer.get(uid, {}).get(b"BODY[]")
            if raw:
                bodies[uid] = bytes(raw)
            elif uid in answer:
                missing.append(uid)
            else:
                log.info("imap %s: UID %d was removed from the folder before it could be fetched", self.name, uid)
        for uid in missing:
            raw = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]")
            if raw:
                bodies[uid] = bytes(raw)
            else:
                log.warning("imap %s: the server returned UID %d without its content; skipped", self.name, uid)
        return bodies

    def _after_import(self, uids: list[int]) -> None:
        """Move or flag what is stored. Failing here loses nothing: the UIDs are already below last_uid."""
        client = self.client
        assert client is not None
        try:
            if self.account.after_import == "flag":
                client.add_flags(uids, [self.account.flag], silent=True)
            elif client.has_capability("MOVE"):
                client.move(uids, self.move_to)
            else:
                client.copy(uids, self.move_to)
                client.add_flags(uids, [b"\\Deleted"], silent=True)
                if client.has_capability("UIDPLUS"):
                    client.uid_expunge(uids)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            log.warning("imap %s: %d stored message(s) could not be %s: %s", self.name, len(uids),
                        "flagged" if self.account.after_import == "flag" else f"moved to {self.move_to!r}",
                        _text(exc))

    # --- waiting ---

    def wait(self, stop: threading.Event) -> None:
        """Until the folder may have changed, ``stop`` is set, or ``idle_seconds`` have passed (IDLE), or
        ``poll_seconds`` (no IDLE). A dead connection shows as an error here within ``timeout_seconds``
        after the IDLE renewal at the latest."""
        client = self.client
        assert client is not None
        if client._imap.untagged_responses.pop("EXISTS", None):
            return  # mail arrived during the pass (reported with another command): IDLE would not repeat it
        if not client.has_capability("IDLE"):
            stop.wait(self.account.poll_seconds)
            return
        client.idle()
        deadline = time.monotonic() + self.imap.idle_seconds
        try:
            # Mail that arrived between the pass's SEARCH and IDLE is announced as IDLE starts, before the
            # server's "+ idling": imaplib files that EXISTS with the untagged responses, not idle_check's.
            if client._imap.untagged_responses.pop("EXISTS", None):
                return
            while not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                started = time.monotonic()
                responses = client.idle_check(timeout=min(IDLE_TICK, left))
                if any(_is_news(r) for r in responses):
                    break
                # Readable but nothing parsed: the server closed the connection (IMAPClient swallows the
                # EOF). Ending IDLE tells for sure; looping here would spin.
                if not responses and time.monotonic() - started < min(IDLE_TICK, left) / 2:
                    break
        finally:
            if stop.is_set():
                client.socket().settimeout(5)
            client.idle_done()


def _chunks(uids: list[int], size: int = 1000) -> list[list[int]]:
    return [uids[i:i + size] for i in range(0, len(uids), size)]


def _is_news(response: object) -> bool:
    """EXISTS (new mail), or BYE (the server is going away: reconnect)."""
    if not isinstance(response, tuple) or len(response) < 2:
        return False
    return response[1] == b"EXISTS" or response[0] == b"BYE"


def _text(exc: BaseException) -> str:
    text = str(exc)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return " ".join(text.split()) or exc.__class__.__name__


def _keepalive(client: IMAPClient) -> None:
    """TCP keepalive, so the kernel notices a peer that vanished without a FIN."""
    sock = client.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    except OSError:
        pass

"""Sending the mail the CRM writes itself, from the ``outgoing_mail`` table.

Mail staff write in the CRM (``correspondence``) carries the writer's name in From (the address stays ours, so
the customer's reply comes back into the CRM) and the attachments of its timeline entry (``interaction_id``).

``enqueue`` runs inside the unit of work that decides to send (so the mail exists exactly when the reason
for it was committed); ``send_pending`` claims rows one at a time and delivers them over SMTP. A row is
claimed with a conditional update, so two processes never send the same mail; a claim older than the
lease (a process died mid-send) is taken over. Both ways a mail may reach the relay twice (a claim taken
over; a timeout or a lost connection after the whole message was written, while the relay's answer was
awaited) mark it ``uncertain``.
"""

from __future__ import annotations

import email.policy
import logging
import re
import smtplib
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, object_session, sessionmaker

from crm_inbox.config import Settings
from crm_inbox.db import affected, insert_ignoring_conflicts, unit_of_work, write_lock
from crm_inbox.models import Attachment, OutboxState, OutgoingMail, utcnow

log = logging.getLogger(__name__)
RETRY_AFTER = timedelta(minutes=5)  # a failed mail waits this long before its next attempt
MAX_ATTEMPTS = 10


def lease(settings: Settings) -> timedelta:
    """How long a claim protects a mail being sent. A live sender finishes or fails well within twice the
    SMTP timeout (our mails are small), so an older claim belongs to a process that died mid-send: another
    round (after a restart, or another node) sends it then. Shorter would risk a double; longer, a late mail."""
    return timedelta(seconds=2 * settings.notifications.timeout_seconds + 5)


# Headers are folded only beyond RFC 5322's 998 characters: the default (78) turns a long word without spaces,
# such as the URL in List-Unsubscribe, into an RFC 2047 encoded-word, which no mailbox provider reads as a URL.
_POLICY = email.policy.default.clone(max_line_length=998)
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 field name: printable ASCII without ":" or space


def _one_line(text: str) -> str:
    """Header values copied from mail or staff input: CR/LF would inject headers, so they become spaces."""
    return " ".join(text.replace("\r", " ").replace("\n", " ").replace("\x00", "").split())


_ADDR_SPEC = re.compile(r"^[^\s@<>,;:\"()\[\]\\]+@[A-Za-z0-9\u0080-\uffff.-]+$")


def single_recipient(to: str) -> str | None:
    """``to`` when it is exactly one bare address; None for lists, display names, routes or line breaks,
    which would turn one notification into mail to somebody the CRM never meant to write to."""
    to = to.strip()
    return to if _ADDR_SPEC.match(to) and ".." not in to.rpartition("@")[2] else None


def new_message_id(settings: Settings, purpose: str) -> str:
    """A Message-ID in our own domain (the notification sender's)."""
    domain = settings.notifications.from_address.rpartition("@")[2] or "localhost"
    return make_msgid(idstring=purpose, domain=domain)


def row(settings: Settings, *, purpose: str, dedupe_key: str, to: str, subject: str, body: str,
        headers: dict[str, str] | None = None, message_id: str | None = None, interaction_id: int | None = None,
        from_name: str | None = None, html: str | None = None, from_address: str | None = None, held: bool = False,
        now: datetime | None = None) -> dict[str, Any] | None:
    """The ``outgoing_mail`` row of one mail, cleaned (one-line headers, one recipient), for ``enqueue`` or a
    bulk insert of many (a campaign); None when ``to`` is not one plain address."""
    if single_recipient(to) is None:
        log.warning("outgoing %s mail not queued: %r is not a single address", purpose, to[:200])
        return None
    headers = {name: value for name, value in (headers or {}).items() if _HEADER_NAME.match(name)}
    return {
        "purpose": purpose, "dedupe_key": dedupe_key[:200], "to_address": _one_line(to)[:320],
        "subject": _one_line(subject)[:998], "body": body,
        "headers": {k: _one_line(v) for k, v in headers.items()},
        "message_id": _one_line(message_id or new_message_id(settings, purpose)),
        "state": (OutboxState.HELD if held else OutboxState.PENDING).value, "attempts": 0,
        "created_at": now or utcnow(), "interaction_id": interaction_id,
        "from_name": _one_line(from_name)[:200] if from_name else None, "html": html,
        "from_address": _one_line(from_address)[:320] if from_address else None, "uncertain": False}


def enqueue(session: Session, settings: Settings, *, purpose: str, dedupe_key: str, to: str, subject: str, body: str,
            headers: dict[str, str] | None = None, load: bool = True, message_id: str | None = None,
            interaction_id: int | None = None, from_name: str | None = None, html: str | None = None,
            from_address: str | None = None, held: bool = False) -> OutgoingMail | None:
    """Queue a mail; None when one with this ``dedupe_key`` exists already (or when ``load`` is False:
    callers that queue many and need no row back skip reading it), or when ``to`` is not one plain address.
    ``message_id`` when the caller recorded it already (a timeline entry), ``interaction_id`` to send that
    entry's attachments with it, ``from_name`` as the display name in From, ``from_address`` instead of
    [notifications] from_address, ``html`` as an HTML alternative to ``body``. A ``held`` mail waits until
    ``release`` makes it pending (a campaign's rate gate)."""
    values = row(settings, purpose=purpose, dedupe_key=dedupe_key, to=to, subject=subject, body=body,
                 headers=headers, message_id=message_id, interaction_id=interaction_id, from_name=from_name,
                 html=html, from_address=from_address, held=held)
    if values is None:
        return None
    new_id = insert_ignoring_conflicts(session, OutgoingMail.__table__, values, ["dedupe_key"])
    return session.get(OutgoingMail, new_id) if new_id is not None and load else None


def release(session: Session, mail_id: int) -> bool:
    """Make a held mail pending (sendable); False when it was not held (released already, or gone)."""
    return affected(session.execute(update(OutgoingMail).where(
        OutgoingMail.id == mail_id, OutgoingMail.state == OutboxState.HELD).values(state=OutboxState.PENDING))) == 1


def build_message(settings: Settings, mail: OutgoingMail,
                  attachments: Sequence[Attachment] | None = None) -> EmailMessage:
    """The message as sent. ``attachments`` default to those of the mail's timeline entry (read through the
    session the row belongs to)."""
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = _sender(mail.from_address or settings.notifications.from_address, mail.from_name)
    msg["To"] = mail.to_address
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = mail.message_id
    for name, value in mail.headers.items():
        msg[name] = value
    msg.set_content(mail.body)
    if mail.html:
        msg.add_alternative(mail.html, subtype="html")
    if attachments is None:
        attachments = _attachments_of(mail)
    for item in attachments:
        maintype, _, subtype = item.content_type.partition("/")
        if not maintype or not subtype or maintype == "multipart":
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(item.content, maintype=maintype, subtype=subtype, filename=item.filename)
    return msg


def _sender(address: str, name: str | None) -> Address | str:
    """The writer's name with our address: a reply goes to the CRM and lands on the customer's timeline. A
    configured address with a display name of its own ("CRM <crm@…>") gets the writer's name instead."""
    if not name:
        return address
    try:
        return Address(display_name=name, addr_spec=parseaddr(address)[1] or address)
    except ValueError:  # not an address the email package can write: as configured, without the name
        return address


def _attachments_of(mail: OutgoingMail) -> Sequence[Attachment]:
    session = object_session(mail)
    if mail.interaction_id is None or session is None:
        return ()
    return session.execute(select(Attachment).where(Attachment.interaction_id == mail.interaction_id)
                           .order_by(Attachment.id)).scalars().all()


def _due(now: datetime, lease_time: timedelta) -> Any:
    """Pending and not failed just now (else one round would burn every attempt within milliseconds while
    the relay is down), or claimed by a process that died mid-send."""
    return or_(
        (OutgoingMail.state == OutboxState.PENDING)
        & or_(OutgoingMail.attempts == 0, OutgoingMail.claimed_at.is_(None),
              OutgoingMail.claimed_at < now - RETRY_AFTER),
        (OutgoingMail.state == OutboxState.SENDING) & (OutgoingMail.claimed_at < now - lease_time))


def next_attempt_at(session: Session, settings: Settings) -> datetime | None:
    """When the earliest mail that waits (a failed attempt, or a dead process's claim) becomes due again."""
    retry = session.execute(select(func.min(OutgoingMail.claimed_at)).where(
        OutgoingMail.state == OutboxState.PENDING, OutgoingMail.attempts > 0)).scalar_one_or_none()
    stale = session.execute(select(func.min(OutgoingMail.claimed_at)).where(
        OutgoingMail.state == OutboxState.SENDING)).scalar_one_or_none()
    times = [t + RETRY_AFTER for t in (retry,) if t] + [t + lease(settings) for t in (stale,) if t]
    return min(times) if times else None


def _claim(factory: sessionmaker[Session], settings: Settings) -> int | None:
    now = utcnow()
    lease_time = lease(settings)
    with write_lock(factory), unit_of_work(factory) as session:
        query = select(OutgoingMail.id).where(_due(now, lease_time)).order_by(OutgoingMail.id).limit(1)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)  # two senders take different mails
        candidate = session.execute(query).scalar_one_or_none()
        if candidate is None:
            return None
        claimed = affected(session.execute(
            update(OutgoingMail).where(OutgoingMail.id == candidate, _due(now, lease_time))
            .values(state=OutboxState.SENDING, claimed_at=now, attempts=OutgoingMail.attempts + 1,
                    # taking over a dead process's claim: its try may have reached the relay
                    uncertain=OutgoingMail.uncertain | (OutgoingMail.state == OutboxState.SENDING))))
        return candidate if claimed else -1


class _Unanswered(OSError):
    """The relay had the whole message, but its answer never came: it may have taken the mail."""


class _Relay(smtplib.SMTP):
    """smtplib's client, noting when the message has been written up to its final "." (RFC 5321 4.1.1.4)."""

    content_written = False

    def send(self, s: Any) -> None:  # bytes or str, as smtplib writes it
        super().send(s)
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.content_written = True


def _deliver(settings: Settings, message: EmailMessage) -> None:
    cfg = settings.notifications
    with _Relay(cfg.smtp_host, cfg.smtp_port, timeout=cfg.timeout_seconds) as client:
        if cfg.smtp_starttls:
            client.starttls()
        if cfg.smtp_username:
            client.login(cfg.smtp_username, cfg.smtp_password)
        try:
            client.send_message(message)
        except OSError as exc:  # smtplib's errors are OSErrors; a reply with an error code is a clear refusal
            if client.content_written and not isinstance(exc, smtplib.SMTPResponseException):
                raise _Unanswered(f"no answer after the message was written: {exc}") from exc
            raise


def send_pending(factory: sessionmaker[Session], settings: Settings, limit: int = 100) -> dict[str, int]:
    """Send what is queued; returns counts. Failures are retried later (up to MAX_ATTEMPTS)."""
    counts: dict[str, Any] = {"sent": 0, "failed": 0}
    while counts["sent"] + counts["failed"] < limit:
        mail_id = _claim(factory, settings)
        if mail_id is None:
            break
        if mail_id == -1:
            continue  # another process took it: that mail left the queue, so this ends
        with factory() as session:
            mail = session.get_one(OutgoingMail, mail_id)
            message = build_message(settings, mail)
            attempts = mail.attempts
        try:
            _deliver(settings, message)
        except OSError as exc:
            state = OutboxState.FAILED if attempts >= MAX_ATTEMPTS else OutboxState.PENDING
            values: dict[str, Any] = {"state": state, "error": f"{exc.__class__.__name__}: {exc}"[:2000]}
            if isinstance(exc, _Unanswered):
                values["uncertain"] = True  # its next attempt may make it arrive twice
            with write_lock(factory), unit_of_work(factory) as session:
                session.execute(update(OutgoingMail).where(OutgoingMail.id == mail_id).values(values))
            log.warning("outgoing mail %s to %s not sent (attempt %d): %s", mail_id, message["To"], attempts, exc)
            counts["failed"] += 1
            continue
        # Recorded at once (on SQLite without polling for the lock): a crash between the relay's 250 and
        # this commit makes the mail go out twice after the lease, so the gap is kept short.
        with write_lock(factory), unit_of_work(factory) as session:
            session.execute(update(OutgoingMail).where(OutgoingMail.id == mail_id)
                            .values(state=OutboxState.SENT, sent_at=utcnow(), error=None))
        log.info("outgoing mail %s (%s) sent to %s", mail_id, message["Subject"], message["To"])
        counts["sent"] += 1
    return counts


class Sender:
    """A background thread that sends queued mail when woken, and every ``interval`` seconds anyway
    (mail queued by another node, or left behind by a crash or an unreachable relay)."""

    round_size = 100  # mails per round; a stop waits for at most one round

    def __init__(self, factory: sessionmaker[Session], settings: Settings, interval: float = 30.0) -> None:

        self.factory, self.settings, self.interval = factory, settings, interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Rounds asked for, and the newest request a finished round started after: wait_idle waits for its
        # own request to be covered (an "idle" flag could be set by a round that began before the request).
        self._rounds = threading.Condition()
        self._requested = 0
        self._covered = 0
        self._thread = threading.Thread(target=self._run, name="crm-inbox-outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _request(self) -> int:
        with self._rounds:
            self._requested += 1
            wanted = self._requested
        self._wake.set()
        return wanted

    def wake(self) -> None:
        self._request()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until everything queued before this call was attempted (tests, shutdown)."""
        wanted = self._request()
        with self._rounds:
            return self._rounds.wait_for(lambda: self._covered >= wanted, timeout)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(30)

    def _wait_time(self) -> float:
        """Until the next round: the interval, or sooner when a waiting mail becomes due before it."""
        try:
            with self.factory() as session:
                upcoming = next_attempt_at(session, self.settings)
        except Exception:  # the database is away: try again after the interval
            return self.interval
        if upcoming is None:
            return self.interval
        return min(self.interval, max(0.0, (upcoming - utcnow()).total_seconds() + 0.05))

    def _run(self) -> None:
        # The first round runs at once: mail a crash left behind goes out without waiting for a wake-up.
        self._wake.set()
        while not self._stop.is_set():
            self._wake.wait(self._wait_time())
            self._wake.clear()
            with self._rounds:
                covering = self._requested
            try:
                counts = send_pending(self.factory, self.settings, limit=self.round_size)
                if counts["sent"] + counts["failed"] >= self.round_size:
                    self._wake.set()  # more is waiting: go on at once rather than after the interval
            except Exception:  # never let the sender die: the next round retries
                log.exception("outgoing mail: sending round failed")
            with self._rounds:
                self._covered = max(self._covered, covering)
                self._rounds.notify_all()

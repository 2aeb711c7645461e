"""What the steps share while one inbound message is processed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from crm_inbox.config import Settings
from crm_inbox.contacts.directory import ContactRef, Directory
from crm_inbox.mail.attribution import Attribution
from crm_inbox.mail.automatic import Automatic
from crm_inbox.mail.parse import ParsedMail
from crm_inbox.models import Interaction
from crm_inbox.pipeline.answered import Answered


@dataclass(frozen=True)
class InboundView:
    """The stored message's envelope and identity, as processing reads them (the bytes are read apart)."""

    id: int
    size: int
    content_hash: str
    message_id: str | None
    envelope_from: str | None
    envelope_to: list[str]
    peer: str | None
    source: str
    received_at: datetime
    # Read with the row where that saves round trips (PostgreSQL); None: the step asks the database itself.
    raw: bytes | None = None
    erased_copy: bool | None = None  # a tombstone of erased mail has this Message-ID
    message_id_reused: bool = False  # another stored message has this Message-ID with other content


@dataclass
class MailContext:
    session: Session
    settings: Settings
    inbound: InboundView
    directory: Directory
    parsed: ParsedMail | None = None
    automatic: Automatic | None = None
    attribution: Attribution | None = None
    # (contact, role) pairs the interaction is linked to, in order
    contacts: list[tuple[ContactRef, str]] = field(default_factory=list)
    new_contacts: list[ContactRef] = field(default_factory=list)
    interaction: Interaction | None = None
    answered: Answered | None = None  # what a reply answers (None: it names no other mail)
    queued_mail: bool = False  # an acknowledgement or other mail waits in the outbox
    stopped: str | None = None
    erased: bool = False  # a copy of erased mail: the row becomes a tombstone again
    step: str | None = None  # the step running now: when one raises, the message failed there

    def stop(self, reason: str) -> None:
        self.stopped = reason

    def note(self, reason: str) -> None:
        """Add to the human-readable explanation of where the mail landed and why."""
        assert self.attribution is not None
        self.attribution.reasons.append(reason)


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    run: Callable[[MailContext], None]
    # Steps that write run after the message is claimed, under the write lock; the ones before them
    # (parsing, pure decisions) run without holding any lock.
    writes: bool = True

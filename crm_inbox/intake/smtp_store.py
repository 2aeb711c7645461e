"""serve's ``Store`` for the SMTP listener: which process commits a message is decided here, and only here.

Ordinary mail goes to the writer process (``writer.IntakeProcess``), which commits while this process talks
SMTP: one interpreter lock shared by the event loop and a committing thread cost SQLite acceptance 51 % → 68 %
of a bare aiosmtpd sink. Mail of ``LARGE`` and more is committed in this process (``store.BatchingStore``):
piped across it would be held by both processes at once. The whole path is drawn in docs/intake.md.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker

from crm_inbox.intake.store import Accepted, BatchingStore, Envelope
from crm_inbox.intake.writer import IntakeProcess

LARGE = BatchingStore.SMALL  # 1 MiB: also where BatchingStore puts a message behind the small ones


def committed_here(size: int) -> bool:
    """Is a message of ``size`` bytes committed in the listener's process (not by the writer process)?"""
    return size >= LARGE


class SmtpStore:
    """A ``Store``: the writer process for ordinary mail, an in-process group commit for large mail.

    ``start`` (on the listener's event loop) starts the writer at once rather than with the first message;
    ``close`` (there too, once no message is in flight) lets the writer answer what it has and exit, then
    ends the in-process batcher after it has written what it holds."""

    def __init__(self, factory: sessionmaker[Session], database_url: str, log_level: int | None = None) -> None:
        self.in_process = BatchingStore(factory)
        self.writer = IntakeProcess(database_url, log_level)

    async def start(self) -> None:
        await self.writer.start()

    async def store(self, raw: bytes, envelope: Envelope) -> Accepted:
        if committed_here(len(raw)):
            return await self.in_process.submit(raw, envelope)
        return await self.writer.submit(raw, envelope)

    async def close(self) -> None:
        try:
            await self.writer.close()
        finally:
            # Joined off the loop: the loop never blocks, and its sessions' last answers still arrive.
            await asyncio.to_thread(self.in_process.close)

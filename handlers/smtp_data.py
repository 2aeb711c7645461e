"""DATA read in large pieces instead of line by line.

aiosmtpd reads DATA one line at a time (a Python-level search, a bytearray and a list entry per line), which
for a 20 MB message means ~270,000 iterations under the GIL and several times the message's size in memory;
ten such messages at once stall every other session. This reads whatever has arrived (up to 256 KiB at a
time), finds the end marker with ``bytes.find`` and undoes dot-stuffing with one ``replace``: the same result
as aiosmtpd's loop, in C.

What it keeps from aiosmtpd 1.4.6's ``smtp_DATA``: HELO/AUTH/RCPT checks, the 354 reply, only CRLF.CRLF ends
the data (a bare LF before the dot does not: SMTP smuggling), the size limit answered with 552 after the data
has been read, ``envelope.content``/``original_content``, the DATA hook and the post-DATA state. Commands a
client pipelines after the end marker (RFC 2920) are handed back to the stream for the command loop.

What it adds: with ``normalize_bare_lf`` a line ending in a bare LF counts as ending in CRLF, before the
dot-stuffing is undone (Postfix's ``smtpd_forbid_bare_newline = normalize``; smtplib stuffs the dot of a line
after a bare LF too). The end of the data stays ``CRLF.CRLF`` on the wire. Each piece read restarts the idle
timer, so a long message on a slow link is not cut off by a timer aiosmtpd restarts only per command.
"""

from __future__ import annotations

import logging

from aiosmtpd.smtp import MISSING, SMTP, syntax

log = logging.getLogger(__name__)

END = b"\r\n.\r\n"
PIECE = 256 * 1024
TOO_MUCH = "552 Error: Too much mail data"


def end_of_data(buffer: bytearray, start: int) -> int:
    """Where the end marker starts in ``buffer`` (which begins with the CRLF before the data), or -1."""
    return buffer.find(END, start)


def unstuff(buffer: bytearray, end: int) -> bytearray:
    """The message: the data up to and including its last CRLF, with the transparency dot of each line that
    starts with one removed (RFC 5321 4.5.2). ``buffer`` starts with a CRLF of its own, so a first line that
    starts with a dot is found like any other. The common case (no such line) trims ``buffer`` in place
    rather than copying it: a 20 MB message is then held once, not twice."""
    del buffer[end + 2:]
    if buffer.find(b"\r\n.") < 0:
        del buffer[:2]  # O(1): a bytearray moves its start, it does not copy
        return buffer
    return buffer.replace(b"\r\n.", b"\r\n")[2:]


def line_ends(data: bytes | bytearray) -> tuple[bool, bool]:
    """(Is there a bare CR, is there a bare LF) in ``data``. Counted rather than searched with a regular
    expression: this runs on the event loop, and for a 20 MB message the regex held it for ~0.4 s."""
    pairs = data.count(b"\r\n")
    return data.count(b"\r") != pairs, data.count(b"\n") != pairs


def crlf_lines(data: bytearray) -> bytearray:
    """``data`` with each bare LF made CRLF. A bare CR stays, and stays bare: nothing sends it but a smuggler,
    and it is refused."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class ChunkedData(SMTP):
    """An aiosmtpd ``SMTP`` whose DATA reads large pieces (mix in before ``SMTP``)."""

    normalize_bare_lf = False  # aiosmtpd's behaviour unless set: a bare LF is kept in the data
    # After a DATA read with ``normalize_bare_lf``: is a bare CR left in the message (None: not looked at).
    # The handler uses it rather than counting the message's line ends a second time.
    bare_cr_left: bool | None = None

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")

        self.bare_cr_left = None
        reader = self._reader
        buffer = bytearray(b"\r\n")
        limit = self.data_size_limit
        discarded = 0  # bytes dropped after the size limit was passed: read to the end, then 552
        scanned = 0
        while True:
            piece = await reader.read(PIECE)
            if not piece:  # the client went away mid-DATA
                return
            self._reset_timeout()
            buffer += piece
            end = end_of_data(buffer, scanned)
            if end >= 0:
                break
            scanned = max(0, len(buffer) - len(END) + 1)
            if limit and len(buffer) - 2 + discarded > limit:
                # Keep only the tail that may hold the start of the end marker.
                keep = len(END) - 1
                discarded += len(buffer) - keep
                del buffer[:-keep]
                scanned = 0
        if len(buffer) > end + len(END):
            # Pipelined commands after the data: back to the front of the stream for the command loop.
            reader._buffer[:0] = buffer[end + len(END):]  # type: ignore[attr-defined]  # StreamReader has no unread
        if self.normalize_bare_lf and not discarded:
            del buffer[end + 2:]  # the end marker (but for its CRLF, the data's last)
            self.bare_cr_left, bare_lf = line_ends(buffer)
            if bare_lf:
                buffer = crlf_lines(buffer)
                end = len(buffer) - 2
        size = end + discarded  # after normalising: what is stored stays within the limit
        if limit and size > limit:
            del buffer
            await self.push(TOO_MUCH)
            self._set_post_data_state()
            return
        content = unstuff(buffer, end)
        del buffer
        # A bytearray where aiosmtpd types bytes: the same reading, without a copy of the whole message.
        self.envelope.content = content  # type: ignore[assignment]
        self.envelope.original_content = content  # type: ignore[assignment]
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


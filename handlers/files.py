"""File import adapter: .eml files, mbox files and Maildir folders, as (label, raw bytes) pairs."""

from __future__ import annotations

import mailbox
import mmap
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO


class UnreadableSource(Exception):
    pass


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new"))


_RELEASE_BYTES = 32 << 20
_FIELD = re.compile(rb"[!-9;-~]+[ \t]*:")
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))', re.I)


def _starts_with_envelope(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(5) == b"From "


def _is_mbox(path: Path) -> bool:
    """An mbox has a second message: a ``From `` line after an empty line, followed by a header field, and
    not inside the first message's open MIME multipart (a bounce quoting the original with its envelope
    line), unless there are several such (a first message whose closing boundary is missing). A single
    message saved with its envelope line (``From ``, then headers) is one message."""
    if not _starts_with_envelope(path):
        return False
    with path.open("rb") as fh:
        fh.readline()
        return _has_second_message(fh)


def _has_second_message(fh: BinaryIO) -> bool:
    quoted = 0  # envelope lines inside the first message's multipart
    header: list[bytes] = []
    in_header = True
    closing: bytes | None = None  # the first message's closing MIME boundary, until it is seen
    previous_empty = False
    while line := fh.readline():
        stripped = line.rstrip(b"\r\n")
        if in_header:
            if not stripped:
                in_header = False
                match = _BOUNDARY.search(b" ".join(header)) if _multipart(header) else None
                if match:
                    closing = b"--" + (match.group(1) or match.group(2)) + b"--"
            elif len(header) < 1000:
                header.append(stripped)
        elif closing is not None and stripped.rstrip() == closing:
            closing = None
        elif stripped.startswith(b"From ") and previous_empty:
            offset = fh.tell()
            if _FIELD.match(fh.readline()):
                if closing is None:
                    return True
                quoted += 1
                if quoted > 1:
                    return True
            fh.seek(offset)
        previous_empty = not stripped
    return False


def _multipart(header: list[bytes]) -> bool:
    """The header lines (unfolded enough for a search) declare a multipart Content-Type."""
    text = b" ".join(header).lower()
    return re.search(rb"(?:^| )content-type\s*:\s*multipart/", text) is not None


def _single_message(path: Path) -> bytes:
    """A file of one message; an mbox envelope line (``From sender date``) before it is not part of it."""
    raw = path.read_bytes()
    if raw.startswith(b"From "):
        raw = raw[raw.find(b"\n") + 1:] if b"\n" in raw else b""
    return raw


def count_messages(paths: list[Path]) -> int:
    """How many messages ``read_messages`` will yield (for the progress bar)."""
    total = 0
    for path in paths:
        if _is_maildir(path):
            total += len(mailbox.Maildir(path, create=False))
        elif path.is_dir():
            total += sum(1 for _ in path.rglob("*.eml"))
        elif path.is_file() and _is_mbox(path):
            total += sum(1 for _ in _mbox_spans(path))
        else:
            total += 1
    return total


def read_messages(paths: list[Path]) -> Iterator[tuple[str, bytes]]:
    """Every message under ``paths``: Maildir folders, folders of .eml files, mbox files, single files."""
    for path in paths:
        if not path.exists():
            raise UnreadableSource(f"{path}: no such file or folder")
        if _is_maildir(path):
            box = mailbox.Maildir(path, factory=None, create=False)
            for key in sorted(box.keys()):
                yield f"{path}/{key}", box.get_bytes(key)
        elif path.is_dir():
            for file in sorted(path.rglob("*.eml")):
                yield str(file), _single_message(file)
        elif _is_mbox(path):
            with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                for index, (start, stop) in enumerate(_mbox_spans(path, data)):
                    yield f"{path}#{index + 1}", data[start:stop]
        else:
            yield str(path), _single_message(path)


def _mbox_spans(path: Path, data: mmap.mmap | None = None) -> Iterator[tuple[int, int]]:
    """Where each message of an mbox lies (after its ``From `` line), found as ``mailbox.mbox`` finds them (a
    message begins at every line that starts with ``From ``; the empty line before the next one is not part
    of it), but with the search in C over the mapped file: a mailbox of 100,000 mails is split in a fraction
    of a second instead of line by line in Python, and no message is read before it is needed."""
    if data is None:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            yield from _mbox_spans(path, mapped)
        return
    start = 0 if data[:5] == b"From " else data.find(b"\nFrom ") + 1
    released = 0
    while start or data[:5] == b"From ":
        line_end = data.find(b"\n", start)
        content = len(data) if line_end == -1 else line_end + 1  # the message begins after its From line
        following = data.find(b"\nFrom ", content - 1) + 1  # the next From line (0: none)
        end = following or len(data)
        stop = end - 1 if data[max(end - 2, 0):end] == b"\n\n" else end  # without the empty line before it
        yield content, max(content, stop)
        if not following:
            return
        start = following
        if start - released >= _RELEASE_BYTES and hasattr(mmap, "MADV_DONTNEED"):
            # What was read is given back: else the mapped pages count as this process's memory (RSS) up to
            # the whole file, gigabytes for a mailbox with attachments (they stay in the page cache).
            upto = start // mmap.PAGESIZE * mmap.PAGESIZE
            data.madvise(mmap.MADV_DONTNEED, released, upto - released)
            released = upto


def batches(messages: Iterable[tuple[str, bytes]], max_messages: int = 200,
            max_bytes: int = 16 << 20) -> Iterator[list[tuple[str, bytes]]]:
    """``messages`` in lists of at most ``max_messages`` and about ``max_bytes`` (a larger message alone), so
    an import holds one batch of raw mail at a time, however large the mailbox."""
    batch: list[tuple[str, bytes]] = []
    size = 0
    for label, raw in messages:
        if batch and (len(batch) >= max_messages or size + len(raw) > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append((label, raw))
        size += len(raw)
    if batch:
        yield batch

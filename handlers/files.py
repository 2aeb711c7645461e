"""File import adapter: .eml files, mbox files and Maildir folders, as (label, raw bytes) pairs."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path


class UnreadableSource(Exception):
    pass


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new"))


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(5) == b"From "


def count_messages(paths: list[Path]) -> int:
    """How many messages ``read_messages`` will yield (for the progress bar)."""
    total = 0
    for path in paths:
        if _is_maildir(path):
            total += len(mailbox.Maildir(path, create=False))
        elif path.is_dir():
            total += sum(1 for _ in path.rglob("*.eml"))
        elif path.is_file() and _is_mbox(path):
            total += len(mailbox.mbox(path, create=False))
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
                yield str(file), file.read_bytes()
        elif _is_mbox(path):
            box = mailbox.mbox(path, create=False)
            for index, key in enumerate(box.keys()):
                yield f"{path}#{index + 1}", box.get_bytes(key)
        else:
            yield str(path), path.read_bytes()

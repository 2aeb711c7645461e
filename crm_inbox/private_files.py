"""Files with personal data or secrets (export zips, SQLite databases, the session key) are this user's alone.

Created with mode 0600 and set so explicitly: the process's umask (often 022, sometimes 002) must not decide
whether colleagues on the machine can read customers' mail.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

PRIVATE = 0o600


def open_private(path: Path) -> BinaryIO:
    """``path`` opened for writing, created or emptied, readable and writable by this user only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    try:
        os.fchmod(fd, PRIVATE)  # an existing file keeps its mode on open
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def create_private(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists (then it is left as it is); True when created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE)
    finally:
        os.close(fd)
    return True

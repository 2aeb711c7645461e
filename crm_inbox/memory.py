"""Giving memory back after a large message.

glibc keeps memory freed by a large message (its mmap threshold grows after big frees), so a 20 MB mail
accepted over SMTP and then processed would need the memory of both phases at once. ``malloc_trim``
returns the free memory to the system; on other C libraries this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

LARGE = 1 << 20  # messages from this size on are worth a trim


@functools.cache
def _trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc.malloc_trim if libc is not None and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def release_after(size: int) -> None:
    """Call after handling a message of ``size`` bytes."""
    trim = _trim()
    if size >= LARGE and trim is not None:
        trim(0)

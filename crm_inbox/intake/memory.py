"""Giving memory back after a large message.

glibc keeps memory freed by a large message (its mmap threshold grows after big frees), so a 20 MB mail
accepted over SMTP and then processed would need the memory of both phases at once. ``malloc_trim``
returns the free memory to the system, and a fixed mmap threshold makes every block of a megabyte or more
go back the moment it is freed; on other C libraries both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

LARGE = 1 << 20  # messages from this size on are worth a trim


M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


@functools.cache
def _libc_function(name: str) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    library = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(library) if library else None
        return getattr(libc, name, None) if libc is not None else None
    except OSError:
        return None


def _trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    return _libc_function("malloc_trim")


def return_large_blocks_at_once() -> None:
    """Call once at start: blocks from ``LARGE`` bytes on are mapped and unmapped on their own, so a large
    message's buffers leave the process when freed instead of staying for the next phase to stack on."""
    mallopt = _libc_function("mallopt")
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, LARGE)


def release_after(size: int) -> None:
    """Call after handling a message of ``size`` bytes."""
    trim = _trim()
    if size >= LARGE and trim is not None:
        trim(0)

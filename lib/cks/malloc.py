"""Keeping a long-lived serving process's memory near what it uses (glibc).

Measured with bench/soak_sync.py (three nodes syncing by recon and push under
uploads and lookups), a serving process ended at 92-170 MB resident, of which
Python's own objects were 17-40 MB (tracemalloc) and glibc's malloc held the
rest: 80-107 MB in about ten per-thread arenas (each thread that allocates
while another does gets an arena of its own, up to eight per core, and an
arena gives back only the free memory at its top).  The peaks come from
threads that each hold a few MB for a moment (a recon fetch's 100 keys
parsed: 15-17 MB; a reverify run: 6 MB; uploads, lookups, push) at different
times, and the memory stays.

Two glibc calls bring it down (same probe, processes after a 90 s run): at
most two arenas (`mallopt(M_ARENA_MAX)`; Python threads allocate under one
interpreter lock anyway) took 92-170 MB to 84-126 MB, and giving back free
pages every few seconds as well (`malloc_trim(0)`, which also returns free
pages inside the heaps, not only at their tops) to 49-126 MB.  Elsewhere
(musl, macOS) both do nothing.

A trim holds each arena's lock while it walks that arena's free chunks: in
that probe a call took 2-9 ms (median), 9-22 ms (90th percentile), at most
60 ms, during which another thread's malloc of that arena waits (Python's
objects under 512 bytes come from its own pools and do not).  Hence one
every RELEASE_EVERY seconds, not after every request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any, Optional

M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h
ARENAS = 2
"""glibc's default is eight arenas per core."""
RELEASE_EVERY = 10.0
"""Seconds between two malloc_trim calls in a serving process."""


@functools.lru_cache(maxsize=None)
def _glibc() -> Optional[Any]:
    """The C library, when it is glibc (it has malloc_trim and mallopt)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not (hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt")):
        return None
    return libc


def cap_arenas(count: int = ARENAS) -> bool:
    """Let malloc make at most `count` arenas in this process (and the
    processes it forks after); False where that cannot be set."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, count))


def release_free_memory() -> bool:
    """Give the free memory of malloc's heaps back to the system; True when
    some was given back."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))

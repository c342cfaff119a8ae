"""Counts that the serving processes of one cksd share, with no lock between
processes.

Each process adds only to its own row (its threads take turns on a lock of
that process alone); every process reads all the rows without a lock, as
8-byte words, which are never seen half-written.  A lock or an Event of
`multiprocessing` is one for all: a process killed (kill -9, the
out-of-memory killer) while it held the lock, or while it waited on the
Event (whose set() waits, without a timeout, for every waiter to take
note), blocked every other process for good, and cksd hung instead of
stopping, its port closed and its supervisor none the wiser (found by a
review, 2026-12-07).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import threading
from typing import Any, List


class SharedCounts:
    """`columns` counts for each of `processes` processes, made before they
    are forked; row(i) is process i's part, which only it writes.  Not
    `shared`: this process's alone (a process forked after it counts apart)."""

    def __init__(self, processes: int, columns: int, shared: bool = True) -> None:
        self._values: Any = multiprocessing.RawArray("Q", processes * columns) if shared \
            else (ctypes.c_uint64 * (processes * columns))()
        self._processes = processes
        self._columns = columns
        self._first = 0  # where this process's row starts
        self._lock = threading.Lock()

    @classmethod
    def rows(cls, processes: int, columns: int) -> List["SharedCounts"]:
        """The counts as each of `processes` processes writes them."""
        counts = cls(processes, columns)
        return [counts.row(process) for process in range(processes)]

    def row(self, process: int) -> "SharedCounts":
        """These counts, as process `process` writes them."""
        mine = SharedCounts.__new__(SharedCounts)
        mine._values, mine._processes, mine._columns = \
            self._values, self._processes, self._columns
        mine._first = process * self._columns
        mine._lock = threading.Lock()
        return mine

    def add(self, column: int, amount: int = 1) -> None:
        with self._lock:
            self._values[self._first + column] += amount

    def raise_to(self, column: int, value: int) -> None:
        """This process's count in `column` becomes `value` if that is more."""
        with self._lock:
            if value > self._values[self._first + column]:
                self._values[self._first + column] = value

    def total(self, column: int) -> int:
        """The sum of every process's count: it grows each time one adds."""
        return sum(self._values[column::self._columns])

    def highest(self, column: int) -> int:
        return max(self._values[column::self._columns])

"""A counter that the serving processes of one cksd can share."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any, Optional


class Counter:
    """A thread-safe integer: this process's own, or (made by shared()) one
    in shared memory that every process forked after it sees and changes."""

    def __init__(self, shared: Optional[Any] = None) -> None:
        self._shared = shared  # a multiprocessing.Value, or None
        self._value = 0
        self._lock = threading.Lock()

    @classmethod
    def shared(cls) -> "Counter":
        return cls(multiprocessing.Value("q", 0))

    def add(self, amount: int = 1) -> None:
        if self._shared is not None:
            with self._shared.get_lock():
                self._shared.value += amount
        else:
            with self._lock:
                self._value += amount

    @property
    def value(self) -> int:
        return self._shared.value if self._shared is not None else self._value

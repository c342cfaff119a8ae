"""A failure that a background job meets at every round (the database down,
a peer gone), logged as an operator wants to read it: once when it starts,
then once every few minutes while it lasts, with how many rounds failed
meanwhile, and once when it ends.  A job that runs every 2 s would otherwise
write some 43,000 lines a day of the same outage.  And lines about many
things (a client's address), each said at most once in a while (OncePerKey)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, Hashable

REPEAT_SECONDS = 600.0


class RepeatedFailure:
    def __init__(self, log: logging.Logger, failing: str, resolved: str,
                 every: float = REPEAT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.failing = failing  # "served views not derived yet" (": the reason" follows)
        self.resolved = resolved  # "served views derived again"
        self.every = every
        self.clock = clock
        self._lock = threading.Lock()
        self._failing = False
        self._said = 0.0  # when it was last logged
        self._rounds = 0  # failed rounds not logged since

    def failed(self, reason: object) -> None:
        """A round failed for `reason` (an exception or a message)."""
        with self._lock:
            now = self.clock()
            if self._failing and now - self._said < self.every:
                self._rounds += 1
                return
            since = " (%d more times since the last report)" % self._rounds \
                if self._rounds else ""
            self._failing, self._said, self._rounds = True, now, 0
        self.log.warning("%s: %s%s", self.failing, reason, since)

    def succeeded(self) -> None:
        """A round went well: the failure, if there was one, is over."""
        if not self._failing:  # (read without the lock: the common case)
            return
        with self._lock:
            if not self._failing:
                return
            self._failing, self._rounds = False, 0
        self.log.info("%s", self.resolved)


class OncePerKey:
    """Whether a line about `key` may be logged now: once per `every` seconds
    for each key, and for at most `max_keys` keys at a time (past that, a key
    not said yet waits until others are forgotten), so that a flood of
    connections, from one address or many, writes a few lines, not one each."""

    def __init__(self, every: float = REPEAT_SECONDS, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()
        self._said: Dict[Hashable, float] = {}

    def allows(self, key: Hashable) -> bool:
        with self._lock:
            now = self.clock()
            if now - self._said.get(key, now - self.every) < self.every:
                return False
            if len(self._said) >= self.max_keys:
                self._said = {k: t for k, t in self._said.items() if now - t < self.every}
                if len(self._said) >= self.max_keys:
                    return False
            self._said[key] = now
            return True

"""A failure that a background job meets at every round (the database down,
a peer gone), logged as an operator wants to read it: once when it starts,
then once every few minutes while it lasts, with how many rounds failed
meanwhile, and once when it ends.  A job that runs every 2 s would otherwise
write some 43,000 lines a day of the same outage."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

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

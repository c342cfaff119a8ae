"""Served views derived after an upload is answered, and lookups that wait
for them.

cksd answers an upload once the network view of each key is stored (the
expensive part, verifying the signatures for the served view, can follow
without changing what the uploader is told), and derives the served views
right after, in the worker thread that answered (views.derive_followups).
Until then lookups do not find a new key.  So that no lookup answered after
an upload's answer misses its keys, the serving processes of one cksd count
the derivations in flight in shared memory, and a lookup that sees one waits
for it: a few milliseconds, at most `wait` seconds (a key with thousands of
signatures to check must not hold every lookup for long).
"""

from __future__ import annotations

import time
from typing import Optional

from ..counter import Counter

POLL_SECONDS = 0.0005


class ViewFollowups:
    def __init__(self, counter: Optional[Counter] = None, wait: float = 2.0) -> None:
        self._in_flight = counter or Counter()
        self.wait = wait

    @classmethod
    def shared(cls) -> "ViewFollowups":
        """One for the serving processes forked after it."""
        return cls(Counter.shared())

    def started(self) -> None:
        self._in_flight.add(1)

    def finished(self) -> None:
        self._in_flight.add(-1)

    @property
    def in_flight(self) -> bool:
        return self._in_flight.value > 0

    def settle(self) -> None:
        """Wait until no derivation is in flight, or `wait` seconds passed."""
        if not self.in_flight:
            return
        deadline = time.monotonic() + self.wait
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)

"""Lookups on a streaming replica, falling back to the primary.

PostgreSQL does the replicating; CKS only chooses where a lookup reads.
ReplicaReads offers Store's reading methods: each runs on the replica, or on
the primary while the replica cannot answer (down, restarting, a query
cancelled by recovery, a schema it has not replayed yet).  After a failure
a thread of its own tries the replica at once, then every `retry_seconds`,
and sends the lookups back to it once it answers (pause.py): a lookup
never waits for a replica that failed (one that drops packets took the
connection timeout, 10 s, of every serving process's event loop at each
try, when the lookups tried it themselves).  Nor does a lookup read a
replica that has not replayed the key changes this cksd committed yet (an
upload, a served view derived after it): it reads the primary until the
replica has (`replayed_ours`), so a client that uploads a key and looks it
up through the same cksd finds it, however far behind the replica is
(but for a primary that cannot answer: then the replica's is the answer).
Until 2026-12-06 only a lookup that derived an upload's served view itself
read the primary: with a replica a second behind, an upload looked up 0.2 s
after its answer (once the idle serving process had derived the view) was
404, and an update's lookup showed the key as it was (found by a review).
Writes have no place here: they go to the primary Store.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from .base import Store
from .errors import StoreError, StoreUnavailable
from .pause import Pause

# The Store methods that lookups use (and /health?lookups: check); all of them only read.
READ_METHODS = frozenset({
    "find_by_id", "find_by_hash", "sizes_by_hash", "key_rows_by_id", "served_parts_by_id",
    "key_rows_by_email", "key_rows_by_words", "keydata", "served_parts", "served", "key_rows",
    "peers_summary", "stats", "key_statistics", "notice_log", "check"})


PROBE_HASH = "0" * 32  # (a search by SKS hash: one index lookup, on cks_keys)
REPLAY_RECHECK_SECONDS = 0.002
"""While the replica is behind this cksd's key changes, how often a serving
process asks it again how far it has replayed (lookups meanwhile read the
primary)."""
NOT_A_STANDBY = 1 << 64
"""The replayed position of a replica that replays nothing (promoted): ahead of any."""


class ReplicaReads:
    """Store's reading methods, on `replica` while it answers, else on `primary`."""

    def __init__(self, replica: Store, primary: Store, retry_seconds: float = 10.0) -> None:
        self.replica = replica
        self.primary = primary
        # On: reads go to the primary, while a probe tries the replica.
        self._pause = Pause(lambda: replica.find_by_hash(PROBE_HASH), retry_seconds,
                            "the read replica cannot answer, lookups read the primary "
                            "until it does", "the read replica answers again: lookups read it",
                            "cks-replica-probe")
        self._replayed = 0  # the replica's replayed position, when last asked
        self._asked_at = -REPLAY_RECHECK_SECONDS

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in READ_METHODS:
            raise AttributeError("%s is not a lookup's read: use the primary Store" % name)
        on_replica, on_primary = getattr(self.replica, name), getattr(self.primary, name)

        def read(*args: Any, **kwargs: Any) -> Any:
            if not self._pause.on:
                try:
                    if self.replayed_ours():
                        return on_replica(*args, **kwargs)
                except StoreError as exc:
                    self._pause.start(exc)
                else:
                    try:
                        return on_primary(*args, **kwargs)
                    except StoreUnavailable:  # (down: what the replica has is better than none)
                        return on_replica(*args, **kwargs)
            return on_primary(*args, **kwargs)

        setattr(self, name, read)  # found directly from now on
        return read

    def replayed_ours(self) -> bool:
        """Whether the replica has replayed every key change the serving
        processes of this cksd committed (LocalChanges.log_position); while
        it has not, it is asked again at most every REPLAY_RECHECK_SECONDS.
        (Threads may ask at once: one query more, no wrong answer.)"""
        ours = self.primary.local_changes.log_position
        if ours <= self._replayed:
            return True
        now = time.monotonic()
        if now - self._asked_at >= REPLAY_RECHECK_SECONDS:
            self._asked_at = now
            replayed = self.replica.replayed_position()
            self._replayed = NOT_A_STANDBY if replayed is None else replayed
        return ours <= self._replayed

    def close(self) -> None:
        """Close the replica's connections (the primary belongs to its opener)."""
        self._pause.close()
        self.replica.close()

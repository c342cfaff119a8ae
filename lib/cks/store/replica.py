"""Lookups on a streaming replica, falling back to the primary.

PostgreSQL does the replicating; CKS only chooses where a lookup reads.
ReplicaReads offers Store's reading methods: each runs on the replica, or on
the primary while the replica cannot answer (down, restarting, a query
cancelled by recovery, a schema it has not replayed yet).  After a failure the replica is tried again
`retry_seconds` later, so a dead replica costs one failed attempt per period,
not one per lookup.  Writes have no place here: they go to the primary Store.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from .base import Store, StoreError

log = logging.getLogger("cks.store")

# The Store methods that lookups use; all of them only read.
READ_METHODS = frozenset({
    "find_by_id", "find_by_hash", "key_rows_by_id", "served_parts_by_id", "key_rows_by_email",
    "key_rows_by_words", "keydata", "served_parts", "served", "key_rows", "peers_summary",
    "stats", "key_statistics", "notice_log"})


class ReplicaReads:
    """Store's reading methods, on `replica` while it answers, else on `primary`."""

    def __init__(self, replica: Store, primary: Store, retry_seconds: float = 10.0) -> None:
        self.replica = replica
        self.primary = primary
        self.retry_seconds = retry_seconds
        self._primary_until = 0.0  # time.monotonic() before which reads skip the replica
        self._failing = False
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in READ_METHODS:
            raise AttributeError("%s is not a lookup's read: use the primary Store" % name)
        on_replica, on_primary = getattr(self.replica, name), getattr(self.primary, name)

        def read(*args: Any, **kwargs: Any) -> Any:
            if time.monotonic() >= self._primary_until:
                try:
                    answer = on_replica(*args, **kwargs)
                except StoreError as exc:
                    self._replica_failed(exc)
                else:
                    if self._failing:
                        self._replica_answered()
                    return answer
            return on_primary(*args, **kwargs)

        setattr(self, name, read)  # found directly from now on
        return read

    def _replica_failed(self, exc: StoreError) -> None:
        with self._lock:
            self._primary_until = time.monotonic() + self.retry_seconds
            if not self._failing:
                self._failing = True
                log.warning("the read replica cannot answer, lookups read the primary "
                            "until it does: %s", exc)

    def _replica_answered(self) -> None:
        with self._lock:
            if self._failing:
                self._failing = False
                log.info("the read replica answers again: lookups read it")

    def close(self) -> None:
        """Close the replica's connections (the primary belongs to its opener)."""
        self.replica.close()

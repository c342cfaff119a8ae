"""Lookups on a streaming replica, falling back to the primary.

PostgreSQL does the replicating; CKS only chooses where a lookup reads.
ReplicaReads offers Store's reading methods: each runs on the replica, or on
the primary while the replica cannot answer (down, restarting, a query
cancelled by recovery, a schema it has not replayed yet).  After a failure
a thread of its own tries the replica at once, then every `retry_seconds`,
and sends the lookups back to it once it answers (pause.py): a lookup
never waits for a replica that failed (one that drops packets took the
connection timeout, 10 s, of every serving process's event loop at each
try, when the lookups tried it themselves).  A lookup that has just derived
served views on the primary reads them there (reads_on_primary): the
replica may not have replayed them yet.  Writes have no place here: they
go to the primary Store.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator

from .base import Store
from .errors import StoreError
from .pause import Pause

# The Store methods that lookups use (and /health?lookups: check); all of them only read.
READ_METHODS = frozenset({
    "find_by_id", "find_by_hash", "sizes_by_hash", "key_rows_by_id", "served_parts_by_id",
    "key_rows_by_email", "key_rows_by_words", "keydata", "served_parts", "served", "key_rows",
    "peers_summary", "stats", "key_statistics", "notice_log", "check"})


PROBE_HASH = "0" * 32  # (a search by SKS hash: one index lookup, on cks_keys)


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
        self._thread = threading.local()  # .on_primary: reads_on_primary() holds

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in READ_METHODS:
            raise AttributeError("%s is not a lookup's read: use the primary Store" % name)
        on_replica, on_primary = getattr(self.replica, name), getattr(self.primary, name)

        def read(*args: Any, **kwargs: Any) -> Any:
            if not self._pause.on and not getattr(self._thread, "on_primary", False):
                try:
                    return on_replica(*args, **kwargs)
                except StoreError as exc:
                    self._pause.start(exc)
            return on_primary(*args, **kwargs)

        setattr(self, name, read)  # found directly from now on
        return read

    @contextlib.contextmanager
    def reads_on_primary(self) -> Iterator[None]:
        """Within it, this thread's reads go to the primary."""
        self._thread.on_primary = True
        try:
            yield
        finally:
            self._thread.on_primary = False

    def close(self) -> None:
        """Close the replica's connections (the primary belongs to its opener)."""
        self._pause.close()
        self.replica.close()

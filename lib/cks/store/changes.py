"""Knowing, without a query per request, whether the stored keys changed.

A serving process keeps lookup answers in memory (hkp/answer_cache.py); it
must drop them when any process changes a key.  `KeyChangeWatch.generation()`
is a value that changes whenever key data may have changed, cheap enough to
ask at every lookup:

- every write of a key row (Store.save_key, rejections.delete_key) calls
  `note_key_change(cursor)`; when that transaction commits, the Store counts
  it (this process, and the other serving processes of the same cksd, see
  the change at once, before the upload is answered);
- PostgreSQL: that transaction also sends NOTIFY cks_keys_changed, which a
  thread of every serving process hears (LISTEN) a moment after the commit.
  While its connection is down, generation() is None: nothing may be cached
  (logged when it breaks and when it is back, not at each try between);
- SQLite: PRAGMA data_version on a connection of the watch's own changes
  whenever another connection, in any process, commits (any table: some
  answers are dropped for nothing, none is kept too long); it is read at
  most every 2 ms.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from typing import Any, Callable, Hashable, List, Optional

from ..repeated import RepeatedFailure
from ..shared_counts import SharedCounts

log = logging.getLogger("cks.store")

CHANNEL = "cks_keys_changed"
RECONNECT_SECONDS = 5.0
SQLITE_RECHECK_SECONDS = 0.002


def note_key_change(cursor: Any) -> None:
    """Call in a transaction that changes key rows (see the module notes);
    the other processes are told once per transaction, however many calls."""
    if not cursor.changed_keys:
        cursor.changed_keys = True
        cursor.backend.announce_key_change(cursor)


class LocalChanges:
    """The key-changing transactions this process committed (thread-safe);
    made by shared_by(), those of every serving process of one cksd, which
    share their counts, so that an upload one answered is seen by the lookup
    another answers next, without waiting for the database's notification.
    With a read replica, also how far into the primary's log the last of
    them reached (store/replica.py reads the primary until the replica has
    replayed that far).  No lock is shared between them (shared_counts.py)."""

    def __init__(self, counts: Optional[SharedCounts] = None) -> None:
        self._counts = counts if counts is not None else SharedCounts(1, 2, shared=False)

    @classmethod
    def shared_by(cls, processes: int) -> List["LocalChanges"]:
        """Each of `processes` processes' own: make them before the fork."""
        return [cls(row) for row in SharedCounts.rows(processes, 2)]

    def committed(self, log_position: Optional[int] = None) -> None:
        """One more committed; `log_position`: where the commit ended in the
        primary's log (Backend.log_position), where that is known."""
        self._counts.add(0)
        if log_position is not None:
            self._counts.raise_to(1, log_position)

    @property
    def count(self) -> int:
        return self._counts.total(0)

    @property
    def log_position(self) -> int:
        """The furthest of the committed log positions (0: none known)."""
        return self._counts.highest(1)


class KeyChangeWatch:
    """generation(): changes whenever the stored keys may have changed; None
    when that cannot be known (then nothing may be cached)."""

    def generation(self) -> Optional[Hashable]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop watching."""


class SQLiteWatch(KeyChangeWatch):
    """Reads data_version at most every `recheck` seconds: at thousands of
    lookups a second that is one query for many, and another process's
    change shows a few milliseconds later at worst (this process's own at
    once, through `local`)."""

    def __init__(self, connect: Callable[[], Any], local: LocalChanges,
                 recheck: float = SQLITE_RECHECK_SECONDS) -> None:
        self._conn = connect()
        self._local = local
        self._recheck = recheck
        self._lock = threading.Lock()
        self._version = None
        self._read_at = -recheck

    def generation(self) -> Optional[Hashable]:
        with self._lock:
            now = time.monotonic()
            if now - self._read_at >= self._recheck:
                self._version = self._conn.execute("PRAGMA data_version").fetchone()[0]
                self._read_at = now
            return self._local.count, self._version

    def close(self) -> None:
        self._conn.close()


class PostgresWatch(KeyChangeWatch):
    """LISTENs on a connection of its own, in a daemon thread."""

    def __init__(self, connect: Callable[[], Any], local: LocalChanges) -> None:
        self._connect = connect
        self._local = local
        self._heard = 0  # notifications, and reconnections (changes may have been missed)
        self._listening = threading.Event()
        # (logged when the connection breaks, every few minutes while it
        # stays down, and when it is back; not at each try to reconnect)
        self._lost = RepeatedFailure(log, "key change notifications lost, answers are not "
                                     "cached until they are back",
                                     "key change notifications heard again")
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="key-changes", daemon=True)
        self._thread.start()

    def generation(self) -> Optional[Hashable]:
        if not self._listening.is_set():
            return None
        return self._local.count, self._heard

    def wait_listening(self, timeout: float) -> bool:
        return self._listening.wait(timeout)

    def close(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except Exception as exc:  # noqa: BLE001 - the database went away; try again
                self._lost.failed(" ".join(str(exc).split()))
            finally:
                self._listening.clear()
            self._stopping.wait(RECONNECT_SECONDS)

    def _listen(self) -> None:
        conn = self._connect()
        try:
            conn.cursor().execute("LISTEN " + CHANNEL)
            self._heard += 1  # changes made while we were not listening
            self._listening.set()
            self._lost.succeeded()
            while not self._stopping.is_set():
                if select.select([conn], [], [], 1.0)[0]:
                    conn.poll()
                    if conn.notifies:
                        conn.notifies.clear()
                        self._heard += 1
        finally:
            conn.close()

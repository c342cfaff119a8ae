"""A bulk load's own tables (schema.sql): cks_load_progress, where an
interrupted load goes on, cks_load_counts and cks_load_problems, what it
found until there, and cks_load_served, the keys its second phase served."""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from typing import Counter, Dict, Iterable, List, Sequence, Set

from .base import Store
from .sql import Cursor, rows_in


@dataclass(frozen=True)
class FileIdentity:
    """An input file as the load saw it: a file that changed is read again."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str) -> "FileIdentity":
        status = os.stat(path)
        return cls(os.path.abspath(path), status.st_size, status.st_mtime_ns)


@dataclass
class Tally:
    """What a load found in a file: keys by outcome ('added', ...,
    'refused:KIND'), and problem lines in order."""

    counts: Counter = field(default_factory=collections.Counter)
    problems: List[str] = field(default_factory=list)

    def add(self, other: "Tally") -> None:
        self.counts.update(other.counts)
        self.problems.extend(other.problems)


PROGRESS_TABLES = ("cks_load_progress", "cks_load_counts", "cks_load_problems")


def resume_offset(cursor: Cursor, identity: FileIdentity) -> int:
    """Where to read `identity` on from: 0 unless an earlier load of the same
    file (same size and modification time) was interrupted."""
    row = cursor.execute("SELECT size, mtime_ns, resume_at FROM cks_load_progress WHERE "
                         "path = ?", (identity.path,)).fetchone()
    if row is None or (row[0], row[1]) != (identity.size, identity.mtime_ns):
        return 0
    return int(row[2])


def save(cursor: Cursor, offsets: Dict[FileIdentity, int], now: int) -> None:
    """Record, in the caller's transaction, the offsets reached."""
    for identity, offset in offsets.items():
        cursor.execute("DELETE FROM cks_load_progress WHERE path = ?", (identity.path,))
        cursor.execute("INSERT INTO cks_load_progress (path, size, mtime_ns, resume_at, "
                       "updated_at) VALUES (?, ?, ?, ?, ?)",
                       (identity.path, identity.size, identity.mtime_ns, offset, now))


def resumed_tally(cursor: Cursor, identity: FileIdentity) -> Tally:
    """What the interrupted loads of `identity` found before its resume_offset."""
    if resume_offset(cursor, identity) == 0:
        return Tally()
    counts = cursor.execute("SELECT outcome, keys FROM cks_load_counts WHERE path = ?",
                            (identity.path,)).fetchall()
    problems = cursor.execute("SELECT problem FROM cks_load_problems WHERE path = ? "
                              "ORDER BY seq", (identity.path,)).fetchall()
    return Tally(collections.Counter({o: int(k) for o, k in counts}), [p for p, in problems])


def record(cursor: Cursor, identity: FileIdentity, before: Tally, found: Tally) -> None:
    """Record, in the caller's transaction, what was `found` in `identity`
    after what was recorded `before` (rows past that are a stale load's)."""
    cursor.execute("DELETE FROM cks_load_counts WHERE path = ?", (identity.path,))
    total = before.counts + found.counts
    cursor.backend.insert_rows(cursor, "cks_load_counts", ("path", "outcome", "keys"),
                               [(identity.path, o, k) for o, k in sorted(total.items())])
    cursor.execute("DELETE FROM cks_load_problems WHERE path = ? AND seq >= ?",
                   (identity.path, len(before.problems)))
    cursor.backend.insert_rows(cursor, "cks_load_problems", ("path", "seq", "problem"),
                               [(identity.path, len(before.problems) + i, problem)
                                for i, problem in enumerate(found.problems)])


def forget(store: Store) -> None:
    """A load completed: the next one of any file starts from its beginning.
    Every file's progress goes, not only this load's: one left by a load
    of other files that was interrupted before (loads run one at a time)
    had a later load of those files, maybe weeks after, skip what that one
    read, and say its counts as its own (until 2026-12-06)."""
    with store.write() as cursor:
        for table in PROGRESS_TABLES:
            cursor.execute("DELETE FROM %s" % table)


def mark_served(cursor: Cursor, fingerprints: Sequence[str]) -> None:
    """Record, in the transaction that serves them, keys the second phase served."""
    cursor.backend.insert_rows(cursor, "cks_load_served", ("fingerprint",),
                               [(f,) for f in fingerprints])


def forget_served(cursor: Cursor) -> None:
    cursor.execute("DELETE FROM cks_load_served")


def unlist_served(cursor: Cursor, fingerprint: str) -> None:
    """A key deleted leaves the list, in the deleting transaction: the keys it
    signed are derived again without it, so they are no longer derived with
    every listed key held, and the key may come back (a database that never
    ran a load has no list)."""
    if cursor.backend.table_exists(cursor, "cks_load_served"):
        cursor.execute("DELETE FROM cks_load_served WHERE fingerprint = ?", (fingerprint,))


def served_together(cursor: Cursor, fingerprints: Iterable[str]) -> Set[str]:
    """Those of `fingerprints` that the second phase served (and that were not
    deleted since): each has a served view derived with all of them held.
    Any process may ask (cksd's follow-up does), once a load made the list."""
    wanted = set(fingerprints)
    if not wanted or not cursor.backend.table_exists(cursor, "cks_load_served"):
        return set()
    return {r[0] for r in rows_in(cursor, "SELECT fingerprint FROM cks_load_served WHERE "
                                          "fingerprint IN %s", wanted)}

"""A bulk load's own tables (schema.sql): cks_load_progress, where an
interrupted load goes on, and cks_load_served, the keys its second phase
served."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterable, Sequence, Set

from .base import Store
from .migrations import ensure_table
from .sql import Cursor, execute_in, rows_in


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


def prepare(store: Store) -> None:
    """Give a database made before these tables existed the tables."""
    with store.read() as cursor:
        for table in ("cks_load_progress", "cks_load_served"):
            ensure_table(store, cursor, table)


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


def forget(store: Store, identities: Iterable[FileIdentity]) -> None:
    """The load of these files completed: a new one starts from the beginning."""
    with store.write() as cursor:
        execute_in(cursor, "DELETE FROM cks_load_progress WHERE path IN %s",
                   [i.path for i in identities])


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

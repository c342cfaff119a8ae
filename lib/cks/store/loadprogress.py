"""cks_load_progress: where an interrupted bulk load goes on (schema.sql)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterable, Sequence

from .base import Cursor, Store, _in, in_chunks
from .migrations import ensure_table


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
    """Give a database made before cks_load_progress existed the table."""
    with store.read() as cursor:
        ensure_table(store, cursor, "cks_load_progress")


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
    paths = sorted({i.path for i in identities})
    with store.write() as cursor:
        for chunk in in_chunks(paths):
            cursor.execute("DELETE FROM cks_load_progress WHERE path IN %s" % _in(chunk), chunk)


def sks_hashes(cursor: Cursor, fingerprints: Sequence[str]) -> Dict[str, str]:
    """fingerprint -> SKS hash of the stored keys among `fingerprints`."""
    out: Dict[str, str] = {}
    for chunk in in_chunks(sorted(set(fingerprints))):
        out.update(cursor.execute("SELECT fingerprint, sks_hash FROM cks_keys WHERE "
                                  "fingerprint IN %s" % _in(chunk), chunk).fetchall())
    return out

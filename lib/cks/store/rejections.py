"""Deleting and rejecting keys, and the rejection notices (cks_rejected_keys,
cks_rejection_notices, cks_notice_backlog).  Functions over a cursor inside
a Store.write() transaction, or reads through a Store."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

from .base import Store
from .changes import note_key_change
from .loadprogress import unlist_served
from .ptree import change_hash
from .sql import Cursor

NOTICE_COLUMNS = ("serial, action, fingerprint, reason, notice_time, node, body, signature, "
                  "signer, origin, status, status_reason, received_at, applied_at")


@dataclass
class StoredNotice:
    serial: str
    action: str
    fingerprint: str
    reason: str
    notice_time: int
    node: str
    body: str
    signature: Optional[str]
    signer: Optional[str]
    origin: str
    status: str
    status_reason: str
    received_at: int
    applied_at: Optional[int]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def delete_key(cursor: Cursor, fingerprint: str) -> bool:
    """Remove a key and everything derived from it (index rows, verdicts, its
    place in the sync queue and in every peer's backlog); the served views of
    the keys it signed are derived again after the commit (views.py).  True if
    it was stored.  Its hash leaves the recon set (ptree.py)."""
    row = cursor.execute("SELECT keyid, sks_hash FROM cks_keys WHERE fingerprint = ?",
                         (fingerprint,)).fetchone()
    keyid, sks_hash = row if row else (None, None)
    if keyid is not None:
        Store.queue_view_work(cursor, fingerprint, keyid, signed=True)
    for table in ("cks_subkeys", "cks_userids", "cks_words", "cks_sig_verdicts",
                  "cks_key_signers"):
        cursor.execute("DELETE FROM %s WHERE key_fingerprint = ?" % table, (fingerprint,))
    cursor.execute("DELETE FROM cks_keys WHERE fingerprint = ?", (fingerprint,))
    unlist_served(cursor, fingerprint)
    note_key_change(cursor)
    if sks_hash is not None:
        change_hash(cursor, sks_hash, None)
    cursor.execute("DELETE FROM cks_sync_backlog WHERE fingerprint = ?", (fingerprint,))
    cursor.execute("DELETE FROM cks_pending_sync WHERE fingerprint = ?", (fingerprint,))
    return keyid is not None


def rejection(cursor: Cursor, fingerprint: str) -> Optional[Dict[str, Any]]:
    row = cursor.execute("SELECT reason, rejected_at, source FROM cks_rejected_keys "
                         "WHERE fingerprint = ?", (fingerprint,)).fetchone()
    return None if row is None else {"reason": row[0], "rejected_at": row[1], "source": row[2]}


def add_rejection(cursor: Cursor, fingerprint: str, reason: str, source: str, now: int) -> None:
    cursor.execute("DELETE FROM cks_rejected_keys WHERE fingerprint = ?", (fingerprint,))
    cursor.execute("INSERT INTO cks_rejected_keys (fingerprint, reason, rejected_at, source) "
                   "VALUES (?, ?, ?, ?)", (fingerprint, reason, now, source))


def remove_rejection(cursor: Cursor, fingerprint: str) -> None:
    """Take a key off the rejected list, and forget its refused hashes."""
    cursor.execute("DELETE FROM cks_rejected_keys WHERE fingerprint = ?", (fingerprint,))
    forget_refused_hashes(cursor, fingerprint)


def forget_refused_hashes(cursor: Cursor, fingerprint: str) -> None:
    """Forget the hashes recon recorded for a key, refused or held under
    another hash (sync/recon/fetch.py), so that the next round fetches it."""
    cursor.execute("DELETE FROM cks_recon_refused WHERE fingerprint = ?", (fingerprint,))


def rejected_keys(store: Store) -> List[Dict[str, Any]]:
    with store.read() as cursor:
        rows = cursor.execute("SELECT fingerprint, reason, rejected_at, source FROM "
                              "cks_rejected_keys ORDER BY rejected_at, fingerprint").fetchall()
    return [{"fingerprint": r[0], "reason": r[1] or "", "rejected_at": r[2], "source": r[3]}
            for r in rows]


# --- notices -------------------------------------------------------------------------

def insert_notice(cursor: Cursor, notice: StoredNotice) -> None:
    values = notice.to_dict()
    cursor.execute("INSERT INTO cks_rejection_notices (%s) VALUES (%s)"
                   % (NOTICE_COLUMNS, ", ".join("?" * 14)),
                   [values[c.strip()] for c in NOTICE_COLUMNS.split(",")])


def delete_notice(cursor: Cursor, serial: str) -> None:
    cursor.execute("DELETE FROM cks_rejection_notices WHERE serial = ?", (serial,))


def get_notice(cursor: Cursor, serial: str) -> Optional[StoredNotice]:
    row = cursor.execute("SELECT %s FROM cks_rejection_notices WHERE serial = ?"
                         % NOTICE_COLUMNS, (serial,)).fetchone()
    return StoredNotice(*row) if row else None


def set_notice_status(cursor: Cursor, serial: str, status: str,
                      signature: Optional[str] = None, signer: Optional[str] = None) -> None:
    """A notice's new status (its reason cleared), and its signature and
    signer when given."""
    cursor.execute("UPDATE cks_rejection_notices SET status = ?, status_reason = '', "
                   "signature = coalesce(?, signature), signer = coalesce(?, signer) "
                   "WHERE serial = ?", (status, signature, signer, serial))


def newest_applied_time(cursor: Cursor, fingerprint: str) -> Optional[int]:
    """The time of the newest notice about `fingerprint` that was carried out here
    (ours, issued or not yet signed, or a trusted peer's)."""
    return cursor.scalar("SELECT max(notice_time) FROM cks_rejection_notices WHERE "
                         "fingerprint = ? AND status IN ('applied', 'issued', 'unsigned')",
                         (fingerprint,))


def notices(store: Store, statuses: Sequence[str]) -> List[StoredNotice]:
    with store.read() as cursor:
        rows = cursor.execute("SELECT %s FROM cks_rejection_notices WHERE status IN (%s) "
                              "ORDER BY received_at, serial"
                              % (NOTICE_COLUMNS, ",".join("?" * len(statuses))),
                              list(statuses)).fetchall()
    return [StoredNotice(*r) for r in rows]


def count_notices(cursor: Cursor, status: str) -> int:
    return cursor.scalar("SELECT count(*) FROM cks_rejection_notices WHERE status = ?",
                         (status,))


def drop_pending(store: Store, received_before: Optional[int] = None) -> int:
    """Delete the notices waiting for review (those received before
    `received_before`, when given): how many."""
    where, params = "FROM cks_rejection_notices WHERE status = 'pending'", []
    if received_before is not None:
        where, params = where + " AND received_at < ?", [received_before]
    with store.write() as cursor:
        count = cursor.scalar("SELECT count(*) " + where, params)
        cursor.execute("DELETE " + where, params)
        return count


def queue_notice(cursor: Cursor, serial: str) -> None:
    """Owe a signed notice of ours to every HKP peer."""
    cursor.execute("INSERT INTO cks_notice_backlog (peer_id, serial) SELECT id, ? FROM "
                   "cks_other_servers WHERE kind = 'hkp' ON CONFLICT (peer_id, serial) "
                   "DO NOTHING", (serial,))


def notice_backlog(store: Store, peer_id: int) -> List[StoredNotice]:
    with store.read() as cursor:
        rows = cursor.execute(
            "SELECT %s FROM cks_rejection_notices n JOIN cks_notice_backlog b ON "
            "b.serial = n.serial WHERE b.peer_id = ? ORDER BY n.notice_time, n.serial"
            % ", ".join("n." + c.strip() for c in NOTICE_COLUMNS.split(",")),
            (peer_id,)).fetchall()
    return [StoredNotice(*r) for r in rows]


def notice_delivered(store: Store, peer_id: int, serial: str) -> None:
    with store.write() as cursor:
        cursor.execute("DELETE FROM cks_notice_backlog WHERE peer_id = ? AND serial = ?",
                       (peer_id, serial))

"""The peer list (cks_other_servers) and each peer's backlog (cks_sync_backlog).

A full send (catch-up) owes a peer the keys stored at the moment it was
asked for (the peer added, or `set --catch-up`): one backlog row per key,
with pending_id 0, so keys that peers send later are never relayed by it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from ..sync.peername import spellings
from ..wording import printable
from .base import Store
from .errors import StoreError
from .sql import Cursor, execute_in, rows_in

PUSH_KINDS = ("hkp", "mail")
_COLUMNS = ("id, peer, kind, sync_priority, contact_email, enabled, recon_port, filters, "
            "added_at, last_attempt, last_success, last_error, last_error_at, "
            "rejection_key, honour_rejections, recon_rounds, recon_last_round, "
            "recon_lacked_here, recon_lacked_there, recon_fetched")
CATCH_UP = 0  # the pending_id of the backlog rows of a full send


class PeerError(StoreError):
    """A peer that does not exist, or exists already."""


@dataclass
class Peer:
    id: int
    peer: str
    kind: str
    sync_priority: int
    contact_email: Optional[str]
    enabled: bool
    recon_port: Optional[int]
    filters: Optional[str]
    added_at: int
    last_attempt: Optional[int]
    last_success: Optional[int]
    last_error: Optional[str]
    last_error_at: Optional[int]
    rejection_key: Optional[str]  # fingerprint its operator signs rejection notices with
    honour_rejections: bool  # carry out its notices here
    recon_rounds: int  # recon peers: rounds completed, and the last one's findings
    recon_last_round: Optional[int]
    recon_lacked_here: Optional[int]
    recon_lacked_there: Optional[int]
    recon_fetched: Optional[int]
    backlog: int = 0  # keys owed to it
    catch_up: int = 0  # of which a full send still owes

    @property
    def last_failed(self) -> bool:
        """Its last attempt (a push or a recon round) failed."""
        return self.last_error_at is not None and (
            self.last_success is None or self.last_error_at > self.last_success)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _peer(row: Sequence[Any]) -> Peer:
    values = list(row)
    values[5] = bool(values[5])
    values[14] = bool(values[14])
    return Peer(*values)


STORED_TEXT_CHARS = 1000
"""Of an error or refusal text, the characters stored at most."""


def stored_text(text: str) -> str:
    """A peer's error or refusal text as stored: cut, one printable line.
    The callers cut a peer's own text already; this is the last line of
    defence.  Until 2026-12-07 a 10 MiB Config refusal was stored whole, and
    one with a NUL could not be stored on PostgreSQL (a traceback each round;
    cks_sync.py ended there, the peers after it unserved)."""
    return printable(text, STORED_TEXT_CHARS)


def _failed(cursor: Cursor, peer_id: int, now: int, error: str) -> None:
    cursor.execute("UPDATE cks_other_servers SET last_attempt = ?, last_error = ?, "
                   "last_error_at = ? WHERE id = ?", (now, stored_text(error), now, peer_id))


def _can_catch_up(peer: str, kind: str) -> None:
    """A full send is for push peers: a recon peer's backlog would never
    drain (recon sends no keys of its own)."""
    if kind not in PUSH_KINDS:
        raise PeerError("%s is a %s peer: it is sent no keys, so there is nothing to "
                        "catch up" % (peer, kind))


def _named(peer: str) -> Tuple[str, Tuple[str, ...]]:
    """The SQL condition on cks_other_servers.peer that finds `peer`, in any
    case and spelling (peername.spellings), and its parameters."""
    names = tuple(name.lower() for name in spellings(peer))
    return "lower(peer) IN (%s)" % ", ".join("?" * len(names)), names


class PeerStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    # --- the list -------------------------------------------------------------------

    @contextlib.contextmanager
    def _editing(self) -> Iterator[Cursor]:
        """A write transaction of the peer list that the uploads in flight
        end before (and new ones wait for): it holds every key's lock.
        Otherwise an upload that read the list before an added peer was
        committed, and stored its key after the peer's full send read the
        stored keys, owed that key to the peer by neither; and one that
        queued its key for a peer being removed failed on the backlog's
        foreign key, its key not stored."""
        with self.store.write() as cursor:
            cursor.backend.lock_all_keys(cursor)
            yield cursor

    def add(self, peer: str, kind: str, priority: int, contact_email: Optional[str],
            catch_up: bool, recon_port: Optional[int] = None,
            filters: Optional[str] = None, rejection_key: Optional[str] = None,
            honour_rejections: bool = False) -> Peer:
        """Add a peer; an HKP peer is owed every signed rejection notice of ours.
        Names that differ in case only are one peer: a mail address's local
        part keeps its spelling, but mail peers are told apart without case
        (mail_in.authorizing_peer), and the two would get every key twice.
        So are the other spellings an older CKS stored (peername.spellings)."""
        if catch_up:
            _can_catch_up(peer, kind)
        with self._editing() as cursor:
            condition, names = _named(peer)
            taken = cursor.execute("SELECT peer FROM cks_other_servers WHERE " + condition,
                                   names).fetchone()
            if taken:
                raise PeerError("peer %s is already in the list%s"
                                % (peer, "" if taken[0] == peer else " as %s" % taken[0]))
            cursor.execute(
                "INSERT INTO cks_other_servers (peer, kind, sync_priority, contact_email, "
                "enabled, recon_port, filters, added_at, rejection_key, honour_rejections) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (peer, kind, priority, contact_email, True, recon_port, filters,
                 int(time.time()), rejection_key, honour_rejections))
            if catch_up:
                self._owe_every_key(cursor, peer)
            if kind == "hkp":
                cursor.execute("INSERT INTO cks_notice_backlog (peer_id, serial) SELECT p.id, "
                               "n.serial FROM cks_other_servers p, cks_rejection_notices n "
                               "WHERE p.peer = ? AND n.origin = 'local' AND n.status = "
                               "'issued'", (peer,))
        return self.get(peer)

    def get(self, peer: str) -> Peer:
        """The peer named `peer`, in any case and spelling (as add() tells
        them apart; of two that an older CKS took, the one spelled so)."""
        with self.store.read() as cursor:
            condition, names = _named(peer)
            row = cursor.execute("SELECT %s FROM cks_other_servers WHERE %s "
                                 "ORDER BY peer = ? DESC LIMIT 1" % (_COLUMNS, condition),
                                 names + (peer,)).fetchone()
        if row is None:
            raise PeerError("no peer %s in the list (see cks_sync_manage.py list)" % peer)
        return self._with_backlog([_peer(row)])[0]

    def list(self, enabled_only: bool = False, counted: bool = False) -> List[Peer]:
        """The peers; `counted`: with the keys owed to each (backlog,
        catch_up), which reads the whole backlog: a million rows while a peer
        catches up on a million keys, 0.2 s or more on SQLite.  Until
        2026-12-07 they were counted for every caller, the serving
        processes' jobs that need only the peers' addresses or which of them
        are owed anything (`owing`) included, and in a way that sorted the
        backlog (1 s and more)."""
        sql = "SELECT %s FROM cks_other_servers" % _COLUMNS
        if enabled_only:
            sql += " WHERE enabled = ?"
        with self.store.read() as cursor:
            rows = cursor.execute(sql + " ORDER BY sync_priority, id",
                                  (True,) if enabled_only else ()).fetchall()
        peers = [_peer(r) for r in rows]
        return self._with_backlog(peers) if counted else peers

    def owing(self) -> Set[int]:
        """The IDs of the peers owed at least one key (one index probe each)."""
        with self.store.read() as cursor:
            return {peer_id for (peer_id,) in cursor.execute(
                "SELECT id FROM cks_other_servers p WHERE EXISTS "
                "(SELECT 1 FROM cks_sync_backlog b WHERE b.peer_id = p.id)").fetchall()}

    def _with_backlog(self, peers: List[Peer]) -> List[Peer]:
        """`peers` with their backlogs counted: one walk of the backlog's
        index in its order (peer_id first), with no sort."""
        with self.store.read() as cursor:
            counts = {peer_id: (total, catch_up) for peer_id, total, catch_up in cursor.execute(
                "SELECT peer_id, count(*), count(CASE WHEN pending_id = ? THEN 1 END) "
                "FROM cks_sync_backlog GROUP BY peer_id", (CATCH_UP,)).fetchall()}
        for peer in peers:
            peer.backlog, peer.catch_up = counts.get(peer.id, (0, 0))
        return peers

    @staticmethod
    def _owe_every_key(cursor: Cursor, peer: str) -> None:
        """Start a full send: every key stored now (and only those) is owed.
        Rows go in in fingerprint order, the backlog's indexes' order: uploads
        wait for it (_editing), and PostgreSQL took 17 s for 1,000,000 keys
        so, 49 s in the table's order (its index pages read at random)."""
        cursor.execute("INSERT INTO cks_sync_backlog (peer_id, fingerprint, pending_id) "
                       "SELECT p.id, k.fingerprint, ? FROM cks_other_servers p, cks_keys k "
                       "WHERE p.peer = ? ORDER BY k.fingerprint "
                       "ON CONFLICT (peer_id, fingerprint) DO NOTHING", (CATCH_UP, peer))

    def remove(self, peer: str) -> None:
        found = self.get(peer)
        with self._editing() as cursor:
            cursor.execute("DELETE FROM cks_sync_backlog WHERE peer_id = ?", (found.id,))
            cursor.execute("DELETE FROM cks_other_servers WHERE id = ?", (found.id,))
            self.drop_delivered(cursor)

    def update(self, peer: str, priority: Optional[int] = None, enabled: Optional[bool] = None,
               contact_email: Optional[str] = None, catch_up: bool = False,
               rejection_key: Optional[str] = None,
               honour_rejections: Optional[bool] = None) -> Peer:
        found = self.get(peer)
        if catch_up:
            _can_catch_up(found.peer, found.kind)
        changes: List[Tuple[str, Any]] = []
        if rejection_key is not None:
            changes.append(("rejection_key", rejection_key or None))
        if honour_rejections is not None:
            changes.append(("honour_rejections", honour_rejections))
        if priority is not None:
            changes.append(("sync_priority", priority))
        if enabled is not None:
            changes.append(("enabled", enabled))
        if contact_email is not None:
            changes.append(("contact_email", contact_email))
        if changes or catch_up:
            with self._editing() as cursor:
                if changes:
                    cursor.execute("UPDATE cks_other_servers SET %s WHERE id = ?"
                                   % ", ".join("%s = ?" % c for c, _ in changes),
                                   [v for _, v in changes] + [found.id])
                if catch_up:
                    self._owe_every_key(cursor, found.peer)
        return self.get(peer)

    # --- sync state ---------------------------------------------------------------

    def backlog(self, peer_id: int, limit: int) -> List[Tuple[str, int]]:
        """(fingerprint, pending id) owed to a peer: a full send first, in
        fingerprint order, then queued keys, oldest first."""
        with self.store.read() as cursor:
            return [(r[0], r[1]) for r in cursor.execute(
                "SELECT fingerprint, pending_id FROM cks_sync_backlog WHERE peer_id = ? "
                "ORDER BY pending_id, fingerprint LIMIT ?", (peer_id, limit)).fetchall()]

    def held_by(self, peer_id: int) -> Optional[str]:
        """A v4 key stored here that the peer is not owed and did not refuse:
        one it took before (or had when it was added without a full send)."""
        with self.store.read() as cursor:
            row = cursor.execute(
                "SELECT k.fingerprint FROM cks_keys k WHERE k.version = 4 AND NOT EXISTS "
                "(SELECT 1 FROM cks_sync_backlog b WHERE b.peer_id = ? AND "
                "b.fingerprint = k.fingerprint) AND NOT EXISTS (SELECT 1 FROM "
                "cks_sync_refusals r WHERE r.peer_id = ? AND r.fingerprint = k.fingerprint) "
                "ORDER BY k.fingerprint LIMIT 1", (peer_id, peer_id)).fetchone()
        return row[0] if row else None

    def backlog_of(self, peer_id: int, fingerprints: Sequence[str]) -> Dict[str, int]:
        """Pending ids owed to a peer for these keys."""
        with self.store.read() as cursor:
            return dict(rows_in(cursor, "SELECT fingerprint, pending_id FROM cks_sync_backlog "
                                        "WHERE peer_id = ? AND fingerprint IN %s",
                                fingerprints, (peer_id,)))

    def mail_addresses(self) -> List[str]:
        """The enabled mail peers (list's order, without counting backlogs)."""
        with self.store.read() as cursor:
            return [r[0] for r in cursor.execute(
                "SELECT peer FROM cks_other_servers WHERE kind = 'mail' AND enabled = ? "
                "ORDER BY sync_priority, id", (True,)).fetchall()]

    def delivered(self, peer_id: int, entries: Sequence[Tuple[str, int]], now: int,
                  took: Sequence[str] = ()) -> None:
        """The peer acknowledged these queue entries: they leave its backlog (unless
        queued again meanwhile), and queue entries every peer has leave the queue.
        The keys it `took` (not refused) leave its refusals: it took a later
        version than the one it refused."""
        with self.store.write() as cursor:
            for fingerprint, pending_id in entries:
                cursor.execute("DELETE FROM cks_sync_backlog WHERE peer_id = ? AND "
                               "fingerprint = ? AND pending_id = ?",
                               (peer_id, fingerprint, pending_id))
            execute_in(cursor, "DELETE FROM cks_sync_refusals WHERE peer_id = ? AND "
                       "fingerprint IN %s", took, (peer_id,))
            cursor.execute("UPDATE cks_other_servers SET last_success = ? WHERE id = ?",
                           (now, peer_id))
            self.drop_delivered(cursor, [f for f, _ in entries])

    def drop_owed_to_none(self) -> None:
        """Queue entries that no peer's backlog holds leave the queue (as
        drop_delivered does for keys just sent): those that nodes without a
        push peer queued before 2026-12-05, which op=stats counted as waiting
        for ever."""
        with self.store.write() as cursor:
            self.drop_delivered(cursor)

    @staticmethod
    def drop_delivered(cursor: Cursor, fingerprints: Optional[Sequence[str]] = None) -> None:
        sql = ("DELETE FROM cks_pending_sync WHERE NOT EXISTS (SELECT 1 FROM cks_sync_backlog "
               "b WHERE b.fingerprint = cks_pending_sync.fingerprint)")
        if fingerprints is None:
            cursor.execute(sql)
            return
        execute_in(cursor, sql + " AND fingerprint IN %s", fingerprints)

    def record_attempt(self, peer_id: int, now: int, error: Optional[str]) -> None:
        with self.store.write() as cursor:
            if error is None:
                cursor.execute("UPDATE cks_other_servers SET last_attempt = ? WHERE id = ?",
                               (now, peer_id))
            else:
                _failed(cursor, peer_id, now, error)

    def record_round(self, peer_id: int, now: int, lacked_here: int, lacked_there: int,
                     fetched: int, error: Optional[str], completed: bool) -> None:
        """A recon round's outcome; `completed`: the session itself succeeded
        (its fetch may still have failed: `error`)."""
        with self.store.write() as cursor:
            if completed:
                cursor.execute("UPDATE cks_other_servers SET recon_rounds = recon_rounds + 1, "
                               "recon_last_round = ?, recon_lacked_here = ?, "
                               "recon_lacked_there = ?, recon_fetched = ? WHERE id = ?",
                               (now, lacked_here, lacked_there, fetched, peer_id))
            if error is None:
                cursor.execute("UPDATE cks_other_servers SET last_attempt = ?, last_success = ? "
                               "WHERE id = ?", (now, now, peer_id))
            else:
                _failed(cursor, peer_id, now, error)

    def record_refusal(self, peer_id: int, fingerprint: str, message: str, now: int) -> bool:
        """Record the peer's refusal of a key; False: it refused the key
        before for the same reason (a later version of it: see runner.py).
        A peer removed meanwhile (a push under way) records nothing."""
        message = stored_text(message)
        with self.store.write() as cursor:
            before = cursor.execute("SELECT message FROM cks_sync_refusals WHERE peer_id = ? "
                                    "AND fingerprint = ?", (peer_id, fingerprint)).fetchone()
            cursor.execute("DELETE FROM cks_sync_refusals WHERE peer_id = ? AND fingerprint = ?",
                           (peer_id, fingerprint))
            cursor.execute("INSERT INTO cks_sync_refusals (peer_id, fingerprint, refused_at, "
                           "message) SELECT id, ?, ?, ? FROM cks_other_servers WHERE id = ?",
                           (fingerprint, now, message, peer_id))
        return before is None or before[0] != message

    def refusals(self, peer_id: int) -> List[Tuple[str, int, str]]:
        with self.store.read() as cursor:
            return [tuple(r) for r in cursor.execute(
                "SELECT fingerprint, refused_at, message FROM cks_sync_refusals "
                "WHERE peer_id = ? ORDER BY refused_at, fingerprint", (peer_id,)).fetchall()]

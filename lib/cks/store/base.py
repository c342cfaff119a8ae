"""The storage interface: SQL written once, run by a backend per database.

A backend (sql.Backend: sqlite.py, postgres.py) supplies connections, the
placeholder style, how a write transaction starts and locks a key, and which
errors are transient; Database (connections.py) the transactions.  The
queries are written once for both, so both databases behave the same: the
keys' here (their rows: rows.py), those of other parts of the schema beside
it (peers.py, rejections.py, stats.py, ptree.py).
"""

from __future__ import annotations

import time
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional,
                    Sequence, Set, Tuple)

from ..folding import fold_address
from ..openpgp.crc24 import crc24
from ..openpgp.errors import PacketError
from ..openpgp.info import KeyInfo
from ..openpgp.packet import read_packet
from .changes import note_key_change
from .connections import Database
from .ptree import change_hash, insert_all
from .rows import (DESCRIBED_COLUMNS, INDEX_COLUMNS, INDEX_TABLES, KEY_ROWS_OF_ID_MATCHES,
                   KEY_ROWS_OF_MATCHES, NETWORK_VIEW_COLUMNS, SAVE_VERDICTS, SIGNER_COLUMNS,
                   UNSERVED, VIEW_WORK_COLUMNS, KeyRow, NetworkView, ServedState, ServedView,
                   StoredKey, ViewWork, described, first_key_rows, index_rows, key_rows_of,
                   network_view_row, signer_rows, verdict_rows)
from .sql import Cursor, execute_in, in_list, insert_statement, rows_in

if TYPE_CHECKING:  # pragma: no cover
    from .stats import KeyStatistics, NoticeLog

PRIMARY_PACKET_READ = 4096
"""Bytes of a stored key read for its primary key packet (RSA-16384: 2 KB)."""

PREPARED_WORDS = 8
"""A word search of up to this many words is a prepared statement (one per
number of words); a longer one, rare and a client's to choose, is not, so
that no client can make a connection keep a statement per length."""

WORD_SCAN_KEYS = 5000
"""A search of several words reads the keys that hold its rarest word (the
one fewest keys hold), in fingerprint order, and looks up the other words
for each: at most this many of them (or the keys asked for, when more), so
that a search costs as much at a million keys as at a thousand whatever
words it holds (past them, the answer says that more keys may match).
Before 2026-12-06 it grouped the index rows of all its words: two words
that every key holds (a name part, a domain) took 0.3-1.1 s at 200,000
keys."""

WORD_COUNT_KEYS = 20_000
"""Which word is the rarest is told by counting the keys of each, up to
WORD_SCAN_KEYS; when every word has more, up to this many (a count reads
that many rows of the index: 8 words every key holds, counted up to 50,000
each, took twice as long as the search itself at 60,000 keys)."""


def _word_counts(run: Callable[..., Any], words: Sequence[str], most: int) -> List[int]:
    """How many keys hold each of `words`, counted up to `most`."""
    return list(run("SELECT " + ", ".join(["(SELECT count(*) FROM (SELECT 1 FROM cks_words "
                                           "WHERE word = ? LIMIT ?) c)"] * len(words)),
                    [v for word in words for v in (word, most)]).fetchone())


def _keys_of_words(others: int) -> str:
    """The keys among the first few that hold a word that also hold
    `others` more words, in fingerprint order (parameters: the word, how
    many of its keys to read, the other words, the limit)."""
    return ("SELECT w.key_fingerprint AS fingerprint FROM (SELECT key_fingerprint "
            "FROM cks_words WHERE word = ? ORDER BY key_fingerprint LIMIT ?) w%s "
            "ORDER BY 1 LIMIT ?" % "".join(
                "%s EXISTS (SELECT 1 FROM cks_words o%d WHERE o%d.word = ? AND "
                "o%d.key_fingerprint = w.key_fingerprint)" % (
                    " AND" if n else " WHERE", n, n, n) for n in range(others)))


def _column_of_keys(cursor: Cursor, column: str, fingerprints: Iterable[str]) -> Dict[str, Any]:
    """fingerprint -> `column` of cks_keys, for the stored keys among `fingerprints`."""
    return dict(rows_in(cursor, "SELECT fingerprint, %s FROM cks_keys WHERE fingerprint IN %%s"
                        % column, fingerprints))


class Store(Database):
    """The one storage interface every tool uses: a Database with the keys'
    writes and reads."""

    def count_keys(self) -> int:
        with self.read() as cursor:
            return cursor.scalar("SELECT count(*) FROM cks_keys")

    # --- keys: writing (inside write()) ------------------------------------

    @staticmethod
    def save_key(cursor: Cursor, info: KeyInfo, keydata: Optional[bytes], served: bytes,
                 source: str, first_seen: Optional[int], now: int) -> None:
        """Write a key (the network's view and the served view) and its index rows,
        which describe the served view, replacing what was stored; `keydata`
        None: a stored key whose network view stays (its served view derived
        again), which is then neither read nor written."""
        fpr = info.fingerprint
        values = described(info)
        old_hash = info.sks_hash if keydata is None else None
        if first_seen is not None:
            cursor.defer("DELETE FROM cks_subkeys WHERE key_fingerprint = ?", (fpr,))
            cursor.defer("DELETE FROM cks_userids WHERE key_fingerprint = ?", (fpr,))
            cursor.defer("DELETE FROM cks_words WHERE key_fingerprint = ?", (fpr,))
            network = ""
            if keydata is not None:
                old_hash = cursor.scalar("SELECT sks_hash FROM cks_keys WHERE fingerprint = ?",
                                         (fpr,))
                network, values = "sks_hash = ?, keydata = ?, size = ?, ", \
                    values + (info.sks_hash, keydata, len(keydata))
            cursor.defer(
                "UPDATE cks_keys SET %s, %sserved = ?, served_crc24 = ?, last_changed = ?, "
                "source = ? WHERE fingerprint = ?"
                % (", ".join("%s = ?" % c for c in DESCRIBED_COLUMNS), network),
                values + (served, crc24(served), now, source, fpr))
        else:
            assert keydata is not None, "a new key needs its network view"
            cursor.defer(insert_statement("cks_keys", DESCRIBED_COLUMNS + (
                "sks_hash", "keydata", "served", "served_crc24", "size", "first_seen",
                "last_changed", "source", "fingerprint")), values + (
                info.sks_hash, keydata, served, crc24(served), len(keydata), now, now, source,
                fpr))
        note_key_change(cursor)
        if old_hash != info.sks_hash:
            # The recon set: the old hash leaves, the new one enters, after the row
            # changed (ptree.py).
            change_hash(cursor, old_hash, info.sks_hash)
        for table, columns, rows in zip(INDEX_TABLES, INDEX_COLUMNS, index_rows(info)):
            cursor.executemany(insert_statement(table, columns), rows)

    @staticmethod
    def serve_unserved(cursor: Cursor, views: Sequence[ServedView], now: int) -> None:
        """Write the served views of keys stored UNSERVED (a bulk load's second
        phase; the caller, holding their locks, checked that they still are):
        what save_key() and record_signers() write for one such key (its row,
        index rows, signers, the follow-up queue) and its verdicts, for all of
        them with one statement per table (Backend.update_rows, insert_rows).
        Such a key has no index rows yet, but it may have its signers: an
        upload's new key (pipeline.store_keys's `defer_views`) saves them
        with its network view, and an unchanged copy of a key a load stored
        with its queued view (pipeline.serve_held); until 2026-12-06 the
        load then failed, on their primary key."""
        if not views:
            return
        backend = cursor.backend
        execute_in(cursor, "DELETE FROM cks_key_signers WHERE key_fingerprint IN %s",
                   [v.info.fingerprint for v in views])
        backend.update_rows(cursor, "cks_keys", "fingerprint", DESCRIBED_COLUMNS + (
            "served", "served_crc24", "last_changed"), [
            (v.info.fingerprint,) + described(v.info) + (v.served, crc24(v.served), now)
            for v in views])
        note_key_change(cursor)
        rows = [index_rows(v.info) for v in views]
        for n, (table, columns) in enumerate(zip(INDEX_TABLES, INDEX_COLUMNS)):
            backend.insert_rows(cursor, table, columns, [r for key in rows for r in key[n]])
        backend.insert_rows(cursor, "cks_key_signers", SIGNER_COLUMNS, [
            r for v in views for r in signer_rows(v.info.fingerprint, v.signers)])
        backend.insert_rows(cursor, "cks_view_work", VIEW_WORK_COLUMNS, [
            (v.info.fingerprint, v.info.keyid, True, " ".join(v.missing)) for v in views])
        cursor.executemany(SAVE_VERDICTS, [
            r for v in views for r in verdict_rows(v.info.fingerprint, v.verdicts)])

    @staticmethod
    def save_network_views(cursor: Cursor, views: Sequence[NetworkView], source: str,
                           now: int) -> None:
        """Write NEW keys' network views alone (bulk load's first phase): their
        rows, without served views (UNSERVED: lookups pass them by) or index
        rows, and their hashes in the recon set, all at once (Backend.insert_rows,
        one walk down the tree).  save_key() completes each.  Call it
        before any other change to the set in the transaction."""
        if not views:
            return
        cursor.backend.insert_rows(cursor, "cks_keys", NETWORK_VIEW_COLUMNS,
                                   [network_view_row(v, source, now) for v in views])
        note_key_change(cursor)
        insert_all(cursor, [v.sks_hash for v in views])

    @staticmethod
    def save_network_view(cursor: Cursor, view: NetworkView, source: str, now: int) -> None:
        """Write one new key's network view alone, as save_network_views() does
        many (an upload: its row goes with the next statement instead of a
        COPY of its own, and the tree's path is read in one query)."""
        cursor.defer(insert_statement("cks_keys", NETWORK_VIEW_COLUMNS),
                     network_view_row(view, source, now))
        note_key_change(cursor)
        change_hash(cursor, None, view.sks_hash)

    @staticmethod
    def unserved(cursor: Cursor, after: str, limit: int, max_bytes: int) -> List[str]:
        """Fingerprints above `after` of keys stored without a served view yet,
        in order: `limit` of them at most, and no more once their key data
        reach `max_bytes` (at least one)."""
        rows = cursor.execute(
            "SELECT fingerprint, size FROM cks_keys WHERE served_crc24 = ? AND fingerprint > ? "
            "ORDER BY fingerprint LIMIT ?", (UNSERVED, after, limit)).fetchall()
        found: List[str] = []
        total = 0
        for fingerprint, size in rows:
            if found and total >= max_bytes:
                break
            found.append(fingerprint)
            total += size
        return found

    @staticmethod
    def sks_hashes(cursor: Cursor, fingerprints: Sequence[str]) -> Dict[str, str]:
        """fingerprint -> SKS hash of the stored keys among `fingerprints`
        (a writer that merged or derived outside its transaction checks with
        them that the stored keys are still the ones it read)."""
        return _column_of_keys(cursor, "sks_hash", fingerprints)

    @staticmethod
    def count_unserved(cursor: Cursor) -> int:
        return cursor.scalar("SELECT count(*) FROM cks_keys WHERE served_crc24 = ?", (UNSERVED,))

    @staticmethod
    def save_signers(cursor: Cursor, fingerprint: str, keyids: Iterable[bytes]) -> None:
        """Who signed a key (cks_key_signers), from its network view."""
        cursor.defer("DELETE FROM cks_key_signers WHERE key_fingerprint = ?", (fingerprint,))
        cursor.executemany(insert_statement("cks_key_signers", SIGNER_COLUMNS),
                           signer_rows(fingerprint, keyids))

    @staticmethod
    def queue_view_work(cursor: Cursor, fingerprint: str, keyid: str, signed: bool,
                        missing: Sequence[str] = ()) -> None:
        cursor.defer(insert_statement("cks_view_work", VIEW_WORK_COLUMNS),
                     (fingerprint, keyid, signed, " ".join(missing)))

    @staticmethod
    def view_work(cursor: Cursor, limit: int, after: int = 0,
                  through: Optional[int] = None) -> List[ViewWork]:
        """The first `limit` work items queued (after the item `after`, and
        up to the item `through`), each with whether its key is unserved
        (in the same query: on PostgreSQL each is a round trip)."""
        last = "" if through is None else " AND w.id <= %d" % through
        return [ViewWork(r[0], r[1], r[2], bool(r[3]), r[4], bool(r[5])) for r in cursor.execute(
            "SELECT w.id, w.fingerprint, w.keyid, w.signed, w.missing, k.served_crc24 = ? "
            "FROM cks_view_work w LEFT JOIN cks_keys k ON k.fingerprint = w.fingerprint "
            "WHERE w.id > ?%s ORDER BY w.id LIMIT ?" % last, (UNSERVED, after, limit)).fetchall()]

    @staticmethod
    def new_keys(cursor: Cursor) -> Dict[str, str]:
        """fingerprint -> SKS hash of the keys stored without a served view
        that have work queued (pipeline.store_keys's `defer_views`)."""
        return dict(cursor.execute(
            "SELECT DISTINCT k.fingerprint, k.sks_hash FROM cks_view_work w JOIN cks_keys k "
            "ON k.fingerprint = w.fingerprint WHERE k.served_crc24 = ?", (UNSERVED,)).fetchall())

    @staticmethod
    def signer_keyids(cursor: Cursor, fingerprints: Iterable[str]) -> Set[str]:
        """The key IDs of the signers of these keys' third-party signatures."""
        return {r[0] for r in rows_in(cursor, "SELECT DISTINCT signer_keyid FROM "
                                      "cks_key_signers WHERE key_fingerprint IN %s",
                                      fingerprints)}

    @staticmethod
    def served_views_made(cursor: Cursor) -> Tuple[int, str]:
        """The rules (served.SERVED_VIEWS_VERSION) the stored served views
        were derived under, and while they are older, the last key (its
        fingerprint; "": none) derived again under the current ones."""
        made, after = cursor.execute(
            "SELECT served_views, served_views_after FROM cks_schema_version").fetchone()
        return made, after or ""

    @staticmethod
    def set_served_views_made(cursor: Cursor, made: int, after: Optional[str]) -> None:
        """Record served_views_made's two values."""
        cursor.execute("UPDATE cks_schema_version SET served_views = ?, served_views_after = ?",
                       (made, after))

    @staticmethod
    def keys_after(cursor: Cursor, after: str) -> int:
        """How many stored keys' fingerprints come after `after`."""
        return cursor.scalar("SELECT count(*) FROM cks_keys WHERE fingerprint > ?", (after,))

    @staticmethod
    def fingerprints_after(cursor: Cursor, after: str, limit: int) -> List[str]:
        """The first `limit` stored keys' fingerprints after `after`, in order."""
        return [row[0] for row in cursor.execute(
            "SELECT fingerprint FROM cks_keys WHERE fingerprint > ? ORDER BY fingerprint "
            "LIMIT %d" % limit, (after,)).fetchall()]

    @staticmethod
    def last_view_work(cursor: Cursor) -> int:
        """The id of the work item queued last (0: none queued)."""
        return cursor.scalar("SELECT coalesce(max(id), 0) FROM cks_view_work")

    @staticmethod
    def signed_by(cursor: Cursor, keyids: Iterable[str]) -> Dict[str, Set[str]]:
        """key ID -> the stored keys that a key with this key ID signed (for
        those that signed any)."""
        found: Dict[str, Set[str]] = {}
        for keyid, fingerprint in rows_in(cursor, "SELECT signer_keyid, key_fingerprint FROM "
                                          "cks_key_signers WHERE signer_keyid IN %s", keyids):
            found.setdefault(keyid, set()).add(fingerprint)
        return found

    @staticmethod
    def held_keyids(cursor: Cursor, keyids: Iterable[str]) -> Set[str]:
        """Those of these (primary) key IDs that a stored key has."""
        return {r[0] for r in rows_in(cursor, "SELECT DISTINCT keyid FROM cks_keys WHERE "
                                      "keyid IN %s", keyids)}

    def view_work_done(self, ids: Sequence[int]) -> None:
        with self.write(flush=False) as cursor:  # (done again if a crash loses this)
            execute_in(cursor, "DELETE FROM cks_view_work WHERE id IN %s", ids)

    @staticmethod
    def queue_sync(cursor: Cursor, fingerprint: str, source: str, now: int,
                   peers: Optional[Sequence[str]] = None) -> None:
        """Queue a key for every push peer (HKP and mail), enabled or not: a
        disabled peer is still owed it; or, with `peers`, for those peers only.
        A key already queued moves to the end under a new id, so a send of the
        older version does not clear it.  With no such peer nothing is queued
        (a peer added later gets the stored keys by its full send)."""
        only = " AND s.peer IN %s" % in_list(peers) if peers else ""
        cursor.defer("DELETE FROM cks_pending_sync WHERE fingerprint = ?", (fingerprint,))
        cursor.defer("INSERT INTO cks_pending_sync (fingerprint, queued_at, source) "
                     "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM cks_other_servers s "
                     "WHERE s.kind IN ('hkp', 'mail')%s)" % only,
                     [fingerprint, now, source] + list(peers or ()))
        cursor.defer(
            "INSERT INTO cks_sync_backlog (peer_id, fingerprint, pending_id) "
            "SELECT s.id, p.fingerprint, p.id FROM cks_other_servers s, cks_pending_sync p "
            "WHERE p.fingerprint = ? AND s.kind IN ('hkp', 'mail')%s "
            "ON CONFLICT (peer_id, fingerprint) DO UPDATE SET pending_id = excluded.pending_id"
            % only, [fingerprint] + list(peers or ()))

    @staticmethod
    def rejection_reasons(cursor: Cursor, fingerprints: Sequence[str]) -> Dict[str, str]:
        """fingerprint -> why, for those of `fingerprints` on the rejected list."""
        return {fingerprint: _reason(reason) for fingerprint, reason in rows_in(
            cursor, "SELECT fingerprint, reason FROM cks_rejected_keys WHERE fingerprint IN %s",
            fingerprints)}

    @staticmethod
    def merge_state(cursor: Cursor,
                    fingerprint: str) -> Tuple[Optional[str], Optional[Tuple[bytes, int, bool]]]:
        """What merging a key needs, in one query: why it is rejected (None if
        it is not) and its stored (keydata, first_seen, whether it is served)
        (None if not stored)."""
        row = cursor.execute(
            "SELECT r.fingerprint, r.reason, k.keydata, k.first_seen, k.served_crc24 <> ? "
            "FROM (SELECT ? AS fingerprint) f "
            "LEFT JOIN cks_rejected_keys r ON r.fingerprint = f.fingerprint "
            "LEFT JOIN cks_keys k ON k.fingerprint = f.fingerprint",
            (UNSERVED, fingerprint)).fetchone()
        return (None if row[0] is None else _reason(row[1]),
                None if row[2] is None else (bytes(row[2]), row[3], bool(row[4])))

    # --- keys: reading ----------------------------------------------------------

    def find_by_id(self, column: str, value: str, limit: int) -> List[str]:
        """Primary fingerprints whose key or subkey has `column` (keyid,
        short_keyid or fingerprint) equal to `value`, all alike (a lookup
        finds fewer: key_rows_by_id)."""
        with self.read() as cursor:
            rows = cursor.execute(_matching_id(column), _id_parameters(value, limit)).fetchall()
        return [r[0] for r in rows]

    def key_rows_by_id(self, column: str, value: str, limit: int
                       ) -> Tuple[List[KeyRow], bool, bool]:
        """The index rows of the first `limit` keys a lookup by `column` (keyid,
        short_keyid or fingerprint) finds (_found_by_id), in one query (a
        round trip on PostgreSQL); whether more keys matched; and whether
        they were found by a subkey."""
        with self.read() as cursor:
            rows = cursor.execute_prepared(KEY_ROWS_OF_ID_MATCHES % _found_by_id(column),
                                           _found_by_id_parameters(value, limit + 1)
                                           ).fetchall()
        return first_key_rows(rows, limit) + (bool(rows and rows[0][-1]),)

    def served_parts_by_id(self, column: str, value: str, limit: int
                           ) -> Tuple[List[Tuple[bytes, int]], bool, bool]:
        """The served views and CRC24s of the first `limit` keys a lookup by
        `column` finds (_found_by_id), in one query; whether more keys
        matched; and whether they were found by a subkey."""
        with self.read() as cursor:
            rows = cursor.execute_prepared(
                "SELECT k.served, k.served_crc24, m.by_subkey FROM (%s) m "
                "JOIN cks_keys k ON k.fingerprint = m.fingerprint "
                "ORDER BY m.first_seen, k.fingerprint"
                % _found_by_id(column), _found_by_id_parameters(value, limit + 1)).fetchall()
        return ([(bytes(r[0]), r[1]) for r in rows[:limit] if r[1] != UNSERVED],
                len(rows) > limit, bool(rows and rows[0][2]))

    def key_rows_by_email(self, email: str, limit: int) -> Tuple[List[KeyRow], bool]:
        """key_rows of the first `limit` keys with a user ID of this address,
        in fingerprint order, and whether more keys matched, in one query."""
        with self.read() as cursor:
            return first_key_rows(cursor.execute_prepared(
                KEY_ROWS_OF_MATCHES % "SELECT DISTINCT key_fingerprint AS fingerprint "
                "FROM cks_userids WHERE email = ? ORDER BY 1 LIMIT ?",
                (fold_address(email), limit + 1)).fetchall(), limit)

    def key_rows_by_words(self, words: Sequence[str], limit: int) -> Tuple[List[KeyRow], bool]:
        """key_rows of the first `limit` keys that hold every one of `words`
        (a few: the statements grow with them), in fingerprint order among
        the first WORD_SCAN_KEYS keys of the rarest word, and whether more
        keys matched (or may match)."""
        unique = sorted(set(words))
        if not unique:
            return [], False
        scan = max(WORD_SCAN_KEYS, limit + 1)
        with self.read() as cursor:
            run = cursor.execute_prepared if len(unique) <= PREPARED_WORDS else cursor.execute
            rarest, held = 0, 0  # (held: the rarest word's keys, counted up to a bound)
            if len(unique) > 1:
                counts = _word_counts(run, unique, scan + 1)
                if min(counts) > scan:
                    counts = _word_counts(run, unique, max(WORD_COUNT_KEYS, scan) + 1)
                rarest = min(range(len(unique)), key=counts.__getitem__)
                held = counts[rarest]
                if held == 0:
                    return [], False
            others = unique[:rarest] + unique[rarest + 1:]
            rows, more = first_key_rows(run(
                KEY_ROWS_OF_MATCHES % _keys_of_words(len(others)),
                [unique[rarest], scan] + others + [limit + 1]).fetchall(), limit)
        return rows, more or held > scan

    def find_by_hash(self, sks_hash: str) -> List[str]:
        with self.read() as cursor:
            rows = cursor.execute_prepared("SELECT fingerprint FROM cks_keys WHERE sks_hash = ?",
                                           (sks_hash.upper(),)).fetchall()
        return [r[0] for r in rows]

    def sizes_by_hash(self, sks_hashes: Sequence[str]) -> List[Tuple[str, int]]:
        """(fingerprint, size of its stored key data) of the keys held among
        these SKS hashes (hex), in the hashes' order: what a hashquery
        answers, then read in runs of a known size (app.py)."""
        wanted = [h.upper() for h in sks_hashes]
        with self.read() as cursor:
            found = {r[0]: (r[1], r[2]) for r in rows_in(
                cursor, "SELECT sks_hash, fingerprint, size FROM cks_keys WHERE sks_hash IN %s",
                wanted)}
        return [found[h] for h in wanted if h in found]

    def keydata(self, fingerprints: Sequence[str]) -> Dict[str, bytes]:
        if not fingerprints:
            return {}
        with self.read() as cursor:
            rows = cursor.execute("SELECT fingerprint, keydata FROM cks_keys WHERE fingerprint "
                                  "IN %s" % in_list(fingerprints), list(fingerprints)).fetchall()
        return {r[0]: bytes(r[1]) for r in rows}

    def served_parts(self, fingerprints: Sequence[str]) -> Dict[str, Tuple[bytes, int]]:
        """Each key's served view and its CRC24, ready for armor (none for a
        key whose served view does not exist yet)."""
        if not fingerprints:
            return {}
        with self.read() as cursor:
            rows = cursor.execute(
                "SELECT fingerprint, served, served_crc24 FROM cks_keys WHERE fingerprint IN %s "
                "AND served_crc24 <> ?" % in_list(fingerprints),
                list(fingerprints) + [UNSERVED]).fetchall()
        return {r[0]: (bytes(r[1]), r[2]) for r in rows}

    def served(self, fingerprints: Sequence[str]) -> Dict[str, bytes]:
        return {f: data for f, (data, _) in self.served_parts(fingerprints).items()}

    # --- signature verdicts and issuer keys (inside write()) ---------------------

    @staticmethod
    def served_states(cursor: Cursor, fingerprints: Sequence[str]) -> Dict[str, ServedState]:
        """fingerprint -> ServedState of those keys that are stored (its SKS
        hash: what sks_hashes gives, read with the rest in the same query)."""
        return {r[0]: ServedState(bytes(r[1]), bool(r[2]), bool(r[3]), r[4], r[5])
                for r in rows_in(cursor, "SELECT fingerprint, served, revoked, "
                                 "unverified_revocation, source, sks_hash FROM cks_keys "
                                 "WHERE fingerprint IN %s", fingerprints)}

    @staticmethod
    def load_verdicts(cursor: Cursor, fingerprint: str) -> Dict[bytes, Tuple[str, bool, str]]:
        return Store.load_verdicts_of(cursor, [fingerprint]).get(fingerprint, {})

    @staticmethod
    def load_verdicts_of(cursor: Cursor, fingerprints: Sequence[str]
                         ) -> Dict[str, Dict[bytes, Tuple[str, bool, str]]]:
        """fingerprint -> the cached verdicts on its signatures (keys with any)."""
        found: Dict[str, Dict[bytes, Tuple[str, bool, str]]] = {}
        for fingerprint, key, status, weak, reason in rows_in(
                cursor, "SELECT key_fingerprint, cache_key, status, weak_hash, reason FROM "
                "cks_sig_verdicts WHERE key_fingerprint IN %s", fingerprints):
            found.setdefault(fingerprint, {})[bytes.fromhex(key)] = (status, bool(weak), reason)
        return found

    @staticmethod
    def keydata_sizes(cursor: Cursor, fingerprints: Sequence[str]) -> Dict[str, int]:
        """fingerprint -> the size of its stored key data (the `size` column,
        written with it), for the stored keys among `fingerprints`."""
        return _column_of_keys(cursor, "size", fingerprints)

    @staticmethod
    def stored_keys(cursor: Cursor, fingerprints: Sequence[str]) -> Dict[str, StoredKey]:
        """The stored keys among `fingerprints`, one query per IN_CHUNK."""
        return {r[0]: StoredKey(bytes(r[1]), r[2], r[3]) for r in rows_in(
            cursor, "SELECT fingerprint, keydata, first_seen, sks_hash FROM cks_keys WHERE "
            "fingerprint IN %s", fingerprints)}

    @staticmethod
    def save_verdicts(cursor: Cursor, fingerprint: str,
                      verdicts: Dict[bytes, Tuple[str, bool, str]]) -> None:
        cursor.executemany(SAVE_VERDICTS, verdict_rows(fingerprint, verdicts))

    @staticmethod
    def primary_keys_by_keyid(cursor: Cursor, keyids: Sequence[str]) -> Dict[str, List[bytes]]:
        """keyid -> the primary key packets of the stored keys whose primary
        has it (the whole packet with its header).  Only the start of each
        key is read: a well-certified key names dozens of signers, each of
        whom may hold a large key."""
        out: Dict[str, List[bytes]] = {}
        for keyid, fingerprint, head in rows_in(
                cursor, "SELECT keyid, fingerprint, substr(keydata, 1, ?) FROM cks_keys "
                "WHERE keyid IN %s", keyids, (PRIMARY_PACKET_READ,)):
            try:
                packet = read_packet(bytes(head))[0]
            except PacketError:  # a primary key packet longer than what was read
                packet = read_packet(bytes(cursor.execute(
                    "SELECT keydata FROM cks_keys WHERE fingerprint = ?",
                    (fingerprint,)).fetchone()[0]))[0]
            out.setdefault(keyid, []).append(packet.serialize())
        return out

    def iter_keydata(self, batch: int = 500) -> Iterator[Tuple[str, bytes]]:
        """Every stored key in fingerprint order, fetched `batch` at a time."""
        after = ""
        while True:
            with self.read() as cursor:
                rows = cursor.execute("SELECT fingerprint, keydata FROM cks_keys WHERE "
                                      "fingerprint > ? ORDER BY fingerprint LIMIT ?",
                                      (after, batch)).fetchall()
            if not rows:
                return
            for fingerprint, data in rows:
                yield fingerprint, bytes(data)
            after = rows[-1][0]

    def key_rows(self, fingerprints: Sequence[str]) -> List[KeyRow]:
        """Index rows of the given keys, in the given order (missing ones left out)."""
        if not fingerprints:
            return []
        with self.read() as cursor:  # one query (a round trip on PostgreSQL)
            _, rows = key_rows_of(cursor.execute(
                KEY_ROWS_OF_MATCHES % "SELECT fingerprint FROM cks_keys WHERE fingerprint IN %s"
                % in_list(fingerprints), list(fingerprints)).fetchall())
        return [rows[f] for f in fingerprints if f in rows]

    # --- the stats page (stats.py) ------------------------------------------------

    def peers_summary(self) -> List[Dict[str, Any]]:
        from .stats import peers_summary  # stats.py imports this module
        return peers_summary(self)

    def key_statistics(self, days: int, now: Optional[int] = None) -> "KeyStatistics":
        """Counts by algorithm and by day, and of user IDs (stats.py)."""
        from .stats import key_statistics
        with self.read() as cursor:
            return key_statistics(cursor, now, days)

    def notice_log(self, limit: int) -> "NoticeLog":
        from .stats import notice_log
        with self.read() as cursor:
            return notice_log(cursor, limit)

    def stats(self, now: Optional[int] = None) -> Dict[str, int]:
        now = int(time.time()) if now is None else now
        with self.read() as cursor:
            return {
                "keys": cursor.scalar("SELECT count(*) FROM cks_keys"),
                "unserved_keys": self.count_unserved(cursor),
                "new_keys_24h": cursor.scalar(
                    "SELECT count(*) FROM cks_keys WHERE first_seen > ?", (now - 86400,)),
                "updated_keys_24h": cursor.scalar(
                    "SELECT count(*) FROM cks_keys WHERE last_changed > ?", (now - 86400,)),
                "pending_sync": cursor.scalar("SELECT count(*) FROM cks_pending_sync"),
                "rejected_keys": cursor.scalar("SELECT count(*) FROM cks_rejected_keys"),
                "peers": cursor.scalar(
                    "SELECT count(*) FROM cks_other_servers WHERE enabled = ?", (True,)),
            }


def _matching_id(column: str) -> str:
    """Primary fingerprints whose key or subkey has `column` equal to a value,
    the first few in order (parameters: _id_parameters)."""
    if column not in ("keyid", "short_keyid", "fingerprint"):
        raise ValueError(column)
    return ("SELECT fingerprint FROM cks_keys WHERE %s = ? AND served_crc24 <> ? UNION "
            "SELECT key_fingerprint FROM cks_subkeys WHERE %s = ? ORDER BY 1 LIMIT ?"
            % (column, column))


def _id_parameters(value: str, limit: int) -> Tuple[Any, ...]:
    return value, UNSERVED, value, limit


def _found_by_id(column: str) -> str:
    """The keys a lookup by `column` finds (parameters: _found_by_id_parameters),
    the first few, as (fingerprint, by_subkey, first_seen) in the order of
    the last two: those whose v4+ primary key has it (served), and only where
    none has, those whose v3 primary key or a subkey has it (by_subkey: 1,
    IDs anyone can take), the first stored here first.
    Anyone can bind someone else's public key to a key of their own as a
    subkey that signs nothing (only a signing subkey signs its binding
    back): until 2026-12-07 such keys came with the one asked for, a
    hundred of them sorted first cut it from the answer at max_results, and
    one holding a packet GnuPG 2.2 cannot read (a v6 signature) made it read
    nothing of the answer.  A v3 key's ID is the low 64 bits of its RSA
    modulus, anyone's to choose: until 2026-12-07 a bare v3 key made with
    another key's ID answered alone where that was a subkey's, and beside it
    where a primary key's."""
    if column not in ("keyid", "short_keyid", "fingerprint"):
        raise ValueError(column)
    v4_held = ("SELECT 1 FROM cks_keys p WHERE p.{0} = ? AND p.served_crc24 <> ? "
               "AND p.version > 3")
    return ("SELECT fingerprint, CASE WHEN version > 3 THEN 0 ELSE 1 END AS by_subkey, "
            "first_seen FROM cks_keys WHERE {0} = ? AND served_crc24 <> ? "
            "AND (version > 3 OR NOT EXISTS (%s)) "
            "UNION ALL SELECT DISTINCT k.fingerprint, 1, k.first_seen FROM cks_subkeys s "
            "JOIN cks_keys k ON k.fingerprint = s.key_fingerprint WHERE s.{0} = ? "
            "AND k.{0} <> s.{0} AND NOT EXISTS (%s) "
            "ORDER BY 3, 1 LIMIT ?" % (v4_held, v4_held)).format(column)


def found_by_id(cursor: Cursor, column: str, value: str, limit: int) -> List[str]:
    """The fingerprints of the first `limit` keys a lookup by `column` finds
    (_found_by_id), in `cursor`'s transaction: a rejection notice's signer
    is looked up as a key is (rejection.py)."""
    return [r[0] for r in cursor.execute_prepared(
        _found_by_id(column), _found_by_id_parameters(value, limit)).fetchall()]


def _found_by_id_parameters(value: str, limit: int) -> Tuple[Any, ...]:
    return value, UNSERVED, value, UNSERVED, value, value, UNSERVED, limit


def _reason(stored: Optional[str]) -> str:
    return stored or "rejected by the operator"

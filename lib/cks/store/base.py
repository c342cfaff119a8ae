"""The storage interface: SQL written once, run by a backend per database.

A backend (sqlite.py, postgres.py) supplies connections, the placeholder
style, how a write transaction starts and locks a key, and which errors are
transient.  The queries are written once for both, so both databases behave
the same: the keys' here, those of other parts of the schema beside it
(peers.py, rejections.py, stats.py, ptree.py).
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, NamedTuple,
                    Optional, Sequence, Set, Tuple)

from ..openpgp.crc24 import crc24
from ..openpgp.info import KeyInfo
from ..openpgp.errors import PacketError
from ..openpgp.keypacket import PublicKey
from ..openpgp.packet import read_packet
from .changes import KeyChangeWatch, LocalChanges, note_key_change

if TYPE_CHECKING:  # pragma: no cover
    from .stats import KeyStatistics, NoticeLog

WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
MAX_WORD_LENGTH = 64


class StoreError(Exception):
    """A database problem that retrying will not fix."""


class StoreUnavailable(StoreError):
    """The database is unreachable, locked or otherwise failing for now: retry later."""


def words_of(text: str) -> List[str]:
    """The search words of a user ID or query, as the word index keeps them."""
    return [w for w in WORD_RE.findall(text.lower()) if len(w) <= MAX_WORD_LENGTH]


@dataclass
class UserIDRow:
    uid: str
    email: Optional[str]
    is_attribute: bool
    created: Optional[int]
    expires: Optional[int]
    revoked: bool


@dataclass
class KeyRow:
    """What the index pages need of one key, without parsing it."""

    fingerprint: str
    version: int
    keyid: str
    algorithm: int
    bits: int
    created: int
    expires: Optional[int]
    revoked: bool
    sks_hash: str
    size: int
    first_seen: int
    last_changed: int
    user_ids: List[UserIDRow] = field(default_factory=list)
    revocation_unverified: bool = False  # see KeyInfo


@dataclass
class NetworkView:
    """A new key's network view, to store before its served view exists."""

    key: PublicKey  # the primary key
    keydata: bytes
    sks_hash: str

    @property
    def keyid(self) -> str:
        return self.key.keyid.hex().upper()


class ServedState(NamedTuple):
    """What a writer of a stored key's served view reads of it
    (Store.served_states)."""

    served: bytes  # b"": not served yet (UNSERVED)
    revoked: bool
    unverified_revocation: bool
    source: str
    sks_hash: str  # of the network view the served one was derived from


@dataclass
class StoredKey:
    """What merging with a stored key needs of it (Store.stored_keys)."""

    keydata: bytes
    first_seen: int
    sks_hash: str


@dataclass
class ServedView:
    """A served view derived for a key stored without one (Store.serve_unserved)."""

    info: KeyInfo
    served: bytes
    verdicts: Dict[bytes, Tuple[str, bool, str]]  # new signature verdicts
    signers: Set[bytes]  # key IDs of the other keys that signed it
    missing: Sequence[str]  # signers it needs that are not held


@dataclass
class ViewWork:
    """A row of cks_view_work (schema.sql)."""

    id: int
    fingerprint: str
    keyid: str
    signed: bool
    missing: str
    unserved: bool = False  # its key is stored without a served view yet (read with it)


class Backend:
    """What differs between databases.  See sqlite.py and postgres.py."""

    placeholder = "?"
    name = "?"
    batches = False  # Cursor.defer(): send statements together (a server, not a file)

    def connect(self) -> Any:
        raise NotImplementedError

    def begin_write(self, cursor: Any, lock_keys: Sequence[str], flush: bool = True) -> None:
        """Begin a write transaction holding the keys' locks; `flush` false:
        its commit does not wait for the disk (Store.write)."""
        raise NotImplementedError

    def end_write(self, cursor: "Cursor", flush: bool = True) -> None:
        """The write transaction begin_write() began (or failed to begin) on
        this cursor's connection is over: committed or rolled back."""

    def prepare_bulk_write(self, cursor: "Cursor") -> None:
        """A transaction is about to begin that writes a bulk load's batch:
        thousands of rows, their index entries at random places."""

    def end_bulk_write(self, cursor: "Cursor") -> None:
        """That transaction is over: what prepare_bulk_write changed for it
        alone is as before."""

    def tidy_after_bulk_write(self, cursor: "Cursor") -> None:
        """Bulk writes are done (a load, a rebuilt tree): leave the tables as
        a database that served for a while has them (outside a transaction)."""

    def take_over_checkpoints(self) -> bool:
        """This process's connections, from now on, leave copying the
        write-ahead log into the database to checkpoint() (Store's); False
        where the database does that by itself."""
        return False

    def checkpoint(self, cursor: "Cursor") -> None:
        """Copy the log into the database (see take_over_checkpoints)."""

    def create_schema(self, cursor: Any) -> None:
        raise NotImplementedError

    def begin_schema_change(self, cursor: "Cursor") -> None:
        """Start a transaction that changes the schema, alone among all programs."""
        raise NotImplementedError

    def run_ddl(self, cursor: "Cursor", statement: str) -> None:
        """Run a schema statement written in PostgreSQL's dialect."""
        cursor.execute(statement)

    def insert_rows(self, cursor: "Cursor", table: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        """Add many rows to a table (none of them there yet)."""
        cursor.executemany(insert_statement(table, columns), rows)

    def update_rows(self, cursor: "Cursor", table: str, key: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        """Set `columns` of many rows, each row given as (key value, values...)."""
        cursor.executemany("UPDATE %s SET %s WHERE %s = ?" % (
            table, ", ".join("%s = ?" % c for c in columns), key),
            [tuple(row[1:]) + (row[0],) for row in rows])

    def execute_prepared(self, raw_cursor: Any, sql: str, params: Sequence[Any]) -> None:
        """Run `sql` (with '?' placeholders), which this program runs again
        and again, so the database keeps it parsed and planned (sqlite3
        caches every statement by itself)."""
        raw_cursor.execute(sql, tuple(params))

    def table_exists(self, cursor: Any, table: str) -> bool:
        raise NotImplementedError

    def transient(self, exc: BaseException) -> bool:
        """Is `exc` a database error worth retrying later?"""
        raise NotImplementedError

    def database_errors(self) -> Tuple[type, ...]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def statement_started(self, raw_cursor: Any) -> None:
        """A statement is about to run on this (DB-API) cursor's connection:
        where the database has no statement timeout of its own, count it
        from here."""

    def closed(self, conn: Any) -> None:
        """A connection was closed."""

    def idle(self, conn: Any) -> bool:
        """Whether a connection is healthy and outside any transaction, so that
        it may be handed out again."""
        raise NotImplementedError

    def try_lock(self, name: str) -> Optional[Any]:
        """Take a lock named `name` shared by every process using this database,
        without waiting; return a handle for unlock(), or None if it is held."""
        raise NotImplementedError

    def unlock(self, handle: Any) -> None:
        raise NotImplementedError

    def lock_held(self, handle: Any) -> bool:
        """Whether the lock try_lock gave as `handle` is held still."""
        raise NotImplementedError

    def watch_key_changes(self, local: "LocalChanges") -> "KeyChangeWatch":
        """A watch over every process's key changes (changes.py)."""
        raise NotImplementedError

    def announce_key_change(self, cursor: "Cursor") -> None:
        """Tell other processes' watches, at commit, that keys changed (none
        needed where the watch sees every commit by itself)."""


class Cursor:
    """A DB-API cursor that takes '?' placeholders whatever the backend."""

    def __init__(self, raw: Any, backend: Backend) -> None:
        self.raw = raw
        self.backend = backend
        self.changed_keys = False  # set by changes.note_key_change
        self._deferred: List[bytes] = []  # statements, parameters filled in (defer())
        self._deferred_bytes = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> "Cursor":
        """Run a statement (after the deferred ones, in the same round trip)."""
        sql = self._native(sql)
        self.backend.statement_started(self.raw)
        if self._deferred:
            self._deferred.append(self.raw.mogrify(sql, tuple(params)))
            self._flush()
        else:
            self.raw.execute(sql, tuple(params))
        return self

    def execute_prepared(self, sql: str, params: Sequence[Any] = ()) -> "Cursor":
        """Run a statement that lookups run again and again: kept parsed and
        planned by the database, once per connection (Backend.execute_prepared)."""
        self.send_deferred()
        self.backend.statement_started(self.raw)
        self.backend.execute_prepared(self.raw, sql, params)
        return self

    def defer(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement whose result nobody reads, now or with the next one.

        Where the database is a server (backend.batches), the statement is
        sent with the next execute(), COMMIT at the latest: a write transaction
        costs one round trip per read, not one per statement.  An error in a
        deferred statement is raised by that execute(), inside the same
        transaction, so it still fails whole.
        """
        if not self.backend.batches:
            self.execute(sql, params)
            return
        self._keep(self.raw.mogrify(self._native(sql), tuple(params)))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement for each row (deferred where the backend batches:
        an INSERT as one statement with a VALUES row each, unless it updates
        on conflict, which one statement may not do twice to a row)."""
        if not rows:
            return
        if not self.backend.batches:
            self.backend.statement_started(self.raw)
            self.raw.executemany(self._native(sql), [tuple(r) for r in rows])
            return
        insert = _INSERT_VALUES.match(sql)
        if insert is None or "DO UPDATE" in insert.group(3):
            for row in rows:
                self.defer(sql, row)
            return
        head, values, tail = (self._native(part).encode() for part in insert.groups())
        for start in range(0, len(rows), ROWS_PER_INSERT):
            self._keep(head + b",".join(
                self.raw.mogrify(values, tuple(row)) for row in rows[start:start + ROWS_PER_INSERT]
            ) + tail)

    def send_deferred(self) -> None:
        """Send the deferred statements now (before I/O that is not execute())."""
        if self._deferred:
            self._flush()

    def abandon(self) -> None:
        """Forget the deferred statements (the transaction is rolled back)."""
        self._deferred.clear()
        self._deferred_bytes = 0

    def _keep(self, statement: bytes) -> None:
        """Defer a statement, parameters filled in; send what is kept once it
        adds up to DEFERRED_BYTES."""
        self._deferred.append(statement)
        self._deferred_bytes += len(statement)
        if self._deferred_bytes > DEFERRED_BYTES:
            self._flush()

    def _flush(self) -> None:
        batch = b";".join(self._deferred)
        self.abandon()
        self.raw.execute(batch)  # no parameters: psycopg2 sends it as it is

    def _native(self, sql: str) -> str:
        if self.backend.placeholder != "?":
            sql = sql.replace("?", self.backend.placeholder)
        return sql

    def fetchone(self) -> Optional[tuple]:
        return self.raw.fetchone()

    def fetchall(self) -> List[tuple]:
        return self.raw.fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        return row[0] if row else None


PRIMARY_PACKET_READ = 4096
"""Bytes of a stored key read for its primary key packet (RSA-16384: 2 KB)."""

PREPARED_WORDS = 8
"""A word search of up to this many words is a prepared statement (one per
number of words); a longer one, rare and a client's to choose, is not, so
that no client can make a connection keep a statement per length."""

UNSERVED = -1
"""cks_keys.served_crc24 of a key stored without its served view yet (a bulk
load's first phase): no lookup finds it until save_key() writes the view."""

DEFERRED_BYTES = 1 << 20
"""Deferred statements are sent once they add up to this much SQL text."""
ROWS_PER_INSERT = 1000
_INSERT_VALUES = re.compile(r"(INSERT INTO .* VALUES )(\([?, ]+\))(.*)\Z", re.S)


def insert_statement(table: str, columns: Sequence[str]) -> str:
    return "INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(columns),
                                               ", ".join("?" * len(columns)))


DESCRIBED_COLUMNS = ("version", "keyid", "short_keyid", "algorithm", "bits", "created",
                     "expires", "revoked", "unverified_revocation")
"""cks_keys' columns that describe the served view (KeyInfo)."""
SUBKEY_COLUMNS = ("key_fingerprint", "fingerprint", "keyid", "short_keyid", "version",
                  "algorithm", "bits", "created", "expires", "revoked")
USERID_COLUMNS = ("key_fingerprint", "position", "uid", "email", "is_attribute", "created",
                  "expires", "revoked")
WORD_COLUMNS = ("word", "key_fingerprint")
INDEX_TABLES = ("cks_subkeys", "cks_userids", "cks_words")
INDEX_COLUMNS = (SUBKEY_COLUMNS, USERID_COLUMNS, WORD_COLUMNS)
SIGNER_COLUMNS = ("signer_keyid", "key_fingerprint")
VIEW_WORK_COLUMNS = ("fingerprint", "keyid", "signed", "missing")
SAVE_VERDICTS = ("INSERT INTO cks_sig_verdicts (cache_key, key_fingerprint, status, "
                 "weak_hash, reason) VALUES (?, ?, ?, ?, ?) ON CONFLICT (cache_key) DO NOTHING")


def described(info: KeyInfo) -> tuple:
    """DESCRIBED_COLUMNS' values for a key."""
    return (info.version, info.keyid, info.keyid[-8:], info.algorithm, info.bits,
            info.created, info.expires, info.revoked, info.revocation_unverified)


def index_rows(info: KeyInfo) -> Tuple[List[tuple], List[tuple], List[tuple]]:
    """A key's rows of cks_subkeys, cks_userids and cks_words (their columns above)."""
    fpr = info.fingerprint
    subkeys = [(fpr, s.fingerprint, s.keyid, s.keyid[-8:], s.version, s.algorithm, s.bits,
                s.created, s.expires, s.revoked)
               for s in {s.fingerprint: s for s in info.subkeys}.values()]
    userids = [(fpr, n, u.text, u.email, u.is_attribute, u.created, u.expires, u.revoked)
               for n, u in enumerate(info.user_ids)]
    words = {w for u in info.user_ids if not u.is_attribute for w in words_of(u.text)}
    return subkeys, userids, [(w, fpr) for w in sorted(words)]


def signer_rows(fingerprint: str, keyids: Iterable[bytes]) -> List[tuple]:
    return [(k.hex().upper(), fingerprint) for k in sorted(set(keyids))]


def verdict_rows(fingerprint: str, verdicts: Dict[bytes, Tuple[str, bool, str]]) -> List[tuple]:
    return [(k.hex(), fingerprint, v[0], v[1], v[2]) for k, v in verdicts.items()]


IN_CHUNK = 500
"""Values in one SQL IN list at most (SQLite before 3.32 allows 999 parameters)."""


def _in(values: Sequence[Any]) -> str:
    return "(" + ",".join("?" * len(values)) + ")"


def in_chunks(values: Iterable[Any], size: int = IN_CHUNK) -> Iterator[List[Any]]:
    """`values` as lists of at most `size`, for one IN list each."""
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


def rows_in(cursor: Cursor, query: str, values: Iterable[Any],
            before: Sequence[Any] = ()) -> List[tuple]:
    """The rows of `query`, whose one `IN %s` takes the distinct `values` an
    IN_CHUNK at a time, after the parameters `before`."""
    rows: List[tuple] = []
    for chunk in in_chunks(sorted(set(values))):
        rows.extend(cursor.execute(query % _in(chunk), list(before) + chunk).fetchall())
    return rows


def execute_in(cursor: Cursor, statement: str, values: Iterable[Any],
               before: Sequence[Any] = ()) -> None:
    """Run `statement` (a write), whose one `IN %s` takes the distinct
    `values` an IN_CHUNK at a time, after the parameters `before`; deferred
    (Cursor.defer: on PostgreSQL sent with the next statement, COMMIT at
    the latest)."""
    for chunk in in_chunks(sorted(set(values))):
        cursor.defer(statement % _in(chunk), list(before) + chunk)


def _column_of_keys(cursor: Cursor, column: str, fingerprints: Iterable[str]) -> Dict[str, Any]:
    """fingerprint -> `column` of cks_keys, for the stored keys among `fingerprints`."""
    return dict(rows_in(cursor, "SELECT fingerprint, %s FROM cks_keys WHERE fingerprint IN %%s"
                        % column, fingerprints))


def _close(raw_cursor: Any) -> None:
    """Close a cursor before its connection goes back to the pool: a query
    whose rows were not all read keeps (on SQLite) a read transaction open
    while its cursor lives, and the connection's next user would not see what
    was written since."""
    try:
        raw_cursor.close()
    except Exception:  # noqa: BLE001 - a connection already broken is discarded anyway
        pass


class Store:
    """The one storage interface every tool uses."""

    def __init__(self, backend: Backend, pool_size: int = 8, reads_only: bool = False) -> None:
        self.backend = backend
        # A store that only reads (a streaming replica) neither makes nor
        # migrates the schema: it waits for what the primary's replays.
        self.reads_only = reads_only
        self._pool: "queue.LifoQueue[Any]" = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max(1, pool_size))
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self.local_changes = LocalChanges()
        # Told of every database error it raises (cksd counts them: hkp/cksd_metrics.py).
        self.on_error: Optional[Callable[[StoreError], None]] = None

    # --- connections and transactions ---------------------------------------

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        self._slots.acquire()
        conn = None
        try:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self._connect()
            try:
                yield conn
            except StoreUnavailable:
                # The server went away (restarted, failed over): the idle
                # connections are as dead as this one, and each would cost
                # a request its answer.
                self._close_idle()
                raise
            except StoreError:
                raise
            except BaseException:
                # Not the database's failure (a recon peer hung up, a client
                # went away): a connection its user left outside any
                # transaction serves on, instead of a new one next time.
                if self.backend.idle(conn):
                    self._pool.put(conn)
                    conn = None
                raise
            self._pool.put(conn)
            conn = None
        finally:
            if conn is not None:  # it failed mid-use: do not hand it out again
                self._discard(conn)
            self._slots.release()

    def _discard(self, conn: Any) -> None:
        self.backend.closed(conn)
        with contextlib.suppress(Exception):
            conn.close()

    def _close_idle(self) -> None:
        while True:
            try:
                self._discard(self._pool.get_nowait())
            except queue.Empty:
                return

    def _connect(self) -> Any:
        try:
            conn = self.backend.connect()
        except self.backend.database_errors() as exc:
            error = StoreUnavailable("cannot open database %s: %s"
                                     % (self.backend.describe(), _one_line(exc)))
            raise self._seen(error) from None
        if not self._schema_ready:
            with self._schema_lock:
                if not self._schema_ready:
                    try:
                        self._ensure_schema(conn)
                    except BaseException:
                        self._discard(conn)
                        raise
                    self._schema_ready = True
        return conn

    def _ensure_schema(self, conn: Any) -> None:
        cursor = Cursor(conn.cursor(), self.backend)
        from .schema import SCHEMA_VERSION
        try:
            if not self.backend.table_exists(cursor, "cks_schema_version"):
                if self.reads_only:
                    raise self._seen(StoreUnavailable(
                        "database %s holds no CKS tables (yet)" % self.backend.describe()))
                self.backend.create_schema(cursor)
            version = cursor.scalar("SELECT max(version) FROM cks_schema_version")
        except self.backend.database_errors() as exc:
            raise self._wrap(exc) from None
        if version is None or version > SCHEMA_VERSION:
            raise StoreError("database schema version %s is not one this CKS knows (%d)"
                             % (version, SCHEMA_VERSION))
        if version < SCHEMA_VERSION and self.reads_only:
            raise self._seen(StoreUnavailable(
                "database %s holds CKS schema version %d, not yet %d"
                % (self.backend.describe(), version, SCHEMA_VERSION)))
        if version < SCHEMA_VERSION:
            from .migrations import migrate
            try:
                migrate(self, cursor, SCHEMA_VERSION)
            except self.backend.database_errors() as exc:
                raise self._wrap(exc) from None

    def _wrap(self, exc: BaseException) -> StoreError:
        kind = StoreUnavailable if self.backend.transient(exc) else StoreError
        return self._seen(kind("database error: %s" % _one_line(exc)))

    def _seen(self, error: StoreError) -> StoreError:
        if self.on_error is not None:
            self.on_error(error)
        return error

    @contextlib.contextmanager
    def write(self, lock_keys: Sequence[str] = (), bulk: bool = False,
              flush: bool = True) -> Iterator[Cursor]:
        """A write transaction; `lock_keys` (fingerprints) are locked until it ends;
        `bulk`: it writes a bulk load's batch (Backend.prepare_bulk_write);
        `flush` false, or `bulk`: its commit does not wait for the disk, for
        what is done again if a crash loses it (a load's batch, whose
        progress it records; a derived served view, whose work item stays
        queued until a later commit).  A crash loses the last of such
        commits, never one without those before it.

        Writers of the same key are serialized, so a read-merge-write inside
        never loses another writer's packets.
        """
        with self._connection() as conn:
            cursor = Cursor(conn.cursor(), self.backend)
            flush = flush and not bulk
            try:
                if bulk:
                    self.backend.prepare_bulk_write(cursor)
                self.backend.begin_write(cursor, sorted(set(lock_keys)), flush)
                yield cursor
                cursor.execute("COMMIT")
                if cursor.changed_keys:
                    self.local_changes.committed()
            except BaseException as exc:
                cursor.abandon()
                with contextlib.suppress(Exception):
                    cursor.execute("ROLLBACK")
                if isinstance(exc, self.backend.database_errors()):
                    raise self._wrap(exc) from None
                raise
            finally:
                try:
                    self.backend.end_write(cursor, flush)
                    if bulk:
                        self.backend.end_bulk_write(cursor)
                except self.backend.database_errors() as exc:
                    # A StoreError: the pool does not hand out a connection
                    # left with this write's settings (_connection).
                    raise self._wrap(exc) from exc
                finally:
                    _close(cursor.raw)

    @contextlib.contextmanager
    def read(self) -> Iterator[Cursor]:
        """A cursor for queries (each statement sees committed data)."""
        with self._connection() as conn:
            raw = conn.cursor()
            try:
                yield Cursor(raw, self.backend)
            except self.backend.database_errors() as exc:
                raise self._wrap(exc) from None
            finally:
                _close(raw)

    def watch_key_changes(self) -> KeyChangeWatch:
        """Tells when the stored keys change, in any process (changes.py)."""
        return self.backend.watch_key_changes(self.local_changes)

    def close(self) -> None:
        self._close_idle()

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Hold the database-wide lock `name` (e.g. one cks_sync run at a time);
        yields False, without waiting, when another process holds it."""
        handle = self.take_lock(name)
        try:
            yield handle is not None
        finally:
            if handle is not None:
                self.release(handle)

    def take_lock(self, name: str) -> Optional[Any]:
        """The database-wide lock `name`, kept until release(handle) or the
        process's end: its handle, or None when another process holds it."""
        try:
            return self.backend.try_lock(name)
        except self.backend.database_errors() as exc:
            raise self._wrap(exc) from None

    def lock_held(self, handle: Any) -> bool:
        """Whether a lock take_lock gave is held still (PostgreSQL's goes with
        the connection that took it, should that connection break)."""
        return self.backend.lock_held(handle)

    def release(self, handle: Any) -> None:
        self.backend.unlock(handle)

    def take_over_checkpoints(self) -> bool:
        """Copy the database's write-ahead log into its file (SQLite's
        checkpoints) only when checkpoint() is called, which the caller does
        in the background every few moments, no longer in the commit of the
        writer that filled the log (its client waited for the copy and the
        flush, and so did every other writer); unless the log grows far
        past its usual size meanwhile.  False where the database server does
        its own (PostgreSQL): then there is nothing to call."""
        if not self.backend.take_over_checkpoints():
            return False
        self._close_idle()  # (connections made before would checkpoint as before)
        return True

    def checkpoint(self) -> None:
        """See take_over_checkpoints."""
        with self.read() as cursor:
            self.backend.checkpoint(cursor)

    def tidy_after_bulk_write(self) -> None:
        """After a bulk load or a rebuilt tree (Backend.tidy_after_bulk_write)."""
        with self.read() as cursor:
            self.backend.tidy_after_bulk_write(cursor)

    def check(self) -> None:
        """Open a connection (creating the schema on an empty database)."""
        with self.read() as cursor:
            cursor.scalar("SELECT 1")

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
            # changed (ptree.py; imported here because it imports this module).
            from .ptree import change_hash
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
        Such a key has no index rows yet: nothing is deleted first."""
        if not views:
            return
        backend = cursor.backend
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
                                   [_network_view_row(v, source, now) for v in views])
        note_key_change(cursor)
        from .ptree import insert_all  # (ptree.py imports this module)
        insert_all(cursor, [v.sks_hash for v in views])

    @staticmethod
    def save_network_view(cursor: Cursor, view: NetworkView, source: str, now: int) -> None:
        """Write one new key's network view alone, as save_network_views() does
        many (an upload: its row goes with the next statement instead of a
        COPY of its own, and the tree's path is read in one query)."""
        cursor.defer(insert_statement("cks_keys", NETWORK_VIEW_COLUMNS),
                     _network_view_row(view, source, now))
        note_key_change(cursor)
        from .ptree import change_hash
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
        only = " AND s.peer IN %s" % _in(peers) if peers else ""
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
                    fingerprint: str) -> Tuple[Optional[str], Optional[Tuple[bytes, int]]]:
        """What merging a key needs, in one query: why it is rejected (None if
        it is not) and its stored (keydata, first_seen) (None if not stored)."""
        row = cursor.execute(
            "SELECT r.fingerprint, r.reason, k.keydata, k.first_seen "
            "FROM (SELECT ? AS fingerprint) f "
            "LEFT JOIN cks_rejected_keys r ON r.fingerprint = f.fingerprint "
            "LEFT JOIN cks_keys k ON k.fingerprint = f.fingerprint", (fingerprint,)).fetchone()
        return (None if row[0] is None else _reason(row[1]),
                None if row[2] is None else (bytes(row[2]), row[3]))

    # --- keys: reading ----------------------------------------------------------

    def find_by_id(self, column: str, value: str, limit: int) -> List[str]:
        """Primary fingerprints whose key or subkey has `column` (keyid,
        short_keyid or fingerprint) equal to `value`."""
        with self.read() as cursor:
            rows = cursor.execute(_matching_id(column), _id_parameters(value, limit)).fetchall()
        return [r[0] for r in rows]

    def key_rows_by_id(self, column: str, value: str, limit: int) -> Tuple[List[KeyRow], bool]:
        """find_by_id(limit + 1) and key_rows of the first `limit` keys found,
        in one query (a round trip on PostgreSQL): the index rows, and whether
        more keys matched."""
        with self.read() as cursor:
            return _first_key_rows(cursor.execute_prepared(
                KEY_ROWS_OF_MATCHES % _matching_id(column),
                _id_parameters(value, limit + 1)).fetchall(), limit)

    def served_parts_by_id(self, column: str, value: str, limit: int
                           ) -> Tuple[List[Tuple[bytes, int]], bool]:
        """find_by_id(limit + 1) and served_parts of the first `limit` keys
        found, in one query: their served views and CRC24s in fingerprint
        order, and whether more keys matched."""
        with self.read() as cursor:
            rows = cursor.execute_prepared(
                "SELECT k.fingerprint, k.served, k.served_crc24 FROM (%s) m "
                "JOIN cks_keys k ON k.fingerprint = m.fingerprint ORDER BY 1"
                % _matching_id(column), _id_parameters(value, limit + 1)).fetchall()
        return ([(bytes(r[1]), r[2]) for r in rows[:limit] if r[2] != UNSERVED],
                len(rows) > limit)

    def key_rows_by_email(self, email: str, limit: int) -> Tuple[List[KeyRow], bool]:
        """key_rows of the first `limit` keys with a user ID of this address,
        in fingerprint order, and whether more keys matched, in one query."""
        with self.read() as cursor:
            return _first_key_rows(cursor.execute_prepared(
                KEY_ROWS_OF_MATCHES % "SELECT DISTINCT key_fingerprint AS fingerprint "
                "FROM cks_userids WHERE email = ? ORDER BY 1 LIMIT ?",
                (email.lower(), limit + 1)).fetchall(), limit)

    def key_rows_by_words(self, words: Sequence[str], limit: int) -> Tuple[List[KeyRow], bool]:
        """key_rows of the first `limit` keys that hold every one of `words`,
        in fingerprint order, and whether more keys matched, in one query."""
        unique = sorted(set(words))
        if not unique:
            return [], False
        with self.read() as cursor:
            run = cursor.execute_prepared if len(unique) <= PREPARED_WORDS else cursor.execute
            return _first_key_rows(run(
                KEY_ROWS_OF_MATCHES % ("SELECT key_fingerprint AS fingerprint FROM cks_words "
                                       "WHERE word IN %s GROUP BY key_fingerprint "
                                       "HAVING count(*) = ? ORDER BY 1 LIMIT ?" % _in(unique)),
                list(unique) + [len(unique), limit + 1]).fetchall(), limit)

    def find_by_hash(self, sks_hash: str) -> List[str]:
        with self.read() as cursor:
            rows = cursor.execute_prepared("SELECT fingerprint FROM cks_keys WHERE sks_hash = ?",
                                           (sks_hash.upper(),)).fetchall()
        return [r[0] for r in rows]

    def keydata(self, fingerprints: Sequence[str]) -> Dict[str, bytes]:
        if not fingerprints:
            return {}
        with self.read() as cursor:
            rows = cursor.execute("SELECT fingerprint, keydata FROM cks_keys WHERE fingerprint "
                                  "IN %s" % _in(fingerprints), list(fingerprints)).fetchall()
        return {r[0]: bytes(r[1]) for r in rows}

    def served_parts(self, fingerprints: Sequence[str]) -> Dict[str, Tuple[bytes, int]]:
        """Each key's served view and its CRC24, ready for armor (none for a
        key whose served view does not exist yet)."""
        if not fingerprints:
            return {}
        with self.read() as cursor:
            rows = cursor.execute("SELECT fingerprint, served, served_crc24 FROM cks_keys WHERE "
                                  "fingerprint IN %s AND served_crc24 <> ?" % _in(fingerprints),
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
            _, rows = _key_rows_of(cursor.execute(
                KEY_ROWS_OF_MATCHES % "SELECT fingerprint FROM cks_keys WHERE fingerprint IN %s"
                % _in(fingerprints), list(fingerprints)).fetchall())
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
                "new_keys_24h": cursor.scalar(
                    "SELECT count(*) FROM cks_keys WHERE first_seen > ?", (now - 86400,)),
                "updated_keys_24h": cursor.scalar(
                    "SELECT count(*) FROM cks_keys WHERE last_changed > ?", (now - 86400,)),
                "pending_sync": cursor.scalar("SELECT count(*) FROM cks_pending_sync"),
                "rejected_keys": cursor.scalar("SELECT count(*) FROM cks_rejected_keys"),
                "peers": cursor.scalar(
                    "SELECT count(*) FROM cks_other_servers WHERE enabled = ?", (True,)),
            }


KEY_ROWS_OF_MATCHES = (
    "SELECT k.fingerprint, k.served_crc24, k.version, k.keyid, k.algorithm, k.bits, k.created, "
    "k.expires, k.revoked, k.sks_hash, k.size, k.first_seen, k.last_changed, "
    "k.unverified_revocation, u.position, u.uid, u.email, u.is_attribute, u.created, "
    "u.expires, u.revoked "
    "FROM (%s) m JOIN cks_keys k ON k.fingerprint = m.fingerprint "
    "LEFT JOIN cks_userids u ON u.key_fingerprint = k.fingerprint "
    "ORDER BY k.fingerprint, u.position")
"""The keys a query matches (its column `fingerprint`) with their user IDs,
one row per user ID (_key_rows_of reads them)."""


NETWORK_VIEW_COLUMNS = (
    "version", "keyid", "short_keyid", "algorithm", "bits", "created", "sks_hash", "keydata",
    "served", "served_crc24", "size", "first_seen", "last_changed", "source", "fingerprint")


def _network_view_row(view: NetworkView, source: str, now: int) -> tuple:
    """A cks_keys row of a key without its served view (UNSERVED)."""
    key, keyid = view.key, view.keyid
    return (key.version, keyid, keyid[-8:], key.algorithm, key.bits, key.created,
            view.sks_hash, view.keydata, b"", UNSERVED, len(view.keydata), now, now, source,
            key.fingerprint.hex().upper())


def _first_key_rows(rows: Sequence[Sequence[Any]], limit: int) -> Tuple[List[KeyRow], bool]:
    """The index rows of the first `limit` keys of KEY_ROWS_OF_MATCHES' rows
    (of up to limit + 1 keys) that are served, and whether there were more."""
    found, by_fpr = _key_rows_of(rows)
    return [by_fpr[f] for f in found[:limit] if f in by_fpr], len(found) > limit


def _key_rows_of(rows: Sequence[Sequence[Any]]) -> Tuple[List[str], Dict[str, KeyRow]]:
    """The keys of KEY_ROWS_OF_MATCHES' rows in their order, and the index
    rows of those that are served."""
    found: List[str] = []
    by_fpr: Dict[str, KeyRow] = {}
    for r in rows:
        if not found or found[-1] != r[0]:
            found.append(r[0])
        if r[1] == UNSERVED:
            continue
        row = by_fpr.get(r[0])
        if row is None:
            row = by_fpr[r[0]] = KeyRow(r[0], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]),
                                        r[9], r[10], r[11], r[12],
                                        revocation_unverified=bool(r[13]))
        if r[14] is not None:  # a key without user IDs has one row of NULLs
            row.user_ids.append(UserIDRow(r[15], r[16], bool(r[17]), r[18], r[19],
                                          bool(r[20])))
    return found, by_fpr


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


def _reason(stored: Optional[str]) -> str:
    return stored or "rejected by the operator"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__

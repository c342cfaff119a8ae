"""Connections and transactions: the pool, the schema made or migrated on
first use, write and read transactions, database-wide locks and SQLite's
checkpoints; what Store's key queries run in."""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import time
from typing import Any, Callable, Iterator, Optional, Sequence

from .changes import KeyChangeWatch, LocalChanges
from .errors import StoreError, StoreUnavailable
from .pause import Pause
from .sql import Backend, Cursor

PAUSE_SECONDS = 10.0
"""How long a probe of a server that does not answer waits for it, and how
often it is tried at most (Database's `_pause`)."""
LOCK_RETRY_SECONDS = 0.1
"""How often Store.exclusive tries again for a lock it waits for."""


class Database:
    """A database through its backend: pooled connections, each checked
    once for the schema, handed out inside read() and write()."""

    def __init__(self, backend: Backend, pool_size: int = 8, reads_only: bool = False,
                 must_exist: bool = False) -> None:
        self.backend = backend
        # A store that only reads (a streaming replica) neither makes nor
        # migrates the schema: it waits for what the primary's replays.
        self.reads_only = reads_only
        # One of a tool that works on a server's database does not make the
        # schema either: an empty database is the wrong one (open_store).
        self.must_exist = must_exist
        self._pool: "queue.LifoQueue[Any]" = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max(1, pool_size))
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self.local_changes = LocalChanges()
        # Told of every database error it raises (cksd counts them: hkp/cksd_metrics.py),
        # and of every read or write that got through, and whether it wrote
        # (the end of an outage: hkp/outage.py).
        self.on_error: Optional[Callable[[StoreError], None]] = None
        self.on_success: Optional[Callable[[bool], None]] = None
        # Lookups read a streaming replica of it (cksd sets this): see write().
        self.replicated = False
        # On after its server, up, did not answer (a statement cut by the
        # watchdog, or connect_timeout): no new connection is made until the
        # probe gets an answer (a request that needs one fails at once,
        # where each took connect_timeout, 10 s, of a serving process's
        # event loop).
        self._pause = Pause(lambda: self._answers_within("SELECT 1", PAUSE_SECONDS),
                            PAUSE_SECONDS, "database %s does not answer: requests that need "
                            "a new connection fail at once until it does" % backend.describe(),
                            "database %s answers again: connections are made to it again"
                            % backend.describe(), "cks-database-probe")

    @contextlib.contextmanager
    def _connection(self, writing: bool = False) -> Iterator["_Lease"]:
        """A connection for a read, or with `writing` a write transaction."""
        self._slots.acquire()
        lease = _Lease()
        try:
            try:
                lease.conn = self._pool.get_nowait()
                lease.pooled = True
            except queue.Empty:
                lease.conn = self._connect()
            try:
                yield lease
            except StoreUnavailable as exc:
                # (a write that failed on a connection that is still there:
                # a full disk, a read-only file; reads may well go on)
                exc.writing = writing and lease.conn is not None and \
                    not self.backend.is_closed(lease.conn)
                # The server went away (restarted, failed over): the idle
                # connections are as dead as this one, and each would cost
                # a request its answer.
                self._close_idle()
                if lease.conn is not None and self.backend.does_not_answer(lease.conn):
                    self._pause.start(exc)
                raise
            except StoreError:
                raise
            except BaseException:
                # Not the database's failure (a recon peer hung up, a client
                # went away): a connection its user left outside any
                # transaction serves on, instead of a new one next time.
                if self.backend.idle(lease.conn):
                    self._pool.put(lease.conn)
                    lease.conn = None
                raise
            self._pool.put(lease.conn)
            lease.conn = None
            if self.on_success is not None:
                self.on_success(writing)
        finally:
            if lease.conn is not None:  # it failed mid-use: do not hand it out again
                self._discard(lease.conn)
            self._slots.release()

    def _cursor(self, lease: "_Lease") -> Cursor:
        """A cursor on the lease's connection, which, taken from the pool,
        is replaced should the first statement find it closed (Cursor._send)."""
        cursor = Cursor(lease.conn.cursor(), self.backend)
        if lease.pooled:
            cursor.renew = functools.partial(self._renew, lease)
        return cursor

    def _renew(self, lease: "_Lease") -> Any:
        """A cursor on a new connection in place of the lease's, found closed:
        the server restarted, and the idle ones are as dead (closed too)."""
        self._discard(lease.conn)
        lease.conn = None
        self._close_idle()
        lease.conn = self._connect()
        return lease.conn.cursor()

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
        self._unless_paused()
        try:
            conn = self.backend.connect()
        except self.backend.database_errors() as exc:
            error = StoreUnavailable("cannot open database %s: %s"
                                     % (self.backend.describe(), _one_line(exc)))
            if self.backend.connect_timed_out(exc):
                self._pause.start(error)
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
                if self.reads_only or self.must_exist:
                    raise self._seen(StoreUnavailable("database %s holds no CKS tables %s" % (
                        self.backend.describe(), "(yet)" if self.reads_only else
                        "(cksd or cks_admin.py makes them; is it the right database?)")))
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
        return self._seen(self._error(exc))

    def _error(self, exc: BaseException) -> StoreError:
        kind = StoreUnavailable if self.backend.transient(exc) else StoreError
        return kind("database error: %s" % _one_line(exc))

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
        commits, never one without those before it.  With `replicated` every
        commit but a bulk one waits for the disk all the same: a server sends
        its replicas only what it flushed, so a served view committed
        without waiting reached them only with the server's next flush
        (PostgreSQL's wal_writer_delay, 200 ms by default): a key uploaded
        and looked up at once was not found.

        Writers of the same key are serialized, so a read-merge-write inside
        never loses another writer's packets.
        """
        with self._connection(writing=True) as lease:
            cursor = self._cursor(lease)
            flush = (flush or self.replicated) and not bulk
            try:
                if bulk:
                    self.backend.prepare_bulk_write(cursor)
                self.backend.begin_write(cursor, sorted(set(lock_keys)), flush)
                yield cursor
                # (sent once: its connection may break after it committed)
                cursor.renew = None
                cursor.execute("COMMIT")
                if cursor.changed_keys:
                    self.local_changes.committed(self._log_position(cursor))
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

    def _log_position(self, cursor: Cursor) -> Optional[int]:
        """With `replicated`, where the commit just made on `cursor` ended in
        the server's log, for the lookups that must not read a replica that
        has not replayed it yet (replica.py); None otherwise, or when the
        server does not say (the commit stands: that is no write's failure)."""
        if not self.replicated:
            return None
        try:
            return self.backend.log_position(cursor)
        except self.backend.database_errors():
            return None

    def replayed_position(self) -> Optional[int]:
        """How far this database, a streaming replica, has replayed its
        primary's log (Backend.replayed_position); None when it is no replica."""
        with self.read() as cursor:
            return self.backend.replayed_position(cursor)

    @contextlib.contextmanager
    def read(self) -> Iterator[Cursor]:
        """A cursor for queries (each statement sees committed data)."""
        with self._connection() as lease:
            cursor = self._cursor(lease)
            try:
                yield cursor
            except self.backend.database_errors() as exc:
                raise self._wrap(exc) from None
            finally:
                _close(cursor.raw)

    def watch_key_changes(self) -> KeyChangeWatch:
        """Tells when the stored keys change, in any process (changes.py)."""
        return self.backend.watch_key_changes(self.local_changes)

    def before_fork(self) -> None:
        """Close the idle connections before forking a process that opens the
        database itself.  SQLite keeps a file's locks in one table per
        process, which a child inherits: while its parent kept a connection,
        the child's own counted on locks the parent held, not it; once the
        parent's last connection closed (after a failed statement, say), the
        parent took the file for itself, copied the write-ahead log into it
        and deleted the log the child went on reading ("database disk image
        is malformed", or the database as it was then, for ever: a bulk
        load's workers did)."""
        self._close_idle()

    def close(self) -> None:
        self._pause.close()
        self._close_idle()
        self.backend.close()

    @contextlib.contextmanager
    def exclusive(self, name: str, wait: float = 0.0) -> Iterator[bool]:
        """Hold the database-wide lock `name` (e.g. one cks_sync run at a time);
        yields False when another process holds it: at once, or with `wait`,
        when it still does after that many seconds (tried again every
        LOCK_RETRY_SECONDS: neither flock nor an advisory lock waits with a
        bound by itself).  One that may wait keeps no idle connection of the
        pool meanwhile: on PostgreSQL each is one of the server's slots, and
        100 mails waiting at once with one each besides the lock's took them
        all (the mails that came next could not connect)."""
        if wait:
            self._close_idle()
        handle = self.take_lock(name)
        deadline = time.monotonic() + wait
        while handle is None and time.monotonic() < deadline:
            time.sleep(LOCK_RETRY_SECONDS)
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

    def check(self, within: Optional[float] = None) -> None:
        """Open a connection (creating the schema on an empty database, or,
        `reads_only` or `must_exist`, failing there).  `within`, on a server
        (PostgreSQL): read the schema's version on a connection of its own
        instead, which gives up after that many seconds (StoreUnavailable),
        where a pooled one waits without end for a server that does not
        answer, or for a free slot while the requests waiting for that
        server hold them all."""
        if within is not None:
            self._unless_paused()  # (its probe waits for the server already)
            try:
                if self._answers_within("SELECT max(version) FROM cks_schema_version", within):
                    return
            except StoreError as exc:
                raise self._seen(exc) from None
        with self.read() as cursor:
            cursor.scalar("SELECT 1")

    def _unless_paused(self) -> None:
        """StoreUnavailable at once while the server does not answer (_pause)."""
        if self._pause.on:
            raise self._seen(StoreUnavailable(
                "database %s does not answer: no new connection until it does"
                % self.backend.describe()))

    def _answers_within(self, query: str, seconds: float) -> bool:
        """Backend.answers_within, its failures as StoreError."""
        try:
            return self.backend.answers_within(query, seconds)
        except self.backend.database_errors() as exc:
            raise self._error(exc) from None
        except TimeoutError:
            raise StoreUnavailable("database %s did not answer within %g s" % (
                self.backend.describe(), seconds)) from None


class _Lease:
    """The connection Database._connection hands out; `pooled`: taken from
    the pool (else just made)."""

    __slots__ = ("conn", "pooled")

    def __init__(self) -> None:
        self.conn: Any = None
        self.pooled = False


def _close(raw_cursor: Any) -> None:
    """Close a cursor before its connection goes back to the pool: a query
    whose rows were not all read keeps (on SQLite) a read transaction open
    while its cursor lives, and the connection's next user would not see what
    was written since."""
    try:
        raw_cursor.close()
    except Exception:  # noqa: BLE001 - a connection already broken is discarded anyway
        pass


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__

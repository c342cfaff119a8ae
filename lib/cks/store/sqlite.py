"""The SQLite backend (standard library): the zero-setup default.

Write transactions start with BEGIN IMMEDIATE, which takes SQLite's single
writer lock at once: writers are serialized, readers go on (WAL mode).
CKS's writers, in every process, first take their turn on a lock file beside
the database (WriteTurns): SQLite's own wait for a busy lock sleeps 1 ms,
then 2, 5, 10 and more between tries, so an upload that met a served view's
commit waited milliseconds for a lock held a fraction of one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from .changes import KeyChangeWatch, LocalChanges, SQLiteWatch
from .errors import StoreError
from .schema import sqlite_schema, to_sqlite
from .sql import Backend, Cursor

log = logging.getLogger("cks.store")

BUSY_TIMEOUT_S = 30
# What SQLite says of a failure that may pass by itself (sqlite3_errstr of
# BUSY, LOCKED, IOERR, CANTOPEN, FULL, INTERRUPT, READONLY, PROTOCOL,
# NOMEM, SCHEMA), and WriteTurns of its lock file: the database is
# unavailable for now, not the query wrong.
TRANSIENT_ERRORS = ("locked", "disk i/o error", "unable to open", "cannot open",
                    "disk is full", "interrupted", "readonly database", "locking protocol",
                    "out of memory", "schema has changed")
TURN_POLL_S = (0.00005, 0.05)
TURN_POLL_SHARE = 0.125
"""A writer waiting for its turn (or a connection for WAL mode) tries again
after an eighth of the time it has waited so far, at least 50 us and at
most 50 ms: a turn that comes soon is taken at once, and a long wait costs
a try every 50 ms.  (Until 2026-12-06 it tried every 1 ms at most: 50 mails
waiting 20 s for a writer took 24.5 s of CPU against 8.6 s, and 180 at once
kept the two cores busy trying, starving the writer; found by a review of
mail sync.)"""
BULK_CACHE_KIB = 16384
"""The page cache of a connection that wrote a bulk load's batch, instead of
SQLite's 2 MiB: a batch puts thousands of entries at random places in the
indexes of keys, hashes and key IDs, and with the small cache most of them
meant reading the page again.  100,000 small keys, the load's first phase:
6.8 s with 2 MiB, 6.2 s with 16, 32 or 64 MiB alike (medians of 4); the
loading process's peak memory grows by the cache's size."""
BULK_CHECKPOINT_PAGES = 16384
"""A bulk load's batches are committed without waiting for the disk
(`synchronous = NORMAL`: a power failure may undo the last ones, and with
them the load's progress, so the load run again goes on from before them)
and copied from the log into the database once it holds 64 MiB instead of
4 MiB (CHECKPOINT_PAGES), so not at every batch.  Any ordinary commit
after them flushes the log with every batch in it, and the load ends with
a checkpoint (tidy_after_bulk_write).  The Debian keyring's first phase:
0.51-0.53 s before, 0.47-0.50 after (three pairs, medians of five)."""
CHECKPOINT_PAGES = 1000  # SQLite's default
BACKGROUND_CHECKPOINT_PAGES = BULK_CHECKPOINT_PAGES
"""The automatic checkpoint of the connections of a process that runs its
own in the background (Store.take_over_checkpoints: cksd's serving
processes): a writer's commit copies the log only if it grew this large."""


def _poll(attempt: Callable[[], bool], timeout: float) -> bool:
    """Call `attempt` until it returns True, as TURN_POLL_S and
    TURN_POLL_SHARE space the tries, for `timeout` seconds at most; whether
    it did."""
    started = time.monotonic()
    shortest, longest = TURN_POLL_S
    while not attempt():
        now = time.monotonic()
        left = started + timeout - now
        if left <= 0:
            return False
        time.sleep(min(max((now - started) * TURN_POLL_SHARE, shortest), longest, left))
    return True


def open_lock_file(path: str, database: str) -> int:
    """A lock file beside the database, opened for reading (all flock needs).
    One made here by root gets the database file's owner and group (best
    effort), so that the owner's next run (the timer's, as cks) may open it
    too; its mode is 0666 less the umask, as any file's."""
    flags = os.O_RDONLY | os.O_CLOEXEC
    try:
        descriptor = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return os.open(path, flags)
    if os.geteuid() == 0:
        try:
            owner = os.stat(database)
            os.fchown(descriptor, owner.st_uid, owner.st_gid)
        except OSError:  # (no database file yet, or a file system without owners)
            pass
    return descriptor


def path_from_url(url: str) -> str:
    """sqlite:///relative.db -> relative.db; sqlite:////abs.db -> /abs.db."""
    if not url.startswith("sqlite:///"):
        raise StoreError("SQLite URLs look like sqlite:///relative/path.db or "
                         "sqlite:////absolute/path.db, not %r" % url)
    path = url[len("sqlite:///"):]
    if not path:
        raise StoreError("SQLite URL %r names no file" % url)
    return path


class WriteTurns:
    """Write transactions take turns on a lock file (flock), `<db>.write.lock`,
    one open file per connection, as flock needs for threads to exclude
    each other; one inherited over a fork is opened again by the child.
    Opened for reading, which flock needs no more than: whichever user made
    the file, every user who may write the database may take a turn."""

    def __init__(self, path: str, database: str) -> None:
        self.path = path
        self.database = database
        self._files: Dict[int, Tuple[int, int]] = {}  # id(connection) -> (pid, descriptor)
        self._held: Set[int] = set()

    def take(self, conn: Any, timeout: float) -> None:
        """Wait for the connection's turn; sqlite3.OperationalError ("database
        is locked", as SQLite says) when another writer holds it past `timeout`
        seconds."""
        handle = self._file(conn)

        def locked() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
        if not _poll(locked, timeout):
            raise sqlite3.OperationalError("database is locked (another writer held %s "
                                           "for %g s)" % (self.path, timeout))
        self._held.add(id(conn))

    def give_back(self, conn: Any) -> None:
        if id(conn) in self._held:
            self._held.discard(id(conn))
            fcntl.flock(self._files[id(conn)][1], fcntl.LOCK_UN)

    def forget(self, conn: Any) -> None:
        """The connection was closed."""
        self._held.discard(id(conn))
        kept = self._files.pop(id(conn), None)
        if kept is not None and kept[0] == os.getpid():
            os.close(kept[1])

    def _file(self, conn: Any) -> int:
        kept = self._files.get(id(conn))
        if kept is not None and kept[0] != os.getpid():
            # (the parent's, inherited: left open, it would keep a turn the
            # parent took held after the parent's end)
            os.close(kept[1])
            kept = None
        if kept is None:
            try:
                kept = self._files[id(conn)] = (
                    os.getpid(), open_lock_file(self.path, self.database))
            except OSError as exc:
                raise sqlite3.OperationalError("cannot open %s: %s" % (self.path, exc)) \
                    from None
        return kept[1]


class SQLiteBackend(Backend):
    placeholder = "?"
    name = "sqlite"

    def __init__(self, url: str, statement_timeout: Optional[float] = None,
                 create: bool = True) -> None:
        """`create`: make the database file when there is none (else that is
        an error: open_store's must_exist)."""
        self.path = path_from_url(url)
        self.create = create
        self.statement_timeout = statement_timeout
        self._started: Dict[int, List[float]] = {}  # id(connection) -> [statement start]
        self.turns = WriteTurns(self.lock_path("write"), self.path)
        self.autocheckpoint = CHECKPOINT_PAGES  # (this process's connections')

    def describe(self) -> str:
        return "sqlite:///" + self.path

    def lock_path(self, name: str) -> str:
        """<db>.<name>.lock beside the database file itself: one file for
        every spelling of its path (a symlink, another relative path), so that
        each lock keeps out the programs that spell it otherwise too."""
        return "%s.%s.lock" % (os.path.realpath(self.path), name)

    @property
    def busy_timeout(self) -> float:
        """How long a writer waits for another's lock before it gives up."""
        return min(BUSY_TIMEOUT_S, self.statement_timeout or BUSY_TIMEOUT_S)

    def connect(self, timed: bool = True) -> Any:
        """A connection; `timed`: with the statement timeout, for statements
        run through Cursor (see statement_started)."""
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise sqlite3.OperationalError("directory %s does not exist" % directory)
        if not self.create and not os.path.isfile(self.path):
            raise sqlite3.OperationalError("no such file (cksd or cks_admin.py makes it; is it "
                                           "the right path?)")
        # A new database file, made here rather than by SQLite (0644, whatever
        # the umask), is 0666 less the umask as any file is, and its log files
        # take its mode: with the units' UMask=0007 the group may write it
        # (the mail account, README "Install on a fresh Debian host").
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                             0o666))
        except OSError:  # there already (perhaps read-only), or not makeable: SQLite says
            pass
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        try:
            self._into_wal_mode(conn)
        except sqlite3.Error:
            conn.close()
            raise
        conn.execute("PRAGMA synchronous = FULL")  # acknowledged means on disk
        conn.execute("PRAGMA foreign_keys = ON")
        if self.autocheckpoint != CHECKPOINT_PAGES:
            conn.execute("PRAGMA wal_autocheckpoint = %d" % self.autocheckpoint)
        if self.statement_timeout and timed:
            # SQLite has no statement timeout: a progress handler aborts work that
            # runs past the limit since the statement started.
            started = self._started.setdefault(id(conn), [time.monotonic()])
            limit = self.statement_timeout
            conn.set_progress_handler(lambda: time.monotonic() - started[0] > limit, 10000)
        return conn

    def _into_wal_mode(self, conn: Any) -> None:
        """PRAGMA journal_mode = WAL, tried again until the busy timeout: on
        a database file just made, connections opened at the same moment
        (cksd's processes at their first start) find it locked while one of
        them turns it to WAL, without SQLite's busy handler waiting (6
        threads opening a new database at once: 14 of 300 times)."""
        def in_wal_mode() -> bool:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return True
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                return False
        if not _poll(in_wal_mode, self.busy_timeout):
            conn.execute("PRAGMA journal_mode = WAL")  # (the last try: its error says why)

    def watch_key_changes(self, local: LocalChanges) -> KeyChangeWatch:
        # The watch reads data_version on its own connection, not through
        # Cursor: a statement timeout would count from when the connection was
        # made, and after request_timeout a read was stopped now and then (its
        # lookup answered 500).
        return SQLiteWatch(lambda: self.connect(timed=False), local)

    def statement_started(self, raw_cursor: Any, statements: int = 1) -> None:
        started = self._started.get(id(raw_cursor.connection))
        if started is not None:
            started[0] = time.monotonic()

    def closed(self, conn: Any) -> None:
        self._started.pop(id(conn), None)
        self.turns.forget(conn)

    def idle(self, conn: Any) -> bool:
        try:
            return not conn.in_transaction
        except sqlite3.Error:  # closed
            return False

    def begin_write(self, cursor: Cursor, lock_keys: Sequence[str], flush: bool = True) -> None:
        if not flush:
            cursor.execute("PRAGMA synchronous = NORMAL")  # (not inside a transaction)
        self.turns.take(cursor.raw.connection, self.busy_timeout)
        cursor.execute("BEGIN IMMEDIATE")

    def end_write(self, cursor: Cursor, flush: bool = True) -> None:
        self.turns.give_back(cursor.raw.connection)
        if not flush:
            cursor.execute("PRAGMA synchronous = FULL")

    def prepare_bulk_write(self, cursor: Cursor) -> None:
        """A larger page cache, for the connection's life (it stays in the
        loading program's pool); for this transaction, a larger log
        (BULK_CHECKPOINT_PAGES; and its commit, as every bulk write's, does
        not wait for the disk)."""
        cursor.execute("PRAGMA cache_size = -%d" % BULK_CACHE_KIB)
        cursor.execute("PRAGMA wal_autocheckpoint = %d" % BULK_CHECKPOINT_PAGES)

    def end_bulk_write(self, cursor: Cursor) -> None:
        cursor.execute("PRAGMA wal_autocheckpoint = %d" % self.autocheckpoint)

    def take_over_checkpoints(self) -> bool:
        self.autocheckpoint = BACKGROUND_CHECKPOINT_PAGES
        return True

    def checkpoint(self, cursor: Cursor) -> None:
        """Copy what the log holds into the database file, as far as readers
        let it, while writers go on; then, if the log is long, once more
        during a write turn, so that the copy is complete (it copies only
        what was written meanwhile) and the next writer starts the log
        afresh: copied while writers write, it never would be."""
        _, frames, copied = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames >= CHECKPOINT_PAGES and copied < frames:
            conn = cursor.raw.connection
            self.turns.take(conn, self.busy_timeout)
            try:
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                self.turns.give_back(conn)

    def tidy_after_bulk_write(self, cursor: Cursor) -> None:
        """The log flushed to disk, copied into the database and emptied
        (as far as readers that began before the last commit let it: they
        keep their part)."""
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def try_lock(self, name: str) -> Optional[Any]:
        """A lock file beside the database (lock_path; flock, freed on exit)."""
        path = self.lock_path(name)
        try:
            handle = os.fdopen(open_lock_file(path, self.path), "rb")
        except OSError as exc:  # (no such directory, no permission)
            raise StoreError("cannot open %s: %s" % (path, exc.strerror or exc)) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle

    def unlock(self, handle: Any) -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

    def lock_held(self, handle: Any) -> bool:
        return not handle.closed  # (a flock lasts as long as its open file)

    def create_schema(self, cursor: Cursor) -> None:
        cursor.raw.connection.executescript("BEGIN IMMEDIATE;\n" + sqlite_schema() + "\nCOMMIT;")

    def begin_schema_change(self, cursor: Cursor) -> None:
        """BEGIN IMMEDIATE, waiting as long as another program writes: a step
        of another's migration may take longer than busy_timeout (the words'
        step took 40 s at 400,000 keys), and on PostgreSQL the schema lock is
        waited for so too.  Until 2026-12-06 a program started during such a
        step gave up with "database is locked" (found by a review)."""
        told = False
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
            if not told:
                log.warning("waiting for another program writing to the database %s "
                            "(migrating it?)", self.path)
                told = True

    def run_ddl(self, cursor: Cursor, statement: str) -> None:
        if "DROP COLUMN" in statement and sqlite3.sqlite_version_info < (3, 35, 0):
            return  # this SQLite cannot drop a column: the unused one stays
        statement = to_sqlite(statement)
        if statement.strip():  # (nothing left of what only PostgreSQL has)
            cursor.execute(statement)

    def table_exists(self, cursor: Cursor, table: str) -> bool:
        return cursor.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                             "AND name = ?", (table,)) > 0

    def column_exists(self, cursor: Cursor, table: str, column: str) -> bool:
        return cursor.scalar("SELECT count(*) FROM pragma_table_info(?) WHERE name = ?",
                             (table, column)) > 0

    def transient(self, exc: BaseException) -> bool:
        # sqlite3 raises OperationalError for a locked or full database and
        # for a statement naming no such column alike; only the first kind
        # goes away by itself (its error codes are not exposed before 3.11).
        return isinstance(exc, sqlite3.OperationalError) and \
            any(part in str(exc).lower() for part in TRANSIENT_ERRORS)

    def database_errors(self) -> Tuple[type, ...]:
        return (sqlite3.Error,)

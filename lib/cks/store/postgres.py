"""The PostgreSQL backend (psycopg2, imported only when a PostgreSQL URL is used).

Connections run in autocommit mode and transactions are explicit.  A write
transaction takes a transaction-scoped advisory lock per fingerprint it will
change, so two uploads of the same key are merged one after the other (no
lost update), while writes of different keys run in parallel.  Every such
transaction first takes the lock of all keys, shared; one that would lock more
than MAX_KEY_LOCKS keys (a bulk load's batch) takes it exclusively instead of
theirs: thousands of locks would fill the server's lock table (sized by
max_locks_per_transaction, 64 a connection by default), and sending them, a
statement each, took a load of 100,000 keys 0.6-0.9 s.  An edit of the peer
list takes it exclusively too (peers.py), so that no key write is in flight.
"""

from __future__ import annotations

import itertools
import os
import re
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .changes import CHANNEL, KeyChangeWatch, LocalChanges, PostgresWatch
from .errors import StoreError
from .pgcopy import encode_rows, encoders_for
from .schema import postgres_schema
from .sql import Backend, Cursor
from .watchdog import Watchdog

try:
    import psycopg2
    import psycopg2.extensions
except ImportError:  # pragma: no cover - depends on the host
    psycopg2 = None


COPY_BYTES = 8 << 20
"""insert_rows sends a COPY once its rows' fields add up to this."""

CONNECTION_DEFAULTS = {
    # A server whose host died or dropped off the network, while a query
    # waits for its answer, is found dead by TCP keepalives (after about 25
    # s) or data unacknowledged for 30 s (tcp_user_timeout, libpq 12 and
    # later), and the query fails (503) instead of waiting until the
    # kernel gives up, 15 minutes or more.  A server that is up but not
    # answering (stopped, frozen) acknowledges: see CUT_MARGIN.
    "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
if psycopg2 is not None and psycopg2.extensions.libpq_version() >= 120000:
    CONNECTION_DEFAULTS["tcp_user_timeout"] = 30_000
"""libpq's connection settings that a database URL does not give itself."""

CUT_MARGIN = 5.0
"""On a connection with a statement_timeout, a statement whose answer has
not come this many seconds past it has its connection cut (watchdog.py):
a live server would have cancelled it and said so by then."""

_SCHEMA_LOCK = 7270117  # advisory lock held while the schema is created or migrated
_ALL_KEYS_LOCK = 7270118  # shared by key writers, exclusive for a write of many keys
MAX_KEY_LOCKS = 256
_INSUFFICIENT_PRIVILEGE = "42501"  # SQLSTATE of "permission denied for ..."


def _numbered(sql: str) -> str:
    """'?' placeholders as PREPARE's $1, $2, ..."""
    numbers = itertools.count(1)
    return re.sub(r"\?", lambda _: "$%d" % next(numbers), sql)


def _lsn(text: Optional[str]) -> Optional[int]:
    """A log sequence number as PostgreSQL writes it ('16/B374D848') as a number."""
    if text is None:
        return None
    high, low = text.split("/")
    return int(high, 16) << 32 | int(low, 16)


def advisory_lock_id(fingerprint: str) -> int:
    """A signed 64-bit lock id from the first 16 hex digits of a fingerprint."""
    value = int(fingerprint[:16].ljust(16, "0"), 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def _ready_by(conn: Any, deadline: float) -> None:
    """Wait until an asynchronous connection's operation is done, or raise
    TimeoutError at `deadline` (time.monotonic())."""
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        waiting = [conn.fileno()]
        if state == psycopg2.extensions.POLL_READ:
            select.select(waiting, [], [], left)
        else:
            select.select([], waiting, [], left)


LOCK_SESSIONS_KEPT = 4
"""Sessions a process keeps, once their advisory lock is released, for its
next locks: a recon round holds its peer's lock, and a connection made for
it cost 2-3 ms, where the round itself takes about 1."""


@dataclass
class _AdvisoryLock:
    conn: Any  # the session holding it
    key: str


class _LockSessions:
    """Connections for session advisory locks (try_lock): one per lock held,
    and up to LOCK_SESSIONS_KEPT idle ones, reused.  A forked process makes
    its own: those it inherited are its parent's sessions."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._idle: List[Any] = []
        self._pid = os.getpid()
        self._guard = threading.Lock()

    def take(self, key: str) -> Optional[_AdvisoryLock]:
        conn = self._reused()
        if conn is not None:
            try:
                return self._try(conn, key)
            except psycopg2.Error:  # (its session ended meanwhile: a server restart)
                pass  # (_try closed it)
        return self._try(self._connect(), key)

    def _try(self, conn: Any, key: str) -> Optional[_AdvisoryLock]:
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
            taken = cursor.fetchone()[0]
        except BaseException:
            conn.close()
            raise
        if taken:
            return _AdvisoryLock(conn, key)
        self._keep(conn)
        return None

    def release(self, lock: _AdvisoryLock) -> None:
        try:
            lock.conn.cursor().execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock.key,))
        except psycopg2.Error:
            lock.conn.close()  # (and the lock with its session)
            return
        self._keep(lock.conn)

    def _reused(self) -> Optional[Any]:
        with self._guard:
            if self._pid != os.getpid():
                self._idle, self._pid = [], os.getpid()
            return self._idle.pop() if self._idle else None

    def _keep(self, conn: Any) -> None:
        with self._guard:
            if self._pid == os.getpid() and len(self._idle) < LOCK_SESSIONS_KEPT:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._guard:
            idle, self._idle = (self._idle if self._pid == os.getpid() else []), []
        for conn in idle:
            conn.close()


class _Connection(psycopg2.extensions.connection if psycopg2 else object):  # type: ignore
    """A connection that knows the statements it PREPAREd (statement -> name),
    and whether the watchdog cut it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: Dict[str, str] = {}
        self.cut = False


def _cut(conn: _Connection) -> None:
    """Shut the connection's socket down: libpq's wait for the answer
    returns at once ("server closed the connection unexpectedly")."""
    conn.cut = True
    try:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg2.Error):  # (closed meanwhile)
        pass


_WATCHDOG = Watchdog(CUT_MARGIN, _cut)


def _run_schema_sql(cursor: Cursor) -> None:
    """schema.sql (its own transaction), rolled back where it fails: the
    advisory unlock after it would fail in the aborted transaction, and that
    error ("current transaction is aborted") replace this one."""
    try:
        cursor.raw.execute(postgres_schema())
    except psycopg2.Error as exc:
        if cursor.raw.connection.get_transaction_status() == \
                psycopg2.extensions.TRANSACTION_STATUS_INERROR:
            cursor.raw.execute("ROLLBACK")
        if exc.pgcode == _INSUFFICIENT_PRIVILEGE:
            raise StoreError("database error: %s (the database's owner makes the CKS tables "
                             "first: cks_admin.py stats as that role)"
                             % exc.diag.message_primary) from None
        raise


class PostgresBackend(Backend):
    placeholder = "%s"
    name = "postgresql"
    batches = True

    def __init__(self, url: str, statement_timeout: Optional[float] = None,
                 connect_timeout: int = 10) -> None:
        """`connect_timeout`: seconds (libpq takes 2 at least), unless the URL
        gives its own."""
        if psycopg2 is None:
            raise StoreError("PostgreSQL needs the psycopg2 module: "
                             "apt-get install python3-psycopg2 (or pip install psycopg2)")
        self.url = url
        self.statement_timeout = statement_timeout
        self.connect_timeout = connect_timeout
        self._types: Dict[str, Dict[str, str]] = {}  # table -> column -> type (insert_rows)
        self._lock_sessions = _LockSessions(self.connect)

    def describe(self) -> str:
        return self.url

    def connect(self) -> Any:
        conn = psycopg2.connect(self.url, connection_factory=_Connection,
                                **self._connection_settings())
        conn.autocommit = True
        return conn

    def _connection_settings(self) -> Dict[str, Any]:
        """libpq's settings of a connection, but those the URL gives."""
        # No JIT compilation: it is for long analytic queries, and the planner
        # misjudged a recon round's joined ranges (250 leaves, some 8,000 rows)
        # as two million rows, over the JIT's threshold: 25-45 ms to compile
        # each such query instead of 8 ms to run it.
        options = "-c jit=off"
        if self.statement_timeout:
            options += " -c statement_timeout=%d" % (self.statement_timeout * 1000)
        given = psycopg2.extensions.parse_dsn(self.url)
        return dict({name: value for name, value in dict(
            CONNECTION_DEFAULTS, connect_timeout=self.connect_timeout).items()
            if name not in given}, options=options)

    def answers_within(self, query: str, seconds: float) -> bool:
        """On a connection of its own in psycopg2's asynchronous mode, each
        wait for the server bounded by the time left (select()): a server
        that is up but does not answer (stopped, frozen) acknowledges every
        packet, so neither TCP's timeouts nor statement_timeout (the
        server's) ever fire, and a query waits for it without end."""
        deadline = time.monotonic() + seconds
        conn = psycopg2.connect(self.url, async_=1, **self._connection_settings())
        try:
            _ready_by(conn, deadline)
            cursor = conn.cursor()  # (held until the answer: psycopg2 drops the query with it)
            cursor.execute(query)
            _ready_by(conn, deadline)
        finally:
            conn.close()
        return True

    def statement_started(self, raw_cursor: Any, statements: int = 1) -> None:
        if self.statement_timeout:
            _WATCHDOG.watch(raw_cursor.connection, self.statement_timeout * statements,
                            self.url)

    def statement_ended(self, raw_cursor: Any) -> None:
        if self.statement_timeout:
            _WATCHDOG.answered(raw_cursor.connection)

    def execute_prepared(self, raw_cursor: Any, sql: str, params: Sequence[Any]) -> None:
        """PREPAREd on the connection the first time it runs there, then
        EXECUTEd: a lookup's query took as long to parse and plan as to run
        (two queries of an index lookup by key ID: 0.49-0.61 ms unprepared,
        0.42-0.45 prepared; the two as one query, prepared: 0.27-0.30)."""
        prepared = raw_cursor.connection.prepared
        name = prepared.get(sql)
        if name is None:
            name = "cks_%d" % len(prepared)
            raw_cursor.execute("PREPARE %s AS %s" % (name, _numbered(sql)))
            prepared[sql] = name
        raw_cursor.execute("EXECUTE %s (%s)" % (name, ", ".join(["%s"] * len(params))),
                           tuple(params))

    def begin_write(self, cursor: Cursor, lock_keys: Sequence[str], flush: bool = True) -> None:
        cursor.defer("BEGIN")
        if not flush:
            cursor.defer("SET LOCAL synchronous_commit = off")
        if len(lock_keys) > MAX_KEY_LOCKS:
            self.lock_all_keys(cursor)
        elif lock_keys:
            # (the lock of all keys first, then the keys in the caller's sorted
            # order: every writer takes them in one order, so none deadlock)
            cursor.defer("SELECT pg_advisory_xact_lock_shared(?)", (_ALL_KEYS_LOCK,))
            for fingerprint in lock_keys:
                cursor.defer("SELECT pg_advisory_xact_lock(?)",
                             (advisory_lock_id(fingerprint),))

    def lock_all_keys(self, cursor: Cursor) -> None:
        cursor.defer("SELECT pg_advisory_xact_lock(?)", (_ALL_KEYS_LOCK,))

    def begin_snapshot(self, cursor: Cursor) -> None:
        cursor.defer("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")  # (with the first query)

    def lock_row(self, cursor: Cursor, table: str, column: str, value: Any) -> None:
        cursor.defer("SELECT 1 FROM %s WHERE %s = ? FOR UPDATE" % (table, column), (value,))

    def tidy_after_bulk_write(self, cursor: Cursor) -> None:
        """VACUUM (ANALYZE), as autovacuum would a while later: it marks the
        new rows' pages all-visible, so that an index-only scan (a recon
        round's leaves, hashes by range) reads no table rows, and gives the
        planner the tables' new sizes.  (100,000 keys just loaded: a recon
        batch's 100 leaf ranges, 9,759 hashes, 30 ms before, 3.8 ms after.)
        CKS's tables that this role owns (VACUUM skips others with a warning)."""
        tables = [r[0] for r in cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND "
            "tableowner = current_user AND tablename LIKE ? ORDER BY tablename",
            ("cks\\_%",)).fetchall()]
        if tables:
            cursor.execute("VACUUM (ANALYZE) %s" % ", ".join('"%s"' % t for t in tables))

    def insert_rows(self, cursor: Cursor, table: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        """Binary COPY (pgcopy.py), about COPY_BYTES of values per COPY."""
        if not rows:
            return
        encoders = encoders_for(self._column_types(cursor, table), columns)
        sql = "COPY %s (%s) FROM STDIN (FORMAT binary)" % (table, ", ".join(columns))
        for data in encode_rows(encoders, rows, COPY_BYTES):
            cursor.copy_in(sql, data)

    def update_rows(self, cursor: Cursor, table: str, key: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        """One UPDATE for all rows: each column's values as one typed array,
        unnest()ed into rows joined on `key`."""
        if not rows:
            return
        types = self._column_types(cursor, table)
        names = [key] + list(columns)
        cursor.defer("UPDATE %s AS t SET %s FROM unnest(%s) AS u(%s) WHERE t.%s = u.%s" % (
            table, ", ".join("%s = u.%s" % (c, c) for c in columns),
            ", ".join("?::%s[]" % types[c] for c in names), ", ".join(names), key, key),
            [list(values) for values in zip(*rows)])

    def _column_types(self, cursor: Cursor, table: str) -> Dict[str, str]:
        if table not in self._types:
            self._types[table] = dict(cursor.execute(
                "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute WHERE "
                "attrelid = ?::regclass AND attnum > 0 AND NOT attisdropped",
                (table,)).fetchall())
        return self._types[table]

    def try_lock(self, name: str) -> Optional[Any]:
        """A session advisory lock on a connection of its own, held until unlock()
        or until the process dies (the server frees it with the session)."""
        return self._lock_sessions.take("cks:" + name)

    def unlock(self, handle: Any) -> None:
        self._lock_sessions.release(handle)

    def lock_held(self, handle: Any) -> bool:
        try:
            handle.conn.cursor().execute("SELECT 1")
        except psycopg2.Error:
            handle.conn.close()  # (the session, and with it the lock, is gone)
            return False
        return True

    def close(self) -> None:
        self._lock_sessions.close()

    def watch_key_changes(self, local: LocalChanges) -> KeyChangeWatch:
        return PostgresWatch(self.connect, local)

    def announce_key_change(self, cursor: Cursor) -> None:
        cursor.defer("NOTIFY " + CHANNEL)  # sent at commit; repeats are merged

    def log_position(self, cursor: Cursor) -> Optional[int]:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return _lsn(cursor.fetchone()[0])

    def replayed_position(self, cursor: Cursor) -> Optional[int]:
        cursor.execute("SELECT pg_last_wal_replay_lsn()::text")  # (NULL: not a standby)
        return _lsn(cursor.fetchone()[0])

    def create_schema(self, cursor: Cursor) -> None:
        # schema.sql has its own BEGIN/COMMIT; serialize concurrent first uses.
        cursor.raw.execute("SELECT pg_advisory_lock(%d)" % _SCHEMA_LOCK)
        try:
            if not self.table_exists(cursor, "cks_schema_version"):
                _run_schema_sql(cursor)
        finally:
            cursor.raw.execute("SELECT pg_advisory_unlock(%d)" % _SCHEMA_LOCK)

    def begin_schema_change(self, cursor: Cursor) -> None:
        cursor.execute("BEGIN")
        cursor.execute("SELECT pg_advisory_xact_lock(%d)" % _SCHEMA_LOCK)

    def may_change_schema(self, cursor: Cursor) -> bool:
        """It owns (itself, by a role it inherits, or as a superuser) every
        CKS table of the schema, and may create tables there: what the
        owner of README's least-privilege roles does, and cks_runtime not."""
        return cursor.scalar(
            "SELECT has_schema_privilege(current_schema(), 'CREATE') AND NOT EXISTS ("
            "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename LIKE ? AND NOT pg_has_role(tableowner, 'USAGE'))", ("cks\\_%",))

    def table_exists(self, cursor: Cursor, table: str) -> bool:
        return cursor.scalar("SELECT to_regclass(?) IS NOT NULL", (table,))

    def column_exists(self, cursor: Cursor, table: str, column: str) -> bool:
        return cursor.scalar("SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(?) "
                             "AND attname = ? AND NOT attisdropped", (table, column)) > 0

    def transient(self, exc: BaseException) -> bool:
        return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) or \
            getattr(exc, "pgcode", None) in ("40001", "40P01", "55P03", "57014", "57P01",
                                             "57P03")

    def database_errors(self) -> Tuple[type, ...]:
        return (psycopg2.Error,)

    def is_closed(self, conn: Any) -> bool:
        return bool(conn.closed)

    def broken(self, conn: Any, exc: BaseException) -> bool:
        """(Not a connection the watchdog cut: that statement was sent, and
        its server does not answer.)"""
        return self.is_closed(conn) and not conn.cut and \
            isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError))

    def does_not_answer(self, conn: Any) -> bool:
        return conn.cut

    def connect_timed_out(self, exc: BaseException) -> bool:
        """(libpq's message: untranslated, as no CKS program sets LC_MESSAGES.)"""
        return isinstance(exc, psycopg2.OperationalError) and "timeout expired" in str(exc)

    def idle(self, conn: Any) -> bool:
        return not conn.closed and \
            conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE

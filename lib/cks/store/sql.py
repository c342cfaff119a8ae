"""The SQL layer under Store: what differs between databases (Backend;
sqlite.py and postgres.py implement it) and a cursor that hides it (Cursor:
one placeholder style, statements deferred into one round trip), with the
helpers for IN lists and multi-row inserts."""

from __future__ import annotations

import io
import re
from typing import (TYPE_CHECKING, Any, Callable, Iterable, Iterator, List, Optional,
                    Sequence, Tuple)

if TYPE_CHECKING:  # pragma: no cover
    from .changes import KeyChangeWatch, LocalChanges


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

    def begin_snapshot(self, cursor: "Cursor") -> None:
        """Begin a read-only transaction whose queries all see one state of
        the database while others write."""
        cursor.execute("BEGIN")

    def lock_row(self, cursor: "Cursor", table: str, column: str, value: Any) -> None:
        """In a write transaction: lock the row of `table` whose `column` is
        `value` until the transaction ends (where the write transaction does
        not hold the whole database already)."""

    def lock_all_keys(self, cursor: "Cursor") -> None:
        """In a write transaction, before its first statement: wait for the
        writers of keys in flight (uploads) to end, and keep new ones waiting
        until it ends (where the write transaction does not hold the whole
        database already)."""

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

    def answers_within(self, query: str, seconds: float) -> bool:
        """Run `query` on a connection of its own, giving up after `seconds`
        (TimeoutError); False, having done nothing, where the database
        cannot be up and not answer (a file: its waits have their timeouts)."""
        return False

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

    def may_change_schema(self, cursor: "Cursor") -> bool:
        """May this connection's role run every migration step (alter and
        drop the CKS tables and their indexes, create tables)?  Where the
        database has no roles, whoever may write it may."""
        return True

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

    def column_exists(self, cursor: Any, table: str, column: str) -> bool:
        raise NotImplementedError

    def transient(self, exc: BaseException) -> bool:
        """Is `exc` a database error worth retrying later?"""
        raise NotImplementedError

    def database_errors(self) -> Tuple[type, ...]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def statement_started(self, raw_cursor: Any, statements: int = 1) -> None:
        """A statement (or `statements` sent as one) is about to run on this
        (DB-API) cursor's connection: where the database has no statement
        timeout of its own, count it from here (and on a server, wait for
        its answer only so long: each statement of a batch has the timeout)."""

    def statement_ended(self, raw_cursor: Any) -> None:
        """The statement statement_started announced is over: answered or failed."""

    def closed(self, conn: Any) -> None:
        """A connection was closed."""

    def broken(self, conn: Any, exc: BaseException) -> bool:
        """Whether `exc`, raised by a statement on `conn`, says the connection
        is closed (the server restarted or ended the session), not that the
        statement failed."""
        return False

    def is_closed(self, conn: Any) -> bool:
        """Whether `conn` is closed (its server ended the session)."""
        return False

    def does_not_answer(self, conn: Any) -> bool:
        """Whether a statement on `conn` failed because its server, up, did
        not answer it in time (the connection was cut: watchdog.py)."""
        return False

    def connect_timed_out(self, exc: BaseException) -> bool:
        """Whether `exc`, raised by connect(), says the server did not answer in time."""
        return False

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

    def close(self) -> None:
        """Close what the backend keeps besides the pool's connections (the
        store is closed)."""

    def watch_key_changes(self, local: "LocalChanges") -> "KeyChangeWatch":
        """A watch over every process's key changes (changes.py)."""
        raise NotImplementedError

    def log_position(self, cursor: "Cursor") -> Optional[int]:
        """Where the server's write-ahead log ends now, as a number that grows
        with it (after a commit: at or past that commit); None where no
        replica can follow this database."""
        return None

    def replayed_position(self, cursor: "Cursor") -> Optional[int]:
        """How far a streaming replica has replayed its primary's log, in
        log_position's numbers; None where this database replays none."""
        return None

    def announce_key_change(self, cursor: "Cursor") -> None:
        """Tell other processes' watches, at commit, that keys changed (none
        needed where the watch sees every commit by itself)."""


class Cursor:
    """A DB-API cursor that takes '?' placeholders whatever the backend."""

    def __init__(self, raw: Any, backend: Backend) -> None:
        self.raw = raw
        self.backend = backend
        self.changed_keys = False  # set by changes.note_key_change
        # Until the first statement is sent, on a connection from the pool: a
        # raw cursor on a fresh connection, should that one turn out closed
        # (Database; see _send).
        self.renew: Optional[Callable[[], Any]] = None
        self._deferred: List[bytes] = []  # statements, parameters filled in (defer())
        self._deferred_bytes = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> "Cursor":
        """Run a statement (after the deferred ones, in the same round trip)."""
        sql = self._native(sql)
        if self._deferred:
            self._deferred.append(self.raw.mogrify(sql, tuple(params)))
            self._flush()
        else:
            self._send(_execute, sql, tuple(params))
        return self

    def execute_prepared(self, sql: str, params: Sequence[Any] = ()) -> "Cursor":
        """Run a statement that lookups run again and again: kept parsed and
        planned by the database, once per connection (Backend.execute_prepared)."""
        self.send_deferred()
        self._send(self.backend.execute_prepared, sql, params)
        return self

    def copy_in(self, sql: str, data: bytes) -> None:
        """Run `sql`, a COPY ... FROM STDIN (PostgreSQL), sending it `data`
        (after the deferred statements)."""
        self.send_deferred()
        self._send(_copy_in, sql, data)

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
            self._timed(_execute_many, self._native(sql), [tuple(r) for r in rows])
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
        batch, statements = b";".join(self._deferred), len(self._deferred)
        self.abandon()
        self._send(_execute, batch, statements=statements)  # (psycopg2 sends it as it is)

    def _send(self, run: Callable[..., None], *args: Any, statements: int = 1) -> None:
        """run(self.raw, *args), which sends a statement (or the deferred ones).

        The first on a connection from the pool runs again on a fresh one
        when it finds the pooled one closed: a server restarted since that
        connection was last used (or that ended its session) had cost each
        serving process's next request a 503.  Nothing of the transaction
        was done then; the Database does not let a write's COMMIT be that
        first statement, as its connection may break after it committed."""
        try:
            self._timed(run, *args, statements=statements)
        except Exception as exc:  # noqa: BLE001 - raised again unless the connection broke
            renew, self.renew = self.renew, None
            if renew is None or not self.backend.broken(self.raw.connection, exc):
                raise
            self.raw = renew()
            self._timed(run, *args, statements=statements)
        self.renew = None

    def _timed(self, run: Callable[..., None], *args: Any, statements: int = 1) -> None:
        """run(self.raw, *args), between statement_started and statement_ended."""
        self.backend.statement_started(self.raw, statements)
        try:
            run(self.raw, *args)
        finally:
            self.backend.statement_ended(self.raw)

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


def _execute(raw_cursor: Any, *args: Any) -> None:
    raw_cursor.execute(*args)


def _copy_in(raw_cursor: Any, sql: str, data: bytes) -> None:
    raw_cursor.copy_expert(sql, io.BytesIO(data))


def _execute_many(raw_cursor: Any, sql: str, rows: List[tuple]) -> None:
    raw_cursor.executemany(sql, rows)


DEFERRED_BYTES = 1 << 20
"""Deferred statements are sent once they add up to this much SQL text."""
ROWS_PER_INSERT = 1000
_INSERT_VALUES = re.compile(r"(INSERT INTO .* VALUES )(\([?, ]+\))(.*)\Z", re.S)


def insert_statement(table: str, columns: Sequence[str]) -> str:
    return "INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(columns),
                                               ", ".join("?" * len(columns)))


IN_CHUNK = 500
"""Values in one SQL IN list at most (SQLite before 3.32 allows 999 parameters)."""


def in_list(values: Sequence[Any]) -> str:
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
        rows.extend(cursor.execute(query % in_list(chunk), list(before) + chunk).fetchall())
    return rows


def execute_in(cursor: Cursor, statement: str, values: Iterable[Any],
               before: Sequence[Any] = ()) -> None:
    """Run `statement` (a write), whose one `IN %s` takes the distinct
    `values` an IN_CHUNK at a time, after the parameters `before`; deferred
    (Cursor.defer: on PostgreSQL sent with the next statement, COMMIT at
    the latest)."""
    for chunk in in_chunks(sorted(set(values))):
        cursor.defer(statement % in_list(chunk), list(before) + chunk)

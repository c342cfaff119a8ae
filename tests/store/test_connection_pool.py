"""Which connections the pool hands out again: one whose user failed for a
reason of its own (a recon peer hung up mid-round) and left it outside any
transaction serves on; one left inside a transaction, or that met a database
error, is closed.  And a cursor is closed when its connection goes back, so
that a query left with rows unread does not keep the next user in an old
snapshot (SQLite)."""

import sqlite3
import threading

import pytest

from cks.store import StoreError, StoreUnavailable, open_store
from cks.store.peers import PeerStore
from cks.store.ptree_view import snapshot
from support.db import (drop_pg_database, new_db_url, require_postgres, run_sql,
                        terminate_backends, with_schema)


class PeerHungUp(Exception):
    """Stands in for what a round raises when the peer closes on it."""


@pytest.fixture
def counted(db_url):
    """(store, opened): a store whose backend counts the connections it opens."""
    store = open_store(db_url)
    store.check()  # (the schema: made with a connection of its own)
    store.close()
    opened = []
    connect = store.backend.connect

    def counting_connect(*args, **kwargs):
        conn = connect(*args, **kwargs)
        opened.append(conn)
        return conn

    store.backend.connect = counting_connect
    yield store, opened
    store.close()


def _use(store) -> None:
    with store.read() as cursor:
        assert cursor.scalar("SELECT 1") == 1


def test_a_connection_left_idle_by_a_failure_of_its_user_serves_on(counted):
    store, opened = counted
    _use(store)
    with pytest.raises(PeerHungUp):
        with snapshot(store) as cursor:  # a round's snapshot, rolled back on the way out
            cursor.scalar("SELECT count(*) FROM cks_keys")
            raise PeerHungUp()
    with pytest.raises(PeerHungUp):
        with store.read():
            raise PeerHungUp()
    _use(store)
    assert len(opened) == 1


def _leave_inside_a_transaction(cursor) -> None:
    cursor.execute("BEGIN")
    cursor.scalar("SELECT count(*) FROM cks_keys")
    raise PeerHungUp()  # nobody rolled back


def _meet_a_database_error(cursor) -> None:
    cursor.execute("SELECT * FROM no_such_table")


@pytest.mark.parametrize("use, error", [(_leave_inside_a_transaction, PeerHungUp),
                                        (_meet_a_database_error, StoreError)])
def test_a_connection_left_in_a_transaction_or_by_a_database_error_is_closed(
        counted, use, error):
    store, opened = counted
    with pytest.raises(error):
        with store.read() as cursor:
            use(cursor)
    _use(store)
    assert len(opened) == 2


@pytest.mark.parametrize("sql", ["SELECT no_such_column FROM cks_keys", "SELEC 1",
                                 "INSERT INTO cks_keys (fingerprint) VALUES (1, 2)"])
def test_a_wrong_query_is_an_error_not_an_outage(store, sql):
    """A bug in a query is not the database being unavailable: no 503 with
    Retry-After, no pool of connections closed (SQLite says both with an
    OperationalError)."""
    with pytest.raises(StoreError) as raised:
        with store.read() as cursor:
            cursor.execute(sql)
    assert not isinstance(raised.value, StoreUnavailable)


@pytest.mark.parametrize("message, transient", [
    ("database is locked", True), ("database table is locked", True),
    ("disk I/O error", True), ("unable to open database file", True),
    ("database or disk is full", True), ("attempt to write a readonly database", True),
    ("cannot open /var/lib/cks/cks.db.write.lock: [Errno 24] Too many open files", True),
    ("no such table: cks_nothing", False), ("near \"SELEC\": syntax error", False),
    ("table cks_keys has no column named x", False)])
def test_which_sqlite_errors_are_outages(tmp_path, message, transient):
    store = open_store("sqlite:///%s" % (tmp_path / "cks.db"))
    try:
        assert store.backend.transient(sqlite3.OperationalError(message)) is transient
    finally:
        store.close()


def _leave_rows_unread(cursor) -> None:
    """A query of many rows, of which one is read: on SQLite its read
    transaction stays open while the cursor lives."""
    cursor.execute("SELECT column_name FROM information_schema.columns"
                   if cursor.backend.name == "postgresql" else
                   "SELECT name FROM sqlite_master").fetchone()


def _sees_what_was_written_since(store, db_url) -> bool:
    writer = open_store(db_url)
    PeerStore(writer).add("peer.example:11371", "recon", 0, None, False, recon_port=11370)
    writer.close()
    with store.read() as cursor:
        return cursor.scalar("SELECT count(*) FROM cks_other_servers") == 1


def test_a_read_that_ended_with_rows_unread_does_not_hold_the_next_user_in_the_past(
        counted, db_url):
    store, opened = counted
    with store.read() as stuck:  # the cursor outlives the block, as a local does
        _leave_rows_unread(stuck)
    assert _sees_what_was_written_since(store, db_url)
    assert len(opened) == 1


def test_nor_does_one_that_failed_with_rows_unread(counted, db_url):
    store, opened = counted
    with pytest.raises(PeerHungUp):
        with store.read() as stuck:  # alive in this frame, as a traceback keeps it
            _leave_rows_unread(stuck)
            raise PeerHungUp()
    assert _sees_what_was_written_since(store, db_url)
    assert len(opened) == 1


def test_connections_opened_at_once_on_a_new_sqlite_database_all_open(tmp_path):
    """One of them turns the new file to WAL mode; the others found it
    locked, without SQLite's busy handler waiting (cksd's processes at their
    first start; 14 of 300 times for 6 at once)."""
    from cks.store.sqlite import SQLiteBackend
    failures = []
    for attempt in range(60):
        backend = SQLiteBackend("sqlite:///%s" % (tmp_path / ("new-%d.db" % attempt)))
        barrier = threading.Barrier(6)

        def opener():
            barrier.wait()
            try:
                backend.connect().close()
            except sqlite3.Error as exc:
                failures.append(exc)
        threads = [threading.Thread(target=opener) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


@pytest.fixture
def pg_counted(tmp_path):
    """`counted` on PostgreSQL alone, with the database's URL."""
    require_postgres()
    url = with_schema(new_db_url("postgresql", tmp_path))
    store = open_store(url)
    opened = []
    connect = store.backend.connect
    store.backend.connect = lambda: opened.append(connect()) or opened[-1]
    yield store, opened, url
    store.close()
    drop_pg_database(url)


def _pool_three(store) -> None:
    with store.read() as one, store.read() as two, store.read() as three:
        for cursor in (one, two, three):
            cursor.scalar("SELECT 1")


def test_pooled_connections_a_restarted_server_closed_are_replaced_unseen(pg_counted):
    """Its sessions ended (a restart, or pg_terminate_backend), the server
    closed every pooled connection: the next read, and the next write whose
    first statement is not its COMMIT, find theirs closed and run again on a
    new connection, which closes the other idle ones (before, each failed:
    a 503 for a request of each serving process after every restart)."""
    store, opened, url = pg_counted
    _pool_three(store)
    assert len(opened) == 3
    assert terminate_backends(url) == 3
    with store.read() as cursor:
        assert cursor.scalar("SELECT count(*) FROM cks_other_servers") == 0
    assert len(opened) == 4
    PeerStore(store).add("peer.example:11371", "hkp", 0, None, False)  # (reads first)
    assert terminate_backends(url) == 1
    with snapshot(store) as cursor:  # its BEGIN deferred, sent with the first query
        assert cursor.scalar("SELECT count(*) FROM cks_other_servers") == 1
    assert len(opened) == 5
    assert terminate_backends(url) == 1
    PeerStore(store).add("other.example:11371", "hkp", 0, None, False)
    _use(store)
    assert len(opened) == 6
    assert [row[0] for row in run_sql(url, "SELECT peer FROM cks_other_servers ORDER BY 1")] \
        == ["other.example:11371", "peer.example:11371"]


def test_a_commit_is_never_sent_twice(pg_counted):
    """A write whose first round trip is its COMMIT (every statement before
    it deferred) fails on a closed connection: the server may have committed
    it before the connection broke.  And a read fails as before when its
    connection breaks after its first statement."""
    store, opened, url = pg_counted
    _use(store)
    terminate_backends(url)
    with pytest.raises(StoreUnavailable):
        with store.write() as cursor:
            cursor.defer("INSERT INTO cks_other_servers (peer, kind, added_at) "
                         "VALUES ('peer.example:11371', 'hkp', 0)")
    assert run_sql(url, "SELECT count(*) FROM cks_other_servers") == [(0,)]
    with pytest.raises(StoreUnavailable):
        with store.read() as cursor:
            cursor.scalar("SELECT 1")
            terminate_backends(url)
            cursor.scalar("SELECT 1")


def test_advisory_lock_sessions_are_reused_and_still_exclusive(pg_counted):
    """A recon round takes its peer's lock: a connection made for each lock
    cost 2-3 ms of a round of about 1.  A released lock's session serves
    the next lock; a held lock's never does (a session may take a lock it
    holds again, so sharing one would let two rounds in)."""
    store, _, url = pg_counted
    sessions = set()
    for n in range(20):
        lock = store.take_lock("round-%d" % n)
        sessions.add(lock.conn.get_backend_pid())
        store.release(lock)
    assert len(sessions) == 1
    held = store.take_lock("round-1")
    assert store.take_lock("round-1") is None  # (in another session, kept idle after)
    other = open_store(url)
    try:
        assert other.take_lock("round-1") is None  # another process's attempt
        store.release(held)
        again = other.take_lock("round-1")
        assert again is not None
        other.release(again)
    finally:
        other.close()


def test_a_lock_session_whose_query_fails_is_closed(pg_counted):
    store, _, _ = pg_counted
    import psycopg2

    class Failing:
        closed = False

        def cursor(self):
            return self

        def execute(self, *_args):
            raise psycopg2.OperationalError("the session ended")

        def close(self):
            self.closed = True
    made = Failing()
    store.backend._lock_sessions._connect = lambda: made
    with pytest.raises(StoreError):
        store.take_lock("round-1")
    assert made.closed

"""SQLite's writers take turns on a lock file beside the database
(sqlite.WriteTurns): a write transaction holds it from its start to its
commit or rollback, in every process; one that cannot have it within the
store's timeout fails cleanly, having written nothing."""

import fcntl
import multiprocessing
import os
import threading

import pytest

from cks.store import StoreUnavailable, open_store
from cks.store.sqlite import WriteTurns


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "cks.db")


def held(lock_path):
    """Whether some writer holds the turn (asked through a file of our own)."""
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def count(store):
    with store.read() as cursor:
        return cursor.scalar("SELECT count(*) FROM cks_pending_sync")


def queue(cursor, fingerprint):
    cursor.execute("INSERT INTO cks_pending_sync (fingerprint, queued_at, source) "
                   "VALUES (?, 0, 'test')", (fingerprint,))


def test_a_write_holds_the_turn_until_it_commits_or_rolls_back(path):
    store = open_store("sqlite:///" + path)
    lock_path = path + ".write.lock"
    count(store)  # (the schema is made)
    assert not held(lock_path)
    with store.write() as cursor:
        assert held(lock_path)
        queue(cursor, "A" * 40)
    assert not held(lock_path)
    with pytest.raises(RuntimeError):
        with store.write() as cursor:
            queue(cursor, "B" * 40)
            raise RuntimeError("a bug")
    assert not held(lock_path) and count(store) == 1
    store.close()


def test_the_turn_is_one_for_every_spelling_of_the_path(tmp_path, monkeypatch):
    """A write through a symlink, or a relative path, takes the turn beside
    the database file itself (it took <path as given>.write.lock, and two
    writers had their turns at once)."""
    monkeypatch.chdir(tmp_path)
    os.symlink("cks.db", "alias.db")
    lock_path = str(tmp_path / "cks.db.write.lock")
    for letter, spelling in zip("ABC", ("alias.db", str(tmp_path / "alias.db"), "cks.db")):
        store = open_store("sqlite:///" + spelling)
        with store.write() as cursor:
            assert held(lock_path)
            queue(cursor, letter * 40)
        store.close()
    assert not os.path.exists("alias.db.write.lock")


def test_a_writer_waits_for_the_turn_and_sees_what_the_one_before_wrote(path):
    first, second = open_store("sqlite:///" + path), open_store("sqlite:///" + path)
    count(first)
    done = threading.Event()
    seen = []

    def write_after():
        with second.write() as cursor:
            seen.append(cursor.scalar("SELECT count(*) FROM cks_pending_sync"))
            queue(cursor, "D" * 40)
        done.set()
    with first.write() as cursor:
        queue(cursor, "C" * 40)
        thread = threading.Thread(target=write_after, daemon=True)
        thread.start()
        assert not done.wait(0.3)  # (waiting for its turn)
    assert done.wait(10) and seen == [1] and count(first) == 2
    first.close()
    second.close()


def test_a_turn_not_given_within_the_timeout_fails_cleanly(path):
    holder = open_store("sqlite:///" + path)
    waiter = open_store("sqlite:///" + path, statement_timeout=0.2)
    count(holder)
    with holder.write() as cursor:
        queue(cursor, "E" * 40)
        with pytest.raises(StoreUnavailable, match="database is locked"):
            with waiter.write() as other:
                queue(other, "F" * 40)
    assert count(holder) == 1
    with waiter.write() as cursor:  # its turn comes now
        queue(cursor, "F" * 40)
    assert count(holder) == 2
    holder.close()
    waiter.close()


def test_a_writer_waiting_long_tries_now_and_then(path, monkeypatch):
    """A turn held 2 s: the waiter tries every eighth of its wait so far, up
    to 50 ms apart (until 2026-12-06 every 1 ms: about 2,000 tries, and 50
    mails waiting took a core between them), and takes the turn once it is
    given."""
    holder = open_store("sqlite:///" + path)
    waiter = open_store("sqlite:///" + path, statement_timeout=10)
    count(holder)
    tries = []
    real = fcntl.flock

    def counted(handle, operation):
        if operation & fcntl.LOCK_NB and threading.current_thread() is waiting:
            tries.append(operation)
        return real(handle, operation)
    monkeypatch.setattr(fcntl, "flock", counted)

    def wait():
        with waiter.write() as cursor:
            queue(cursor, "F" * 40)
    waiting = threading.Thread(target=wait)
    with holder.write() as cursor:
        queue(cursor, "E" * 40)
        waiting.start()
        waiting.join(2)
    waiting.join()
    assert count(holder) == 2
    assert 30 < len(tries) < 200, len(tries)
    holder.close()
    waiter.close()


def test_a_child_process_takes_its_own_turn(path):
    """A connection's lock file opened before a fork is not the child's: it
    opens its own, so the two processes still exclude each other."""
    turns = WriteTurns(path + ".write.lock", path)
    connection = object()  # (only its identity matters here)
    turns.take(connection, 1)
    context = multiprocessing.get_context("fork")

    def in_child():
        try:
            turns.take(connection, 0.2)
        except Exception as exc:  # noqa: BLE001 - the child reports by its exit code
            exit(3 if "database is locked" in str(exc) else 4)
        exit(0)
    child = context.Process(target=in_child)
    child.start()
    child.join(10)
    assert child.exitcode == 3
    turns.give_back(connection)
    child = context.Process(target=in_child)
    child.start()
    child.join(10)
    assert child.exitcode == 0
    turns.forget(connection)

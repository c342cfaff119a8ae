"""PostgreSQL's key locks: a write transaction locks the keys it changes, each
on its own, or all at once (the lock of all keys) when they are more than
MAX_KEY_LOCKS, as a bulk load's batch is; a writer of one key waits for it."""

import hashlib
import threading

import pytest

from cks.store import open_store
from cks.store.postgres import MAX_KEY_LOCKS
from support.db import drop_pg_database, new_db_url, require_postgres


@pytest.fixture
def pg_store(tmp_path):
    require_postgres()
    url = new_db_url("postgresql", tmp_path)
    store = open_store(url, 4)
    yield store
    store.close()
    drop_pg_database(url)


def fingerprints(count, start=0):
    """Made-up fingerprints, their leading digits (the lock ids) all different."""
    return [hashlib.sha1(b"%d" % n).hexdigest().upper() for n in range(start, start + count)]


def advisory_locks(store, pid):
    """(mode, count) of the advisory locks that backend `pid` holds."""
    with store.read() as cursor:
        return sorted(cursor.execute(
            "SELECT mode, count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = ? "
            "AND granted GROUP BY mode", (pid,)).fetchall())


def write_in_thread(store, keys):
    """A write transaction of `keys` in a thread; the event is set once it
    holds its locks."""
    done = threading.Event()

    def write():
        with store.write(keys) as cursor:
            cursor.execute("SELECT 1")
        done.set()
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread, done


def test_a_write_of_many_keys_takes_one_lock_and_one_key_waits_for_it(pg_store):
    many = fingerprints(MAX_KEY_LOCKS + 1)
    with pg_store.write(many) as cursor:
        pid = cursor.scalar("SELECT pg_backend_pid()")
        assert advisory_locks(pg_store, pid) == [("ExclusiveLock", 1)]
        # another key than its own waits too: the lock covers all keys
        thread, done = write_in_thread(pg_store, fingerprints(1, start=10_000))
        assert not done.wait(0.5)
    assert done.wait(10)
    thread.join()


def test_writes_of_few_keys_lock_each_and_run_side_by_side(pg_store):
    few = fingerprints(MAX_KEY_LOCKS)
    with pg_store.write(few) as cursor:
        pid = cursor.scalar("SELECT pg_backend_pid()")
        assert advisory_locks(pg_store, pid) == [("ExclusiveLock", MAX_KEY_LOCKS),
                                                 ("ShareLock", 1)]
        # a key of its own waits; a key of no one else's goes through
        other, other_done = write_in_thread(pg_store, fingerprints(1, start=10_000))
        assert other_done.wait(10)
        same, same_done = write_in_thread(pg_store, few[5:6])
        assert not same_done.wait(0.5)
    assert same_done.wait(10)
    other.join()
    same.join()

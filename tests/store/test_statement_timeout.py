"""The statement timeout (cksd's request_timeout): a statement that runs too
long is stopped, whatever the backend, and it is counted per statement, so a
connection held for long (a recon round's snapshot, up to an hour) keeps
working."""

import time

import pytest

from cks.store import StoreUnavailable, open_store

TIMEOUT = 0.3


def _counting_to(n: int) -> str:
    """A statement that takes a while: it counts to `n` (SQL of both backends)."""
    return ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d) "
            "SELECT count(*) FROM c" % n)


@pytest.fixture
def timed_store(db_url):
    store = open_store(db_url, statement_timeout=TIMEOUT)
    store.check()
    yield store
    store.close()


def test_a_statement_past_the_timeout_is_stopped(timed_store):
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        with timed_store.read() as cursor:
            cursor.scalar(_counting_to(10 ** 9))
    assert time.monotonic() - started < 10
    with timed_store.read() as cursor:  # and the store goes on serving
        assert cursor.scalar("SELECT 1") == 1


def test_a_connection_held_longer_than_the_timeout_goes_on(timed_store):
    with timed_store.read() as cursor:
        assert cursor.scalar("SELECT 1") == 1
        time.sleep(TIMEOUT * 2)
        # enough work for SQLite's progress handler to look at the clock
        assert cursor.scalar(_counting_to(20000)) == 20000
        time.sleep(TIMEOUT * 2)
        assert cursor.scalar(_counting_to(20000)) == 20000

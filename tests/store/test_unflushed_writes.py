"""Store.write(flush=False): a commit that does not wait for the disk, for
work that is done again if a crash loses it (derived served views whose
work stays queued, a bulk load's batches).  Uploads, and what an operator's
command reports done, keep waiting for it."""

import pytest

from cks import pipeline, views
from cks.openpgp.keys import read_keys
from cks.store import StoreError, open_store
from support import fixture

SETTING = {"sqlite": ("PRAGMA synchronous", 1, 2),  # NORMAL, FULL
           "postgresql": ("SHOW synchronous_commit", "off", "on")}


def _setting(store, cursor):
    query, _, _ = SETTING[store.backend.name]
    return cursor.scalar(query)


def test_only_that_transaction_goes_without_the_flush(db_url):
    store = open_store(db_url, pool_size=1)
    _, unflushed, flushed = SETTING[store.backend.name]
    try:
        with store.write() as cursor:
            connection = cursor.raw.connection
            assert _setting(store, cursor) == flushed
        with store.write(flush=False) as cursor:
            assert cursor.raw.connection is connection
            assert _setting(store, cursor) == unflushed
            cursor.execute("INSERT INTO cks_schema_version (version) VALUES (?)", (98,))
        with pytest.raises(ZeroDivisionError):
            with store.write(flush=False) as cursor:
                1 / 0
        with store.write() as cursor:
            assert cursor.raw.connection is connection
            assert _setting(store, cursor) == flushed
        with store.read() as cursor:
            assert cursor.scalar("SELECT max(version) FROM cks_schema_version") == 98
    finally:
        store.close()


@pytest.fixture
def writes(store, monkeypatch):
    """(bulk, flush) of every write transaction the store begins."""
    seen = []
    write = store.write

    def recorded(lock_keys=(), bulk=False, flush=True):
        seen.append((bulk, flush))
        return write(lock_keys, bulk, flush)
    monkeypatch.setattr(store, "write", recorded)
    return seen


def test_queued_view_work_is_written_without_the_flush_and_the_upload_with_it(store, writes):
    limits = pipeline.Limits()
    key = read_keys(fixture("rsa2048")).keys[0]
    pipeline.submit(store, fixture("rsa2048"), pipeline.Source.user(), limits,
                    follow=False, defer_views=True)
    assert writes == [(False, True)]  # the upload: answered once it is on disk
    writes.clear()
    assert views.follow_signers(store, limits.serve) == 1
    assert writes and all(flush is False for _, flush in writes)  # its view, its work done
    writes.clear()
    views.reverify(store, limits.serve, [key.fingerprint.hex().upper()])  # cks_admin.py's
    assert writes == [(False, True)]  # what the command reports done is on disk


def test_a_connection_whose_settings_were_not_restored_is_not_handed_out_again(
        db_url, monkeypatch):
    store = open_store(db_url, pool_size=1)
    flushed = SETTING[store.backend.name][2]
    error = store.backend.database_errors()[0]
    end_write = store.backend.end_write

    def failing(cursor, flush=True):
        raise error("the connection went away")
    try:
        monkeypatch.setattr(store.backend, "end_write", failing)
        with pytest.raises(StoreError):
            with store.write(flush=False) as cursor:
                connection = cursor.raw.connection
        monkeypatch.setattr(store.backend, "end_write", end_write)
        with store.write() as cursor:
            assert cursor.raw.connection is not connection
            assert _setting(store, cursor) == flushed
    finally:
        store.close()

"""Store.write(bulk=True), the transactions a bulk load writes its batches in."""

import os
import sqlite3

import pytest

from cks.openpgp.keys import read_keys
from cks.store import open_store
from cks.store.sqlite import BULK_CACHE_KIB, BULK_CHECKPOINT_PAGES, CHECKPOINT_PAGES
from support import fixture
from support.procs import tool


def test_a_bulk_write_is_a_write(store):
    with store.write(bulk=True) as cursor:
        cursor.execute("INSERT INTO cks_schema_version (version) VALUES (?)", (99,))
    with store.read() as cursor:
        assert cursor.scalar("SELECT max(version) FROM cks_schema_version") == 99


def test_sqlite_gives_a_bulk_writes_connection_a_larger_page_cache(tmp_path):
    store = open_store("sqlite:///%s" % (tmp_path / "cks.db"), pool_size=1)
    try:
        with store.write() as cursor:
            default = cursor.scalar("PRAGMA cache_size")
        with store.write(bulk=True) as cursor:
            assert cursor.scalar("PRAGMA cache_size") == -BULK_CACHE_KIB
    finally:
        store.close()
    assert -BULK_CACHE_KIB < default < 0  # SQLite's 2 MiB (in KiB), smaller


def _settings(cursor):
    return cursor.scalar("PRAGMA synchronous"), cursor.scalar("PRAGMA wal_autocheckpoint")


def test_on_sqlite_a_bulk_write_alone_waits_for_no_flush_and_no_checkpoint(tmp_path):
    """synchronous = NORMAL and a larger log for the bulk write's transaction
    only: the connection goes back to the pool as it was."""
    store = open_store("sqlite:///%s" % (tmp_path / "cks.db"), pool_size=1)
    try:
        with store.write() as cursor:
            before = (cursor.raw.connection, _settings(cursor))
        with store.write(bulk=True) as cursor:
            assert cursor.raw.connection is before[0]
            assert _settings(cursor) == (1, BULK_CHECKPOINT_PAGES)
        with pytest.raises(ZeroDivisionError):
            with store.write(bulk=True) as cursor:
                1 / 0  # (rolled back: restored all the same)
        with store.write() as cursor:
            after = (cursor.raw.connection, _settings(cursor))
    finally:
        store.close()
    assert before[1] == after[1] == (2, CHECKPOINT_PAGES)  # FULL
    assert after[0] is before[0]


def test_a_load_on_sqlite_ends_with_its_log_copied_into_the_database(tmp_path):
    """While another program has the database open (cksd), the log is not
    removed when the load's connections close: the load empties it."""
    path = str(tmp_path / "cks.db")
    store = open_store("sqlite:///" + path)
    store.check()  # (the schema)
    store.close()
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT count(*) FROM cks_keys").fetchone() == (0,)
        data = b"".join(read_keys(fixture(name)).keys[0].serialize()
                        for name in ("rsa2048", "nistp256", "certified"))
        out = tool("cks_admin.py", ["--db", "sqlite:///" + path, "load", "-"], input=data)
        assert out.returncode == 0, out.stderr
        assert os.path.getsize(path + "-wal") == 0
        assert other.execute("SELECT count(*) FROM cks_keys").fetchone() == (3,)
    finally:
        other.close()

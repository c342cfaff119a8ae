"""A program that opens an SQLite database while another migrates it waits
for that migration, however long it takes (PostgreSQL's schema lock waits so
too)."""

import logging
import sqlite3
import threading

from cks.store import open_store, sqlite as sqlite_backend
from cks.store.schema import SCHEMA_VERSION
from support.db import run_sql


def test_a_migration_waits_for_another_programs_write_lock(tmp_path, monkeypatch, caplog):
    """Until 2026-12-06 it gave up after the busy timeout (30 s) with
    "database is locked", while a step of the other's took 40 s at 400,000
    keys (found by a review)."""
    url = "sqlite:///%s" % (tmp_path / "cks.db")
    open_store(url).close()
    run_sql(url, "UPDATE cks_schema_version SET version = 6", write=True)
    monkeypatch.setattr(sqlite_backend, "BUSY_TIMEOUT_S", 0.2)
    other = sqlite3.connect(str(tmp_path / "cks.db"), isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # (another program's step under way)
    release = threading.Timer(1.5, lambda: other.execute("COMMIT"))
    release.start()
    caplog.set_level(logging.INFO, "cks.store")
    try:
        store = open_store(url)
        try:
            store.check()
        finally:
            store.close()
    finally:
        release.join()
        other.close()
    assert run_sql(url, "SELECT version FROM cks_schema_version") == [(SCHEMA_VERSION,)]
    waits = [r.getMessage() for r in caplog.records if "waiting for another" in r.getMessage()]
    assert waits == ["waiting for another program writing to the database %s (migrating it?)"
                     % (tmp_path / "cks.db")]

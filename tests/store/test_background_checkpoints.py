"""Store.take_over_checkpoints: cksd copies SQLite's write-ahead log into the
database in the background (Store.checkpoint), not in the commit of whichever
writer filled the log."""

import logging
import os
import struct
import threading
import time

import pytest

from cks.store import StoreUnavailable, open_store
from cks.store.checkpoints import BackgroundCheckpoints
from cks.store.sqlite import CHECKPOINT_PAGES
from support import fixture
from support.server import Cksd

ROW_BYTES = 16384  # four pages a row: CHECKPOINT_PAGES are written in 250 commits


def _restarts(path: str) -> int:
    """The log's checkpoint sequence number (its header's), which grows by
    one each time a writer starts the log afresh after a complete copy."""
    with open(path + "-wal", "rb") as handle:
        return struct.unpack(">I", handle.read(16)[12:16])[0]


def _write_rows(store, count: int) -> None:
    for _ in range(count):
        with store.write() as cursor:
            cursor.execute("INSERT INTO scratch (data) VALUES (?)", (os.urandom(ROW_BYTES),))


@pytest.fixture
def sqlite_store(tmp_path):
    store = open_store("sqlite:///%s" % (tmp_path / "cks.db"))
    with store.write() as cursor:
        cursor.execute("CREATE TABLE scratch (data BLOB)")
    yield store, str(tmp_path / "cks.db")
    store.close()


@pytest.mark.parametrize("taken_over", [False, True])
def test_sqlite_writers_leave_checkpoints_to_checkpoint(sqlite_store, taken_over):
    store, path = sqlite_store
    if taken_over:
        assert store.take_over_checkpoints()
    empty = os.path.getsize(path)
    _write_rows(store, CHECKPOINT_PAGES // 2)  # 2,000 pages in the log
    copied_by_writers = os.path.getsize(path) - empty
    if not taken_over:  # (SQLite's own way: the commit that filled the log copies it)
        assert copied_by_writers > CHECKPOINT_PAGES * 4096 // 2
        return
    assert copied_by_writers == 0
    before = _restarts(path)
    store.checkpoint()
    assert os.path.getsize(path) - empty > CHECKPOINT_PAGES * ROW_BYTES // 8
    _write_rows(store, 1)
    assert _restarts(path) == before + 1  # the copy was complete: the log began again


def test_a_checkpoint_under_writes_completes_during_a_write_turn(sqlite_store):
    """Copied while readers and writers go on, the log is never complete, so
    it would never begin again: then checkpoint() copies the rest in a write
    turn of its own, after the writer that holds one."""
    store, path = sqlite_store
    store.take_over_checkpoints()
    _write_rows(store, CHECKPOINT_PAGES // 2)
    reading = store.read()  # a reader's snapshot, which the copy may not pass
    cursor = reading.__enter__()
    cursor.execute("BEGIN")
    cursor.execute("SELECT count(*) FROM scratch").fetchall()
    _write_rows(store, 10)
    writer_has_turn, writer_may_end = threading.Event(), threading.Event()

    def writer():
        with store.write() as cursor:  # holds the write turn
            cursor.execute("INSERT INTO scratch (data) VALUES (?)", (b"x",))
            writer_has_turn.set()
            writer_may_end.wait(10)

    writing = threading.Thread(target=writer)
    writing.start()
    assert writer_has_turn.wait(10)
    checkpointing = threading.Thread(target=store.checkpoint)
    checkpointing.start()
    time.sleep(0.3)
    assert checkpointing.is_alive()  # the first copy stopped at the reader: it waits
    cursor.execute("COMMIT")
    reading.__exit__(None, None, None)
    writer_may_end.set()
    writing.join(10)
    checkpointing.join(10)
    assert not checkpointing.is_alive()
    before = _restarts(path)
    _write_rows(store, 1)
    assert _restarts(path) == before + 1


def test_postgresql_checkpoints_by_itself(store):
    if store.backend.name == "sqlite":
        pytest.skip("SQLite's are taken over (the tests above)")
    assert not store.take_over_checkpoints()
    store.checkpoint()  # (nothing to do, and no error)


def test_cksd_copies_the_log_into_the_database_in_the_background(tmp_path):
    """A few uploads fill far less than the CHECKPOINT_PAGES after which a
    writer's commit would copy the log: cksd's serving processes copy it
    every moment, between the writes."""
    path = tmp_path / "cks.db"
    with Cksd("sqlite:///%s" % path) as server:
        empty = os.path.getsize(path)
        for name in ("rsa2048", "nistp256", "ed25519", "certified"):
            assert server.add(fixture(name))[0] == 200
        server.wait_until(lambda: os.path.getsize(path) > empty)
        assert os.path.getsize(str(path) + "-wal") < CHECKPOINT_PAGES * 4096


class _FailingStore:
    """A store whose checkpoints fail while `failing` is set."""

    def __init__(self) -> None:
        self.failing = True
        self.checkpoints = 0

    def checkpoint(self) -> None:
        self.checkpoints += 1
        if self.failing:
            raise StoreUnavailable("database or disk is full")


def test_a_failing_checkpoint_is_logged_when_it_starts_and_ends(caplog):
    """Tried every 0.1 s, a checkpoint that fails (a full disk) must not
    write a line each time."""
    store = _FailingStore()
    job = BackgroundCheckpoints(store)
    with caplog.at_level(logging.INFO, logger="cks.store"):
        for _ in range(50):
            job()
        store.failing = False
        for _ in range(5):
            job()
        store.failing = True
        job()
    assert store.checkpoints == 56
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO", "WARNING"]
    assert "disk is full" in caplog.records[0].getMessage()

"""Lookups on a replica (store.replica.ReplicaReads) without a cluster: after
the replica fails, lookups read the primary and never wait for the replica
again; a thread of its own tries it, and sends the lookups back once it
answers; lookups read the primary while the replica has not replayed this
cksd's key changes.  A replica's Store (reads_only) never makes the schema.  And the
TCP settings of PostgreSQL connections that find a dead server."""

import contextlib
import logging
import sqlite3
import threading
import time

import pytest

from cks.store import StoreUnavailable, open_store
from cks.store.changes import LocalChanges
from cks.store.replica import REPLAY_RECHECK_SECONDS, ReplicaReads
from support.db import create_pg_database, drop_pg_database, require_postgres


class FlakyReplica:
    """Stands in for the replica's Store: fails while `down`, and notes
    which threads asked."""

    def __init__(self) -> None:
        self.down = True
        self.askers = []
        self.replayed = 0  # (None: a server that replays nothing)
        self.replay_asked = 0

    def find_by_hash(self, sks_hash):
        self.askers.append(threading.current_thread().name)
        if self.down:
            raise StoreUnavailable("cannot open database replica: connection refused")
        return ["ON-THE-REPLICA"]

    def replayed_position(self):
        self.replay_asked += 1
        if self.down:
            raise StoreUnavailable("cannot open database replica: connection refused")
        return self.replayed

    def close(self) -> None:
        pass


class Primary:
    def __init__(self) -> None:
        self.local_changes = LocalChanges()

    def find_by_hash(self, sks_hash):
        return ["ON-THE-PRIMARY"]


def _until(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not in %s s" % seconds
        time.sleep(0.01)


def test_lookups_never_wait_for_a_failed_replica_and_go_back_when_it_answers(caplog):
    replica = FlakyReplica()
    reads = ReplicaReads(replica, Primary(), retry_seconds=0.05)
    caplog.set_level(logging.INFO, logger="cks.store")
    try:
        me = threading.current_thread().name
        assert reads.find_by_hash("0" * 32) == ["ON-THE-PRIMARY"]  # tried it once, then this
        assert replica.askers[0] == me
        _until(lambda: len(replica.askers) >= 4)  # the prober's tries
        for _ in range(20):
            assert reads.find_by_hash("0" * 32) == ["ON-THE-PRIMARY"]
        assert replica.askers.count(me) == 1
        assert set(replica.askers[1:]) == {"cks-replica-probe"}
        replica.down = False
        _until(lambda: reads.find_by_hash("0" * 32) == ["ON-THE-REPLICA"])
        messages = [r.getMessage() for r in caplog.records]
        assert sum("cannot answer" in m for m in messages) == 1
        assert sum("answers again" in m for m in messages) == 1
        replica.down = True  # a second failure: seen to again
        assert reads.find_by_hash("0" * 32) == ["ON-THE-PRIMARY"]
        _until(lambda: replica.askers[-1] == "cks-replica-probe")
    finally:
        reads.close()
    tries = len(replica.askers)
    time.sleep(0.2)
    assert len(replica.askers) == tries  # close() stopped the prober


def test_lookups_read_the_primary_until_the_replica_replayed_this_cksds_changes():
    replica, primary = FlakyReplica(), Primary()
    replica.down = False
    reads = ReplicaReads(replica, primary)
    try:
        assert reads.find_by_hash("0" * 32) == ["ON-THE-REPLICA"]  # (no change of ours yet)
        primary.local_changes.committed(None)  # (no position known: SQLite, a failed query)
        assert reads.find_by_hash("0" * 32) == ["ON-THE-REPLICA"]
        asked = replica.replay_asked
        primary.local_changes.committed(1000)  # an upload, committed up to there
        replica.replayed = 999
        for _ in range(50):
            assert reads.find_by_hash("0" * 32) == ["ON-THE-PRIMARY"]
        assert 1 <= replica.replay_asked - asked <= 10  # (not at every lookup)
        replica.replayed = 1000
        _until(lambda: reads.find_by_hash("0" * 32) == ["ON-THE-REPLICA"])
        asked = replica.replay_asked
        time.sleep(2 * REPLAY_RECHECK_SECONDS)
        assert reads.find_by_hash("0" * 32) == ["ON-THE-REPLICA"]
        assert replica.replay_asked == asked  # caught up: not asked again
        primary.local_changes.committed(2000)
        replica.replayed = None  # promoted: it replays nothing, and has it all
        _until(lambda: reads.find_by_hash("0" * 32) == ["ON-THE-REPLICA"])
    finally:
        reads.close()


def test_a_replica_that_fails_to_tell_its_replay_is_a_failed_replica():
    replica, primary = FlakyReplica(), Primary()
    primary.local_changes.committed(1000)
    reads = ReplicaReads(replica, primary, retry_seconds=0.05)
    try:
        assert reads.find_by_hash("0" * 32) == ["ON-THE-PRIMARY"]
        assert replica.replay_asked == 1
        assert threading.current_thread().name not in replica.askers  # (the lookup's read)
        _until(lambda: "cks-replica-probe" in replica.askers)
    finally:
        reads.close()


def test_a_replicas_store_does_not_make_the_schema(tmp_path):
    path = tmp_path / "replica.db"
    store = open_store("sqlite:///%s" % path, reads_only=True)
    try:
        with pytest.raises(StoreUnavailable, match="holds no CKS tables"):
            store.find_by_hash("0" * 32)
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(str(path))) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    writer = open_store("sqlite:///%s" % path)
    writer.check()  # (a store that writes makes it)
    writer.close()
    store = open_store("sqlite:///%s" % path, reads_only=True)
    try:
        assert store.find_by_hash("0" * 32) == []
    finally:
        store.close()


def test_postgresql_connections_find_a_dead_server_by_tcp_keepalives():
    require_postgres()
    url = create_pg_database()
    try:
        for given, idle in (("", "10"), ("?keepalives_idle=60", "60")):
            store = open_store(url + given)
            try:
                with store.read() as cursor:
                    settings = cursor.raw.connection.get_dsn_parameters()
            finally:
                store.close()
            assert (settings["keepalives"], settings["keepalives_idle"]) == ("1", idle)
            assert settings["connect_timeout"] == "10"
            assert settings.get("tcp_user_timeout", "30000") == "30000"
        replica = open_store(url, reads_only=True)  # (lookups have the primary to go to)
        try:
            with replica.read() as cursor:
                assert cursor.raw.connection.get_dsn_parameters()["connect_timeout"] == "2"
        finally:
            replica.close()
    finally:
        drop_pg_database(url)


def test_a_probe_that_meets_a_bug_goes_on_trying(caplog):
    replica = FlakyReplica()
    failures = [StoreUnavailable("down"), RuntimeError("a bug"), None]

    def find_by_hash(sks_hash):
        replica.askers.append(threading.current_thread().name)
        failure = failures.pop(0) if failures else None
        if failure is not None:
            raise failure
        return ["ON-THE-REPLICA"]

    replica.find_by_hash = find_by_hash
    reads = ReplicaReads(replica, Primary(), retry_seconds=0.05)
    try:
        assert reads.find_by_hash("0" * 32) == ["ON-THE-PRIMARY"]
        _until(lambda: reads.find_by_hash("0" * 32) == ["ON-THE-REPLICA"])
    finally:
        reads.close()
    assert "the read replica cannot answer" in caplog.text and "its probe failed" in caplog.text

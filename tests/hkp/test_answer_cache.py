"""Lookup answers cached in memory (hkp/answer_cache.py) and the watches that
tell a serving process the keys changed (store/changes.py)."""

from __future__ import annotations

import logging
import time

from cks import pipeline
from cks.hkp.answer_cache import AnswerCache
from cks.store import open_store
from cks.store import changes
from cks.store.changes import LocalChanges, PostgresWatch, SQLiteWatch
from cks.store.peers import PeerStore
from cks.store.rejections import delete_key
from support import fixture
from support.clock import Clock
from support.db import (drop_pg_database, listening_watch, new_db_url, require_postgres,
                        terminate_backends, with_schema)
from support.nodes import fpr
from support.server import Cksd


class Watch:
    def __init__(self):
        self.value = 1

    def generation(self):
        return self.value

    def close(self):
        pass


KEY = ("/pks/lookup?op=get&search=0x1", False, False)
OTHER = ("/pks/lookup?op=get&search=0x2", False, False)


def test_answers_last_until_the_keys_change_or_they_are_old():
    watch, clock = Watch(), Clock()
    cache = AnswerCache(watch, max_bytes=1000, max_age=60, clock=clock)
    generation = cache.generation()
    assert cache.get(KEY, generation) is None
    cache.put(KEY, generation, "answer", 10)
    assert cache.get(KEY, cache.generation()) == "answer"
    assert cache.get((KEY[0], True, False), generation) is None  # a legacy client's
    clock.now += 61
    assert cache.get(KEY, cache.generation()) is None  # older than max_age
    cache.put(KEY, cache.generation(), "answer", 10)
    watch.value = 2
    assert cache.get(KEY, cache.generation()) is None and cache.size == 0
    # an answer made before a change is not kept after it
    before = cache.generation()
    watch.value = 3
    cache.generation()
    cache.put(KEY, before, "stale", 10)
    assert cache.get(KEY, cache.generation()) is None
    # no generation (the change notifications are down): nothing is cached
    watch.value = None
    cache.put(KEY, cache.generation(), "answer", 10)
    assert cache.get(KEY, cache.generation()) is None and cache.size == 0


def test_least_recently_used_answers_go_first():
    cache = AnswerCache(Watch(), max_bytes=800)
    generation = cache.generation()
    cache.put(KEY, generation, "big", 101)  # one answer may take max_bytes / 8 at most
    assert cache.get(KEY, generation) is None and cache.size == 0
    cache.put(KEY, generation, "one", 100)
    cache.put(OTHER, generation, "two", 100)
    assert cache.get(KEY, generation) == "one"  # now the most recently used
    for n in range(7):
        cache.put(("/%d" % n, False, False), generation, n, 100)
    assert cache.size == 800
    assert cache.get(OTHER, generation) is None and cache.get(KEY, generation) == "one"


def test_serving_processes_of_one_cksd_share_their_changes():
    import os
    (shared, other), alone = LocalChanges.shared_by(2), LocalChanges()
    pid = os.fork()
    if pid == 0:  # another serving process stores a key
        other.committed()
        alone.committed()
        os._exit(0)
    os.waitpid(pid, 0)
    assert shared.count == 1 and alone.count == 0


def wait_for_change(watch, before, seconds=5.0):
    deadline = time.monotonic() + seconds
    while watch.generation() == before and time.monotonic() < deadline:
        time.sleep(0.01)
    return watch.generation() != before


def quiet_generation(watch, quiet=0.3, seconds=5.0):
    """The generation once it stopped moving for `quiet` seconds: on
    PostgreSQL each commit that changed keys is heard a moment later, this
    process's own included, so one heard may still be on its way."""
    deadline = time.monotonic() + seconds
    current, since = watch.generation(), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.01)
        now = watch.generation()
        if now != current:
            current, since = now, time.monotonic()
    return current


def test_watches_see_every_process_key_changes(db_url):
    store, other = open_store(db_url), open_store(db_url)  # other: another process's
    try:
        with listening_watch(store) as watch:
            before = watch.generation()
            assert before is not None
            # this process's own change counts at once, before the upload is answered
            pipeline.submit(store, fixture("rsa2048"), pipeline.Source.user())
            assert watch.generation() != before
            before = watch.generation()
            pipeline.submit(other, fixture("ed25519"), pipeline.Source.user())
            assert wait_for_change(watch, before)
            # writes that change no key do not empty PostgreSQL's cache
            before = quiet_generation(watch)
            PeerStore(other).add("peer.example.org:11371", "hkp", 0, None, False)
            if store.backend.name == "postgresql":
                time.sleep(0.3)
                assert watch.generation() == before
            before = watch.generation()
            with other.write() as cursor:
                assert delete_key(cursor, fpr("rsa2048"))
            assert wait_for_change(watch, before)
    finally:
        store.close()
        other.close()


def test_an_upload_shows_in_the_next_lookup_of_every_process(db_url, tmp_path):
    """Two cksd on one database: what one stores, both answer at once (the
    one that stored it) or within moments (the other, told by the database)."""
    with Cksd(db_url) as one, Cksd(db_url) as two:
        keyid = fpr("alice-t1")[-16:]
        for server in (one, two):  # a 404, cached
            assert server.lookup(op="get", options="mr", search="0x" + keyid)[0] == 404
            assert server.lookup(op="get", options="mr", search="0x" + keyid)[0] == 404
        assert one.add(fixture("alice-t1"))[0] == 200
        status, _, first = one.lookup(op="get", options="mr", search="0x" + keyid)
        assert status == 200
        deadline = time.monotonic() + 5
        while two.lookup(op="get", options="mr", search="0x" + keyid)[0] != 200:
            assert time.monotonic() < deadline, "the other process kept its cached 404"
            time.sleep(0.05)
        # a new version (another user ID) replaces the cached answer in both
        assert one.add(fixture("alice-t2"))[0] == 200
        status, _, second = one.lookup(op="get", options="mr", search="0x" + keyid)
        assert status == 200 and second != first
        deadline = time.monotonic() + 5
        while two.lookup(op="get", options="mr", search="0x" + keyid)[2] != second:
            assert time.monotonic() < deadline, "the other process kept its cached key"
            time.sleep(0.05)
        index = one.lookup(op="index", options="mr", search="0x" + keyid)[2]
        assert index == two.lookup(op="index", options="mr", search="0x" + keyid)[2]


def test_the_sqlite_watch_outlives_the_statement_timeout(tmp_path, monkeypatch):
    """The watch reads data_version on a connection of its own, which never
    goes back to the pool: the statement timeout, counted from a pooled
    connection's checkout, must not stop its reads once the process has been
    up that long (it did: lookups after 30 s answered 500 now and then)."""
    store = open_store("sqlite:///%s" % (tmp_path / "cks.db"), statement_timeout=0.2)
    store.check()
    watch = store.watch_key_changes()
    assert isinstance(watch, SQLiteWatch)
    monkeypatch.setattr(watch, "_recheck", 0)  # read data_version at every call
    try:
        time.sleep(0.3)
        for _ in range(20000):  # enough statements for SQLite's progress handler to run
            watch.generation()
    finally:
        watch.close()
        store.close()


def test_a_cached_answer_is_served_without_reading_the_query_again(db_url, monkeypatch):
    """A hit costs the cache's lookup alone: only lookups that parsed are kept,
    so parse_lookup runs on a miss; stats and malformed queries never hit."""
    from cks.hkp import app as app_module
    from cks.hkp.app import KeyServer, Request, ServerSettings

    store = open_store(db_url)
    assert pipeline.submit(store, fixture("rsa2048"), pipeline.Source.admin(queue=False)).stored
    server = KeyServer(store, ServerSettings())
    server.cache = AnswerCache(Watch(), 1 << 20)
    parsed = []
    real = app_module.parse_lookup
    monkeypatch.setattr(app_module, "parse_lookup",
                        lambda *args: parsed.append(args[0]) or real(*args))
    found = "/pks/lookup?op=index&options=mr&search=0x" + fpr("rsa2048")[-16:]
    missing = "/pks/lookup?op=get&options=mr&search=0x0123456789ABCDEF"
    statuses = []
    for target in (found, missing, "/pks/lookup?op=stats&options=mr",
                   "/pks/lookup?op=frobnicate&search=x"):
        first, again = (server.handle(Request("GET", target)) for _ in range(2))
        assert again.status == first.status
        if "op=stats" not in target:  # (stats say when they were taken, to the second)
            assert again.body == first.body
        statuses.append(first.status)
    assert statuses == [200, 404, 200, 501]
    assert len(parsed) == 1 + 1 + 2 + 2  # the found and the 404 once; stats and 501 each time
    store.close()


def test_lost_change_notifications_are_logged_once_and_so_is_their_return(
        tmp_path, monkeypatch, caplog):
    """The LISTEN connection broken (the server restarted): answers are not
    cached until it is back, which is logged once when it breaks, not at each
    failed try to reconnect, and once when it is back (before, the line was
    never logged)."""
    require_postgres()
    from psycopg2 import OperationalError
    url = with_schema(new_db_url("postgresql", tmp_path))
    monkeypatch.setattr(changes, "RECONNECT_SECONDS", 0.05)
    store = open_store(url)
    refusals = []

    def connect():
        if refusals:
            raise refusals.pop()
        return store.backend.connect()
    watch = PostgresWatch(connect, LocalChanges())
    try:
        with caplog.at_level(logging.INFO, logger="cks.store"):
            assert watch.wait_listening(10)
            refusals.extend(OperationalError("connection refused") for _ in range(3))
            assert terminate_backends(url, "LISTEN%") == 1
            deadline = time.monotonic() + 5
            while watch.generation() is not None or refusals:
                assert time.monotonic() < deadline, "the broken connection went unnoticed"
                time.sleep(0.01)
            assert watch.wait_listening(10)
    finally:
        watch.close()
        store.close()
        drop_pg_database(url)
    said = [r.getMessage() for r in caplog.records if "notifications" in r.getMessage()]
    assert len(said) == 2, said
    assert said[0].startswith("key change notifications lost") and "closed" in said[0]
    assert said[1] == "key change notifications heard again"

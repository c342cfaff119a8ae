"""cksd pushes the queue itself every `[sync] push_interval` seconds, through
the same lossless backlog and lock as cks_sync.py: on SQLite and PostgreSQL."""

import logging
import re
import threading
import time

import pytest

from cks import pipeline
from cks.store import StoreError, open_store
from cks.store.peers import PeerStore
from cks.sync import push
from cks.sync.push import peer_lock
from cks.sync.runner import SyncLimits
from support import fixture
from support.fakepeer import FakePeer
from support.nodes import fpr, has, manage, peer_name, peers_json, sync, table
from support.server import LOOPBACK_EXEMPT, Cksd


def wait_for(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within %d s" % seconds
        time.sleep(0.1)


@pytest.fixture
def pair(new_db, tmp_path):
    config = tmp_path / "a.conf"
    config.write_text("[sync]\npush_interval = 0.5\n")
    b = Cksd(new_db("b")).start()
    a = Cksd(new_db("a"), config=str(config)).start()
    yield a, b
    a.close()
    b.close()


def test_a_users_key_reaches_the_peer_without_cron(pair):
    a, b = pair
    assert manage(a, "add", peer_name(b), "--no-catch-up").returncode == 0
    assert a.add(fixture("rsa2048"))[0] == 200
    wait_for(lambda: has(b, "rsa2048"))
    wait_for(lambda: table(a, "SELECT count(*) FROM cks_sync_backlog")[0][0] == 0)
    assert table(b, "SELECT source FROM cks_keys WHERE fingerprint = ?",
                 (fpr("rsa2048"),))[0][0].startswith("hkp-sync:")
    a.wait_for_output(re.escape("pushed 1 key to %s" % peer_name(b)))
    # cron's cks_sync.py finds nothing left to send
    assert sync(a).stdout.decode().strip() == "%s: sent 0 keys" % peer_name(b)


def test_a_peer_that_is_down_keeps_its_keys(pair):
    a, b = pair
    manage(a, "add", peer_name(b), "--no-catch-up")
    b.stop()
    assert a.add(fixture("nistp256"))[0] == 200
    a.wait_for_output(r"push to %s failed" % peer_name(b))
    assert table(a, "SELECT count(*) FROM cks_sync_backlog")[0][0] == 1
    b.start(port=b.port)
    wait_for(lambda: has(b, "nistp256"))
    wait_for(lambda: table(a, "SELECT count(*) FROM cks_sync_backlog")[0][0] == 0)


def test_a_peer_that_hangs_holds_up_no_other(new_db, tmp_path):
    """Each peer is pushed to on its own: while a request to a peer that
    never answers waits out its 10 s timeout, the keys uploaded meanwhile
    reach the other peer at once, pass after pass."""
    config = tmp_path / "a.conf"
    config.write_text(LOOPBACK_EXEMPT + "[sync]\npush_interval = 0.5\ntimeout = 10\n")
    with FakePeer("hang") as hung, FakePeer() as good, \
            Cksd(new_db("a"), config=str(config)) as a:
        manage(a, "add", hung.name, "--priority", "1", "--no-catch-up")
        manage(a, "add", good.name, "--priority", "2", "--no-catch-up")
        for name in ("rsa2048", "nistp256"):
            assert a.add(fixture(name))[0] == 200
            wait_for(lambda: fpr(name) in good.received, seconds=8)
        assert hung.requests == 1  # still waiting for its first answer
        assert peers_json(a)[hung.name]["backlog"] == 2


def test_cron_leaves_a_peer_cksd_is_pushing_to(new_db):
    """cks_sync.py serves the other peers and says which one it left."""
    node = Cksd(new_db("a")).start()
    try:
        with FakePeer() as busy, FakePeer() as free:
            manage(node, "add", busy.name, "--no-catch-up")
            manage(node, "add", free.name, "--no-catch-up")
            assert node.add(fixture("rsa2048"))[0] == 200
            store = open_store(node.db_url)
            try:
                peer = PeerStore(store).get(busy.name)
                with store.exclusive(peer_lock(peer)) as locked:
                    assert locked
                    run = sync(node)
            finally:
                store.close()
            assert run.returncode == 0, run.stderr
            assert sorted(run.stdout.decode().splitlines()) == sorted([
                "%s: sent 1 key" % free.name,
                "%s: another process is pushing to it (cksd's rapid push, or "
                "cks_mail_sync.py forwarding a mail's keys); left to it, what it does not "
                "send to the next run" % busy.name])
            assert busy.requests == 0 and peers_json(node)[busy.name]["backlog"] == 1
            assert sync(node).returncode == 0 and busy.received == [fpr("rsa2048")]
    finally:
        node.close()


def test_at_most_so_many_peers_are_pushed_to_at_once(store, monkeypatch):
    """Each peer pushed to holds its lock (on PostgreSQL, a connection) until
    it answers: one serving process pushes to PUSHING_AT_ONCE at most, and
    the others wait for a later round, where they go first."""
    peers = PeerStore(store)
    names = ["127.0.0.%d:11371" % n for n in range(1, push.PUSHING_AT_ONCE + 3)]
    for name in names:
        peers.add(name, "hkp", 100, None, catch_up=False)
    report = pipeline.submit(store, fixture("rsa2048"), pipeline.Source.user())
    assert report.outcomes[0].status == pipeline.ADDED
    release = threading.Event()
    pushed = []

    def hanging(_store, _peers, peer, *_args):
        pushed.append(peer.peer)
        release.wait(30)
    monkeypatch.setattr(push, "push_peer", hanging)
    rapid = push.RapidPush(store, None, SyncLimits(), 1.0)
    rapid()
    wait_for(lambda: len(pushed) == push.PUSHING_AT_ONCE)
    rapid()  # (each of them still pushing)
    time.sleep(0.2)
    assert len(pushed) == push.PUSHING_AT_ONCE
    release.set()
    wait_for(lambda: not any(t.is_alive() for t in rapid.running.values()))
    rapid()  # the others' turn; those pushed to before are owed still, and go again
    wait_for(lambda: set(pushed) == set(names))


def test_a_database_outage_is_said_once_not_at_every_round(store, monkeypatch, caplog):
    """Until 2026-12-06 every push round of every serving process logged
    `push pass not done` while the database was down: some 43,000 lines a
    day at push_interval = 2.  Now once, and once when it ends."""
    def down(self, enabled_only=False):
        raise StoreError("the database is not answering")
    caplog.set_level(logging.INFO, logger=push.log.name)
    rapid = push.RapidPush(store, None, SyncLimits(), 1.0)
    with monkeypatch.context() as patched:
        patched.setattr(PeerStore, "list", down)
        for _ in range(5):
            rapid()
    rapid()
    said = [r.getMessage() for r in caplog.records if r.name == push.log.name]
    assert said == ["push pass not done: the database is not answering",
                    "push passes done again"]


def test_a_failing_peer_is_tried_again_later_and_later():
    """After a failed push, push_interval, then twice as long after each
    failure in a row, up to LONGEST_WAIT; a push that works ends the wait."""
    backoff = push.Backoff(2.0)
    began = 100.0
    waits = []
    for _ in range(10):
        assert not backoff.waiting(7, began)
        waits.append(backoff.failed(7, began))
        assert backoff.waiting(7, began + waits[-1] - 0.1)
        assert not backoff.waiting(8, began)  # each peer on its own
        began += waits[-1]
    assert waits == [2, 4, 8, 16, 32, 64, 128, 256, push.LONGEST_WAIT, push.LONGEST_WAIT]
    backoff.succeeded(7)
    assert not backoff.waiting(7, began) and backoff.failed(7, began) == 2.0


def test_a_peer_that_asks_for_a_wait_gets_it_up_to_the_longest():
    """Retry-After (seconds) lengthens the wait, never shortens it, and
    waits of LONGEST_WAIT at most; the doubling goes on from it."""
    backoff = push.Backoff(2.0)
    assert backoff.failed(7, 100.0, asked=30.0) == 30.0
    assert backoff.waiting(7, 129.9) and not backoff.waiting(7, 130.0)
    assert backoff.failed(7, 130.0) == 60.0
    assert backoff.failed(7, 190.0, asked=1.0) == 120.0
    assert backoff.failed(8, 100.0, asked=86400.0) == push.LONGEST_WAIT


def test_a_peer_that_answers_503_with_retry_after_is_left_alone_that_long(new_db, tmp_path):
    config = tmp_path / "a.conf"
    config.write_text(LOOPBACK_EXEMPT + "[server]\nprocesses = 1\n[sync]\npush_interval = 0.2\n")
    with FakePeer("unavailable", retry_after="3") as peer, \
            Cksd(new_db("a"), config=str(config)) as a:
        manage(a, "add", peer.name, "--no-catch-up")
        assert a.add(fixture("rsa2048"))[0] == 200
        wait_for(lambda: "next try in 3 s" in a.output(), seconds=20)
        first = peer.arrivals[0]
        peer.mode = "ok"
        wait_for(lambda: peer.received == [fpr("rsa2048")], seconds=10)
        assert peer.arrivals[1] - first >= 2.9  # not 0.2 s later, as without the header


def test_a_peer_that_answers_503_is_not_asked_every_round(new_db, tmp_path):
    """Until 2026-12-05 cksd sent a failing peer a request, and logged a
    warning, every push_interval: here 0.2 s, 20 in 4 s.  (Each serving
    process keeps its own schedule: one here.)"""
    config = tmp_path / "a.conf"
    config.write_text(LOOPBACK_EXEMPT + "[server]\nprocesses = 1\n[sync]\npush_interval = 0.2\n")
    with FakePeer("unavailable") as peer, Cksd(new_db("a"), config=str(config)) as a:
        manage(a, "add", peer.name, "--no-catch-up")
        assert a.add(fixture("rsa2048"))[0] == 200
        # tries 0.2, 0.4, 0.8 and 1.6 s apart, the fifth's wait 3.2 s: about
        # 3 s after the first (a loaded machine's lag only adds to the gaps)
        wait_for(lambda: "next try in 3.2 s" in a.output(), seconds=20)
        assert 5 <= peer.requests <= 6
        warned = a.output().count("push to %s failed: HTTP 503" % peer.name)
        assert warned in (peer.requests, peer.requests - 1)  # (the last may be on its way)
        peer.mode = "ok"
        wait_for(lambda: peer.received == [fpr("rsa2048")], seconds=10)

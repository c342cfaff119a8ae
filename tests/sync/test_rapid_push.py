"""cksd pushes the queue itself every `[sync] push_interval` seconds, through
the same lossless backlog and lock as cks_sync.py: on SQLite and PostgreSQL."""

import re
import time

import pytest

from cks.store import open_store
from cks.store.peers import PeerStore
from cks.sync.push import peer_lock
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
    a.stop()
    b.stop()


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
                "%s: another process (cksd's rapid push) is pushing to it; left to it"
                % busy.name])
            assert busy.requests == 0 and peers_json(node)[busy.name]["backlog"] == 1
            assert sync(node).returncode == 0 and busy.received == [fpr("rsa2048")]
    finally:
        node.stop()

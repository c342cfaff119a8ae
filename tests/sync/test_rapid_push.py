"""cksd pushes the queue itself every `[sync] push_interval` seconds, through
the same lossless backlog and lock as cks_sync.py: on SQLite and PostgreSQL."""

import re
import time

import pytest

from support import fixture
from support.nodes import fpr, has, manage, peer_name, sync, table
from support.server import Cksd


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

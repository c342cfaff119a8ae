"""A full send (catch-up) owes a peer the keys stored when it was asked for, and
nothing that other peers send later: four cksd nodes, on SQLite and PostgreSQL.

A and C push to B; D is B's peer, added with a full send while B held nothing.
Keys from A and C are peer material on B and must never be relayed to D (the
original design: "The peers do not retransmit the material").
"""

import pytest

from support import fixture
from support.db import run_sql
from support.nodes import fpr, has, manage, peer_name, sync
from support.server import Cksd


@pytest.fixture
def mesh(new_db):
    started = [Cksd(new_db(n)).start() for n in "abcd"]
    yield started
    for node in started:
        node.close()


def sent_line(run, peer):
    assert run.returncode == 0, run.stderr
    return [line for line in run.stdout.decode().splitlines() if line.startswith(peer + ":")]


def stored(node):
    return {r[0] for r in run_sql(node.db_url, "SELECT fingerprint FROM cks_keys")}


def test_catch_up_never_relays_what_peers_sent_later(mesh):
    a, b, c, d = mesh
    assert manage(b, "add", peer_name(d)).returncode == 0       # a full send, B holds nothing
    manage(a, "add", peer_name(b), "--no-catch-up")
    manage(c, "add", peer_name(b), "--no-catch-up")
    from_a = ["rsa2048", "nistp256", "ed25519"]
    for name in from_a:
        assert a.add(fixture(name))[0] == 200
    assert sync(a).returncode == 0
    assert all(has(b, n) for n in from_a)                        # peer material on B

    assert sent_line(sync(b), peer_name(d)) == ["%s: sent 0 keys" % peer_name(d)]
    assert not any(has(d, n) for n in from_a)

    # what a user uploads to B afterwards reaches D through the queue
    assert b.add(fixture("rsa4096"))[0] == 200
    assert sent_line(sync(b), peer_name(d)) == ["%s: sent 1 key" % peer_name(d)]
    assert stored(d) == {fpr("rsa4096")}

    # a full send on request: B's whole store at that moment, once
    manage(b, "set", peer_name(d), "--catch-up")
    listed = manage(b, "list").stdout.decode()
    assert "catching up" in listed
    assert c.add(fixture("dsa-elg"))[0] == 200                   # arrives after the request
    assert sync(c).returncode == 0 and has(b, "dsa-elg")
    assert sent_line(sync(b, "--dry-run"), peer_name(d)) == [
        "%s: would send 4 keys (a full send)" % peer_name(d)]
    assert sent_line(sync(b), peer_name(d)) == ["%s: sent 4 keys" % peer_name(d)]
    assert stored(d) == {fpr(n) for n in from_a + ["rsa4096"]}
    assert not has(d, "dsa-elg")
    assert sent_line(sync(b), peer_name(d)) == ["%s: sent 0 keys" % peer_name(d)]
    assert "catching up" not in manage(b, "list").stdout.decode()

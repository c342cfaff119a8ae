"""cks_sync.py against peers that answer 500 to some keys (as Hockeypuck
answered a key with no usable self-signature, and the whole batch that held
it, until its issue 341 was fixed), to every key, 403 to some keys or to
everything (a WAF), or 404 to everything (no keyserver at that address): no
key is lost, and one key does not hold the others up; on SQLite and
PostgreSQL."""

from types import SimpleNamespace

import pytest

from cks import pipeline
from cks.store import open_store
from cks.sync.runner import FAILED_ALONE_IN_A_ROW, SLOW_ALONE_IN_A_ROW
from support import fixture
from support.db import with_schema
from support.fakepeer import FakePeer
from support.mails import flooded_key
from support.nodes import fpr, manage, peers_json, sync

NAMES = ["rsa1024", "rsa2048", "rsa4096", "nistp256", "nistp384", "nistp521",
         "brainpoolp256", "brainpoolp384", "brainpoolp512", "secp256k1", "ed25519", "dsa-elg"]


@pytest.fixture
def node(db_url):
    """A node's database, which users' uploads reach as through cksd."""
    return SimpleNamespace(db_url=with_schema(db_url))


def upload(node, *names, data=None):
    """Users' uploads of the fixture keys `names` (or of the key `data`)."""
    store = open_store(node.db_url)
    try:
        for keydata in [fixture(name) for name in names] + ([data] if data else []):
            report = pipeline.submit(store, keydata, pipeline.Source.user())
            assert [o.status for o in report.outcomes] == [pipeline.ADDED]
    finally:
        store.close()


def refused_line(peer, name):
    return ("%s: refused %s for good: HTTP 500: Error handling request (twice, to this key "
            "alone, while the peer took other keys)" % (peer.name, fpr(name)))


@pytest.mark.parametrize("answer", [500, 403])
def test_a_key_the_peer_cannot_read_is_refused_and_the_others_go_through(node, answer):
    """A 500 to one key, or a bare 403 (tried once: it would be the same), in
    a run in which the peer takes the others."""
    failing = {fpr("ed25519")}
    with FakePeer(**{"fail_on" if answer == 500 else "refuse_on": failing}) as peer:
        manage(node, "add", peer.name, "--no-catch-up")
        upload(node, "rsa2048", "ed25519", "nistp256")
        run = sync(node)
        assert run.returncode == 0, run.stderr
        assert run.stdout.decode().splitlines() == [
            "%s: sent 2 keys" % peer.name, refused_line(peer, "ed25519") if answer == 500 else
            "%s: refused %s for good: HTTP 403: key not accepted" % (peer.name, fpr("ed25519"))]
        assert peer.received == [fpr("rsa2048"), fpr("nistp256")]
        # the batch, then one by one, the failing key twice (a 500) or once (a 403)
        tries = 1 + 3 + (answer == 500)
        assert peer.requests == tries
        assert peers_json(node)[peer.name]["backlog"] == 0
        assert fpr("ed25519") in manage(node, "refusals", peer.name).stdout.decode()
        again = sync(node, "--quiet")
        assert again.returncode == 0 and again.stdout == b"" and peer.requests == tries


def test_a_key_the_peer_takes_later_leaves_its_refusals(node):
    """A key refused for good, then updated and taken: `refusals` no longer
    names it, and a later refusal of it for the old reason is told again."""
    with FakePeer(fail_on={fpr("alice-t1")}) as peer:
        manage(node, "add", peer.name, "--no-catch-up")
        upload(node, "rsa2048", "alice-t1")
        assert sync(node).stdout.decode().splitlines()[1:] == [refused_line(peer, "alice-t1")]
        peer.fail_on = set()
        store = open_store(node.db_url)
        try:
            report = pipeline.submit(store, fixture("alice-t2"), pipeline.Source.user())
            assert pipeline.UPDATED in [o.status for o in report.outcomes]
        finally:
            store.close()
        assert sync(node).stdout.decode().splitlines() == ["%s: sent 1 key" % peer.name]
        assert manage(node, "refusals", peer.name).stdout.decode().strip() == ""
        peer.fail_on = {fpr("alice-t1")}  # and refused again for the old reason: told
        manage(node, "set", peer.name, "--catch-up")
        assert refused_line(peer, "alice-t1") in sync(node).stdout.decode().splitlines()


def test_a_lone_failing_key_is_weighed_by_a_key_the_peer_took_before(node):
    with FakePeer(fail_on={fpr("ed25519")}) as peer:
        manage(node, "add", peer.name, "--no-catch-up")
        upload(node, "rsa2048")
        assert sync(node).returncode == 0
        upload(node, "ed25519")
        run = sync(node)
        assert run.returncode == 0, run.stderr
        assert run.stdout.decode().splitlines() == [
            "%s: sent 0 keys" % peer.name, refused_line(peer, "ed25519")]
        # rsa2048, sent again to ask whether the peer takes keys: it does
        assert peer.received == [fpr("rsa2048")] * 2
        assert peers_json(node)[peer.name]["backlog"] == 0


def test_a_peer_failing_on_every_key_keeps_them_all(node):
    with FakePeer() as peer:
        manage(node, "add", peer.name, "--no-catch-up")
        upload(node, "rsa2048")
        assert sync(node).returncode == 0
        peer.mode = "error"
        upload(node, "nistp256", "ed25519")
        run = sync(node)
        assert run.returncode == 1
        assert "%s: FAILED: HTTP 500: internal error; 2 keys kept for the next run" % \
            peer.name in run.stderr.decode()
        assert peer.requests == 1 + 1 + 2 + 1  # the first run; the batch; one key twice; rsa2048
        assert peers_json(node)[peer.name]["backlog"] == 2
        assert manage(node, "refusals", peer.name).stdout.decode().strip() == ""
        peer.mode = "ok"
        assert sync(node).returncode == 0
        assert set(peer.received) == {fpr(n) for n in ("rsa2048", "nistp256", "ed25519")}


def test_with_no_key_to_ask_by_the_run_stops_after_some_keys_in_a_row(node):
    with FakePeer("error") as peer:
        manage(node, "add", peer.name, "--no-catch-up")
        upload(node, *NAMES)
        run = sync(node)
        assert run.returncode == 1
        assert "FAILED: HTTP 500: internal error, to %d keys alone, and no key went through; " \
            "12 keys kept for the next run" % FAILED_ALONE_IN_A_ROW in run.stderr.decode()
        assert peer.requests == 1 + 2 * FAILED_ALONE_IN_A_ROW
        assert peers_json(node)[peer.name]["backlog"] == len(NAMES)
        # the keys after them, when the peer takes keys again, settle the rest
        peer.mode = "ok"
        peer.fail_on = {fpr(NAMES[0])}
        run = sync(node)
        assert run.returncode == 0, run.stderr
        assert run.stdout.decode().splitlines()[1:] == [refused_line(peer, NAMES[0])]
        assert set(peer.received) == {fpr(n) for n in NAMES[1:]}


def test_a_peer_refusing_every_request_keeps_every_key(node):
    """A blanket 403 (a WAF, a maintenance page, a proxy's body limit) used to
    write off every key, one by one: a bare 4xx refusal of a key alone counts
    only once the peer shows that it takes keys, as a 500 does."""
    with FakePeer("forbidden") as peer:
        manage(node, "add", peer.name, "--no-catch-up")
        upload(node, *NAMES[:5])
        run = sync(node)
        assert run.returncode == 1 and run.stdout == b""
        assert run.stderr.decode().count("FAILED") == 1
        assert "%s: FAILED: HTTP 403: 403 Forbidden, to 5 keys alone, and no key went " \
            "through; 5 keys kept for the next run" % peer.name in run.stderr.decode()
        assert peer.requests == 1 + 5  # the batch, then each key once
        assert peers_json(node)[peer.name]["backlog"] == 5
        assert manage(node, "refusals", peer.name).stdout.decode().strip() == ""
        peer.mode = "ok"
        assert sync(node).returncode == 0
        upload(node, *NAMES[5:7])
        peer.mode = "forbidden"
        run = sync(node)  # the batch, one key alone, and a key it took before: 403 too
        assert run.returncode == 1 and peer.requests == 1 + 5 + 1 + 3
        assert "%s: FAILED: HTTP 403: 403 Forbidden; 2 keys kept" % peer.name \
            in run.stderr.decode()
        assert peers_json(node)[peer.name]["backlog"] == 2
        assert manage(node, "refusals", peer.name).stdout.decode().strip() == ""


def test_an_address_without_a_keyserver_keeps_the_backlog(node):
    with FakePeer("not-found") as peer:
        manage(node, "add", peer.name, "--no-catch-up")
        upload(node, "rsa2048", "nistp256")
        run = sync(node)
        assert run.returncode == 1
        assert "FAILED: HTTP 404: 404 Not Found; 2 keys kept" in run.stderr.decode()
        assert peer.requests == 1 and peers_json(node)[peer.name]["backlog"] == 2
        assert manage(node, "refusals", peer.name).stdout.decode().strip() == ""
        peer.mode = "ok"
        assert sync(node).returncode == 0
        assert set(peer.received) == {fpr("rsa2048"), fpr("nistp256")}


@pytest.fixture
def short_timeout(tmp_path):
    """A sync configuration whose peers time out after a second."""
    config = tmp_path / "sync.conf"
    config.write_text("[sync]\ntimeout = 1\n")
    return str(config)


def test_a_key_the_peer_never_answers_does_not_hold_up_the_rest(node, short_timeout):
    """A peer that takes minutes over one key (SKS on a flooded key) used to
    time out on the batch holding it at every run, for ever: the batch is now
    sent key by key, the others go through, and that key, not answered
    alone either (once: each try costs the whole timeout), is refused for
    good."""
    with FakePeer(hang_on={fpr("ed25519")}) as peer:
        manage(node, "add", peer.name, "--no-catch-up")
        upload(node, "rsa2048", "ed25519", "nistp256")
        run = sync(node, config=short_timeout)
        assert run.returncode == 0, run.stderr
        assert run.stdout.decode().splitlines() == [
            "%s: sent 2 keys" % peer.name,
            "%s: refused %s for good: timed out (to this key alone, while the peer took "
            "other keys)" % (peer.name, fpr("ed25519"))]
        assert peer.received == [fpr("rsa2048"), fpr("nistp256")]
        assert peer.requests == 1 + 3  # the batch, then one by one
        assert peers_json(node)[peer.name]["backlog"] == 0
        again = sync(node, "--quiet", config=short_timeout)
        assert again.returncode == 0 and again.stdout == b"" and peer.requests == 4


def test_a_peer_that_answers_nothing_keeps_every_key_after_two_alone(node, short_timeout):
    """A hung peer costs a run the batch and two keys alone (a timeout each),
    not one per key: then it is the peer, and every key stays owed."""
    with FakePeer("hang") as peer:
        manage(node, "add", peer.name, "--no-catch-up")
        upload(node, *NAMES[:5])
        run = sync(node, config=short_timeout)
        assert run.returncode == 1
        assert "%s: FAILED: timed out, to %d keys alone, and no key went through; 5 keys " \
            "kept for the next run" % (peer.name, SLOW_ALONE_IN_A_ROW) in run.stderr.decode()
        assert peer.requests == 1 + SLOW_ALONE_IN_A_ROW
        assert peers_json(node)[peer.name]["backlog"] == 5
        assert manage(node, "refusals", peer.name).stdout.decode().strip() == ""


def test_a_key_over_the_peers_size_limit_does_not_hold_up_the_rest(node):
    """SKS 1.1.6 closes the connection, unanswered, on a request over 5 MiB: a
    flooded key over that is refused for good, the keys with it go through."""
    flooded = flooded_key(fixture("rsa4096"), 200_000)
    with FakePeer(max_body=100_000) as peer:
        manage(node, "add", peer.name, "--no-catch-up")
        upload(node, "rsa2048", data=flooded)
        upload(node, "nistp256")
        run = sync(node)
        assert run.returncode == 0, run.stderr
        assert run.stdout.decode().splitlines() == [
            "%s: sent 2 keys" % peer.name,
            "%s: refused %s for good: connection closed by the peer, unanswered (twice, to "
            "this key alone, while the peer took other keys)" % (peer.name, fpr("rsa4096"))]
        assert peer.received == [fpr("rsa2048"), fpr("nistp256")]
        assert peers_json(node)[peer.name]["backlog"] == 0

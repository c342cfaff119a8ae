"""Recon peers that misbehave on purpose, met by cks_sync.py as a process
(it dials them: they request, and answer /pks/hashquery): elements that
name no key, and more.  On SQLite and PostgreSQL."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace

import pytest

from cks.openpgp.keys import read_keys, sks_hash
from cks.store import open_store
from cks.store.peers import PeerStore
from cks.sync.recon import session
from cks.sync.recon.rounds import dial
from cks.sync.recon.field import P, element_of_hash
from cks.sync.recon.wire import Error
from support import fixture
from support.db import with_schema
from support.nodes import manage, peers_json, sync
from support.reconpeer import HashQueryPeer, ReconPeer


def key_hash(name: str) -> bytes:
    return sks_hash(read_keys(fixture(name)).keys[0])


def key_blob(name: str) -> bytes:
    return read_keys(fixture(name)).keys[0].serialize()


@pytest.fixture
def peers(db_url):
    """(add(claims, keys, priority, **peer) -> ReconPeer): recon peers of the
    database at `db_url`, each with its hashquery server; `.node` stands for
    the node whose database it is."""
    made = []
    node = SimpleNamespace(db_url=with_schema(db_url))

    def add(claims, keys=(), priority=100, pace=0.0, **options):
        http = HashQueryPeer({key_hash(n): key_blob(n) for n in keys}, pace=pace)
        recon = ReconPeer(claims, http.port, **options)
        made.extend([http, recon])
        out = manage(node, "add", "127.0.0.1:%d" % http.port, "--type", "recon",
                     "--recon-port", str(recon.port), "--priority", str(priority))
        assert out.returncode == 0, out.stderr
        recon.name, recon.http = "127.0.0.1:%d" % http.port, http
        return recon

    add.node = node
    yield add
    for peer in made:
        peer.close()


def test_elements_that_name_no_key_are_dropped_and_the_run_goes_on(peers):
    hostile = peers([element_of_hash(key_hash("rsa2048")), (1 << 128) + 5, P - 1],
                    ["rsa2048"], priority=10)
    later = peers([element_of_hash(key_hash("nistp256"))], ["nistp256"], priority=20)
    run = sync(peers.node)
    err = run.stderr.decode()
    assert run.returncode == 1 and "Traceback" not in err, err
    assert "%s: FAILED: " % hostile.name in err
    assert "the peer named 2 elements that are no key hash (dropped)" in err
    assert "we lacked 1" in err and "1 key fetched" in err  # the valid hash: fetched
    assert later.sessions == 1 and "%s: recon round" % later.name in run.stdout.decode()
    listed = peers_json(peers.node)
    assert "no key hash" in listed[hostile.name]["last_error"]
    assert listed[hostile.name]["recon_rounds"] == 1
    assert listed[later.name]["recon_fetched"] == 1


def test_a_peer_that_trickles_its_answer_holds_cks_sync_no_longer_than_its_run(peers,
                                                                             tmp_path):
    """seconds_per_run bounds the recon fetch too: before, each byte within the
    timeout kept cks_sync.py reading (and its lock held) for as long as the
    peer liked."""
    hostile = peers([element_of_hash(key_hash("rsa2048"))], ["rsa2048"], pace=0.05)
    config = tmp_path / "cks.conf"
    config.write_text("[sync]\nseconds_per_run = 2\n")
    started = time.monotonic()
    run = sync(peers.node, config=str(config))
    assert time.monotonic() - started < 15  # the answer alone takes a minute
    err = run.stderr.decode()
    assert run.returncode == 1 and "%s: FAILED: " % hostile.name in err
    assert "out of time (1 hashes not fetched)" in err


LACKED = ("rsa2048", "nistp256", "ed25519")


def test_keys_per_peer_run_caps_a_recon_fetch_and_the_rest_comes_next_run(peers, tmp_path):
    """README's cap on work per run holds for recon peers too, and reaching it
    is no failure (until 2026-12-06 it was not applied to them; found by a
    review)."""
    peer = peers([element_of_hash(key_hash(n)) for n in LACKED], LACKED)
    config = tmp_path / "cks.conf"
    config.write_text("[sync]\nkeys_per_peer_run = 2\n")
    first = sync(peers.node, config=str(config))
    out = first.stdout.decode()
    assert first.returncode == 0, first.stderr
    assert "2 keys fetched" in out and "1 key left for the next run (the run's limits)" in out
    second = sync(peers.node, config=str(config))
    assert second.returncode == 0 and "1 key fetched" in second.stdout.decode()
    assert peers_json(peers.node)[peer.name]["last_error"] is None


def test_a_run_whose_time_is_spent_leaves_the_fetch_for_the_next_run(peers, tmp_path):
    """seconds_per_run spent (by the peers before this one, here by the round
    itself) is no failure of the peer: until 2026-12-06 cks_sync.py said
    FAILED ... out of time and exited 1 at each run of a long catch-up."""
    peer = peers([element_of_hash(key_hash(n)) for n in LACKED], LACKED)
    config = tmp_path / "cks.conf"
    config.write_text("[sync]\nseconds_per_run = 0.001\n")
    run = sync(peers.node, config=str(config))
    assert run.returncode == 0, run.stderr
    assert "3 keys left for the next run (the run's limits)" in run.stdout.decode()
    assert peers_json(peers.node)[peer.name]["last_error"] is None
    assert sync(peers.node).returncode == 0
    assert peers_json(peers.node)[peer.name]["recon_fetched"] == 3


def test_a_round_fetches_from_the_address_it_was_dialed_from(peers):
    """The peer knows this node by the address of its rounds: until
    2026-12-06 the fetch after a round came from whatever address the
    system chose (127.0.0.1 here), which a CKS peer took for a stranger's
    (answers cut at 16 MiB, a rate limit; found by a review)."""
    peer = peers([element_of_hash(key_hash("rsa2048"))], ["rsa2048"])
    store = open_store(peers.node.db_url)
    try:
        (stored,) = [p for p in PeerStore(store).list() if p.peer == peer.name]
        report = dial(store, stored, 11371, source="127.0.0.2")
    finally:
        store.close()
    assert report.ok and report.fetch.added == 1
    assert peer.http.clients == ["127.0.0.2"]


def test_a_round_collects_and_fetches_at_most_max_missing(peers, monkeypatch):
    """A peer claiming many hashes: the round stops collecting at the cap
    (monkeypatched small), fetches those, and says so in its one line."""
    monkeypatch.setattr(session, "MAX_MISSING", 50)
    rng = random.Random(5)
    claimer = peers([rng.getrandbits(128) for _ in range(2000)])
    store = open_store(peers.node.db_url)
    try:
        (peer,) = [p for p in PeerStore(store).list() if p.peer == claimer.name]
        report = dial(store, peer, 11371)
    finally:
        store.close()
    assert report.ok and report.lacked_here == 50 and report.session.capped
    assert report.fetch.requested == 50
    assert "stopped at 50 keys to fetch, the rest for the next rounds" in report.summary()


def test_a_peers_error_text_is_cut_where_it_enters(peers):
    """Its first 200 characters, printable ones, in the run's line, the
    peer's last error and the list; before, a 1 MiB text went everywhere."""
    hostile = peers([], error="bad\n\x00" + "E" * (1 << 20))
    run = sync(peers.node)
    err = run.stderr.decode()
    line = "%s: FAILED: recon failed: peer reported an error: bad??%s..." % (
        hostile.name, "E" * 195)
    assert run.returncode == 1 and err.splitlines() == [line], err[:1000]
    assert peers_json(peers.node)[hostile.name]["last_error"] == line.split("recon failed: ")[1]
    listed = manage(peers.node, "list")
    assert listed.returncode == 0 and len(listed.stdout) < 2000


def test_a_peer_that_never_flushes_its_requests_is_answered_with_an_error(peers):
    """cks_sync.py, the side that dialed, ends the session after 1,000
    requests without a Flush, sends the Error alone and names why in its
    line and the peer's last error; before, it held every reply."""
    hostile = peers([element_of_hash(key_hash("rsa2048"))], ["rsa2048"],
                    flood=session.MAX_UNFLUSHED_REQUESTS + 1)
    run = sync(peers.node)
    err = run.stderr.decode()
    why = ("1001 requests (%d bytes of replies) without a Flush: at most 1000 (33554432 bytes) "
           "are held" % (1001 * 9))
    assert run.returncode == 1 and err.splitlines() == [
        "%s: FAILED: recon failed: we could not answer: %s" % (hostile.name, why)], err
    assert hostile.flooded == [Error(why)]
    assert peers_json(peers.node)[hostile.name]["last_error"] == "we could not answer: " + why


def test_a_peers_refused_config_is_quoted_cut_and_the_run_goes_on(peers):
    """A Config whose filters are 4,000 characters with a newline and a NUL: refused,
    quoted as 200 printable characters in the run's line and the peer's
    last error, and the next peer served.  Until 2026-12-07 it was quoted
    whole (10.5 MB a line), and on PostgreSQL the NUL ended cks_sync.py with
    a traceback when the round was recorded."""
    hostile = peers([], filters="evil\n\x00" + "F" * 4000, priority=10)
    later = peers([element_of_hash(key_hash("nistp256"))], ["nistp256"], priority=20)
    run = sync(peers.node)
    err = run.stderr.decode()
    why = ("we refused the session: filters do not match. local filters: "
           "yminsky.dedup,yminsky.merge remote filters: evil??%s..." % ("F" * 194))
    assert run.returncode == 1 and err.splitlines() == [
        "%s: FAILED: recon failed: %s" % (hostile.name, why)], err[:1000]
    assert later.sessions == 1 and "%s: recon round" % later.name in run.stdout.decode()
    assert peers_json(peers.node)[hostile.name]["last_error"] == why


def test_a_config_over_8_kib_ends_the_round_before_it_is_read(peers):
    """Until 2026-12-07 a Config could be 16 MiB (a review's of 1,048,575
    entries took cksd to 200 MB)."""
    hostile = peers([], filters="F" * 8192)
    run = sync(peers.node)
    assert run.returncode == 1 and run.stderr.decode().splitlines() == [
        "%s: FAILED: recon failed: message length %d over the limit of 8192 bytes"
        % (hostile.name, 8192 + 99)], run.stderr[:1000]


def test_a_request_of_more_than_100000_elements_ends_the_round(peers):
    """Until 2026-12-07 an element set could fill 16 MiB (987,000 elements
    took cksd from 39 to 358 MB)."""
    hostile = peers(list(range(1, 100_002)))
    run = sync(peers.node)
    assert run.returncode == 1 and run.stderr.decode().splitlines() == [
        "%s: FAILED: recon failed: ReconRqstFull: 100001 elements, more than 100000"
        % hostile.name], run.stderr[:1000]

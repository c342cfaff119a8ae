"""One round with a peer at a time (rounds.round_lock), in all of a node's
processes: a round a peer starts while its last one (or its fetch) is under
way is refused as busy, with the reason on the wire, before it takes a
slot; the peer logs and counts it as busy, not as a failure; and a round we
would dial while one with that peer is under way is not started.  Until
2026-12-05 a peer dialing every 5 s had a node fetch the same keys in up to
4 rounds at once."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time

import pytest

from cks.pipeline import Limits
from cks.store import open_store
from cks.store.peers import PeerStore
from cks.sync.recon.hashquery import encode_answer
from cks.sync.recon.rounds import dial, round_lock
from cks.sync.recon.service import ReconService
from support.reconpeer import HashQueryPeer
from support.tree import add_row, random_hashes

KEYS = 30


@pytest.fixture
def peer_and_node(new_db):
    """(peer, node, hashquery): the peer's store holds KEYS hashes the node
    lacks, and the node entered twice (two names, one recon port: two rounds
    at once from one address); the node (127.0.0.3) serves rounds in two
    services on one listener, as two serving processes do; `hashquery`
    stands in for the peer's HTTP port and holds each fetch until its
    `gate` is set."""
    node_url = new_db("node")
    peer, node = open_store(new_db("peer")), open_store(node_url)
    with peer.write() as cursor:
        for h in random_hashes(random.Random(5), KEYS):
            add_row(cursor, h)
    gate = threading.Event()
    hashquery = HashQueryPeer({}, answer=lambda hashes: (
        gate.wait(20), (200, encode_answer([]), {}))[1])
    hashquery.gate = gate
    listener = socket.create_server(("127.0.0.3", 0))
    PeerStore(node).add("127.0.0.1:%d" % hashquery.port, "recon", 0, None, False,
                        recon_port=11370)
    stores = [open_store(node_url) for _ in range(2)]
    services = [ReconService(s, listener, 11371, Limits(), interval=0) for s in stores]
    for service in services:
        service.prepare()
        service.start()
    for name in ("127.0.0.3:1", "127.0.0.3:2"):
        PeerStore(peer).add(name, "recon", 0, None, False,
                            recon_port=listener.getsockname()[1])
    yield peer, node, hashquery
    gate.set()
    for service in services:
        service.stop()
    listener.close()
    hashquery.close()
    for store in stores + [peer, node]:
        store.close()


def test_a_round_while_one_with_that_peer_fetches_is_refused_as_busy(peer_and_node, caplog):
    caplog.set_level(logging.INFO, "cks.recon")
    peer, node, hashquery = peer_and_node
    first, second = PeerStore(peer).list()
    try:
        served = dial(peer, first, hashquery.port, source="127.0.0.1")
        deadline = time.monotonic() + 10
        while not hashquery.batches:  # the node's fetch has begun (and waits)
            assert time.monotonic() < deadline
            time.sleep(0.01)
        busy = dial(peer, second, hashquery.port, source="127.0.0.1")
    finally:
        hashquery.gate.set()
    assert served.ok and served.lacked_there == KEYS
    assert busy.ok and busy.error is None
    assert busy.summary() == ('127.0.0.3:2: no recon round (busy): the peer said "busy: a '
                              'round with you is under way"')
    time.sleep(0.5)  # (a second fetch would have begun)
    assert sum(len(batch) for batch in hashquery.batches) == KEYS  # fetched once
    recorded = {p.peer: p for p in PeerStore(peer).list()}
    assert recorded["127.0.0.3:2"].last_error is None  # an attempt, no failure
    assert recorded["127.0.0.3:2"].last_attempt is not None
    assert recorded["127.0.0.3:2"].recon_rounds == 0
    assert "recon round from 127.0.0.1 refused: busy: a round with you is under way" \
        in caplog.text


def test_no_round_is_dialed_while_one_with_that_peer_is_under_way(peer_and_node):
    peer, _, hashquery = peer_and_node
    target = PeerStore(peer).list()[0]
    with peer.exclusive(round_lock(target)) as ours:  # (cks_sync.py's, or a served one)
        assert ours
        report = dial(peer, target, hashquery.port, source="127.0.0.1")
    assert report.ok and report.summary() == (
        "127.0.0.3:1: no recon round (busy): a round with this peer is under way here")
    assert not hashquery.batches
    assert PeerStore(peer).get("127.0.0.3:1").last_attempt is None  # not even tried

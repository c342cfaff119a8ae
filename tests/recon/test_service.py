"""cksd's recon port (service.ReconService): session threads started ahead
accept the connections, at most MAX_SESSIONS rounds at once (one more thread
refuses the rest), a round that fails in an unexpected way leaves its
thread serving the next ones, and the tree's first levels are read ahead
into the cache the rounds share."""

from __future__ import annotations

import random
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from cks.pipeline import Limits
from cks.store import open_store, ptree_view
from cks.sync.recon import service as service_module
from cks.store.peers import PeerStore
from cks.sync.recon.rounds import Members, RoundReport
from cks.sync.recon.service import MAX_SESSIONS, ReconService
from cks.sync.recon.session import Handshake
from cks.sync.recon.wire import our_config
from support.db import listening_watch
from support.tree import add_row, random_hashes


class FakeAnswer:
    """Stands in for rounds.answer: records each connection, then does what
    the test says (block until released, or raise)."""

    def __init__(self, raise_error: bool = False) -> None:
        self.raise_error = raise_error
        self.calls = 0
        self.release = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, store, sock, address, peer, http_port, limits, cache):
        with self.lock:
            self.calls += 1
            self.cache = cache
        if self.raise_error:
            raise RuntimeError("a bug in a round")
        self.release.wait(10)
        sock.close()
        return RoundReport(peer.peer, error="a stand-in round")


class Everyone:
    """Members for whom every address is a recon peer's (one per address)."""

    def find(self, address):
        return SimpleNamespace(peer="%s:11371" % address, id=int(address.split(".")[-1]),
                               filters=None)

    def refresh(self, say=False):
        pass


@pytest.fixture
def recon_port(db_url, monkeypatch):
    """(start(fake) -> port) for a ReconService on a loopback port."""
    store = open_store(db_url)
    listener = socket.create_server(("127.0.0.1", 0))
    started = []

    def start(fake, cache=None, members=None):
        monkeypatch.setattr(service_module, "answer", fake)
        service = ReconService(store, listener, 11371, Limits(), interval=0, tree_cache=cache)
        service.members = members or Everyone()
        service.start()
        started.append(service)
        return listener.getsockname()[1]

    start.store = store
    yield start
    for service in started:
        service.stop()
    listener.close()
    store.close()


def _eventually(condition, timeout=10):
    assert _within(timeout, condition), "condition not met in %s s" % timeout


def _within(seconds, condition) -> bool:
    """Whether `condition` comes true within `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _closed_by_peer(sock) -> bool:
    sock.settimeout(5)
    return sock.recv(1) == b""


def _connect_from(address, port):
    sock = socket.socket()
    sock.bind((address, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def _refused_as_busy(sock) -> str:
    """The reason of a refusal after the Config (net.refuse_busy)."""
    handshake = Handshake(our_config(11371))
    handshake.start()
    sock.settimeout(5)
    while not handshake.done:
        data = sock.recv(65536)
        assert data, "closed without a reason"
        handshake.receive(data)
    assert handshake.refused_by == "peer"
    return handshake.reason


def test_a_round_past_max_sessions_is_refused_and_the_next_is_served(recon_port):
    fake = FakeAnswer()
    port = recon_port(fake)
    busy = [_connect_from("127.0.0.%d" % (10 + n), port) for n in range(MAX_SESSIONS)]
    _eventually(lambda: fake.calls == MAX_SESSIONS)
    extra = _connect_from("127.0.0.20", port)
    assert _refused_as_busy(extra) == "busy: %d rounds under way" % MAX_SESSIONS
    assert _closed_by_peer(extra)
    assert fake.calls == MAX_SESSIONS
    fake.release.set()
    for sock in busy:
        assert _closed_by_peer(sock)
    # (the fake closes its socket just before its round frees its slot: a
    # connection made at once may still find every slot taken, refused as
    # busy, which failed this test now and then under load; so again)
    deadline = time.monotonic() + 10
    later = _connect_from("127.0.0.20", port)
    while not _within(0.5, lambda: fake.calls == MAX_SESSIONS + 1):
        assert time.monotonic() < deadline, "no round served once the others ended"
        later.close()
        later = _connect_from("127.0.0.20", port)
    assert _closed_by_peer(later)
    for sock in busy + [extra, later]:
        sock.close()


def test_a_peer_slow_to_hang_up_on_its_refusal_holds_up_no_other(recon_port, monkeypatch):
    """A busy refusal waits up to a second for the peer to hang up: in a
    thread of its own, since, with every slot taken, the thread that sends it
    is the one left to accept the others."""
    refusals, hold = [], threading.Event()

    def slow_refusal(sock, ours, why):
        refusals.append(why)
        hold.wait(10)  # (a peer that does not hang up)
        sock.close()
    monkeypatch.setattr(service_module, "refuse_busy", slow_refusal)
    fake = FakeAnswer()
    port = recon_port(fake)
    busy = [_connect_from("127.0.0.%d" % (10 + n), port) for n in range(MAX_SESSIONS)]
    _eventually(lambda: fake.calls == MAX_SESSIONS)
    first = _connect_from("127.0.0.20", port)
    _eventually(lambda: len(refusals) == 1)
    second = _connect_from("127.0.0.21", port)
    _eventually(lambda: len(refusals) == 2)  # while the first still waits
    hold.set()
    fake.release.set()
    for sock in busy + [first, second]:
        sock.close()


def test_other_addresses_take_no_slot_no_lookup_and_a_line_once(recon_port, caplog):
    """Refused before a slot is taken, without reading or resolving the peer
    list in their thread (the first has it read again in the background,
    once in UNKNOWN_REFRESH), and one line for all of a flood's connections
    from an address."""
    store = recon_port.store
    names = ["member%d.example" % n for n in range(MAX_SESSIONS)]
    for name in names:
        PeerStore(store).add(name + ":11371", "recon", 0, None, False, recon_port=11370)
    lookups = []
    members = Members(store, lambda host: lookups.append(host) or [
        "127.0.0.%d" % (2 + names.index(host))])
    fake = FakeAnswer()
    port = recon_port(fake, members=members)
    _eventually(lambda: sorted(lookups) == names)  # read at start
    # every slot taken by a member's round
    busy = [_connect_from("127.0.0.%d" % (2 + n), port) for n in range(MAX_SESSIONS)]
    _eventually(lambda: fake.calls == MAX_SESSIONS)
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", port)) as flood:
            assert _closed_by_peer(flood)
    _eventually(lambda: len(lookups) == 2 * MAX_SESSIONS)
    time.sleep(0.2)
    assert sorted(lookups) == sorted(names * 2) and fake.calls == MAX_SESSIONS
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused == ["recon connection from 127.0.0.1 refused: not an enabled recon peer "
                       "(said once in 10 minutes per address by each serving process)"]
    assert "rounds under way" not in caplog.text
    fake.release.set()
    for sock in busy:
        assert _closed_by_peer(sock)
        sock.close()


class CountedMembers(Members):
    refreshes = 0

    def refresh(self, say=False):
        super().refresh(say)
        self.refreshes += 1


def test_a_peer_added_while_cksd_runs_has_its_second_round_taken(recon_port):
    """Its first connection is refused and has the peer list read again, so
    the next is served; until 2026-12-05 (after the list stopped being read
    at every unknown address) it waited up to MEMBERS_REFRESH, a minute."""
    store = recon_port.store
    members = CountedMembers(store, lambda host: ["127.0.0.2"])
    fake = FakeAnswer()
    fake.release.set()
    port = recon_port(fake, members=members)
    _eventually(lambda: members.refreshes >= 1)  # (the list read at start: without it)
    PeerStore(store).add("new.example:11371", "recon", 0, None, False, recon_port=11370)

    def from_the_peer():
        sock = socket.socket()
        sock.bind(("127.0.0.2", 0))
        sock.connect(("127.0.0.1", port))
        return sock

    with from_the_peer() as first:
        assert _closed_by_peer(first) and fake.calls == 0
    _eventually(lambda: members.find("127.0.0.2") is not None)
    with from_the_peer() as second:
        _eventually(lambda: fake.calls == 1)
        assert _closed_by_peer(second)


def test_rounds_that_fail_unexpectedly_do_not_stop_the_next(recon_port, caplog):
    fake = FakeAnswer(raise_error=True)
    port = recon_port(fake)
    rounds = 2 * MAX_SESSIONS + 1  # more than the session threads
    for count in range(1, rounds + 1):
        sock = socket.create_connection(("127.0.0.1", port))
        assert _closed_by_peer(sock)
        sock.close()
        assert fake.calls == count
    assert caplog.text.count("recon round with 127.0.0.1 failed") == rounds


def test_the_tree_is_read_ahead_into_the_cache_the_rounds_get(recon_port):
    store = recon_port.store
    with store.write() as cursor:
        for h in random_hashes(random.Random(3), 1000):
            add_row(cursor, h)
    with listening_watch(store) as watch:
        cache = ptree_view.TreeCache(watch)
        fake = FakeAnswer(raise_error=True)
        port = recon_port(fake, cache)
        # the root and the two levels below it, before any round
        _eventually(lambda: cache.unchanged()[0] is not None
                    and len(cache.unchanged()[0].nodes) == 21)
        sock = socket.create_connection(("127.0.0.1", port))
        assert _closed_by_peer(sock)
        sock.close()
        assert fake.cache is cache


def test_one_process_gossips_for_the_database_until_it_ends(db_url, monkeypatch):
    """Two serving processes' services (each with a store of its own, as
    after the fork): the first to gossip keeps doing it, the other starts
    no round while it lives; when it stops, or its lock's connection
    breaks (PostgreSQL), the other takes over."""
    dialed = []
    monkeypatch.setattr(service_module, "recon_peers", lambda store: ["peer.example:11371"])
    monkeypatch.setattr(service_module, "dial", lambda store, *args: dialed.append(store))
    monkeypatch.setattr(ReconService, "_ended", lambda self, report, was_dialed: None)
    stores = [open_store(db_url) for _ in range(3)]
    first, second, third = [ReconService(s, None, 11371, Limits(), interval=0) for s in stores]
    try:
        for _ in range(3):
            first.gossip_once()
            second.gossip_once()
        assert dialed == [stores[0]] * 3
        first.stop()
        second.gossip_once()
        third.gossip_once()
        assert dialed[3:] == [stores[1]]
        if db_url.startswith("postgresql"):
            with stores[2].read() as cursor:
                # (with a timeout, it waits for the backend to end: without
                # one it only signals it, and the lock may outlive the call)
                cursor.execute("SELECT pg_terminate_backend(l.pid, 10000) FROM pg_locks l "
                               "JOIN pg_database d ON d.oid = l.database "
                               "WHERE l.locktype = 'advisory' AND d.datname = "
                               "current_database() AND l.pid <> pg_backend_pid()")
            third.gossip_once()  # the lock went with its connection: taken over
            second.gossip_once()
            assert dialed[4:] == [stores[2]]
    finally:
        for service in (second, third):
            service.stop()
        for store in stores:
            store.close()


def test_a_stop_does_not_wait_on_a_database_that_does_not_answer(db_url, monkeypatch):
    """The gossip lock's release waits for the database: until 2026-12-06 it
    came first in stop(), unbounded, and SIGTERM never stopped a cksd whose
    PostgreSQL did not answer.  Now it is part of STOP_WAIT (the lock goes
    with its connection when the process ends)."""
    monkeypatch.setattr(service_module, "recon_peers", lambda store: [])
    monkeypatch.setattr(service_module, "STOP_WAIT", 0.3)
    store = open_store(db_url)
    service = ReconService(store, None, 11371, Limits(), interval=0)
    answer = threading.Event()
    releasing = []
    try:
        service.gossip_once()  # takes the gossip lock
        assert service._gossip_lock is not None
        monkeypatch.setattr(store, "release", lambda lock: (releasing.append(lock),
                                                            answer.wait(30)))
        stopped = threading.Thread(target=service.stop, daemon=True)
        stopped.start()
        stopped.join(10)
        assert not stopped.is_alive() and len(releasing) == 1  # (the release still waits)
    finally:
        answer.set()
        store.close()

"""The I/O edge of a session (net.run_session) over a socket pair: the
requester, having sent Done, returns once the answerer hangs up, or after
HANG_UP_WAIT when it does not; a round's connection is closed before the
keys it found are fetched (rounds._round); a busy peer's refusal reaches
the dialer with its reason, and a peer that closes before the handshake is
reported as such."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from typing import Iterator, List

import pytest

from cks.pipeline import Limits
from cks.store import open_store
from cks.store.peers import PeerStore
from cks.sync.recon import net, rounds
from cks.sync.recon.fetch import FetchReport
from cks.sync.recon.net import ReconRefused, SessionResult, run_session
from cks.sync.recon.wire import HOCKEYPUCK_BUSY, ReconProtocolError, encode_verdict, our_config

HOLD = 0.3  # seconds the answerer keeps the connection open after the session


@dataclass
class SmallSet:
    """A set small enough to travel whole: one leaf node, the root."""
    members: List[int]

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def samples(self) -> List[int]:
        return []  # never asked of a leaf

    is_leaf = True

    def elements(self) -> List[int]:
        return list(self.members)


class OneNodeTree:
    def __init__(self, members: List[int]) -> None:
        self.root = SmallSet(members)

    def node(self, prefix):
        return self.root if prefix.length == 0 else None

    def prefetch(self, prefixes) -> None:
        pass

    def prefetch_elements(self, prefixes) -> None:
        pass


def _tree(members: List[int]):
    @contextlib.contextmanager
    def open_tree() -> Iterator[OneNodeTree]:
        yield OneNodeTree(members)
    return open_tree


def _answer_then_hold(sock: socket.socket, closed: List[float], hold: float) -> None:
    run_session(sock, _tree([1, 2]), our_config(11371), requester=False)
    time.sleep(hold)
    closed.append(time.monotonic())
    sock.close()


def _requester_against(hold: float, close: bool):
    ours, theirs = socket.socketpair()
    closed: List[float] = []
    answerer = threading.Thread(
        target=_answer_then_hold if close else
        lambda s, c, h: run_session(s, _tree([1, 2]), our_config(11371), requester=False),
        args=(theirs, closed, hold))
    answerer.start()
    result = run_session(ours, _tree([2, 3]), our_config(11371), requester=True)
    returned = time.monotonic()
    answerer.join()
    ours.close()
    if not close:
        theirs.close()
    return result, returned, closed


def test_the_requester_returns_once_the_answerer_has_hung_up():
    result, returned, closed = _requester_against(HOLD, close=True)
    assert result.missing == {1}
    assert returned >= closed[0]
    assert result.seconds < HOLD  # the session's time ends at Done, not at the hang-up


def test_a_requester_waits_at_most_hang_up_wait(monkeypatch):
    monkeypatch.setattr(net, "HANG_UP_WAIT", 0.2)
    started = time.monotonic()
    result, returned, _ = _requester_against(0, close=False)
    assert result.missing == {1}
    assert 0.2 <= returned - started < 5


def test_a_round_hangs_up_before_it_fetches(db_url, monkeypatch):
    """The answering side (we dialed) closes the connection as soon as the
    session ends, so the requesting peer goes on at once, not after our fetch."""
    store = open_store(db_url)
    peer = PeerStore(store).add("peer.example:11371", "recon", 0, None, False, recon_port=11370)
    with socket.create_server(("127.0.0.1", 0)) as listener:  # (TCP: the fetch's source)
        ours = socket.create_connection(listener.getsockname())
        theirs, _ = listener.accept()
    at_fetch = []
    monkeypatch.setattr(rounds, "run_session", lambda *args: SessionResult(
        {7}, set(), our_config(11371), requests=1))

    def fetch_missing(store, peer, host, port, hashes, limits, share, source):
        theirs.settimeout(5)
        at_fetch.append(theirs.recv(1))  # b"": the hang-up came before the fetch
        return FetchReport(peer)

    monkeypatch.setattr(rounds, "fetch_missing", fetch_missing)
    try:
        report = rounds._round(store, peer, ours, 11371, "127.0.0.1", False, Limits())
    finally:
        theirs.close()
        store.close()
    assert at_fetch == [b""]
    assert report.lacked_here == 1 and report.error is None


def test_a_handshake_sent_a_byte_at_a_time_ends_at_its_deadline(monkeypatch):
    """HANDSHAKE_TIMEOUT bounds the whole handshake, not each read of it."""
    monkeypatch.setattr(net, "HANDSHAKE_TIMEOUT", 0.5)
    ours, theirs = socket.socketpair()
    stop = threading.Event()

    def trickle():
        config = our_config(11371).encode()
        for index in range(len(config)):  # a byte every 0.1 s: some 10 s in all
            if stop.wait(0.1):
                return
            theirs.sendall(config[index:index + 1])

    sender = threading.Thread(target=trickle)
    sender.start()
    started = time.monotonic()
    try:
        with pytest.raises(socket.timeout):
            run_session(ours, _tree([1]), our_config(11371), requester=True)
        assert time.monotonic() - started < 2
    finally:
        stop.set()
        sender.join()
        ours.close()
        theirs.close()


def _dial_to(serve) -> BaseException:
    """What run_session raises for the dialing side (it answers) against a
    peer that accepts and does `serve(sock)` (in a thread)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def accept():
        sock, _ = listener.accept()
        time.sleep(0.05)  # (our Config has arrived: closed unread, it resets the connection)
        serve(sock)

    peer = threading.Thread(target=accept)
    peer.start()
    try:
        with socket.create_connection(listener.getsockname()) as sock:
            with pytest.raises((ReconRefused, ReconProtocolError)) as raised:
                run_session(sock, _tree([1]), our_config(11371), requester=False)
    finally:
        peer.join()
        listener.close()
    return raised.value


def test_a_busy_refusal_reaches_the_dialer_with_its_reason():
    refusal = _dial_to(lambda sock: net.refuse_busy(sock, our_config(11371), "4 rounds under way"))
    assert isinstance(refusal, ReconRefused) and refusal.busy
    assert refusal.reason == "busy: 4 rounds under way"


def test_hockeypuck_busy_is_busy_and_other_refusals_are_not():
    def refuse(reason):
        def serve(sock):
            sock.sendall(our_config(11371).encode() + encode_verdict(reason))
            sock.settimeout(5)
            sock.recv(1 << 16)
            sock.close()
        return serve
    assert _dial_to(refuse(HOCKEYPUCK_BUSY)).busy
    assert not _dial_to(refuse("mismatched filters")).busy


def test_a_peer_that_closes_before_the_handshake_is_reported_so():
    """SKS closes on a peer outside its membership, and while it fetches; a
    reset came out as "[Errno 104] Connection reset by peer"."""
    closed = _dial_to(lambda sock: sock.close())
    assert str(closed) == "closed before the handshake (busy, or not peering with us)"

"""One reconciliation session over a connected socket: the I/O edge around the
sans-I/O handshake and roles of session.py.

The side that accepted the connection requests, the side that dialed
answers (SKS 1.1.6 reconserver.ml).  Timeouts as SKS keeps them: 45 s for the
whole handshake (until 2026-12-05 for each read of it: a byte every 20 s
kept a connection, and a round's slot, for the hour), an hour for a whole
session; a peer that stays silent longer than `idle` seconds in between
ends it.  The requester, having sent Done, waits
for the answerer to hang up (at most HANG_UP_WAIT) before it goes on to
record the round and fetch: on a host whose cores both peers share, the work
done at once after Done kept the answerer from reading it for 0.2-0.3 ms.
A round there is no room for is refused with a reason (`refuse_busy`).
"""

from __future__ import annotations

import math
import socket
import time
from dataclasses import dataclass
from typing import Callable, ContextManager, Optional, Set, Union

from .interpolate import reconcile
from .session import Answerer, Handshake, LocalTree, Requester, Unwanted, nothing_unwanted
from .wire import Config, ReconProtocolError, busy_refusal, says_busy

HANDSHAKE_TIMEOUT = 45.0
SESSION_TIMEOUT = 3600.0
IDLE_TIMEOUT = 300.0
HANG_UP_WAIT = 1.0
READ_SIZE = 1 << 16
CLOSED_BEFORE_HANDSHAKE = "closed before the handshake (busy, or not peering with us)"


class ReconRefused(Exception):
    """The handshake did not pass: `by` is "local" or "peer"."""

    def __init__(self, reason: str, by: str) -> None:
        super().__init__("%s refused the session: %s" % (
            "we" if by == "local" else "the peer", reason))
        self.reason = reason
        self.by = by

    @property
    def busy(self) -> bool:
        """The peer had no room for the round: not a failure."""
        return self.by == "peer" and says_busy(self.reason)


@dataclass
class SessionResult:
    missing: Set[int]  # elements this side lacks (key hashes all)
    given: int  # elements this side sent the peer as lacking
    peer: Config  # what the peer said in the handshake (its HTTP port)
    requests: int = 0
    seconds: float = 0.0
    bytes_sent: int = 0
    bytes_received: int = 0
    unanswered: int = 0  # our FullElements the peer (requesting) never answered
    not_hashes: int = 0  # elements the peer named that are no key hash: dropped
    capped: bool = False  # `missing` stopped at session.MAX_MISSING: more next round
    skipped: int = 0  # elements lacked and not in `missing`: `unwanted` (refused, held)


class _Connection:
    """Blocking reads and writes under the session's deadlines."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.started = time.monotonic()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Small messages each way, written as they are ready: without this,
            # Nagle's algorithm and delayed ACKs stall the exchange for 40 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sent = self.received = 0

    def send(self, data: bytes) -> None:
        if data:
            self.sock.settimeout(self._left(IDLE_TIMEOUT))
            self.sock.sendall(data)
            self.sent += len(data)

    def receive(self, limit: float, by: float = math.inf) -> bytes:
        """What the peer sends next, within `limit` seconds and by `by`
        (time.monotonic())."""
        self.sock.settimeout(self._left(limit, by))
        data = self.sock.recv(READ_SIZE)
        if not data:
            raise ReconProtocolError("the peer closed the connection")
        self.received += len(data)
        return data

    def await_hang_up(self) -> None:
        """Until the peer closes the connection (or sends anything more), at
        most HANG_UP_WAIT seconds."""
        try:
            self.sock.settimeout(HANG_UP_WAIT)
            self.sock.recv(1)
        except OSError:
            pass

    def _left(self, limit: float, by: float = math.inf) -> float:
        """Seconds for the next read or write: `limit`, less if the session's
        hour or `by` (time.monotonic()) ends sooner."""
        now = time.monotonic()
        left = SESSION_TIMEOUT - (now - self.started)
        if left <= 0:
            raise socket.timeout("the session took longer than %d s" % SESSION_TIMEOUT)
        if by <= now:
            raise socket.timeout("timed out")
        return min(limit, left, by - now)


def run_session(sock: socket.socket, open_tree: Callable[[], ContextManager[LocalTree]],
                ours: Config, requester: bool,
                unwanted: Unwanted = nothing_unwanted) -> SessionResult:
    """Handshake, then reconcile as requester (we accepted the connection) or
    answerer (we dialed); `unwanted` tells which lacked elements not to
    collect (session.Unwanted), called while the tree is open.  `open_tree`
    is entered once our Config is on its way, so the peer reads it while our
    snapshot opens.  Raises ReconRefused,
    ReconProtocolError (including the peer's Error messages), OSError
    (socket.timeout among them), or what `open_tree` raises."""
    conn = _Connection(sock)
    handshake = Handshake(ours)
    try:
        conn.send(handshake.start())
        with open_tree() as tree:
            return _reconcile(conn, handshake, tree, requester, unwanted)
    except (ReconProtocolError, ConnectionError):
        # SKS closes on a dialer it does not peer with, or while it fetches
        # (a CKS node before 2026-12-05 did so when busy, too).
        if requester or conn.received:
            raise
        raise ReconProtocolError(CLOSED_BEFORE_HANDSHAKE) from None


def refuse_busy(sock: socket.socket, ours: Config, why: str) -> None:
    """Refuse a round we have no room for, saying `why` (wire.busy_refusal),
    then wait for the peer to hang up (at most HANG_UP_WAIT): closed with its
    Config unread, the connection would be reset, and the peer would see that
    instead of the reason."""
    deadline = time.monotonic() + HANG_UP_WAIT
    try:
        sock.settimeout(HANG_UP_WAIT)
        sock.sendall(busy_refusal(ours, why))
        sock.shutdown(socket.SHUT_WR)
        while time.monotonic() < deadline:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            if not sock.recv(READ_SIZE):
                break
    except OSError:
        pass
    finally:
        sock.close()


def _reconcile(conn: _Connection, handshake: Handshake, tree: LocalTree,
               requester: bool, unwanted: Unwanted) -> SessionResult:
    role: Union[Requester, Answerer]
    first = b""
    if requester:
        # The first requests (the root) are made while the peer reads our
        # Config, and go out right behind our "passed": the answerer reads
        # them after the verdicts, and a peer that refused us closes anyway.
        role = Requester(tree, unwanted=unwanted)
        first = role.start()
    else:
        role = Answerer(tree, reconcile, unwanted=unwanted)
    handshake_by = conn.started + HANDSHAKE_TIMEOUT
    while not handshake.done:
        verdict = handshake.receive(conn.receive(HANDSHAKE_TIMEOUT, handshake_by))
        if verdict and handshake.reason is None:
            verdict, first = verdict + first, b""
        conn.send(verdict)
    if not handshake.passed:
        raise ReconRefused(handshake.reason or "no reason given", handshake.refused_by or "peer")
    assert handshake.peer_config is not None
    pending: Optional[bytes] = handshake.leftover()
    while not role.done:
        data = pending if pending else conn.receive(IDLE_TIMEOUT)
        pending = None
        conn.send(role.receive(data))
    if isinstance(role, Answerer) and role.error is not None:
        raise ReconProtocolError("we could not answer: %s" % role.error)
    seconds = time.monotonic() - conn.started
    if isinstance(role, Requester):
        requests, unanswered = role.requests_sent, 0
        conn.await_hang_up()
    else:
        requests, unanswered = role.requests_answered, role.unanswered
    return SessionResult(role.lacking.elements, role.given, handshake.peer_config,
                         requests, seconds, conn.sent, conn.received, unanswered,
                         role.lacking.not_hashes, role.lacking.capped, role.lacking.skipped)

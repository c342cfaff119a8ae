"""The roles of an SKS reconciliation session, free of I/O: bytes in, bytes out.

A session is a handshake (`Handshake`, both sides alike), then one of two
roles.  The side that ACCEPTED the TCP connection is the `Requester` (SKS
client.ml); the side that dialed answers (`Answerer`, SKS server.ml).  Each
role is fed what arrived with `receive(data)` and returns the bytes to send;
at the end `lacking` holds the elements (key hashes) this side lacks and
will fetch (`Unwanted`: those it will not).

The local set is seen through `LocalTree`: a prefix-tree view that another
module implements over the database.  Interpolation is injected as a
`reconcile` callable (interpolate.reconcile in production).
"""

from __future__ import annotations

from collections import deque
from typing import (Callable, Deque, FrozenSet, Iterable, List, Optional, Protocol, Sequence,
                    Set, Tuple, Union)

from .field import is_hash_element
from .wire import (BITQUANTUM, MAX_CONFIG_BYTES, MAX_MESSAGE_BYTES, MBAR, PREFIX_MAX_BITS, ROOT,
                   Config, Done, Elements, Error, Flush, FullElements, Message, MessageReader,
                   Prefix, ReconPeerError, ReconProtocolError, ReconRqstFull, ReconRqstPoly,
                   SyncFail, check_config, encode_verdict, peer_text)

FULL_THRESHOLD = 30 * MBAR
"""A node smaller than this (or a leaf) is sent in full: SKS recon_thresh_mult * mbar."""

MAX_OUTSTANDING = 100
"""Requests the requester keeps in flight at most: SKS max_outstanding_recon_requests."""

MAX_MISSING = 100_000
"""Elements a session collects as lacking at most; the rest is found at the
next rounds.  Peers in step differ by tens of keys a round; a node catching
up fetches 100,000 keys a round: 1,000 requests, 5-7 minutes at the 250-330
keys a second CKS stores uploads at (bench/HISTORY.md), within a fetch's 15
minutes, and some 10 MB of memory for the set.  Until
2026-12-05 there was no cap: a peer claiming 900,000 hashes took cksd from 33
to 303 MB and held a round's slot for 9,000 requests.  Only elements this side
will fetch count (see `Unwanted`)."""

MAX_UNFLUSHED_REQUESTS = 1_000
"""Requests the answerer takes between two Flushes at most.  SKS's requester
(and ours) sends at most MAX_OUTSTANDING (100) and then Flush; a peer that
goes on without one ends the session with an Error.  Until 2026-12-07 there
was no bound: the replies waited in memory for a Flush that never came (a
review's peer streaming requests took cksd to 1.37 GB in 68 s)."""

MAX_UNFLUSHED_BYTES = 2 * MAX_MESSAGE_BYTES
"""Bytes of replies the answerer holds for a Flush at most: two replies of
the largest message a peer may send (Hockeypuck refuses a larger one).  A
requester with no keys asks for the root whole, and the reply is every
element held: 17 bytes each, so up to ~1.9 million keys."""

LOOKUP_BATCH = 1_000
"""Lacked elements handed to `Unwanted` at once: one query per batch, not per
element, however the peer spreads them over its messages (sooner when they
may fill MAX_MISSING, and at the end of the session)."""

Unwanted = Callable[[Set[int]], Set[int]]
"""unwanted(elements) -> those of these lacked elements (key hashes) this
side will not fetch: refused here before, or held already (rounds.py asks
the database, a batch at a time).  Until 2026-12-06 they counted toward
MAX_MISSING: a peer holding 100,000 keys this node refuses filled every
round with them, and the keys after them were never fetched."""


def nothing_unwanted(elements: Set[int]) -> Set[int]:
    """An Unwanted for a side that fetches every element it lacks."""
    return set()


ReconcileFn = Callable[[Sequence[int], int, Sequence[int], int],
                       Optional[Tuple[Set[int], Set[int]]]]
"""reconcile(local_samples, local_size, remote_samples, remote_size) ->
(only_remote, only_local), or None when the difference is not recoverable at
this node."""


class NodeView(Protocol):
    """One prefix-tree node of the local set.  Plain attributes will do."""

    @property
    def size(self) -> int:
        """How many elements lie under the prefix."""

    @property
    def samples(self) -> Sequence[int]:
        """The node's NUM_SAMPLES (6) sample values: the product over its
        elements e of (pt_i - e) mod P (field.samples_of)."""

    @property
    def is_leaf(self) -> bool:
        """Whether the node has no children in the local tree."""

    def elements(self) -> Iterable[int]:
        """All elements under the prefix (called only for small nodes)."""


class LocalTree(Protocol):
    """The local set as a prefix tree (SKS 1.1.6 prefixTree.ml)."""

    def node(self, prefix: Prefix) -> Optional[NodeView]:
        """The node for `prefix`.  The root and every child prefix of a
        non-leaf node must exist.  For a deeper prefix (below a local leaf)
        either answer from the elements under it (best) or return None: the
        answerer then replies Error and ends the session, as SKS does."""

    def prefetch(self, prefixes: Sequence[Prefix]) -> None:
        """A hint: node() is asked for these prefixes next (a batch of
        requests).  A tree over a database reads them all at once."""

    def prefetch_elements(self, prefixes: Sequence[Prefix]) -> None:
        """A hint: elements() is asked for these nodes next."""


class _Output:
    """Encoded messages collected during one call."""

    def __init__(self) -> None:
        self.parts: List[bytes] = []
        self.size = 0

    def add(self, message: Message) -> None:
        self.parts.append(message.encode())
        self.size += len(self.parts[-1])

    def take(self) -> bytes:
        """The bytes collected so far, removed."""
        data = b"".join(self.parts)
        self.parts = []
        self.size = 0
        return data


class Lacking:
    """The elements this side lacks, as a session finds them: key hashes
    only, less those `unwanted` names (counted in `skipped`, not kept), and
    at most MAX_MISSING of them (`capped`: some were left out).  Elements
    wait in `_new` for `settle()`, which asks `unwanted` about them at once:
    at LOOKUP_BATCH of them, when they may fill the cap (so `full` is always
    true to the elements settled or not), and by the roles before they
    finish; once full, the rest is not looked up.  A field element of 2^128
    or more is valid on the wire but names no key: it is counted in
    `not_hashes`, not kept (until 2026-12-05 one such element from a peer
    ended the round after the session, and every key it had found was
    dropped)."""

    def __init__(self, unwanted: Unwanted = nothing_unwanted) -> None:
        self.elements: Set[int] = set()
        self.cap = MAX_MISSING
        self.capped = False
        self.not_hashes = 0
        self.skipped = 0
        self._unwanted = unwanted
        self._new: Set[int] = set()

    @property
    def full(self) -> bool:
        return len(self.elements) >= self.cap

    def add(self, elements: Iterable[int]) -> None:
        for element in elements:
            if not is_hash_element(element):
                self.not_hashes += 1
            elif element not in self.elements:
                if self.full:
                    self.capped = True
                else:
                    self._new.add(element)
        if self._new and len(self._new) >= min(LOOKUP_BATCH, self.cap - len(self.elements)):
            self.settle()

    def settle(self) -> None:
        """Keep the elements added since the last call that are wanted, up to the cap."""
        new, self._new = self._new, set()
        if not new:
            return
        unwanted = self._unwanted(new) & new
        self.skipped += len(unwanted)
        for element in new - unwanted:
            if self.full:
                self.capped = True
                return
            self.elements.add(element)


def _check_under(prefix: Prefix, elements: Iterable[int], what: str) -> None:
    for element in elements:
        if not prefix.contains(element):
            raise ReconProtocolError("%s for prefix %r holds an element outside it"
                                     % (what, str(prefix)))


# ----------------------------------------------------------------------------
# Handshake

class Handshake:
    """Both sides send Config at once (`start`), read the peer's, send
    "passed" or "failed" + reason, and (when they passed) read the peer's
    verdict.  When `done`: `passed` tells whether the session may proceed,
    `reason` why not, `refused_by` "local" or "peer", `peer_config` what the
    peer sent.  Bytes that arrived after the handshake are in `leftover()`."""

    def __init__(self, ours: Config,
                 check: Callable[[Config, Config], Optional[str]] = check_config) -> None:
        self.ours = ours
        self.check = check
        self.reader = MessageReader(MAX_CONFIG_BYTES)  # the roles read the rest
        self.peer_config: Optional[Config] = None
        self.done = False
        self.passed = False
        self.reason: Optional[str] = None
        self.refused_by: Optional[str] = None
        self._started = False
        self._state = "config"  # -> "verdict" -> "reason" -> "done"

    def start(self) -> bytes:
        """Our framed Config message."""
        self._started = True
        return self.ours.encode()

    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the peer; return bytes to send (our verdict, once)."""
        if not self._started:
            raise RuntimeError("Handshake.start() first: both sides send Config at once")
        self.reader.push(data)
        out = b""
        while not self.done:
            if self._state == "config":
                message = self.reader.next_message()
                if message is None:
                    break
                if isinstance(message, Error):
                    raise ReconPeerError(message.text)
                if not isinstance(message, Config):
                    raise ReconProtocolError("handshake: expected Config, got %s"
                                             % type(message).__name__)
                self.peer_config = message
                reason = self.check(message, self.ours)
                out += encode_verdict(reason)
                if reason is not None:  # SKS sends its refusal and closes
                    self._finish(False, reason, "local")
                else:
                    self._state = "verdict"
            elif self._state == "verdict":
                verdict = self.reader.next_string()
                if verdict is None:
                    break
                if verdict == b"passed":
                    self._finish(True, None, None)
                elif verdict == b"failed":
                    self._state = "reason"
                else:
                    raise ReconProtocolError("handshake: expected \"passed\" or \"failed\", "
                                             "got %r" % verdict[:40])
            else:
                reason_bytes = self.reader.next_string()
                if reason_bytes is None:
                    break
                self._finish(False, peer_text(reason_bytes), "peer")
        return out

    def leftover(self) -> bytes:
        """What arrived after the handshake: feed it to the role."""
        return self.reader.leftover()

    def _finish(self, passed: bool, reason: Optional[str], refused_by: Optional[str]) -> None:
        self.done = True
        self.passed = passed
        self.reason = reason
        self.refused_by = refused_by
        self._state = "done"


# ----------------------------------------------------------------------------
# Requester

class _Request:
    __slots__ = ("prefix", "full", "mine")

    def __init__(self, prefix: Prefix, full: bool, mine: Optional[FrozenSet[int]]) -> None:
        self.prefix = prefix
        self.full = full  # ReconRqstFull (else ReconRqstPoly)
        self.mine = mine  # the elements a ReconRqstFull sent


class Requester:
    """The side that accepted the connection: walks the prefix tree from the
    root, asking about prefixes, until every reply is in (or it lacks
    MAX_MISSING elements it will fetch: it asks no more); then sends Done.

    `start()` returns the first requests; `receive(data)` returns what to
    send next.  Requests go out in batches, each ended by Flush (the answerer
    writes nothing before it), with at most `max_outstanding` unanswered.
    The requester never interpolates (SKS client.ml): the answerer does."""

    def __init__(self, tree: LocalTree, *, full_threshold: int = FULL_THRESHOLD,
                 max_outstanding: int = MAX_OUTSTANDING, bitquantum: int = BITQUANTUM,
                 unwanted: Unwanted = nothing_unwanted) -> None:
        if max_outstanding < 1:
            raise ValueError("max_outstanding must be at least 1")
        self.tree = tree
        self.full_threshold = full_threshold
        self.max_outstanding = max_outstanding
        self.bitquantum = bitquantum
        self.reader = MessageReader()
        self.lacking = Lacking(unwanted)
        # Elements sent to the peer as lacking: a count, not the elements,
        # which for a peer that holds none would be our whole set in memory.
        self.given = 0
        self.done = False
        self.requests_sent = 0
        self._queue: Deque[Prefix] = deque([ROOT])
        self._pending: Deque[_Request] = deque()
        self._started = False

    @property
    def outstanding(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._pending)

    def start(self) -> bytes:
        """The first batch of requests (the root), ended by Flush."""
        if self._started:
            raise RuntimeError("Requester.start() called twice")
        self._started = True
        out = _Output()
        self._send_requests(out)
        return out.take()

    def receive(self, data: bytes) -> bytes:
        """Feed the answerer's bytes; return the bytes to send next."""
        if not self._started:
            raise RuntimeError("Requester.start() first")
        if self.done:
            return b""
        out = _Output()
        for message in self.reader.feed(data):
            self._handle_reply(message, out)
        if self.lacking.full and self._queue:
            # Enough for a round: no more requests; Done once the last are answered.
            self.lacking.capped = True
            self._queue.clear()
        if not self._queue and not self._pending:
            self.lacking.settle()
            out.add(Done())
            self.done = True
        else:
            self._send_requests(out)
        return out.take()

    def _node(self, prefix: Prefix) -> NodeView:
        node = self.tree.node(prefix)
        if node is None:
            raise RuntimeError("local tree has no node for prefix %r" % str(prefix))
        return node

    def _send_requests(self, out: _Output) -> None:
        room = self.max_outstanding - len(self._pending)
        batch = [self._queue.popleft() for _ in range(min(room, len(self._queue)))]
        if not batch:
            return
        self.tree.prefetch(batch)
        nodes = [(prefix, self._node(prefix)) for prefix in batch]
        full = [prefix for prefix, node in nodes if self._full(node)]
        if full:
            self.tree.prefetch_elements(full)
        for prefix, node in nodes:
            if self._full(node):
                mine = frozenset(node.elements())
                out.add(ReconRqstFull(prefix, list(mine)))
                self._pending.append(_Request(prefix, True, mine))
            else:
                out.add(ReconRqstPoly(prefix, node.size, list(node.samples)))
                self._pending.append(_Request(prefix, False, None))
        out.add(Flush())
        self.requests_sent += len(batch)

    def _full(self, node: NodeView) -> bool:
        """Whether a node is sent whole (ReconRqstFull) rather than as samples."""
        return node.is_leaf or node.size < self.full_threshold

    def _handle_reply(self, message: Message, out: _Output) -> None:
        if isinstance(message, Error):
            raise ReconPeerError(message.text)
        if not self._pending:
            raise ReconProtocolError("%s received with no request outstanding"
                                     % type(message).__name__)
        request = self._pending.popleft()
        prefix = request.prefix
        if isinstance(message, SyncFail):
            if request.full:
                raise ReconProtocolError("SyncFail in reply to ReconRqstFull")
            if prefix.length + self.bitquantum > PREFIX_MAX_BITS:
                raise ReconProtocolError("SyncFail at the deepest prefix")
            self._queue.extend(prefix.children(self.bitquantum))
        elif isinstance(message, Elements):
            _check_under(prefix, message.elements, "Elements")
            theirs = set(message.elements)
            if request.mine is not None:
                theirs -= request.mine
            self.lacking.add(theirs)
        elif isinstance(message, FullElements):
            # The answerer could not interpolate and its node is small: it sent
            # all of its elements; send back what it lacks.
            _check_under(prefix, message.elements, "FullElements")
            mine = request.mine
            if mine is None:
                mine = frozenset(self._node(prefix).elements())
            theirs = set(message.elements)
            out.add(Elements(list(mine - theirs)))
            self.given += len(mine - theirs)
            self.lacking.add(theirs - mine)
        else:
            raise ReconProtocolError("unexpected %s from the answerer" % type(message).__name__)


# ----------------------------------------------------------------------------
# Answerer

class Answerer:
    """The side that dialed: answers each request in order, buffering the
    replies until Flush; Done ends the session.  More than
    MAX_UNFLUSHED_REQUESTS requests or MAX_UNFLUSHED_BYTES of replies
    without a Flush end it with an Error, the replies dropped.

    If a request names a prefix the local tree cannot serve, the buffered
    replies and an Error message are returned and the session ends (`done`,
    `error` holds the text), as SKS server.ml does."""

    def __init__(self, tree: LocalTree, reconcile: ReconcileFn, *,
                 full_threshold: int = FULL_THRESHOLD, bitquantum: int = BITQUANTUM,
                 unwanted: Unwanted = nothing_unwanted) -> None:
        self.tree = tree
        self.reconcile = reconcile
        self.full_threshold = full_threshold
        self.bitquantum = bitquantum
        self.reader = MessageReader()
        self.lacking = Lacking(unwanted)
        # Elements sent to the peer as lacking: a count, not the elements,
        # which for a peer that holds none would be our whole set in memory.
        self.given = 0
        self.done = False
        self.error: Optional[str] = None
        self.requests_answered = 0
        self._replies = _Output()  # buffered until Flush
        self._unflushed = 0  # requests answered since the last Flush
        self._awaiting: Deque[Tuple[Prefix, FrozenSet[int]]] = deque()  # our FullElements

    def receive(self, data: bytes) -> bytes:
        """Feed the requester's bytes; return the replies to send (written
        out at each Flush)."""
        if self.done:
            return b""
        out = b""
        messages = self.reader.feed(data)
        self._prefetch(messages)
        for message in messages:
            if self.done:
                break
            out += self._handle(message)
        return out

    @property
    def unanswered(self) -> int:
        """Our FullElements the requester has not answered with Elements.  At
        Done this should be 0; Hockeypuck's requester drops the Elements it
        owes for the FullElements of its last batch, so what it holds under
        those prefixes stays unknown to us (its own rounds find it)."""
        return len(self._awaiting)

    def _prefetch(self, messages: Sequence[Message]) -> None:
        """Tell the tree which nodes the requests that arrived together name."""
        requests = [m for m in messages if isinstance(m, (ReconRqstPoly, ReconRqstFull))
                    and m.prefix.length % self.bitquantum == 0]
        if requests:
            self.tree.prefetch([r.prefix for r in requests])
            full = [r.prefix for r in requests if isinstance(r, ReconRqstFull)]
            if full:
                self.tree.prefetch_elements(full)

    def _handle(self, message: Message) -> bytes:
        if isinstance(message, (ReconRqstPoly, ReconRqstFull)):
            self._answer(message)
        elif isinstance(message, Elements):
            if not self._awaiting:
                raise ReconProtocolError("Elements received without a FullElements sent")
            prefix, mine = self._awaiting.popleft()
            _check_under(prefix, message.elements, "Elements")
            self.lacking.add(set(message.elements) - mine)
        elif isinstance(message, Flush):
            self._unflushed = 0
            return self._replies.take()
        elif isinstance(message, Done):
            self.done = True
            self.lacking.settle()
            return self._replies.take()
        elif isinstance(message, Error):
            raise ReconPeerError(message.text)
        else:
            raise ReconProtocolError("unexpected %s from the requester" % type(message).__name__)
        if self.error is not None:
            return self._replies.take()
        return b""

    def _answer(self, request: Union[ReconRqstPoly, ReconRqstFull]) -> None:
        """Answer a request into the buffer, unless the peer has held back
        its Flush too long: then drop the buffer and fail."""
        if isinstance(request, ReconRqstPoly):
            self._answer_poly(request)
        else:
            self._answer_full(request)
        self._unflushed += 1
        if self.error is None and (self._unflushed > MAX_UNFLUSHED_REQUESTS
                                   or self._replies.size > MAX_UNFLUSHED_BYTES):
            text = ("%d requests (%d bytes of replies) without a Flush: at most %d (%d bytes) "
                    "are held" % (self._unflushed, self._replies.size, MAX_UNFLUSHED_REQUESTS,
                                  MAX_UNFLUSHED_BYTES))
            self._replies = _Output()
            self._fail(text)

    def _node(self, prefix: Prefix) -> Optional[NodeView]:
        if prefix.length % self.bitquantum:
            self._fail("prefix of %d bits is not a multiple of bitquantum %d"
                       % (prefix.length, self.bitquantum))
            return None
        node = self.tree.node(prefix)
        if node is None:
            self._fail("no node for prefix %r" % str(prefix))
        return node

    def _fail(self, text: str) -> None:
        self._replies.add(Error(text))
        self.error = text
        self.done = True

    def _answer_poly(self, request: ReconRqstPoly) -> None:
        node = self._node(request.prefix)
        if node is None:
            return
        local_samples = list(node.samples)
        if len(request.samples) != len(local_samples):
            self._fail("%d sample values received, %d expected"
                       % (len(request.samples), len(local_samples)))
            return
        self.requests_answered += 1
        result = self.reconcile(local_samples, node.size, request.samples, request.size)
        if result is not None:
            only_remote, only_local = result
            if all(request.prefix.contains(e) for e in only_remote) and \
                    all(request.prefix.contains(e) for e in only_local):
                self._replies.add(Elements(list(only_local)))
                self.given += len(only_local)
                self.lacking.add(only_remote)
                return
            # Roots outside the prefix: a false interpolation; treat as failure.
        if node.is_leaf or node.size < self.full_threshold:
            mine = frozenset(node.elements())
            self._replies.add(FullElements(list(mine)))
            self._awaiting.append((request.prefix, mine))
        else:
            self._replies.add(SyncFail())

    def _answer_full(self, request: ReconRqstFull) -> None:
        node = self._node(request.prefix)
        if node is None:
            return
        self.requests_answered += 1
        mine = set(node.elements())
        theirs = set(request.elements)
        self._replies.add(Elements(list(mine - theirs)))
        self.given += len(mine - theirs)
        self.lacking.add(theirs - mine)

"""SKS recon roles without sockets: a Requester and an Answerer wired to each
other in memory, each over an in-memory prefix tree, with a test-side
reconcile that knows both sets (exact for differences of at most 5, failing
otherwise, as the real interpolation does); plus the handshake and the
refusal of out-of-protocol replies."""

import bisect
import random
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Sequence, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cks.sync.recon import session as session_module
from cks.sync.recon.session import (FULL_THRESHOLD, MAX_OUTSTANDING, Answerer, Handshake,
                                    Requester)
from cks.sync.recon.wire import (ROOT, Config, Done, Elements, Error, Flush, FullElements,
                                 MessageReader, Prefix, ReconPeerError, ReconProtocolError,
                                 ReconRqstFull, ReconRqstPoly, SyncFail, element_key,
                                 encode_string, encode_verdict, our_config)

P = 530512889551602322505127520352579437339
POINTS = [((i + 1) // 2 * (1 if i % 2 == 0 else -1)) % P for i in range(6)]


def samples_of(elements):
    values = [1] * 6
    for e in elements:
        values = [v * (pt - e) % P for v, pt in zip(values, POINTS)]
    return values


# ----------------------------------------------------------------------------
# An in-memory tree and a reconcile that cheats with test-side knowledge

Registry = Dict[Tuple[int, ...], FrozenSet[int]]


@dataclass
class MemNode:
    size: int
    samples: List[int]
    is_leaf: bool
    members: List[int]

    def elements(self):
        return list(self.members)


class MemTree:
    """A sorted list; nodes computed on the fly: a node is a leaf when it holds
    at most `split` elements (SKS: 50).  Every node's sample values are
    recorded in `registry` so that the reconcile stub can see the sets."""

    def __init__(self, elements, registry: Registry, split: int = 50):
        pairs = sorted((element_key(e), e) for e in set(elements))
        self.keys = [k for k, _ in pairs]
        self.values = [e for _, e in pairs]
        self.split = split
        self.registry = registry
        self.cache: Dict[Prefix, MemNode] = {}
        self.calls = 0
        self.prefetched: List[tuple] = []  # the hints the roles gave, in order

    def node(self, prefix: Prefix):
        self.calls += 1
        if prefix not in self.cache:
            low, high = prefix.key_range()
            members = self.values[bisect.bisect_left(self.keys, low):
                                  bisect.bisect_left(self.keys, high)]
            samples = samples_of(members)
            self.registry[tuple(samples)] = frozenset(members)
            self.cache[prefix] = MemNode(len(members), samples, len(members) <= self.split,
                                         members)
        return self.cache[prefix]

    def prefetch(self, prefixes):
        self.prefetched.append(("nodes", list(prefixes)))

    def prefetch_elements(self, prefixes):
        self.prefetched.append(("elements", list(prefixes)))


def stub_reconcile(registry: Registry, limit: int = 5):
    calls = []

    def reconcile(local_samples: Sequence[int], local_size: int,
                  remote_samples: Sequence[int], remote_size: int):
        local = registry[tuple(local_samples)]
        remote = registry[tuple(remote_samples)]
        assert (len(local), len(remote)) == (local_size, remote_size)
        calls.append((local_size, remote_size))
        only_remote, only_local = remote - local, local - remote
        if len(only_remote) + len(only_local) > limit:
            return None
        return set(only_remote), set(only_local)

    reconcile.calls = calls
    return reconcile


def never_reconcile(*args):
    return None


def feed(role, data, chunk):
    if chunk is None:
        return role.receive(data)
    out = [role.receive(data[i:i + chunk]) for i in range(0, len(data), chunk)]
    return b"".join(out) + (b"" if data else role.receive(b""))


def converse(requester, answerer, chunk=None, watch=None):
    """Run a whole session in memory; return the number of round trips."""
    to_answerer = requester.start()
    rounds = 0
    while not requester.done:
        to_requester = feed(answerer, to_answerer, chunk)
        assert to_requester, "the answerer must reply to every flushed batch"
        to_answerer = feed(requester, to_requester, chunk)
        if watch:
            watch(requester)
        rounds += 1
        assert rounds < 10000
    assert feed(answerer, to_answerer, chunk) == b""
    assert answerer.done and answerer.error is None
    return rounds


def split_sets(rng, common, only_req, only_ans):
    universe = set()
    while len(universe) < common + only_req + only_ans:
        universe.add(rng.getrandbits(128))
    universe = sorted(universe)
    rng.shuffle(universe)
    shared = set(universe[:common])
    req_only = set(universe[common:common + only_req])
    ans_only = set(universe[common + only_req:])
    return shared | req_only, shared | ans_only


def reconcile_sets(req_set, ans_set, chunk=None, reconcile=None, split=50,
                   full_threshold=FULL_THRESHOLD, max_outstanding=MAX_OUTSTANDING, watch=None):
    registry: Registry = {}
    req_tree = MemTree(req_set, registry, split)
    ans_tree = MemTree(ans_set, registry, split)
    if reconcile is None:
        reconcile = stub_reconcile(registry)
    requester = Requester(req_tree, full_threshold=full_threshold,
                          max_outstanding=max_outstanding)
    answerer = Answerer(ans_tree, reconcile, full_threshold=full_threshold)
    converse(requester, answerer, chunk, watch)
    assert requester.lacking.elements == set(ans_set) - set(req_set)
    assert answerer.lacking.elements == set(req_set) - set(ans_set)
    # what each side sent the other as lacking (counted), it lacked indeed
    assert requester.given <= len(answerer.lacking.elements)
    assert answerer.given <= len(requester.lacking.elements)
    return requester, answerer


# ----------------------------------------------------------------------------
# End to end

@pytest.mark.parametrize("only_req, only_ans", [(0, 0), (1, 0), (0, 1), (5, 5), (10, 0),
                                                (3, 7), (150, 150), (0, 300)])
def test_end_to_end_differences(only_req, only_ans):
    rng = random.Random(only_req * 1000 + only_ans)
    req_set, ans_set = split_sets(rng, 2000, only_req, only_ans)
    requester, answerer = reconcile_sets(req_set, ans_set)
    if only_req + only_ans > 5:
        assert requester.requests_sent > 1  # recursion happened


def test_equal_sets_resolve_at_the_root():
    rng = random.Random(7)
    both, _ = split_sets(rng, 1000, 0, 0)
    requester, answerer = reconcile_sets(both, both)
    assert requester.requests_sent == 1 and answerer.requests_answered == 1


def test_small_sets_go_in_full_at_once():
    rng = random.Random(8)
    req_set, ans_set = split_sets(rng, 100, 20, 20)
    requester, _ = reconcile_sets(req_set, ans_set)
    assert requester.requests_sent == 1


@pytest.mark.parametrize("sizes", [(0, 0), (0, 500), (500, 0), (1, 0)])
def test_empty_sides(sizes):
    """What a side gives the other is counted, not kept: against a peer that
    holds nothing it is the side's whole set (until 2026-12-05 kept in
    memory for the round, at a million keys some 100 MB)."""
    rng = random.Random(sum(sizes))
    requester, answerer = reconcile_sets(*split_sets(rng, 0, *sizes))
    if max(sizes) >= 500:  # (one element is recovered by interpolation, not sent)
        assert (requester.given, answerer.given) == sizes


def test_interpolation_that_always_fails_still_finds_everything():
    rng = random.Random(9)
    req_set, ans_set = split_sets(rng, 1500, 4, 3)
    requester, answerer = reconcile_sets(req_set, ans_set, reconcile=never_reconcile)
    assert requester.requests_sent > 4


def test_byte_at_a_time():
    rng = random.Random(10)
    reconcile_sets(*split_sets(rng, 400, 12, 9), chunk=1)


def test_clustered_elements_force_deep_recursion():
    rng = random.Random(11)
    # 600 elements sharing their first 6 bytes: the tree is 12+ levels deep there.
    base = rng.getrandbits(48)
    cluster = {base | (rng.getrandbits(80) << 48) for _ in range(600)}
    extra = {base | (rng.getrandbits(80) << 48) for _ in range(40)}
    requester, _ = reconcile_sets(cluster | extra, cluster)
    assert requester.requests_sent > 12


def test_at_most_max_outstanding_requests():
    rng = random.Random(12)
    req_set, ans_set = split_sets(rng, 3000, 200, 200)
    seen = []
    reconcile_sets(req_set, ans_set, max_outstanding=7, split=10, full_threshold=30,
                   reconcile=never_reconcile, watch=lambda r: seen.append(r.outstanding))
    assert seen and max(seen) <= 7
    seen.clear()
    reconcile_sets(req_set, ans_set, split=10, full_threshold=30, reconcile=never_reconcile,
                   watch=lambda r: seen.append(r.outstanding))
    assert max(seen) <= MAX_OUTSTANDING and max(seen) > 7


def test_with_the_real_interpolation_when_available():
    try:
        from cks.sync.recon.interpolate import reconcile
    except Exception:  # another engineer's module, possibly unfinished
        pytest.skip("cks.sync.recon.interpolate is not available")
    rng = random.Random(13)
    reconcile_sets(*split_sets(rng, 1000, 6, 6), reconcile=reconcile)


@st.composite
def set_pairs(draw):
    """Small sets, often clustered on a shared leading byte pattern, with
    thresholds scaled down so that Poly, SyncFail, FullElements all occur."""
    low = st.integers(0, 3)
    element = st.one_of(
        st.integers(0, 2 ** 128 - 1),
        st.builds(lambda lo, hi: lo | (hi << 16), low, st.integers(0, 2 ** 112 - 1)))
    shared = draw(st.sets(element, max_size=80))
    req_only = draw(st.sets(element, max_size=25))
    ans_only = draw(st.sets(element, max_size=25))
    return shared | req_only, (shared - req_only) | (ans_only - req_only)


@settings(max_examples=150, deadline=None)
@given(set_pairs(), st.integers(2, 12), st.integers(1, 8), st.sampled_from([None, 1, 7]))
def test_property_both_sides_learn_exactly_what_they_lack(pair, split, outstanding, chunk):
    req_set, ans_set = pair
    reconcile_sets(req_set, ans_set, chunk=chunk, split=split, full_threshold=split * 2,
                   max_outstanding=outstanding)


# ----------------------------------------------------------------------------
# Message-level behaviour

def decode_all(data):
    return MessageReader().feed(data)


def one_tree(elements, split=50):
    registry: Registry = {}
    return MemTree(elements, registry, split), registry


def test_requester_first_batch():
    small, _ = one_tree([1, 2, 3])
    assert decode_all(Requester(small).start()) == [ReconRqstFull(ROOT, [1, 2, 3]), Flush()]
    big_set = set(range(10, 510))
    big, _ = one_tree(big_set)
    assert decode_all(Requester(big).start()) == [
        ReconRqstPoly(ROOT, 500, samples_of(big_set)), Flush()]


def test_requester_full_elements_reply_and_done():
    tree, _ = one_tree(range(10, 510))
    requester = Requester(tree)
    requester.start()
    theirs = list(range(5, 505))  # the answerer sends all it has under the root
    out = decode_all(requester.receive(FullElements(theirs).encode()))
    assert out == [Elements(range(505, 510)), Done()]
    assert requester.done and requester.lacking.elements == set(range(5, 10))
    assert requester.receive(b"anything") == b""


SPREAD = [int.from_bytes(bytes([b]) + bytes(15), "little") for b in range(256)]


def test_requester_sync_fail_asks_the_children():
    tree, _ = one_tree(SPREAD)
    requester = Requester(tree)
    requester.start()
    out = decode_all(requester.receive(SyncFail().encode()))
    assert [type(m) for m in out] == [ReconRqstFull] * 4 + [Flush]
    assert [m.prefix for m in out[:4]] == ROOT.children()
    assert all(len(m.elements) == 64 for m in out[:4])
    assert requester.outstanding == 4
    # each batch was announced to the tree before it was read: the nodes, then
    # the elements of those that went out in full
    assert tree.prefetched == [("nodes", [ROOT]), ("nodes", ROOT.children()),
                               ("elements", ROOT.children())]


def test_answerer_announces_the_requests_that_arrived_together():
    tree, registry = one_tree(SPREAD)
    answerer = Answerer(tree, stub_reconcile(registry))
    children = ROOT.children()
    data = (ReconRqstPoly(ROOT, 256, samples_of(SPREAD)).encode()
            + b"".join(ReconRqstFull(c, []).encode() for c in children[:2]))
    answerer.receive(data[:-3])  # the last request is not complete yet
    assert tree.prefetched == [("nodes", [ROOT, children[0]]), ("elements", [children[0]])]
    answerer.receive(data[-3:] + Flush().encode())
    assert tree.prefetched[2:] == [("nodes", [children[1]]), ("elements", [children[1]])]


@pytest.mark.parametrize("reply, error", [
    (SyncFail(), ReconProtocolError),  # SyncFail to a ReconRqstFull
    (Error("go away"), ReconPeerError),
    (Done(), ReconProtocolError),
    (ReconRqstFull(ROOT, []), ReconProtocolError),
    (Flush(), ReconProtocolError),
])
def test_requester_refuses_out_of_protocol_replies(reply, error):
    tree, _ = one_tree([1, 2, 3])
    requester = Requester(tree)
    requester.start()
    with pytest.raises(error):
        requester.receive(reply.encode())


def test_requester_refuses_a_reply_without_request_and_foreign_elements():
    tree, _ = one_tree([1, 2, 3])
    requester = Requester(tree)
    requester.start()
    with pytest.raises(ReconProtocolError, match="no request outstanding"):
        requester.receive(Elements([]).encode() + Elements([]).encode())
    tree, _ = one_tree(SPREAD)
    requester = Requester(tree)
    requester.start()
    requester.receive(SyncFail().encode())  # now asking about 00, 01, 10, 11
    outsider = int.from_bytes(b"\xff" + bytes(15), "little")
    with pytest.raises(ReconProtocolError, match="outside"):
        requester.receive(Elements([outsider]).encode())


def test_requester_ignores_claims_of_elements_it_sent_in_full():
    tree, _ = one_tree([1, 2, 3])
    requester = Requester(tree)
    requester.start()
    assert decode_all(requester.receive(Elements([2, 9]).encode())) == [Done()]
    assert requester.lacking.elements == {9}


def test_requester_needs_start():
    tree, _ = one_tree([])
    with pytest.raises(RuntimeError):
        Requester(tree).receive(b"")


def test_answerer_buffers_until_flush():
    tree, registry = one_tree([1, 2, 3])
    answerer = Answerer(tree, stub_reconcile(registry))
    assert answerer.receive(ReconRqstFull(ROOT, [2, 3, 4]).encode()) == b""
    assert answerer.receive(ReconRqstFull(ROOT, [1, 2, 3]).encode()) == b""
    assert decode_all(answerer.receive(Flush().encode())) == [Elements([1]), Elements([])]
    assert answerer.receive(Done().encode()) == b""
    assert answerer.done and answerer.lacking.elements == {4}


def test_answerer_poly_replies():
    mine = set(range(10, 510))
    tree, registry = one_tree(mine)
    reconcile = stub_reconcile(registry)
    answerer = Answerer(tree, reconcile)
    # Success: Elements(what only I have); I note what only the peer has.
    theirs = (mine - {10, 11}) | {7}
    registry[tuple(samples_of(theirs))] = frozenset(theirs)
    request = ReconRqstPoly(ROOT, len(theirs), samples_of(theirs))
    assert decode_all(answerer.receive(request.encode() + Flush().encode())) == [
        Elements([10, 11])]
    assert reconcile.calls == [(500, 499)]
    # Failure at a big inner node: SyncFail.
    far = set(range(1000, 1400))
    registry[tuple(samples_of(far))] = frozenset(far)
    request = ReconRqstPoly(ROOT, len(far), samples_of(far))
    assert decode_all(answerer.receive(request.encode() + Flush().encode())) == [SyncFail()]
    answerer.receive(Done().encode())
    assert answerer.lacking.elements == {7}


def test_answerer_poly_failure_at_small_node_sends_full_elements():
    mine = set(range(10, 110))  # 100 < 150: small enough to send in full
    tree, registry = one_tree(mine, split=50)
    answerer = Answerer(tree, never_reconcile)
    request = ReconRqstPoly(ROOT, 3, samples_of([1, 2, 3]))
    assert decode_all(answerer.receive(request.encode() + Flush().encode())) == [
        FullElements(mine)]
    # The requester answers with what I lack; no reply to that.
    assert answerer.receive(Elements([1, 2, 3]).encode() + Flush().encode()) == b""
    with pytest.raises(ReconProtocolError, match="without a FullElements"):
        answerer.receive(Elements([4]).encode())
    answerer.lacking.settle()  # (what Done does)
    assert answerer.lacking.elements == {1, 2, 3}


def test_answerer_counts_full_elements_left_unanswered():
    # Hockeypuck's requester sends Done without the Elements it owes for the
    # FullElements of its last batch: what we lack there goes unseen.
    tree, _ = one_tree(set(range(10, 20)))
    answerer = Answerer(tree, never_reconcile)
    request = ReconRqstPoly(ROOT, 60, samples_of(range(100, 160)))
    assert decode_all(answerer.receive(request.encode() + Flush().encode())) == [
        FullElements(set(range(10, 20)))]
    assert answerer.unanswered == 1
    answerer.receive(Done().encode())
    assert answerer.done and answerer.lacking.elements == set() and answerer.unanswered == 1


def test_answerer_ends_a_session_whose_requests_come_without_a_flush():
    """Past MAX_UNFLUSHED_REQUESTS requests without a Flush, the buffered
    replies are dropped and an Error alone goes out; before, they were held
    for ever (a peer streaming requests took cksd to 1.37 GB)."""
    tree, registry = one_tree([1, 2, 3])
    answerer = Answerer(tree, stub_reconcile(registry))
    one = ReconRqstFull(ROOT, []).encode()
    limit = session_module.MAX_UNFLUSHED_REQUESTS
    assert answerer.receive(one * 10 + Flush().encode()).count(Elements([1, 2, 3]).encode()) \
        == 10
    assert answerer.receive(one * limit) == b""
    assert decode_all(answerer.receive(one)) == [Error(answerer.error)]
    assert answerer.done and answerer.error.startswith("%d requests (" % (limit + 1))
    assert answerer.receive(one + Flush().encode()) == b""


def test_answerer_ends_a_session_whose_replies_pass_the_byte_bound(monkeypatch):
    tree, registry = one_tree(range(10, 110))  # each reply: 100 elements, 1,709 bytes
    monkeypatch.setattr(session_module, "MAX_UNFLUSHED_BYTES", 5000)
    answerer = Answerer(tree, stub_reconcile(registry))
    one = ReconRqstFull(ROOT, []).encode()
    assert len(decode_all(answerer.receive(one * 2 + Flush().encode()))) == 2
    assert answerer.receive(one * 2) == b""
    out = decode_all(answerer.receive(one))
    assert out == [Error(answerer.error)]
    assert "3 requests (5127 bytes of replies)" in answerer.error


def test_answerer_errors_on_a_prefix_it_cannot_serve():
    class Shallow(MemTree):
        def node(self, prefix):
            return None if prefix.length > 2 else super().node(prefix)

    registry: Registry = {}
    answerer = Answerer(Shallow([1, 2], registry), stub_reconcile(registry))
    data = (ReconRqstFull(ROOT, [1]).encode() + ReconRqstFull(Prefix.parse("0000"), []).encode()
            + ReconRqstFull(ROOT, []).encode() + Flush().encode())
    out = decode_all(answerer.receive(data))
    assert out[0] == Elements([2]) and isinstance(out[1], Error) and len(out) == 2
    assert answerer.done and "0000" in answerer.error
    assert answerer.receive(Flush().encode()) == b""


def test_answerer_errors_on_odd_prefix_length():
    tree, registry = one_tree([1])
    answerer = Answerer(tree, stub_reconcile(registry))
    out = decode_all(answerer.receive(ReconRqstFull(Prefix.parse("1"), []).encode()))
    assert isinstance(out[0], Error) and answerer.done


def test_answerer_errors_on_wrong_sample_count():
    tree, registry = one_tree(range(10, 510))
    answerer = Answerer(tree, stub_reconcile(registry))
    out = decode_all(answerer.receive(ReconRqstPoly(ROOT, 1, [1, 2]).encode()))
    assert isinstance(out[0], Error) and answerer.done


def test_answerer_treats_roots_outside_the_prefix_as_failure():
    tree, registry = one_tree([1, 2, 3])
    outsider = int.from_bytes(b"\xff" + bytes(15), "little")

    def liar(*args):
        return {outsider}, set()

    answerer = Answerer(tree, liar)
    request = ReconRqstPoly(Prefix.parse("00"), 4, [1] * 6)
    assert decode_all(answerer.receive(request.encode() + Flush().encode())) == [
        FullElements([1, 2, 3])]
    assert answerer.lacking.elements == set()


@pytest.mark.parametrize("message, error", [
    (SyncFail(), ReconProtocolError),
    (FullElements([]), ReconProtocolError),
    (our_config(1), ReconProtocolError),
    (Error("bye"), ReconPeerError),
])
def test_answerer_refuses_out_of_protocol_messages(message, error):
    tree, registry = one_tree([1])
    with pytest.raises(error):
        Answerer(tree, stub_reconcile(registry)).receive(message.encode())


# ----------------------------------------------------------------------------
# Handshake

def run_handshake(a, b, chunk=None):
    to_b, to_a = a.start(), b.start()
    for _ in range(4):
        to_b, to_a = feed(b, to_b, chunk), feed(a, to_a, chunk)
    return a, b


@pytest.mark.parametrize("chunk", [None, 1])
def test_handshake_passes(chunk):
    a, b = run_handshake(Handshake(our_config(11371)), Handshake(our_config(80)), chunk)
    assert a.done and b.done and a.passed and b.passed
    assert a.peer_config.http_port == 80 and b.peer_config.http_port == 11371
    assert a.reason is None and a.refused_by is None


def test_handshake_refusal_both_ways():
    a, b = run_handshake(Handshake(our_config(1)),
                         Handshake(our_config(2, "yminsky.dedup")))
    assert a.done and not a.passed and a.refused_by == "local"
    assert a.reason.startswith("filters do not match")
    assert b.done and not b.passed and b.refused_by == "local"


def test_handshake_peer_refuses_us():
    ours = Handshake(our_config(1))
    ours.start()
    reply = ours.receive(our_config(2).encode() + encode_verdict("mbar values do not match"))
    assert reply == encode_verdict(None)
    assert ours.done and not ours.passed and ours.refused_by == "peer"
    assert ours.reason == "mbar values do not match"


def test_handshake_leftover_goes_to_the_role():
    tree, registry = one_tree([1, 2])
    ours = Handshake(our_config(1))
    ours.start()
    request = ReconRqstFull(ROOT, [2, 3]).encode() + Flush().encode()
    ours.receive(our_config(2).encode() + encode_verdict(None) + request)
    assert ours.done and ours.passed
    answerer = Answerer(tree, stub_reconcile(registry))
    assert decode_all(answerer.receive(ours.leftover())) == [Elements([1])]


@pytest.mark.parametrize("data", [
    Flush().encode(),
    our_config(2).encode() + encode_string("maybe"),
])
def test_handshake_refuses_garbage(data):
    ours = Handshake(our_config(1))
    ours.start()
    with pytest.raises(ReconProtocolError):
        ours.receive(data)


def test_handshake_peer_error_and_start_order():
    ours = Handshake(our_config(1))
    with pytest.raises(RuntimeError):
        ours.receive(b"")
    ours.start()
    with pytest.raises(ReconPeerError):
        ours.receive(Error("not in membership").encode())


def test_handshake_refuses_a_config_over_8_kib():
    """Read whole before a word of it is checked: until 2026-12-07 it could be 16 MiB."""
    ours = Handshake(our_config(11371))
    ours.start()
    big = our_config(80, "F" * 8192).encode()
    with pytest.raises(ReconProtocolError, match="message length 8291 over the limit of 8192"):
        ours.receive(big[:4])
    small = Handshake(our_config(11371))
    small.start()
    assert small.receive(our_config(80, "F" * 8000).encode()).startswith(b"\0\0\0\x06failed")


def test_handshake_custom_check():
    ours = Handshake(our_config(1), check=lambda theirs, mine: "no thanks")
    ours.start()
    assert ours.receive(our_config(2).encode()) == encode_verdict("no thanks")
    assert ours.done and not ours.passed
    assert isinstance(ours.peer_config, Config)


def test_a_requester_that_lacks_max_missing_asks_no_more(monkeypatch):
    """It stops collecting at the cap, and stops asking: Done once the
    requests out are answered (the rest is for the next rounds)."""
    rng = random.Random(11)
    req_set, ans_set = split_sets(rng, 1000, 0, 3000)
    whole, _ = reconcile_sets(req_set, ans_set, max_outstanding=1)
    monkeypatch.setattr(session_module, "MAX_MISSING", 40)
    registry: Registry = {}
    requester = Requester(MemTree(req_set, registry, 50), max_outstanding=1)
    answerer = Answerer(MemTree(ans_set, registry, 50), stub_reconcile(registry))
    converse(requester, answerer)
    assert len(requester.lacking.elements) == 40 and requester.lacking.capped
    assert requester.lacking.elements <= set(ans_set) - set(req_set)
    assert requester.requests_sent < whole.requests_sent / 3


def test_an_answerer_keeps_at_most_max_missing(monkeypatch):
    monkeypatch.setattr(session_module, "MAX_MISSING", 3)
    answerer = Answerer(one_tree([1])[0], never_reconcile)
    answerer.receive(ReconRqstFull(ROOT, list(range(1, 10))).encode() + Flush().encode()
                     + Done().encode())
    assert answerer.lacking.elements <= set(range(2, 10)) and answerer.lacking.capped
    assert len(answerer.lacking.elements) == 3


class Refused:
    """An Unwanted over a set (the refused hashes), remembering each lookup."""

    def __init__(self, refused):
        self.refused = set(refused)
        self.lookups = []

    def __call__(self, elements):
        self.lookups.append(len(elements))
        return elements & self.refused


def test_refused_elements_do_not_fill_a_requesters_cap(monkeypatch):
    """Elements this side will not fetch (refused before, held) are looked
    up in batches, counted, not kept, and not counted toward MAX_MISSING:
    the round goes on to the ones it will fetch.  Until 2026-12-06 they
    filled the cap, and with as many refused as the cap every round stopped
    at the same ones: the rest was never fetched (found by a review)."""
    rng = random.Random(12)
    req_set, ans_set = split_sets(rng, 1000, 0, 3000)
    theirs = sorted(set(ans_set) - set(req_set))
    refused, wanted = Refused(theirs[:2970]), set(theirs[2970:])
    monkeypatch.setattr(session_module, "MAX_MISSING", 40)
    registry: Registry = {}
    requester = Requester(MemTree(req_set, registry, 50), max_outstanding=1,
                          unwanted=refused)
    answerer = Answerer(MemTree(ans_set, registry, 50), stub_reconcile(registry))
    converse(requester, answerer)
    lacking = requester.lacking
    assert lacking.elements == wanted and not lacking.capped
    assert lacking.skipped == 2970
    assert sum(refused.lookups) == 3000 and len(refused.lookups) < 3000 / 10


def test_refused_elements_do_not_fill_an_answerers_cap(monkeypatch):
    monkeypatch.setattr(session_module, "MAX_MISSING", 3)
    refused = Refused(range(2, 10))
    answerer = Answerer(one_tree([1])[0], never_reconcile, unwanted=refused)
    answerer.receive(ReconRqstFull(ROOT, list(range(2, 13))).encode() + Flush().encode()
                     + Done().encode())
    lacking = answerer.lacking
    assert lacking.elements == {10, 11, 12} and not lacking.capped and lacking.skipped == 8
    assert refused.lookups == [11]


def test_refused_elements_are_looked_up_a_batch_at_a_time(monkeypatch):
    """However the peer spreads them (here one element a message), the
    lookups come LOOKUP_BATCH at a time, and once more at the end."""
    monkeypatch.setattr(session_module, "LOOKUP_BATCH", 4)
    refused = Refused(range(2, 100, 2))
    answerer = Answerer(one_tree([1])[0], stub_reconcile({}), unwanted=refused)
    for element in range(2, 12):
        answerer.receive(ReconRqstFull(ROOT, [element]).encode())
    answerer.receive(Flush().encode() + Done().encode())
    assert refused.lookups == [4, 4, 2]
    assert answerer.lacking.elements == {3, 5, 7, 9, 11} and answerer.lacking.skipped == 5

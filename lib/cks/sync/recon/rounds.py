"""Reconciliation rounds with recon peers (SKS, Hockeypuck, other CKS nodes),
and fetching what a round found missing.

A round is one session (net.py) over the prefix tree of the stored keys
(store/ptree.py, read on one snapshot), then `fetch_missing` of the keys we
lack from the peer's HTTP port.  `dial` starts a round (cks_sync.py, and
cksd's gossip every `[recon] interval` seconds); `answer` serves one a peer
started on cksd's recon port, for an enabled recon peer's address only.
Every round's outcome goes to the peer's row (`cks_sync_manage.py list`,
`op=stats`).  One round (session and fetch) with a peer at a time, in all
of a database's processes: each holds the peer's lock (`round_lock`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set

from ... import pipeline
from ...hkp.peer_addresses import addresses_of, peer_host, system_resolver
from ...hkp.ratelimit import IPAddress, ip_of
from ...store import Store, StoreError
from ...store.peers import Peer, PeerStore
from ...store.ptree_view import LocalTree, TreeCache, open_tree
from ...wording import counted
from ..hkp_push import source_address
from ..peername import parse_hkp_peer
from .fetch import (REFUSED_TTL, FetchReport, RunShare, fetch_missing, hash_hex,
                    refused_and_held)
from .field import hash_of_element
from .net import ReconRefused, SessionResult, run_session
from .wire import DEFAULT_FILTERS, Prefix, ReconProtocolError, our_config

log = logging.getLogger("cks.recon")

DEFAULT_RECON_PORT = 11370
CONNECT_TIMEOUT = 20.0


@dataclass
class RoundReport:
    peer: str
    lacked_here: int = 0
    lacked_there: int = 0
    fetch: Optional[FetchReport] = None
    error: Optional[str] = None
    seconds: float = 0.0  # the round and the fetch
    session: Optional[SessionResult] = None  # the round alone: its time and bytes
    busy: Optional[str] = None  # why no round took place: one side had no room for it

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems()

    def problems(self) -> List[str]:
        """What went wrong in a round whose session completed: the peer's
        elements that name no key, the fetch's errors."""
        found = []
        if self.session is not None and self.session.not_hashes:
            found.append("the peer named %d elements that are no key hash (dropped)"
                         % self.session.not_hashes)
        return found + (self.fetch.errors if self.fetch else [])

    def summary(self) -> str:
        return "%s: %s" % (self.peer, self.outcome())

    def outcome(self) -> str:
        """What happened, in one line (summary() less the peer's name)."""
        if self.busy:
            return "no recon round (busy): %s" % self.busy
        if self.error:
            return "recon failed: %s" % self.error
        fetched = self.fetch.added + self.fetch.updated if self.fetch else 0
        session = self.session
        text = ("recon round in %.1f s: we lacked %d, the peer lacked %d; %s fetched"
                % (self.seconds, self.lacked_here, self.lacked_there, counted(fetched, "key")))
        if session is not None:
            text += " (the session: %.1f ms, %d bytes sent, %d received)" % (
                session.seconds * 1000, session.bytes_sent, session.bytes_received)
            if session.skipped:
                text += ("; %d of the keys we lacked not asked for (refused here before, "
                         "or held already)" % session.skipped)
            if session.capped:
                text += "; stopped at %d keys to fetch, the rest for the next rounds" % len(
                    session.missing)
            if session.unanswered:
                text += ("; the peer did not say what it holds under %d of our nodes (its own "
                         "rounds will find it)" % session.unanswered)
        if self.fetch is not None and self.fetch.left:
            text += "; " + self.fetch.left_text()
        problems = self.problems()
        if problems:
            text += "; failed: " + "; ".join(problems)
        return text


class _ByPrefix:
    """The session's view of the tree (wire.Prefix) over the stored one ('0'/'1' text)."""

    def __init__(self, tree: LocalTree) -> None:
        self.tree = tree

    def node(self, prefix: Prefix):
        return self.tree.node(str(prefix))

    def prefetch(self, prefixes: Sequence[Prefix]) -> None:
        self.tree.prefetch([str(p) for p in prefixes])

    def prefetch_elements(self, prefixes: Sequence[Prefix]) -> None:
        self.tree.prefetch_elements([str(p) for p in prefixes])


class _Unwanted:
    """The session's Unwanted: of the hashes the peer holds and we lack, those
    refused here before or held already (fetch.refused_and_held), looked up on
    the round's snapshot, which `_prefix_tree` hands it: a connection of its
    own would take a second one from the pool while the snapshot holds one
    (with `[database] pool_size = 1`, for ever)."""

    def __init__(self, now: int) -> None:
        self.since = now - REFUSED_TTL
        self.tree: Optional[LocalTree] = None

    def __call__(self, elements: Set[int]) -> Set[int]:
        assert self.tree is not None, "looked up outside the session"
        by_hash = {hash_hex(hash_of_element(e)): e for e in elements}
        refused, held = refused_and_held(self.tree.cursor, list(by_hash), self.since)
        return {by_hash[h] for h in refused | held}


@contextlib.contextmanager
def _prefix_tree(store: Store, cache: Optional[TreeCache],
                 unwanted: _Unwanted) -> Iterator[_ByPrefix]:
    """The stored tree on one snapshot, as the session reads it."""
    with open_tree(store, cache) as tree:
        unwanted.tree = tree
        try:
            yield _ByPrefix(tree)
        finally:
            unwanted.tree = None


def round_lock(peer: Peer) -> str:
    """The lock held during a round with `peer` and its fetch: until
    2026-12-05 a peer dialing every 5 s had a node fetch the same keys in up
    to 4 rounds at once, each in a slot, and its other peers refused."""
    return "cks_recon_round_%d" % peer.id


def _round(store: Store, peer: Peer, sock: socket.socket, http_port: int, fetch_host: str,
           requester: bool, limits: pipeline.Limits,
           cache: Optional[TreeCache] = None, share: RunShare = RunShare()) -> RoundReport:
    report = RoundReport(peer.peer)
    started = time.monotonic()
    try:
        # Closed before the fetch: a requesting peer waits for us to hang up.
        with contextlib.closing(sock):
            local = sock.getsockname()[0]  # (the fetch asks from it: the peer knows it)
            unwanted = _Unwanted(int(time.time()))
            result = run_session(sock, lambda: _prefix_tree(store, cache, unwanted),
                                 our_config(http_port, peer.filters or DEFAULT_FILTERS),
                                 requester, unwanted)
    except (ReconRefused, ReconProtocolError, OSError, StoreError) as exc:
        if isinstance(exc, ReconRefused) and exc.busy:
            report.busy = "the peer said \"%s\"" % exc.reason
        else:
            # (one line: a refusal quotes the filter lists on lines of their own)
            report.error = " ".join(str(exc).split()) or exc.__class__.__name__
    else:
        report.session = result
        report.lacked_here = len(result.missing) + result.skipped
        report.lacked_there = result.given
        if result.missing:
            report.fetch = fetch_missing(
                store, peer.peer, fetch_host,
                result.peer.http_port or parse_hkp_peer(peer.peer)[1],
                [hash_of_element(e) for e in result.missing], limits, share=share,
                source=local)
    report.seconds = time.monotonic() - started
    _record(store, peer, report)
    return report


def _record(store: Store, peer: Peer, report: RoundReport) -> None:
    fetched = report.fetch.added + report.fetch.updated if report.fetch else 0
    error = report.error or ("; ".join(report.problems()) or None)
    try:
        if report.busy:  # an attempt, neither a round nor a failure
            PeerStore(store).record_attempt(peer.id, int(time.time()), None)
            return
        PeerStore(store).record_round(peer.id, int(time.time()), report.lacked_here,
                                      report.lacked_there, fetched, error,
                                      completed=report.error is None)
    except StoreError as exc:
        log.warning("recon with %s: cannot record the round: %s", peer.peer, exc)


def dial(store: Store, peer: Peer, http_port: int,
         limits: Optional[pipeline.Limits] = None, source: str = "",
         cache: Optional[TreeCache] = None, share: RunShare = RunShare()) -> RoundReport:
    """Start a round with `peer` (we dial, so we answer), then fetch what we
    lack.  `source`: the address to dial from (the one we serve on, which the
    peer knows us by), unless it is empty or a wildcard; `cache`: the tree's
    nodes kept between rounds (cksd's); `share`: what cks_sync.py's run
    gives the fetch (keys_per_peer_run, seconds_per_run).  No
    round when one with `peer` is under way here (round_lock)."""
    with store.exclusive(round_lock(peer)) as ours:
        if not ours:
            return RoundReport(peer.peer, busy="a round with this peer is under way here")
        return _dial(store, peer, http_port, limits, source, cache, share)


def _dial(store: Store, peer: Peer, http_port: int, limits: Optional[pipeline.Limits],
          source: str, cache: Optional[TreeCache], share: RunShare) -> RoundReport:
    host = parse_hkp_peer(peer.peer)[0]
    try:
        sock = socket.create_connection((host, peer.recon_port or DEFAULT_RECON_PORT),
                                        timeout=CONNECT_TIMEOUT,
                                        source_address=source_address(source, host))
    except OSError as exc:
        report = RoundReport(peer.peer, error="cannot connect to %s port %d: %s" % (
            host, peer.recon_port or DEFAULT_RECON_PORT, exc.strerror or exc))
        _record(store, peer, report)
        return report
    return _round(store, peer, sock, http_port, host, False, limits or pipeline.Limits(),
                  cache, share)


Resolver = Callable[[str], Iterable[str]]


class Members:
    """The enabled recon peers by address: who may start a round on our recon
    port.  Resolved ahead of the connections (refresh(): ReconService runs it
    at start, every MEMBERS_REFRESH seconds and on SIGHUP), so a round waits
    for neither the peer list nor DNS, and neither does a refusal: until
    2026-12-05 each connection from an unknown address read and resolved the
    list again, a DNS query per connection of a flood.  A peer added,
    disabled or removed counts from the next refresh on (which a refused
    connection asks for: ReconService._refuse)."""

    def __init__(self, store: Store, resolver: Resolver = system_resolver) -> None:
        self.store = store
        self.resolver = resolver
        self._by_address: Dict[IPAddress, Peer] = {}

    def refresh(self, say: bool = False) -> None:
        """Read and resolve the peer list (StoreError when it cannot be read);
        a line in the log when who may start a round changed, or if `say`."""
        by_address: Dict[IPAddress, Peer] = {}
        for peer in recon_peers(self.store):
            host = peer_host(peer.peer)
            if host is None:
                continue
            try:
                addresses = addresses_of(host, self.resolver)
            except OSError as exc:
                log.warning("recon peer %s: cannot resolve %s: %s", peer.peer, host, exc)
                continue
            for ip in addresses:
                by_address.setdefault(ip, peer)
        before, self._by_address = self._by_address, by_address
        if say or _names(before) != _names(by_address):
            log.info("recon peers: %d may start rounds, from %d addresses",
                     len(set(_names(by_address).values())), len(by_address))

    def find(self, address: str) -> Optional[Peer]:
        """The enabled recon peer at `address`, if any."""
        wanted = ip_of(address)
        return None if wanted is None else self._by_address.get(wanted)


def _names(by_address: Dict[IPAddress, Peer]) -> Dict[IPAddress, str]:
    return {ip: peer.peer for ip, peer in by_address.items()}


def answer(store: Store, sock: socket.socket, address: str, peer: Peer, http_port: int,
           limits: Optional[pipeline.Limits] = None,
           cache: Optional[TreeCache] = None) -> RoundReport:
    """Serve a round `peer` started on our recon port from `address` (it
    dialed, so we request); the caller holds round_lock(peer)."""
    return _round(store, peer, sock, http_port, address, True, limits or pipeline.Limits(),
                  cache)


def recon_peers(store: Store) -> List[Peer]:
    return [p for p in PeerStore(store).list(enabled_only=True) if p.kind == "recon"]

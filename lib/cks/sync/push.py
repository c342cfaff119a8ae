"""Pushing to peers, as cks_sync.py does from cron (one pass over the chosen
peers) and cksd every `[sync] push_interval` seconds (RapidPush: each peer
on its own): the same lossless backlog either way (runner.py).  One process
at a time pushes to a peer (its lock, peer_lock); different peers may be
pushed to at once, so a peer that hangs holds up no other in cksd.  One
cks_sync.py run at a time (the `cks_sync` lock)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

from ..config import ConfigError, Settings
from ..repeated import RepeatedFailure
from ..store import Store, StoreError
from ..store.peers import PUSH_KINDS, Peer, PeerStore
from ..wording import counted
from .hkp_push import HKPClient
from .mail_out import MailPusher
from .mailconf import mail_settings
from .mta import transport_for
from .peername import parse_hkp_peer
from .runner import HKPPusher, PeerReport, PeerSync, Pusher, SyncLimits

SYNC_LOCK = "cks_sync"  # held by a cks_sync.py run

log = logging.getLogger("cks.sync")


def peer_lock(peer: Peer) -> str:
    """The lock held while `peer` is pushed to, by cks_sync.py or cksd."""
    return "cks_sync_peer_%d" % peer.id


def sync_limits(settings: Settings) -> SyncLimits:
    return SyncLimits(
        keys_per_request=settings.get_int("sync", "keys_per_request", 100, least=1),
        bytes_per_request=settings.get_int("sync", "bytes_per_request", 1 << 20, least=1),
        keys_per_peer_run=settings.get_int("sync", "keys_per_peer_run", 50_000, least=1),
        seconds_per_run=settings.get_float("sync", "seconds_per_run", 3000.0, more_than=0),
        timeout=settings.get_float("sync", "timeout", 30.0, more_than=0))


def pusher_for(peer: Peer, peers: PeerStore, settings: Settings, limits: SyncLimits) -> Pusher:
    """How keys reach `peer`; ConfigError for a kind of peer that takes no push."""
    if peer.kind == "hkp":
        host, port = parse_hkp_peer(peer.peer)
        return HKPPusher(HKPClient(host, port, limits.timeout, settings.node_name(),
                                   source=settings.get("server", "bind", "")))
    if peer.kind == "mail":
        conf = mail_settings(settings)
        return MailPusher(peer.peer, conf.address, transport_for(conf), peers.mail_addresses())
    raise ConfigError("peer %s: %s peers take no pushed keys" % (peer.peer, peer.kind))


def push_peer(store: Store, peers: PeerStore, peer: Peer, settings: Settings,
              limits: SyncLimits, deadline: float) -> Optional[PeerReport]:
    """Push what `peer` is owed, under its lock; None when another process
    holds that lock (it is pushing to the peer)."""
    with store.exclusive(peer_lock(peer)) as locked:
        if not locked:
            return None
        return PeerSync(store, peers, peer, pusher_for(peer, peers, settings, limits), limits,
                        deadline).run()


def in_turn(chosen: Sequence[Peer]) -> List[Peer]:
    """The order a run serves peers in, push and recon peers alike: first
    those whose last attempt did not fail, then those whose last attempt
    failed, each in the order given (sync_priority): a peer that takes
    requests and answers none costs a pass three timeouts (runner.py), and
    the others do not wait for it."""
    return sorted(chosen, key=lambda p: p.last_failed)


def push_in_run(store: Store, peers: PeerStore, peer: Peer, settings: Settings,
                limits: SyncLimits, deadline: float) -> PeerReport:
    """push_peer for a cks_sync.py run: a peer another process is pushing to
    is not served (`busy`)."""
    return push_peer(store, peers, peer, settings, limits, deadline) or \
        PeerReport(peer.peer, peer.kind, busy=True)


PUSHING_AT_ONCE = 8
"""At most this many peers pushed to at once by one serving process: each
holds its lock (on PostgreSQL a connection of its own) until its peer
answers or times out; peers past it wait for a later round."""
LONGEST_WAIT = 300.0
"""The longest a serving process waits before pushing again to a peer that
keeps failing (Backoff)."""


class Backoff:
    """When cksd may push again to a peer whose push failed: `interval` after
    the failed try began, twice as long after each failure in a row, up to
    `longest`, and at least as long as the peer asked (Retry-After, up to
    `longest` too); a push that works ends the wait.  A peer that is down or
    overloaded is not sent a request, and the log not a line, every round."""

    def __init__(self, interval: float, longest: float = LONGEST_WAIT) -> None:
        self.interval = interval
        self.longest = longest
        self.waits: Dict[int, Tuple[float, float]] = {}  # peer id -> (its wait, when it ends)
        self.lock = threading.Lock()  # the pushing threads report, the rounds ask

    def failed(self, peer_id: int, began: float, asked: float = 0.0) -> float:
        """A push that began at `began` (time.monotonic()) failed, and the
        peer asked for `asked` seconds: the wait before the next, which is
        returned."""
        with self.lock:
            last = self.waits.get(peer_id)
            doubled = 2 * last[0] if last else self.interval
            wait = min(self.longest, max(doubled, asked))
            self.waits[peer_id] = (wait, began + wait)
            return wait

    def succeeded(self, peer_id: int) -> None:
        with self.lock:
            self.waits.pop(peer_id, None)

    def waiting(self, peer_id: int, now: float) -> bool:
        with self.lock:
            return now < self.waits.get(peer_id, (0.0, 0.0))[1]


class RapidPush:
    """cksd's push job (a Periodic, every `[sync] push_interval` seconds):
    each round starts a thread for every enabled push peer that is owed keys,
    has none running in this process and is not waiting after a failure
    (Backoff; up to PUSHING_AT_ONCE in all, the peers started longest ago
    first), which pushes to that peer (push_peer).  A peer that hangs keeps
    only its own thread waiting: the keys of the others go out at the next
    round."""

    def __init__(self, store: Store, settings: Settings, limits: SyncLimits,
                 push_interval: float) -> None:
        self.store = store
        self.settings = settings
        self.limits = limits
        self.running: Dict[int, threading.Thread] = {}  # peer id -> its pushing thread
        self.started: Dict[int, float] = {}  # peer id -> when its last push began
        self.backoff = Backoff(push_interval)
        # (once, then every 10 minutes: until 2026-12-06 every round of every
        # serving process said it, some 43,000 lines a day at 2 s)
        self.failure = RepeatedFailure(log, "push pass not done", "push passes done again")

    def __call__(self) -> None:
        try:
            peers = PeerStore(self.store)
            owing = peers.owing()
            owed = [p for p in peers.list(enabled_only=True)
                    if p.kind in PUSH_KINDS and p.id in owing]
        except StoreError as exc:
            self.failure.failed(exc)
            return
        self.failure.succeeded()
        self.running = {i: t for i, t in self.running.items() if t.is_alive()}
        now = time.monotonic()
        for peer in sorted(owed, key=lambda p: self.started.get(p.id, 0.0)):
            if peer.id in self.running or self.backoff.waiting(peer.id, now):
                continue
            if len(self.running) >= PUSHING_AT_ONCE:
                return
            thread = threading.Thread(target=self._push, args=(peers, peer, now), daemon=True,
                                      name="push %s" % peer.peer)
            self.running[peer.id] = thread
            self.started[peer.id] = now
            thread.start()

    def _push(self, peers: PeerStore, peer: Peer, began: float) -> None:
        try:
            report = push_peer(self.store, peers, peer, self.settings, self.limits,
                               began + self.limits.seconds_per_run)
        except (ConfigError, StoreError) as exc:
            log.warning("push to %s not done: %s; next try in %g s", peer.peer, exc,
                        self.backoff.failed(peer.id, began))
            return
        if report is None:
            return  # (another process is pushing to it)
        if report.ok:
            self.backoff.succeeded(peer.id)
            log.info("pushed %s to %s", counted(report.sent, "key"), report.peer)
        else:
            log.warning("push to %s failed: %s; %s kept; next try in %g s",
                        report.peer, report.error, counted(report.backlog_left, "key"),
                        self.backoff.failed(peer.id, began, report.retry_after))

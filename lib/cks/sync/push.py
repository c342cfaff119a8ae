"""One push pass over chosen peers, as cks_sync.py runs it from cron and cksd
every `[sync] push_interval` seconds: the same lossless backlog either way
(runner.py), one process at a time (the database-wide `cks_sync` lock)."""

from __future__ import annotations

import time
from typing import Iterator, Sequence

from ..config import ConfigError, Settings
from ..store import Store
from ..store.peers import Peer, PeerStore
from .hkp_push import HKPClient
from .mail_out import MailPusher
from .mailconf import mail_settings
from .mta import transport_for
from .peername import parse_hkp_peer
from .runner import HKPPusher, PeerReport, PeerSync, Pusher, SyncLimits

SYNC_LOCK = "cks_sync"  # held by whoever pushes: cks_sync.py or cksd


def sync_limits(settings: Settings) -> SyncLimits:
    return SyncLimits(
        keys_per_request=settings.get_int("sync", "keys_per_request", 100),
        bytes_per_request=settings.get_int("sync", "bytes_per_request", 1 << 20),
        keys_per_peer_run=settings.get_int("sync", "keys_per_peer_run", 50_000),
        seconds_per_run=settings.get_float("sync", "seconds_per_run", 3000.0),
        timeout=settings.get_float("sync", "timeout", 30.0))


def pusher_for(peer: Peer, settings: Settings, limits: SyncLimits) -> Pusher:
    """How keys reach `peer`; ConfigError for a kind of peer that takes no push."""
    if peer.kind == "hkp":
        host, port = parse_hkp_peer(peer.peer)
        return HKPPusher(HKPClient(host, port, limits.timeout, settings.node_name()))
    if peer.kind == "mail":
        conf = mail_settings(settings)
        return MailPusher(peer.peer, conf.address, transport_for(conf))
    raise ConfigError("peer %s: %s peers take no pushed keys" % (peer.peer, peer.kind))


def push_peers(store: Store, peers: PeerStore, chosen: Sequence[Peer], settings: Settings,
               limits: SyncLimits) -> Iterator[PeerReport]:
    """Serve each chosen peer in turn (the caller holds SYNC_LOCK): first
    those whose last attempt did not fail, then those whose last attempt
    failed, each in the order given (sync_priority).  A peer that takes
    requests and answers none costs a pass three timeouts (runner.py); put
    last, it no longer delays the healthy peers' keys queued before the pass
    (cksd's rapid push runs one every few seconds)."""
    deadline = time.monotonic() + limits.seconds_per_run
    for peer in sorted(chosen, key=lambda p: p.last_failed):
        yield PeerSync(store, peers, peer, pusher_for(peer, settings, limits), limits,
                       deadline).run()

"""The addresses of the enabled peers, which the rate limits exempt.

They are resolved in a background thread, when cksd starts, every few minutes
after, and at once on SIGHUP, so a slow DNS never holds up a request and a
peer added with cks_sync_manage.py counts without a restart.
"""

from __future__ import annotations

import logging
import socket
from typing import Callable, FrozenSet, Iterable, List, Optional

from ..periodic import Periodic
from ..store import Store, StoreError
from ..store.peers import PeerStore
from ..sync.peername import PeerNameError, parse_hkp_peer
from .ratelimit import IPAddress, ip_of

log = logging.getLogger("cks.hkp")

ADDRESSED_KINDS = ("hkp", "recon")  # mail peers have no address
Resolver = Callable[[str], Iterable[str]]  # host -> its addresses; OSError if none


def peer_host(peer_name: str) -> Optional[str]:
    """The host of 'host:port' or '[v6addr]:port'; None for an e-mail address
    (a mail peer) or a name that is neither."""
    if "@" in peer_name:
        return None
    try:
        return parse_hkp_peer(peer_name)[0]
    except PeerNameError:
        return None


def system_resolver(host: str) -> List[str]:
    """The addresses of `host` (an IP literal is its own, without DNS)."""
    return [info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]


def addresses_of(host: str, resolver: Resolver = system_resolver) -> FrozenSet[IPAddress]:
    """The IP addresses `host` resolves to, IPv4-mapped ones as IPv4 (OSError
    when it does not resolve)."""
    return frozenset(ip for ip in map(ip_of, resolver(host)) if ip is not None)


def resolve_peers(peer_names: Iterable[str],
                  resolver: Resolver = system_resolver) -> FrozenSet[IPAddress]:
    """Every address of these peers; one that does not resolve is logged and
    left out, and the others still count."""
    found = set()
    for name in peer_names:
        host = peer_host(name)
        if host is None:
            log.warning("peer %s: not a host:port name; not exempt from rate limits", name)
            continue
        try:
            found.update(addresses_of(host, resolver))
        except OSError as exc:
            log.warning("peer %s: cannot resolve %s (%s); not exempt from rate limits "
                        "until it resolves", name, host, exc)
    return frozenset(found)


def enabled_peer_names(store: Store) -> List[str]:
    """The enabled peers that have an address (HKP and recon, not mail)."""
    return [p.peer for p in PeerStore(store).list(enabled_only=True)
            if p.kind in ADDRESSED_KINDS]


class PeerRefresher:
    """Resolves the peers now and every `interval` seconds in a daemon thread,
    handing each new set of addresses to `apply` (which swaps it in whole).
    `says_addresses`: log each new set (cksd's first serving process only:
    every process finds the same)."""

    def __init__(self, peer_names: Callable[[], Iterable[str]],
                 apply: Callable[[FrozenSet[IPAddress]], None], interval: float,
                 resolver: Resolver = system_resolver, says_addresses: bool = True) -> None:
        self.peer_names = peer_names
        self.apply = apply
        self.resolver = resolver
        self.says_addresses = says_addresses
        self._current: Optional[FrozenSet[IPAddress]] = None
        self._rounds = Periodic("peer-addresses", interval, self.refresh)

    def refresh(self) -> None:
        """One round: read the peer list, resolve it, apply the result.  When the
        database cannot be read, the addresses already applied stay."""
        try:
            names = list(self.peer_names())
        except StoreError as exc:
            log.warning("cannot read the peer list (%s); peer addresses not refreshed", exc)
            return
        addresses = resolve_peers(names, self.resolver)
        if addresses != self._current:
            if self.says_addresses:
                log.info("peer addresses exempt from rate limits: %s",
                         ", ".join(sorted(map(str, addresses))) or "none")
            self._current = addresses
        self.apply(addresses)

    def start(self) -> None:
        self._rounds.start()

    def refresh_now(self) -> None:
        """A round at once, in the refresher's thread (SIGHUP)."""
        self._rounds.run_now()

    def stop(self, timeout: float = 5.0) -> None:
        self._rounds.stop(timeout)

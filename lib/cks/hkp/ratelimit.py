"""Per-client rate limits (token buckets) and who the client is behind a proxy.

Every address comparison goes through `ip_of`, so an IPv4-mapped IPv6 address
(`::ffff:127.0.0.1`, what a dual-stack socket reports for an IPv4 client) is
the IPv4 address it maps: in trusted proxies, exempt lists and buckets alike.
An IPv6 client's bucket is its /64's (`bucket_of`).
"""

from __future__ import annotations

import functools
import ipaddress
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import FrozenSet, List, Optional, Sequence, Tuple, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# Trusted when [ratelimit] trusted_proxies is absent: a reverse proxy on this host.
DEFAULT_TRUSTED_PROXIES = "127.0.0.0/8, ::1"


@functools.lru_cache(maxsize=4096)  # every request asks, mostly about the same clients
def ip_of(address: str) -> Optional[IPAddress]:
    """The address `address` names, IPv4-mapped IPv6 as IPv4; None if it names none."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def bucket_of(address: str) -> str:
    """Whose rate limit `address` counts against: an IPv4 address its own, an
    IPv6 address its /64 (what one machine, a VPS, usually gets: one bucket
    per address was one machine unlimited, and its rotating addresses pushed
    everyone else's buckets out).  Only the buckets: exempt and peer
    addresses match single addresses, as configured."""
    ip = ip_of(address)
    if ip is None:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _unmapped(network: Network) -> Network:
    """`::ffff:10.0.0.0/104` as `10.0.0.0/8`, so it matches what ip_of returns."""
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def parse_networks(text: str) -> List[Network]:
    """'127.0.0.1, 10.0.0.0/8, ::1' -> networks; ValueError on a bad entry."""
    return [_unmapped(ipaddress.ip_network(item.strip(), strict=False))
            for item in text.replace(";", ",").split(",") if item.strip()]


def in_networks(address: str, networks: Sequence[Network]) -> bool:
    """Is `address` in one of `networks`?"""
    ip = ip_of(address)
    return ip is not None and any(ip in network for network in networks)


def is_loopback(address: str) -> bool:
    ip = ip_of(address)
    return ip is not None and ip.is_loopback


def is_operators_own(peer: str, forwarded_for: str) -> bool:
    """A loopback connection that names no other client: the operator's own
    scripts on this host, never limited (a local proxy says whom it forwards)."""
    return not forwarded_for.strip() and is_loopback(peer)


def client_address(peer: str, forwarded_for: str, trusted_proxies: Sequence[Network]) -> str:
    """The client's address: `peer`, unless `peer` is a trusted proxy; then the
    right-most X-Forwarded-For entry that is not itself a trusted proxy (the
    entries further left are whatever the client chose to send)."""
    if not forwarded_for or not in_networks(peer, trusted_proxies):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not in_networks(hop, trusted_proxies):
            return hop
    return peer


@dataclass
class Rate:
    per_second: float  # refill rate; 0 disables the limit
    burst: float  # bucket size: this many requests may come at once


class RateLimiter:
    """One token bucket per client (`bucket_of`: an IPv6 client's /64), for
    one kind of request.

    Memory is bounded: past `max_clients` buckets the least recently used
    ones are forgotten (a forgotten client starts with a full bucket).
    `exempt_addresses` (the peers' addresses) is replaced whole, from another
    thread, while requests are checked: never changed in place."""

    def __init__(self, rate: Rate, exempt: Sequence[Network] = (),
                 max_clients: int = 100_000) -> None:
        self.rate = rate
        self.exempt = list(exempt)
        self.exempt_addresses: FrozenSet[IPAddress] = frozenset()
        self.max_clients = max_clients
        self._buckets: "OrderedDict[str, Tuple[float, float]]" = OrderedDict()
        self._lock = threading.Lock()

    def exempts(self, client: str) -> bool:
        """Whether `client` is never limited: in an exempt network, or a peer."""
        ip = ip_of(client)
        return ip is not None and (ip in self.exempt_addresses
                                   or any(ip in network for network in self.exempt))

    def _unlimited(self, client: str) -> bool:
        return self.rate.per_second <= 0 or self.exempts(client)

    def check(self, client: str, now: Optional[float] = None) -> float:
        """0 when `client` may go on (a token is taken), else seconds to wait."""
        return self._bucket(client, now, take=True)

    def wait(self, client: str, now: Optional[float] = None) -> float:
        """What `check` would answer, taking no token: for a request that
        other limits may still refuse (admin.py's logins)."""
        return self._bucket(client, now, take=False)

    def charge(self, client: str, tokens: float, now: Optional[float] = None) -> bool:
        """Take `tokens` more from `client`'s bucket, below empty if need be:
        a request that turned out to cost more than the token `check` took
        (an upload's signature checks, upload_cost.py).  A bucket in debt
        answers `check` with the time it takes to fill up to one token
        again.  Whether the bucket is still out of debt (an exempt client's
        always is)."""
        if self._unlimited(client):
            return True
        key, now = bucket_of(client), time.monotonic() if now is None else now
        with self._lock:
            left = self._refilled(key, now) - tokens
            self._keep(key, left, now)
        return left >= 0

    def _bucket(self, client: str, now: Optional[float], take: bool) -> float:
        if self._unlimited(client):
            return 0.0
        key, now = bucket_of(client), time.monotonic() if now is None else now
        with self._lock:
            tokens = self._refilled(key, now)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate.per_second
            self._keep(key, tokens - 1 if take and not wait else tokens, now)
        return wait

    def _refilled(self, key: str, now: float) -> float:
        """The tokens in bucket `key` at `now` (the lock held)."""
        tokens, last = self._buckets.pop(key, (self.rate.burst, now))
        return min(self.rate.burst, tokens + (now - last) * self.rate.per_second)

    def _keep(self, key: str, tokens: float, now: float) -> None:
        """Bucket `key` holds `tokens` at `now`, the most recently used (the lock held)."""
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)

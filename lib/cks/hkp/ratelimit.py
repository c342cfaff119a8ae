"""Per-client rate limits (token buckets) and who the client is behind a proxy."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def parse_networks(text: str) -> List[Network]:
    """'127.0.0.1, 10.0.0.0/8, ::1' -> networks; ValueError on a bad entry."""
    return [ipaddress.ip_network(item.strip(), strict=False)
            for item in text.replace(";", ",").split(",") if item.strip()]


def _in(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str, forwarded_for: str, trusted_proxies: Sequence[Network]) -> str:
    """The client's address: `peer`, unless `peer` is a trusted proxy; then the
    right-most X-Forwarded-For entry that is not itself a trusted proxy (the
    entries further left are whatever the client chose to send)."""
    if not forwarded_for or not _in(peer, trusted_proxies):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _in(hop, trusted_proxies):
            return hop
    return peer


@dataclass
class Rate:
    per_second: float  # refill rate; 0 disables the limit
    burst: float  # bucket size: this many requests may come at once


class RateLimiter:
    """One token bucket per client address, for one kind of request.

    Memory is bounded: past `max_clients` buckets the least recently used
    ones are forgotten (a forgotten client starts with a full bucket)."""

    def __init__(self, rate: Rate, exempt: Sequence[Network] = (),
                 max_clients: int = 100_000) -> None:
        self.rate = rate
        self.exempt = list(exempt)
        self.max_clients = max_clients
        self._buckets: "OrderedDict[str, Tuple[float, float]]" = OrderedDict()
        self._lock = threading.Lock()

    def check(self, client: str, now: Optional[float] = None) -> float:
        """0 when `client` may go on (a token is taken), else seconds to wait."""
        if self.rate.per_second <= 0 or _in(client, self.exempt):
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.rate.burst, now))
            tokens = min(self.rate.burst, tokens + (now - last) * self.rate.per_second)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1 - tokens) / self.rate.per_second
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait

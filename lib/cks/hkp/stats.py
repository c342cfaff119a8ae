"""What op=stats reports (README "Server statistics"), as one JSON-ready
dict that the HTML page (stats_page.py) renders.

Most of it is read at every request: each figure costs an index lookup or a
small table.  The counts that read a whole index (keys by algorithm, keys
per day, user IDs: a second or two at a million keys) are kept for
KEPT_SECONDS per serving process.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from .. import __version__
from ..openpgp import algorithms as alg
from ..store.stats import KeyStatistics
from .html import date
from .rejections import AUDIT_PATH

if TYPE_CHECKING:  # pragma: no cover
    from .app import KeyServer

DAYS = 30  # of keys added and updated per day
RECENT_NOTICES = 20
KEPT_SECONDS = 600.0
"""(60 until 2026-12-07: at a million keys the counts take 0.7 to 2.3 s, and
each serving process spent some 2 to 4% of a core on them.)"""


def key_type(algorithm: int, bits: int) -> str:
    """A short name as GnuPG prints it: rsa4096, dsa2048, ed25519, ...; the
    elliptic curves of ECDSA and ECDH keys other than Curve25519 are not
    among the indexed columns: ecdsa256, ecdh384."""
    if algorithm == alg.EDDSA_LEGACY:
        return {255: "ed25519", 448: "ed448"}.get(bits, "eddsa%d" % bits)
    if algorithm == alg.ECDH:
        return {255: "cv25519", 448: "cv448"}.get(bits, "ecdh%d" % bits)
    if algorithm == alg.ECDSA:
        return "ecdsa%d" % bits
    return alg.algorithm_name(algorithm, bits)


class Statistics:
    """op=stats's report for one serving process (KeyServer.statistics)."""

    def __init__(self, kept_seconds: float = KEPT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kept_seconds = kept_seconds
        self.clock = clock
        self._kept: Optional[Tuple[float, int, KeyStatistics]] = None  # made, now, counts
        self._lock = threading.Lock()

    def report(self, app: "KeyServer", now: Optional[int] = None) -> Dict[str, Any]:
        now = int(time.time()) if now is None else now
        store, settings = app.lookup_store, app.settings
        counts = store.stats(now)
        counted_at, keys = self._key_statistics(app, now)
        notices = store.notice_log(RECENT_NOTICES)
        return {
            "taken_at": now,
            "server": {"software": "CKS", "version": __version__,
                       "hostname": settings.hostname, "nodename": settings.identity.node,
                       "contact": settings.contact or None, "port": settings.port,
                       "recon_port": settings.recon_port,
                       "database": app.store.backend.name,
                       "max_upload_bytes": settings.max_upload_bytes,
                       "max_results": settings.max_results},
            "keys": {"total": counts["keys"], "new_24h": counts["new_keys_24h"],
                     "updated_24h": counts["updated_keys_24h"],
                     "rejected": counts["rejected_keys"], "user_ids": keys.user_ids,
                     "by_type": _by_type(keys), "per_day": [
                         {"date": date(d.day), "added": d.added, "updated": d.updated}
                         for d in keys.days],
                     "counted_at": counted_at},
            "sync": {"pending": counts["pending_sync"]},
            "peers": store.peers_summary(),
            "rejections": {
                "key": settings.identity.key, "audit": AUDIT_PATH,
                "notice_counts": notices.counts,
                "notices": [{"serial": n.serial, "action": n.action,
                             "fingerprint": n.fingerprint, "reason": n.reason,
                             "time": n.notice_time, "node": n.node, "status": n.status,
                             "direction": "sent" if n.origin == "local" else "received",
                             "received_at": n.received_at} for n in notices.notices]},
        }

    def _key_statistics(self, app: "KeyServer", now: int) -> Tuple[int, KeyStatistics]:
        """The index-wide counts and when they were counted: kept for
        `kept_seconds`; one request counts while the others wait for it."""
        with self._lock:
            kept = self._kept
            if kept is None or self.clock() - kept[0] >= self.kept_seconds:
                kept = self._kept = (self.clock(), now,
                                     app.lookup_store.key_statistics(DAYS, now))
            return kept[1], kept[2]


def _by_type(keys: KeyStatistics) -> List[Dict[str, Any]]:
    """Keys per type name, most first (legacy and native Ed25519 keys are
    both ed25519)."""
    counts: Dict[str, int] = {}
    for algorithm, bits, count in keys.key_types:
        name = key_type(algorithm, bits)
        counts[name] = counts.get(name, 0) + count
    return [{"type": name, "keys": count}
            for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]

"""The key pipeline: one path for every source (DESIGN.md).

bytes -> armor -> packets -> keys -> policy (limits, rejected list) -> merge
with the stored key -> key row + index rows + SKS hash + pending-sync entry,
in ONE transaction per key.  HKP add, HKP sync, mail sync, recon and bulk
load differ only in the Source they pass: user and operator input is queued
for the peers, what peers send is not (so nothing travels in a loop).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import List, Optional

from .openpgp.info import describe
from .openpgp.keys import Key, Problem, merge, merge_all, parse_keyring, read_keys
from .store import Store

log = logging.getLogger("cks.pipeline")

ADDED, UPDATED, UNCHANGED, REFUSED = "added", "updated", "unchanged", "refused"
# Why a key was refused:
REJECTED, OVER_LIMIT = "rejected", "over-limit"


@dataclass(frozen=True)
class Source:
    """Where key material came from: `tag` is stored with the key."""

    tag: str  # "user", "admin", "hkp-sync:PEER", "mail:ADDRESS", "recon:PEER"
    queue_for_sync: bool

    @classmethod
    def user(cls) -> "Source":
        return cls("user", True)

    @classmethod
    def admin(cls, queue: bool = True) -> "Source":
        return cls("admin", queue)

    @classmethod
    def peer(cls, kind: str, name: str) -> "Source":
        return cls("%s:%s" % (kind, name), False)


@dataclass
class Limits:
    """Policy limits; what is over one is refused whole, never half stored."""

    max_key_bytes: int = 8 << 20
    max_packets_per_key: int = 50_000


@dataclass
class Outcome:
    fingerprint: str
    status: str  # added, updated, unchanged, refused
    reason: str = ""
    refusal: str = ""  # for refused keys: REJECTED or OVER_LIMIT


@dataclass
class Report:
    outcomes: List[Outcome] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)

    def with_status(self, status: str) -> List[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def stored(self) -> List[Outcome]:
        return [o for o in self.outcomes if o.status != REFUSED]


def submit(store: Store, data: bytes, source: Source, limits: Optional[Limits] = None,
           binary: bool = False) -> Report:
    """Parse `data` (armored or binary; `binary` skips armor detection) and store
    every usable key in it."""
    result = parse_keyring(data) if binary else read_keys(data)
    report = Report(problems=list(result.problems))
    for key in merge_all(result.keys):
        report.outcomes.append(store_key(store, key, source, limits or Limits()))
    return report


def store_key(store: Store, key: Key, source: Source, limits: Limits,
              now: Optional[int] = None) -> Outcome:
    """Merge one key into the database, in one transaction."""
    fingerprint = key.fingerprint.hex().upper()
    refusal = _over_limits(key, limits)
    if refusal:
        return Outcome(fingerprint, REFUSED, refusal, OVER_LIMIT)
    now = int(time.time()) if now is None else now
    with store.write([fingerprint]) as cursor:
        reason = store.rejection_reason(cursor, fingerprint)
        if reason is not None:
            return Outcome(fingerprint, REFUSED, "key is rejected on this server: %s" % reason,
                           REJECTED)
        stored = store.load_keydata(cursor, fingerprint)
        first_seen = None
        merged = key
        if stored is not None:
            old_bytes, first_seen = stored
            old = parse_keyring(old_bytes).keys
            if old and old[0].primary.body == key.primary.body:
                merged = merge(old[0], key)
            data = merged.serialize()
            if data == old_bytes:
                return Outcome(fingerprint, UNCHANGED)
            refusal = _over_limits(merged, limits)
            if refusal:
                return Outcome(fingerprint, REFUSED, "merged key " + refusal, OVER_LIMIT)
        else:
            data = merged.serialize()
        store.save_key(cursor, describe(merged), data, source.tag, first_seen, now)
        if source.queue_for_sync:
            store.queue_sync(cursor, fingerprint, source.tag, now)
    status = ADDED if stored is None else UPDATED
    log.debug("%s key %s (from %s)", status, fingerprint, source.tag)
    return Outcome(fingerprint, status)


def _over_limits(key: Key, limits: Limits) -> str:
    packets = key.packets()
    if len(packets) > limits.max_packets_per_key:
        return "has %d packets, over this server's limit of %d" % (
            len(packets), limits.max_packets_per_key)
    size = sum(len(p.body) for p in packets)
    if size > limits.max_key_bytes:
        return "is %d bytes, over this server's limit of %d" % (size, limits.max_key_bytes)
    return ""

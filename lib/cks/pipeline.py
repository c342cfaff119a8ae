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
from typing import List, Optional, Sequence, Tuple

from .openpgp.keys import Key, Problem, merge, merge_all, parse_keyring, read_keys
from .openpgp.packet import TAG_SIGNATURE
from .served import ServePolicy, third_party_issuers
from .store import Store
from .views import KEYS_PER_TRANSACTION, follow_signers, save_views

log = logging.getLogger("cks.pipeline")

ADDED, UPDATED, UNCHANGED, REFUSED = "added", "updated", "unchanged", "refused"
# Why a key was refused:
REJECTED, OVER_LIMIT = "rejected", "over-limit"


@dataclass(frozen=True)
class Source:
    """Where key material came from: `tag` is stored with the key.

    `queue_for_sync` queues what changed for every push peer; `forward_to`
    queues it for the named peers only (a mail peer forwarding like pks).
    """

    tag: str  # "user", "admin", "hkp-sync:PEER", "mail:ADDRESS", "recon:PEER"
    queue_for_sync: bool
    forward_to: Tuple[str, ...] = ()

    @classmethod
    def user(cls) -> "Source":
        return cls("user", True)

    @classmethod
    def admin(cls, queue: bool = True) -> "Source":
        return cls("admin", queue)

    @classmethod
    def peer(cls, kind: str, name: str, forward_to: Sequence[str] = ()) -> "Source":
        return cls("%s:%s" % (kind, name), False, tuple(forward_to))


@dataclass
class Limits:
    """Policy: limits (what is over one is refused whole, never half stored)
    and what is served of the keys that are stored."""

    max_key_bytes: int = 8 << 20
    max_packets_per_key: int = 60_000
    max_signatures_per_key: int = 50_000
    max_packet_bytes: int = 1 << 20
    serve: ServePolicy = field(default_factory=ServePolicy)


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
           binary: bool = False, follow: bool = True) -> Report:
    """Parse `data` (armored or binary; `binary` skips armor detection) and store
    every usable key in it (see store_keys for `follow`)."""
    result = parse_keyring(data) if binary else read_keys(data)
    report = Report(problems=list(result.problems))
    report.outcomes = store_keys(store, merge_all(result.keys), source, limits or Limits(),
                                 follow=follow)
    return report


def store_keys(store: Store, keys: List[Key], source: Source, limits: Limits,
               now: Optional[int] = None, follow: bool = True) -> List[Outcome]:
    """Merge keys into the database, up to KEYS_PER_TRANSACTION per transaction.

    Each key's change commits together with its pending-sync entry; the keys of
    one transaction are locked (in fingerprint order) for its duration.  The
    served views of other keys that depend on the keys stored follow before
    this returns (views.follow_signers), unless `follow` is false: cksd leaves
    that to its background job, which takes the work of many uploads at once
    (a key certified by each of a hundred keys uploaded one by one is derived
    again a few times, not a hundred).
    """
    now = int(time.time()) if now is None else now
    outcomes: List[Outcome] = []
    for start in range(0, len(keys), KEYS_PER_TRANSACTION):
        chunk = keys[start:start + KEYS_PER_TRANSACTION]
        results: List[Optional[Outcome]] = []
        for key in chunk:
            refusal = _over_limits(key, limits)
            results.append(Outcome(key.fingerprint.hex().upper(), REFUSED, refusal, OVER_LIMIT)
                           if refusal else None)
        todo = [key for key, result in zip(chunk, results) if result is None]
        if todo:
            with store.write([k.fingerprint.hex().upper() for k in todo]) as cursor:
                merged = iter([_merge_one(store, cursor, key, source, limits, now)
                               for key in todo])
            results = [result or next(merged) for result in results]
        outcomes.extend(results)
    for outcome in outcomes:
        log.debug("%s key %s (from %s)", outcome.status, outcome.fingerprint, source.tag)
    if follow and any(o.status in (ADDED, UPDATED) for o in outcomes):
        follow_signers(store, limits.serve)
    return outcomes


def _merge_one(store: Store, cursor, key: Key, source: Source, limits: Limits,
               now: int) -> Outcome:
    """Merge one key with its stored copy, inside the caller's transaction."""
    fingerprint = key.fingerprint.hex().upper()
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
    _, missing = save_views(store, cursor, merged, data, limits.serve, source.tag, first_seen,
                            now)
    store.save_signers(cursor, fingerprint, third_party_issuers(merged))
    if stored is None or missing:
        # The keys it signed follow once it is committed; so does this key, if a
        # signer it lacks was being stored at the same time.
        store.queue_view_work(cursor, fingerprint, merged.keyid.hex().upper(),
                              signed=stored is None, missing=missing)
    if source.queue_for_sync or source.forward_to:
        store.queue_sync(cursor, fingerprint, source.tag, now, source.forward_to or None)
    return Outcome(fingerprint, ADDED if stored is None else UPDATED)


def _over_limits(key: Key, limits: Limits) -> str:
    packets = key.packets()
    largest = max(len(p.body) for p in packets)
    if largest > limits.max_packet_bytes:
        return "has a packet of %d bytes, over this server's limit of %d" % (
            largest, limits.max_packet_bytes)
    if len(packets) > limits.max_packets_per_key:
        return "has %d packets, over this server's limit of %d" % (
            len(packets), limits.max_packets_per_key)
    signatures = sum(1 for p in packets if p.tag == TAG_SIGNATURE)
    if signatures > limits.max_signatures_per_key:
        return "has %d signatures, over this server's limit of %d" % (
            signatures, limits.max_signatures_per_key)
    size = sum(len(p.body) for p in packets)
    if size > limits.max_key_bytes:
        return "is %d bytes, over this server's limit of %d" % (size, limits.max_key_bytes)
    return ""

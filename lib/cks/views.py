"""Served views: deriving them, and keeping them in step with their signers.

A key's served view depends on other keys: the certifiers whose signatures
are served once verified, and the designated revokers whose revocations are
verified (see served.py).  So that the order in which keys arrive never
changes what is served, storing or deleting a key queues work in the same
transaction (cks_view_work), and `follow_signers` does it after the commit:
the keys a newly stored (or deleted) key signed are derived again, and so is
a key stored while one of its signers was on its way in another transaction.
Every program that stores keys calls it, one process at a time
(FOLLOW_LOCK); cksd also runs it every few seconds, for work a crash or a
process that gave up waiting left behind.  cksd's uploads store a new key
without its served view, and its own work item derives it here
(pipeline.store_keys's `defer_views`, hkp/views_owed.py).  Nothing is lost:
a work item leaves the queue only after the views it names were derived
again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, List, Optional, Sequence, Set, Tuple

from .openpgp.cryptocheck import CryptoCheck
from .openpgp.info import KeyInfo, describe
from .openpgp.keypacket import PublicKey
from .openpgp.keys import Key, parse_keyring
from .openpgp.packet import TAG_PUBLIC_KEY, TAG_PUBLIC_SUBKEY, iter_packets, read_packet
from .openpgp.verify import Verdict
from .runs import in_runs
from .served import ServePolicy, ServedView, served_view, third_party_issuers
from .store import Store
from .store.rows import ServedState, StoredKey
from .store.sql import Cursor

log = logging.getLogger("cks.views")

KEYS_PER_TRANSACTION = 200

Verdicts = Dict[bytes, Tuple[str, bool, str]]
"""Cached verdicts on a key's signatures (cryptocheck.cache_key -> status,
weak hash, reason), as the database keeps them."""


@dataclass
class DerivedView:
    """A key's served view as derived, before it is written."""

    served: bytes
    info: KeyInfo
    new_verdicts: Dict[bytes, Tuple[str, bool, str]]  # not in the verdict cache yet
    missing: List[str]  # key IDs of signers it needs that are not held here


def wanted_signers(key: Key, policy: ServePolicy) -> List[str]:
    """Key IDs (hex) of the other keys whose primary keys `key`'s served view needs."""
    wanted = third_party_issuers(key) if policy.certifications == "verified" else \
        {e.sig.issuer_keyid for e in key.key_sigs if e.sig.issuer_keyid}
    return sorted(k.hex().upper() for k in wanted if k != key.keyid)


def derive_view(key: Key, policy: ServePolicy, known: Verdicts,
                issuers: Dict[str, List[PublicKey]]) -> DerivedView:
    """The served view of `key` given the cached verdicts `known` and the held
    primary keys of its wanted signers (key ID hex -> keys); no database."""
    served, new_verdicts = _checked(key, policy, known, issuers)
    info = describe(served.key, network=key, unverified=served.unverified)
    return DerivedView(served.key.serialize(), info, new_verdicts,
                       [k for k in wanted_signers(key, policy) if not issuers.get(k)])


def _checked(key: Key, policy: ServePolicy, known: Verdicts,
             issuers: Dict[str, List[PublicKey]]) -> Tuple[ServedView, Verdicts]:
    """derive_view's signature checks: the served view, and the verdicts
    that were not in `known`."""
    cache = {slot: Verdict(*verdict) for slot, verdict in known.items()}
    by_keyid = {bytes.fromhex(keyid): keys for keyid, keys in issuers.items()}
    served = served_view(key, CryptoCheck(cache), policy, lambda keyid: by_keyid.get(keyid, ()))
    return served, {slot: (v.status, v.weak_hash, v.reason) for slot, v in cache.items()
                    if slot not in known}


def write_view(store: Store, cursor: Cursor, fingerprint: str, keydata: bytes,
               view: DerivedView, source_tag: Optional[str], first_seen: Optional[int], now: int,
               served_states: Optional[Dict[str, ServedState]] = None) -> bool:
    """Write a derived view (see save_views for `source_tag` None: the stored
    network view `keydata` stays as it is); returns whether the key row was
    written.  `served_states`: Store.served_states() of the keys a caller
    writes, read at once (else read here, for this key)."""
    changed, network = True, keydata
    if source_tag is None:
        if served_states is None:
            served_states = store.served_states(cursor, [fingerprint])
        current = served_states.get(fingerprint)
        changed = current is not None and (
            current.served, current.revoked, current.unverified_revocation) != (
            view.served, view.info.revoked, view.info.revocation_unverified)
        source_tag, network = (current.source if current else ""), None
    if changed:
        store.save_key(cursor, view.info, network, view.served, source_tag, first_seen, now)
    store.save_verdicts(cursor, fingerprint, view.new_verdicts)
    return changed


def save_views(store: Store, cursor: Cursor, key: Key, keydata: bytes, policy: ServePolicy,
               source_tag: Optional[str], first_seen: Optional[int],
               now: int, checked: Optional[Verdicts] = None) -> Tuple[bool, List[str]]:
    """Store `key` (the network's view) with its served view and index rows;
    with `source_tag` None, only when what is served changed (and the key's
    source stays).  Returns whether anything was written, and the key IDs of
    the signers it needs that are not held here.

    Signature verdicts come from, and go back to, the database: each
    signature is verified once.  `checked`: verdicts found before the
    transaction (checked_before_writing), written with the others."""
    fingerprint = key.fingerprint.hex().upper()
    known = stored_verdicts(store, cursor, fingerprint, first_seen)
    fresh = {slot: verdict for slot, verdict in (checked or {}).items() if slot not in known}
    view = derive_view(key, policy, {**known, **fresh},
                       held_primaries(store, cursor, wanted_signers(key, policy)))
    view.new_verdicts.update(fresh)
    return write_view(store, cursor, fingerprint, keydata, view, source_tag, first_seen, now), \
        view.missing


def checked_before_writing(store: Store, keys: Dict[str, Key],
                           policy: ServePolicy) -> Dict[str, Verdicts]:
    """fingerprint -> verdicts on the signatures of the served views of
    `keys` (keys held already, merged with what is being stored: save_views
    will derive their views in the write transaction), checked before that
    transaction.

    On SQLite that transaction holds the database's one write lock: one key
    with 10,000 made-up self-signatures (a DSA check each, 1.2 MB) held
    every other writer up for 9 s.  A verdict depends on nothing but what it
    is about (cryptocheck.cache_key), so those found here hold whatever the
    transaction then reads; it checks only what a writer added meanwhile."""
    if not keys:
        return {}
    with store.read() as cursor:
        known = store.load_verdicts_of(cursor, sorted(keys))
        wanted = {fingerprint: wanted_signers(key, policy) for fingerprint, key in keys.items()}
        issuers = held_primaries(store, cursor, sorted({keyid for keyids in wanted.values()
                                                        for keyid in keyids}))
    return {fingerprint: _checked(key, policy, known.get(fingerprint, {}), {
        keyid: issuers[keyid] for keyid in wanted[fingerprint] if keyid in issuers})[1]
        for fingerprint, key in keys.items()}


def stored_verdicts(store: Store, cursor: Cursor, fingerprint: str,
                    first_seen: Optional[int]) -> Dict[bytes, Tuple[str, bool, str]]:
    """The cached verdicts on a key's signatures; a key not stored yet
    (`first_seen` None) has none, and no query is made for it."""
    return store.load_verdicts(cursor, fingerprint) if first_seen is not None else {}


def held_primaries(store: Store, cursor: Cursor,
                   keyids: Sequence[str]) -> Dict[str, List[PublicKey]]:
    """Key ID hex -> the primary keys of the stored keys that have it."""
    return parse_primaries(store.primary_keys_by_keyid(cursor, keyids))


def parse_primaries(packets: Dict[str, List[bytes]]) -> Dict[str, List[PublicKey]]:
    """Store.primary_keys_by_keyid's packets, parsed."""
    return {keyid: [_primary_of(blob) for blob in blobs] for keyid, blobs in packets.items()}


def signers_digest(wanted: Sequence[str], held: Dict[str, List[bytes]]) -> bytes:
    """A digest of the primary key packets held for the signers a key
    wanted (`held`: Store.primary_keys_by_keyid's answer, or more): a view
    derived when it was one value is out of date when it is another (a
    signer stored or deleted since).  Written over by a writer who read the
    held signers before this one's follow-up ran, such a view would stay
    out of date; a digest is what a bulk load's workers send back, not the
    packets (a key certified by dozens of keys would carry all of them)."""
    digest = hashlib.blake2b(digest_size=16)
    for keyid in wanted:
        digest.update(keyid.encode("ascii"))
        for packet in sorted(held.get(keyid, ())):
            digest.update(len(packet).to_bytes(4, "big") + packet)
    return digest.digest()


def signers_moved(store: Store, cursor: Cursor,
                  derived_with: Dict[str, Tuple[Sequence[str], bytes]]) -> Set[str]:
    """The keys (fingerprint -> (the signers its view wanted, signers_digest
    when it was derived)) whose wanted signers' held primary keys are no
    longer those its view was derived with."""
    held = store.primary_keys_by_keyid(
        cursor, sorted({keyid for wanted, _ in derived_with.values() for keyid in wanted}))
    return {fingerprint for fingerprint, (wanted, digest) in derived_with.items()
            if signers_digest(wanted, held) != digest}


def reverify(store: Store, policy: ServePolicy,
             fingerprints: Optional[Sequence[str]] = None, queued: bool = False) -> int:
    """Derive the served view of stored keys (all, or the given ones) again,
    e.g. after the [policy] changed.  Returns how many served views changed.
    `queued`: the keys' work stays queued (cks_view_work) until a later
    commit, so a write that a crash loses is done again, and need not wait
    for the disk (Store.write's `flush`): on SQLite a flush holds the one
    write lock every upload waits for.

    The signature checks are made outside any write transaction: a run of
    keys is read and derived, then written in a short transaction, but for
    a key found changed since it was read (see _derive_again).  (On SQLite a
    write transaction holds the database's one write lock, which every
    upload waits for: derived inside it, 200 keys held uploads up for a
    quarter of a second and more.)"""
    if fingerprints is None:
        fingerprints = [fingerprint for fingerprint, _ in store.iter_keydata()]
    changed = 0
    for start in range(0, len(fingerprints), KEYS_PER_TRANSACTION):
        chunk = fingerprints[start:start + KEYS_PER_TRANSACTION]
        if len(chunk) == 1:  # (one run whatever its size: no read of the sizes)
            changed += _derive_again(store, chunk, policy, queued)
            continue
        with store.read() as cursor:
            sizes = store.keydata_sizes(cursor, chunk)
        for part in in_runs([(f, sizes[f]) for f in chunk if f in sizes], PARSED_BYTES):
            changed += _derive_again(store, part, policy, queued)
    return changed


PARSED_BYTES = 1 << 20
"""reverify reads and parses at most this much stored key data at a time (a
parsed key and its derived view take several times its size in memory, and
a flooded key is megabytes; every thread that derives views holds a run:
with 4 MiB runs read 200 keys at a time, the serving processes of three
nodes syncing the Debian keyring grew to 120-300 MB)."""


def _derive_again(store: Store, fingerprints: List[str], policy: ServePolicy,
                  queued: bool) -> int:
    """reverify's work on a run of stored keys: derived from what a read
    finds, and written where that is still what the database holds, the
    key and the keys of the signers it names.  A key found changed is left
    as it is: what changed it committed its served view with it (an update
    of a key derives it in its transaction) or queued the work that derives
    it again (a signer stored or deleted, cks_view_work), which follow_signers
    does after this run, if it was not done already before this write; either
    way from a later state of the database than this run's."""
    with store.read() as cursor:
        part = list(store.stored_keys(cursor, fingerprints).items())
        derived = _derived(store, cursor, part, policy)
    if not derived.views:
        return 0  # (none stored still, or none derived: nothing to write)
    with store.write(fingerprints, flush=not queued) as cursor:
        states = store.served_states(cursor, fingerprints)  # (a key deleted meanwhile: none)
        unchanged = {fingerprint for fingerprint, stored in part
                     if fingerprint in states and states[fingerprint].sks_hash == stored.sks_hash}
        return _write(store, cursor, derived, states, unchanged - signers_moved(store, cursor, {
            fingerprint: derived.derived_with[fingerprint]
            for fingerprint in unchanged.intersection(derived.derived_with)}))


def _write(store: Store, cursor: Cursor, derived: _Derived, states: Dict[str, ServedState],
           fingerprints: Set[str]) -> int:
    """Write the derived views of the keys among `fingerprints` (`states`:
    Store.served_states of them, read in this transaction); returns how
    many changed what is served."""
    writing = sorted(fingerprints.intersection(derived.views))
    now = int(time.time())
    changed = 0
    for fingerprint in writing:
        stored, view = derived.views[fingerprint]
        changed += write_view(store, cursor, fingerprint, stored.keydata, view, None,
                              stored.first_seen, now, states)
    return changed


@dataclass
class _Derived:
    """Served views derived for a run of keys, and what they were derived
    from besides the keys and the verdicts: the signers each key wanted
    (key IDs), and the digest of the primary key packets held for them then
    (see signers_moved)."""

    views: Dict[str, Tuple[StoredKey, DerivedView]]
    derived_with: Dict[str, Tuple[List[str], bytes]]


def _derived(store: Store, cursor: Cursor, part: List[Tuple[str, StoredKey]],
             policy: ServePolicy) -> _Derived:
    """The served views of stored keys; what they need is read for all of
    them at once (on PostgreSQL each query is a round trip)."""
    keys = {fingerprint: (stored, found[0]) for fingerprint, stored in part
            for found in [parse_keyring(stored.keydata).keys] if found}
    verdicts = store.load_verdicts_of(cursor, sorted(keys))
    wanted = {fingerprint: wanted_signers(key, policy) for fingerprint, (_, key) in keys.items()}
    held = store.primary_keys_by_keyid(
        cursor, sorted({keyid for keyids in wanted.values() for keyid in keyids}))
    issuers = parse_primaries(held)
    derived = _Derived({}, {})
    for fingerprint, (stored, key) in keys.items():
        try:
            view = derive_view(key, policy, verdicts.get(fingerprint, {}), {
                keyid: issuers[keyid] for keyid in wanted[fingerprint] if keyid in issuers})
        except Exception:  # noqa: BLE001 - one key's bug must not stop every other's view
            log.exception("served view of key %s not derived (kept as it was); "
                          "please report this as a bug", fingerprint)
            continue
        derived.views[fingerprint] = stored, view
        derived.derived_with[fingerprint] = \
            wanted[fingerprint], signers_digest(wanted[fingerprint], held)
    return derived


def serve_new_keys(store: Store, policy: ServePolicy, batch: int = 500) -> int:
    """Derive the served views of the keys stored without one that have work
    queued (an upload's new key, pipeline.store_keys's `defer_views`): what
    makes such a key found.  The rest of each work item (the keys it signed)
    is left queued for follow_signers, which may take long where keys carry
    thousands of certifications.  Only the work queued when it starts (what
    an answered upload queued was queued before): under a stream of uploads
    new work can come as fast as it is done, and a lookup that chased it
    would be answered only once the uploads paused.  Returns how many served
    views changed."""
    changed, after = 0, 0
    with store.read() as cursor:
        last = store.last_view_work(cursor)
    while True:
        with store.read() as cursor:
            work = store.view_work(cursor, batch, after, through=last)
            if not work:
                return changed
            targets = {i.fingerprint for i in work if i.signed and i.unserved}
        if targets:
            changed += reverify(store, policy, sorted(targets), queued=True)
        after = work[-1].id


ID_KINDS = ("fingerprint", "keyid", "short_keyid")
"""The searches (request.Query's kinds) a new key can be told apart by
without its served view: its key packets name them."""


def key_ids(keydata: bytes) -> FrozenSet[Tuple[str, str]]:
    """(kind, value) of every ID_KINDS search that finds this key: its
    primary key's and its subkeys' fingerprints and key IDs, in hex, as
    the store indexes them.  Only the key packets are parsed."""
    ids: Set[Tuple[str, str]] = set()
    for packet in iter_packets(keydata):
        if packet.tag in (TAG_PUBLIC_KEY, TAG_PUBLIC_SUBKEY):
            public = PublicKey.parse(packet.body)
            keyid = public.keyid.hex().upper()
            ids.update((("fingerprint", public.fingerprint.hex().upper()),
                        ("keyid", keyid), ("short_keyid", keyid[-8:])))
    return frozenset(ids)


class NewKeyIds:
    """The ID_KINDS searches that find each key stored without its served
    view (an answered upload's), read from its key packets once a process:
    a lookup by key ID or fingerprint derives the views of those it finds
    (serve_new_keys_with_id) instead of every one owed."""

    def __init__(self) -> None:
        self._ids: Dict[Tuple[str, str], FrozenSet[Tuple[str, str]]] = {}

    def read(self, store: Store) -> Dict[str, FrozenSet[Tuple[str, str]]]:
        """fingerprint -> the (kind, value) searches that find it, for each
        new key now."""
        with store.read() as cursor:
            new = store.new_keys(cursor)
            unread = [f for f, h in new.items() if (f, h) not in self._ids]
            known = {(f, h): self._ids[(f, h)] for f, h in new.items() if (f, h) in self._ids}
            for fingerprint, stored in store.stored_keys(cursor, unread).items():
                try:
                    known[(fingerprint, stored.sks_hash)] = key_ids(stored.keydata)
                except Exception:  # noqa: BLE001 - stored as read, so a bug: found by none
                    log.exception("key IDs of key %s not read; please report this as a bug",
                                  fingerprint)
                    known[(fingerprint, stored.sks_hash)] = frozenset()
        self._ids = known  # (the keys served since are forgotten)
        return {fingerprint: ids for (fingerprint, _), ids in known.items()}


def serve_new_keys_with_id(store: Store, policy: ServePolicy, new_ids: NewKeyIds, kind: str,
                           value: str, signers: bool = False) -> bool:
    """serve_new_keys for the new keys a search by key ID or fingerprint
    finds, and those alone; with `signers`, also for the new keys among
    the signers of every key it finds (a key page names them, from their
    own served views).  Returns whether they were all the new keys queued
    when it began (so that what serve_new_keys would do is done)."""
    new = new_ids.read(store)
    wanted = {(kind, value)}
    if signers and new:
        found = {f for f, ids in new.items() if (kind, value) in ids}
        found.update(store.find_by_id(kind, value, SIGNED_KEYS_READ))
        with store.read() as cursor:
            wanted.update(("keyid", keyid) for keyid in store.signer_keyids(cursor, found))
    targets = sorted(f for f, ids in new.items() if not wanted.isdisjoint(ids))
    if targets:
        reverify(store, policy, targets, queued=True)
    return len(targets) == len(new)


SIGNED_KEYS_READ = 100
"""serve_new_keys_with_id reads the signers of this many held keys a search
finds at most (a short key ID can name many)."""


FOLLOW_LOCK = "cks_follow_signers"
FOLLOW_WAIT_SECONDS = 120.0
"""How long follow_signers waits by default for another process working
off the queue (it does the work queued before it began, then lets go)."""


def follow_signers(store: Store, policy: ServePolicy, batch: int = 500,
                   rederive: Optional[Callable[[List[str]], int]] = None,
                   settled: Optional[Callable[[Cursor, Set[str]], Set[str]]] = None,
                   wait: float = FOLLOW_WAIT_SECONDS) -> int:
    """Work off the queue of served views to derive (see the module notes):
    the work queued when it is called.  Returns how many served views it
    changed.

    One process at a time does it, under a database-wide lock (FOLLOW_LOCK):
    one that finds it held waits up to `wait` seconds (cksd's background
    job, which comes again, waits none), then does what the holder left of
    that work, or leaves it queued (logged).  Until 2026-12-06 every caller
    read the queue's first items unclaimed, and 40 mails at once derived the
    same keys 18 times over.  A lock, rather than claiming items in the
    transactions that write their views: an item names many keys whose
    views are written in several transactions, a key is named by many
    items, and a claim that a crash left would need a lease to expire; the
    lock goes with the process that dies (a lock file's flock, a PostgreSQL
    session), and an item still leaves the queue only after its views were
    derived again, so a crash loses none.  The work queued when it is
    called, not the queue's end: a process does not chase what others go on
    queueing (each does its own), and the MTA waits for a mail no longer
    than for the mails before it.

    `rederive` derives the given keys again (default: reverify, here);
    `settled` tells which of the given keys had their views derived with each
    other held (a bulk load's second phase, loadprogress.served_together):
    what one of them signed among them is not derived again."""
    with store.read() as cursor:
        through = store.last_view_work(cursor)
    if not through:
        return 0
    with store.exclusive(FOLLOW_LOCK, wait) as ours:
        if ours:
            return _work_off(store, policy, batch, through, rederive, settled)
    if wait:
        log.info("served views: another process still derives them after %g s; "
                 "the rest stays queued, for cksd's background job or the next run", wait)
    return 0


def _work_off(store: Store, policy: ServePolicy, batch: int, through: int,
              rederive: Optional[Callable[[List[str]], int]],
              settled: Optional[Callable[[Cursor, Set[str]], Set[str]]]) -> int:
    """follow_signers's work, with the lock held: the items up to `through`."""
    rederive = rederive or (lambda fingerprints: reverify(store, policy, fingerprints,
                                                          queued=True))
    changed = 0
    while True:
        with store.read() as cursor:
            work = store.view_work(cursor, batch, through=through)
            if not work:
                return changed
            signed_by = store.signed_by(cursor, [i.keyid for i in work if i.signed])
            held = store.held_keyids(cursor, [k for i in work for k in i.missing.split()])
            together = settled(cursor, {i.fingerprint for i in work if i.signed}.union(
                *signed_by.values())) if settled else set()
            # Keys an upload stored without their served views (store_keys's defer_views).
            targets = {i.fingerprint for i in work if i.signed and i.unserved}
            for item in work:
                if item.signed:
                    signed = signed_by.get(item.keyid, set())
                    targets.update(signed - together if item.fingerprint in together else signed)
                if held.intersection(item.missing.split()):
                    targets.add(item.fingerprint)
        changed += rederive(sorted(targets))
        store.view_work_done([item.id for item in work])
        if changed:
            log.debug("served views derived again: %d changed", changed)


def _primary_of(keydata: bytes) -> PublicKey:
    return PublicKey.parse(read_packet(keydata)[0].body)

"""The key pipeline: one path for every source.

bytes -> armor -> packets -> keys -> policy (limits, rejected list) -> merge
with the stored key -> key row + index rows + SKS hash + pending-sync entry,
in ONE transaction per key.  HKP add, HKP sync, mail sync, recon and bulk
load differ only in the Source they pass: user and operator input is queued
for the peers, what peers send is not (so nothing travels in a loop).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from .openpgp.cryptocheck import CryptoCheck
from .openpgp.keys import Key, Problem, SignaturePacket, merge, merge_all, parse_keyring, \
    read_armored, read_keys, sks_hash
from .openpgp.served_form import served_form
from .openpgp.signature import KEY_REVOCATION
from .served import ServePolicy, served_view, third_party_issuers
from .store import Store
from .store.rows import NetworkView
from .store.sql import Cursor
from .views import (KEYS_PER_TRANSACTION, Verdicts, checked_before_writing, follow_signers,
                    save_views)

log = logging.getLogger("cks.pipeline")

ADDED, UPDATED, UNCHANGED, REFUSED = "added", "updated", "unchanged", "refused"
# Why a key was refused:
REJECTED, OVER_LIMIT, CONFLICT = "rejected", "over-limit", "conflict"


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
    max_self_signatures_per_key: int = 1_000
    """Signatures a key's own served view checks, whoever holds the key (see
    own_checks): each costs a check of up to 2 ms (DSA at 4096 bits), where a
    made-up one is about 124 bytes.  The Debian keyring's keys have 70 at
    most."""
    max_packet_bytes: int = 1 << 20
    serve: ServePolicy = field(default_factory=ServePolicy)


@dataclass
class Outcome:
    fingerprint: str
    status: str  # added, updated, unchanged, refused
    reason: str = ""
    refusal: str = ""  # for refused keys: REJECTED, OVER_LIMIT or CONFLICT
    # For keys written (new_checks): the checks their new signatures cost whatever
    # keys are held, and the key IDs of the issuers of their new certifications.
    own_checks: int = 0
    certifiers: List[str] = field(default_factory=list)
    view_queued: bool = False  # unchanged, but stored unserved: its view is queued (serve_held)


@dataclass
class Report:
    outcomes: List[Outcome] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)

    def with_status(self, status: str) -> List[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def stored(self) -> List[Outcome]:
        return [o for o in self.outcomes if o.status != REFUSED]

    @property
    def views_queued(self) -> bool:
        """Whether a key's served view was left to follow the write (with
        store_keys's `defer_views`): a new key's, or an unchanged one's that a
        bulk load stored without it (serve_held)."""
        return any(o.status == ADDED or o.view_queued for o in self.outcomes)


def submit(store: Store, data: bytes, source: Source, limits: Optional[Limits] = None,
           binary: bool = False, follow: bool = True, defer_views: bool = False,
           armored: bool = False) -> Report:
    """Parse `data` (armored or binary, told apart by its first byte; `binary`:
    binary data, `armored`: text, only its armor blocks read) and store every
    usable key in it (see store_keys for `follow` and `defer_views`)."""
    limits = limits or Limits()
    most = limits.max_packets_per_key + 1  # (one more tells a key over the limit)
    read = parse_keyring if binary else read_armored if armored else read_keys
    result = read(data, max_packets=most)
    report = Report(problems=list(result.problems))
    report.outcomes = store_keys(store, merge_all(result.keys), source, limits,
                                 follow=follow, defer_views=defer_views)
    return report


def store_keys(store: Store, keys: List[Key], source: Source, limits: Limits,
               now: Optional[int] = None, follow: bool = True,
               defer_views: bool = False) -> List[Outcome]:
    """Merge keys into the database, up to KEYS_PER_TRANSACTION per transaction.

    Each key's change commits together with its pending-sync entry; the keys of
    one transaction are locked (in fingerprint order) for its duration.  The
    served views of other keys that depend on the keys stored follow before
    this returns (views.follow_signers), unless `follow` is false: cksd leaves
    that to its background job, which takes the work of many uploads at once
    (a key certified by each of a hundred keys uploaded one by one is derived
    again a few times, not a hundred).  With `defer_views`, a key not stored
    before is written as its network view alone (no lookup finds it yet) and
    its served view, the signature checks, is left to follow_signers too
    (cksd's uploads: the answer does not wait for what it does not tell).
    """
    now = int(time.time()) if now is None else now
    outcomes: List[Outcome] = []
    for start in range(0, len(keys), KEYS_PER_TRANSACTION):
        chunk = keys[start:start + KEYS_PER_TRANSACTION]
        results: List[Optional[Outcome]] = []
        for key in chunk:
            refusal = over_limits(key, limits)
            results.append(Outcome(key.fingerprint.hex().upper(), REFUSED, refusal, OVER_LIMIT)
                           if refusal else None)
        todo = [key for key, result in zip(chunk, results) if result is None]
        if todo:
            merged = iter(_merged_in_one_transaction(store, todo, source, limits, now,
                                                     defer_views))
            results = [result or next(merged) for result in results]
        outcomes.extend(results)
    for outcome in outcomes:
        log.debug("%s key %s (from %s)", outcome.status, outcome.fingerprint, source.tag)
    if follow and any(o.status in (ADDED, UPDATED) or o.view_queued for o in outcomes):
        follow_signers(store, limits.serve)
    return outcomes


class _ChecksFirst(Exception):
    """A key held already changes: its signatures are to be checked before
    the transaction (views.checked_before_writing), which starts again."""


def _merged_in_one_transaction(store: Store, keys: List[Key], source: Source, limits: Limits,
                               now: int, defer_views: bool) -> List[Outcome]:
    """merge_one for each of `keys`, in one transaction.  Where one of them
    changes a key held already, its served view is derived in the
    transaction: the signature checks of all of them are made before it
    first, and it runs again (an upload of a new key costs no read more)."""
    checked: Optional[Dict[str, Verdicts]] = None
    while True:
        try:
            with store.write([k.fingerprint.hex().upper() for k in keys]) as cursor:
                return [merge_one(store, cursor, key, source, limits, now, defer_views,
                                  None if checked is None
                                  else checked.get(key.fingerprint.hex().upper(), {}))
                        for key in keys]
        except _ChecksFirst:
            checked = checked_before_writing(store, _changing_held_keys(store, keys, limits),
                                             limits.serve)


def _changing_held_keys(store: Store, keys: List[Key], limits: Limits) -> Dict[str, Key]:
    """fingerprint -> the union with its stored copy, of those of `keys` that
    change a key held already (merge_stored, as merge_one will)."""
    changing: Dict[str, Key] = {}
    with store.read() as cursor:
        stored = store.stored_keys(cursor, [k.fingerprint.hex().upper() for k in keys])
        for key in keys:
            fingerprint = key.fingerprint.hex().upper()
            if fingerprint in stored:
                merged = merge_stored(key, stored[fingerprint].keydata, limits,
                                      served_reader(store, cursor, fingerprint))
                if merged.outcome is None:
                    changing[fingerprint] = merged.key
    return changing


def merge_one(store: Store, cursor: Cursor, key: Key, source: Source, limits: Limits,
              now: int, defer_views: bool = False, checked: Optional[Verdicts] = None
              ) -> Outcome:
    """Merge one key with its stored copy, inside the caller's transaction
    (see store_keys for `defer_views`).  `checked`: verdicts found before it
    (views.checked_before_writing); None when none were sought, and a key
    held already that changes then raises _ChecksFirst (see
    _merged_in_one_transaction); {} to check them all here."""
    fingerprint = key.fingerprint.hex().upper()
    reason, stored = store.merge_state(cursor, fingerprint)
    if reason is not None:
        return rejected(fingerprint, reason)
    merged = merge_stored(key, stored[0] if stored else None, limits,
                          served_reader(store, cursor, fingerprint))
    if merged.outcome is not None:
        if merged.outcome.status == UNCHANGED and stored and not stored[2]:
            return serve_held(store, cursor, merged.key, source, now)
        return merged.outcome
    if stored and checked is None:
        raise _ChecksFirst(fingerprint)
    if defer_views and not stored:
        store.save_network_view(cursor, NetworkView(merged.key.public_key, merged.data,
                                                    sks_hash(merged.key).hex().upper()),
                                source.tag, now)
        # Its own work item derives its served view, then the views of the keys it signed.
        missing: Sequence[str] = ()
    else:
        first_seen = stored[1] if stored else None
        _, missing = save_views(store, cursor, merged.key, merged.data, limits.serve,
                                source.tag, first_seen, now, checked)
    outcome = record_signers(store, cursor, fingerprint, merged.key.keyid.hex().upper(),
                             third_party_issuers(merged.key), stored is None, missing, source,
                             now)
    outcome.reason = merged.note
    outcome.own_checks, outcome.certifiers = new_checks(merged.key, merged.old, limits.serve)
    return outcome


def serve_held(store: Store, cursor: Cursor, key: Key, source: Source, now: int) -> Outcome:
    """An unchanged copy of a key stored without its served view (a bulk
    load's first phase, the load interrupted or still running): its signers
    and its view's work are queued as a new key's are (store_keys's
    `defer_views`), so the follow-up serves it, and it is queued for the
    peers, as the load would have; the outcome says unchanged.  The load's
    second phase takes a key served meanwhile as it is.  Until 2026-12-06
    nothing was queued: the key stayed unfound until the load ran again."""
    outcome = record_signers(store, cursor, key.fingerprint.hex().upper(),
                             key.keyid.hex().upper(), third_party_issuers(key), True, (),
                             source, now)
    return replace(outcome, status=UNCHANGED, view_queued=True)


def rejected(fingerprint: str, reason: str) -> Outcome:
    return Outcome(fingerprint, REFUSED, "key is rejected on this server: %s" % reason,
                   REJECTED)


@dataclass
class Merged:
    """A key merged with its stored copy: what to write, or (`outcome` set)
    why nothing is written (unchanged, or the union is over a limit)."""

    key: Key
    data: bytes
    outcome: Optional[Outcome] = None
    note: str = ""  # what the answer says of a key written (let go of what is not served)
    old: Optional[Key] = None  # the stored copy, parsed (None: not stored)


def merge_stored(key: Key, old_bytes: Optional[bytes], limits: Limits,
                 served: Callable[[], bytes] = bytes) -> Merged:
    """The union of `key` and its stored copy `old_bytes` (None: not stored).

    A stored key whose primary key packet differs is not replaced: the key is
    refused (CONFLICT).  Two packets share a v3 fingerprint where they share
    the RSA numbers (it hashes nothing else), so a copy with another creation
    time would otherwise take a stored v3 key's place, its revocation gone.

    Where the union is over a limit, what the key's owner signed of `key`
    (verified: its served view with no other key held) is merged with the
    stored copy instead, when that is within the limits and brings
    something: what others added in this upload is left out; else with the
    stored copy's served view (`served` reads it; b"": none), when that is
    within them: what others added to the stored copy and is not served
    (certifications past what is served, made-up signatures, user IDs
    nobody signed) is let go.  Until 2026-12-06 such a key was refused, and
    anyone could keep its owner's revocation out: a stranger's 50,000
    certifications, or 8 MB of user IDs, froze the stored copy for good.
    (For a few hours that day an upload was merged with the served view
    whoever sent it: two uploads of unsigned user IDs let go of a key's
    certifications by keys not held yet.)"""
    merged = key
    if old_bytes is not None:
        fingerprint = key.fingerprint.hex().upper()
        old = parse_keyring(old_bytes).keys
        if old and old[0].primary.body != key.primary.body:
            return Merged(key, b"", Outcome(
                fingerprint, REFUSED, "another key with this fingerprint is held here "
                "(its primary key packet differs)", CONFLICT))
        if old:
            merged = merge(old[0], key)
        data = merged.serialize()
        if data == old_bytes:
            return Merged(merged, data, Outcome(fingerprint, UNCHANGED))
        refusal = over_limits(merged, limits)
        if refusal:
            update = _owners_update(key, old[0], served, limits) if old else None
            return update or Merged(
                merged, data, Outcome(fingerprint, REFUSED, "merged key " + refusal, OVER_LIMIT))
        return Merged(merged, data, old=old[0] if old else None)
    return Merged(merged, merged.serialize())


LEFT_OUT = "what others added in this upload was left out: with it the key was over this " \
    "server's limits"
LET_GO = "what others added to the copy held here and is not served was let go: with it " \
    "the key was over this server's limits"


def _owners_update(key: Key, old: Key, served: Callable[[], bytes],
                   limits: Limits) -> Optional[Merged]:
    """What `key`'s owner signed of it, merged with `old` (its stored copy)
    or else with old's served view (read by `served`); None when the owner
    signed nothing `old` lacks, or both unions are over a limit too."""
    own = served_view(key, CryptoCheck(), replace(limits.serve, certifications="none")).key
    merged = merge(old, own)
    if merged.serialize() == old.serialize():
        return None
    note = LEFT_OUT
    if over_limits(merged, limits):
        held = parse_keyring(served()).keys
        merged, note = (merge(held[0], own) if held else merged), LET_GO
        if over_limits(merged, limits):
            return None
    log.info("key %s: %s", key.fingerprint.hex().upper(), note)
    return Merged(merged, merged.serialize(), note=note, old=old)


def served_reader(store: Store, cursor: Cursor, fingerprint: str) -> Callable[[], bytes]:
    """What reads a stored key's served view for merge_stored (b"": none)."""
    def read() -> bytes:
        state = store.served_states(cursor, [fingerprint]).get(fingerprint)
        return state.served if state is not None else b""
    return read


def own_checks(key: Key) -> int:
    """The signatures that the served view of `key` checks whatever keys are
    held: those naming the key itself as issuer, and revocations of the
    key by another (a designated revoker's).  Third-party certifications
    are bounded when served (ServePolicy.max_certification_checks)."""
    return sum(1 for entry, direct in _signatures_where(key) if _is_own(key, entry, direct))


def own_signatures(key: Key) -> int:
    """The signatures own_checks counts, each byte-variant of one once
    (openpgp/served_form.py): anyone's copies of a self-signature with
    another unhashed area verify as it does, and until 2026-12-07 a
    thousand of them, counted apart, froze a key at the limit, its owner's
    revocation refused (a review found it)."""
    forms = set()
    for entry, direct in _signatures_where(key):
        if _is_own(key, entry, direct):
            form = served_form(entry.sig)
            if form is not None:
                forms.add(entry.packet.body if form is entry.sig else form.serialize())
    return len(forms)


def _is_own(key: Key, entry: SignaturePacket, direct: bool) -> bool:
    """Whether a signature of `key` is checked whatever keys are held (own_checks)."""
    return key.is_self_issued(entry.sig) or direct and entry.sig.sig_type == KEY_REVOCATION


def new_checks(key: Key, old: Optional[Key], policy: ServePolicy) -> Tuple[int, List[str]]:
    """What the signatures of `key` that its stored copy `old` lacks may cost
    its served view (an upload's cost, hkp/upload_cost.py): the checks of
    its own (as own_checks counts them), and the key IDs of the issuers of
    its certifications by other keys, one a certification, `policy`
    max_certification_checks of them at most (only those by keys held here
    are checked)."""
    known = {entry.packet.body for entry, _ in _signatures_where(old)} if old else set()
    own, certifiers = 0, []
    for entry, direct in _signatures_where(key):
        if entry.packet.body in known:
            continue
        if _is_own(key, entry, direct):
            own += 1
        elif entry.sig.issuer_keyid is not None:
            certifiers.append(entry.sig.issuer_keyid.hex().upper())
    return own, certifiers[:policy.max_certification_checks]


def _signatures_where(key: Key) -> Iterator[Tuple[SignaturePacket, bool]]:
    """Each signature of `key`, and whether it is a direct one (on the key)."""
    yield from ((entry, True) for entry in key.direct_sigs)
    for component in key.identities + key.subkeys:
        yield from ((entry, False) for entry in component.sigs)


def record_signers(store: Store, cursor: Cursor, fingerprint: str, keyid: str, signers: Set[bytes],
                   added: bool, missing: Sequence[str], source: Source, now: int) -> Outcome:
    """What goes with a key just written: who signed it (`signers`, key IDs),
    the served views that must follow it, and the peers' queue."""
    store.save_signers(cursor, fingerprint, signers)
    if added or missing:
        # The keys it signed follow once it is committed; so does this key, if a
        # signer it lacks was being stored at the same time.
        store.queue_view_work(cursor, fingerprint, keyid, signed=added, missing=missing)
    queue_for_peers(store, cursor, fingerprint, source, now)
    return Outcome(fingerprint, ADDED if added else UPDATED)


def queue_for_peers(store: Store, cursor: Cursor, fingerprint: str, source: Source,
                    now: int) -> None:
    """Queue a key just written for the push peers, if its source asks for that."""
    if source.queue_for_sync or source.forward_to:
        store.queue_sync(cursor, fingerprint, source.tag, now, source.forward_to or None)


def over_limits(key: Key, limits: Limits) -> str:
    """Why `key` is over a limit (a phrase after "key ..."), or '' when it is not."""
    packets = key.packets()
    if len(packets) + key.skipped > limits.max_packets_per_key:
        return "has %d packets, over this server's limit of %d" % (
            len(packets) + key.skipped, limits.max_packets_per_key)
    sizes = [len(p.body) for p in packets]
    largest = max(sizes)
    if largest > limits.max_packet_bytes:
        return "has a packet of %d bytes, over this server's limit of %d" % (
            largest, limits.max_packet_bytes)
    # (every packet but the primary key and its components is a signature)
    signatures = len(packets) - 1 - len(key.identities) - len(key.subkeys) \
        - len(key.unread_components)
    if signatures > limits.max_signatures_per_key:
        return "has %d signatures, over this server's limit of %d" % (
            signatures, limits.max_signatures_per_key)
    if signatures > limits.max_self_signatures_per_key:  # (else no need to count them)
        own = own_signatures(key)
        if own > limits.max_self_signatures_per_key:
            return "has %d self-signatures and revocations, over this server's limit of %d" % (
                own, limits.max_self_signatures_per_key)
    size = sum(sizes)
    if size > limits.max_key_bytes:
        return "is %d bytes, over this server's limit of %d" % (size, limits.max_key_bytes)
    return ""

"""What a worker process of a bulk load does with a key: parse it, apply the
limits and the rejected list, merge it with the stored copy and derive its
served view (the signature checks: the expensive part, one key per core).
A key not stored yet gets no served view in the load's first phase: it is
written as its network view, and the second phase derives its view with
every key of the load held (load.py).

Workers only read the database (each has its own connection), a group of
keys at a time: the stored copies, rejections and signature verdicts of the
whole group in a few queries (on PostgreSQL each is a round trip); the parent
writes what they return, in one transaction per batch, after checking that
the stored copy they merged with is still the stored one.  The keys of the
batch count as held for each other's served views (`Group.primaries`, whose
key material the parent did not parse), as they will be once the batch is
committed.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

from .. import pipeline
from ..openpgp.errors import PacketError
from ..openpgp.keypacket import PublicKey
from ..openpgp.keys import Key, merge_all, parse_keyring, sks_hash
from ..served import third_party_issuers
from ..store import Store, open_store
from ..store.rows import StoredKey
from ..store.sql import Cursor
from ..views import DerivedView, derive_view, parse_primaries, signers_digest, wanted_signers


@dataclass
class Task:
    """One key: the copies read from the input (`chunks`, with where each
    was read, `labels`), or none: derive the stored key's view again."""

    fingerprint: str  # '' when its primary key packet could not be read
    chunks: List[bytes] = field(default_factory=list)
    labels: List[str] = field(default_factory=list)


Primaries = Dict[str, List[Tuple[str, bytes]]]  # key ID hex -> (fingerprint, packet body)


@dataclass
class Group:
    """Tasks sent to a worker at once, and the primary keys of the batch."""

    tasks: List[Task]
    primaries: Primaries


@dataclass
class Result:
    fingerprint: str
    problems: List[str] = field(default_factory=list)
    outcome: Optional[pipeline.Outcome] = None  # set: nothing to write
    keydata: bytes = b""  # the network's view to write
    keyid: str = ""
    signers: Set[bytes] = field(default_factory=set)
    stored_hash: Optional[str] = None  # of the stored copy it was merged with
    first_seen: Optional[int] = None
    view: Optional[DerivedView] = None
    wanted: List[str] = field(default_factory=list)
    signers_digest: bytes = b""  # of the wanted signers held then (views.signers_digest)
    primary: Optional[PublicKey] = None  # set: a new key, written without its view
    sks_hash: str = ""  # of keydata, when `primary` is set
    # Other keys read with the same (v3) fingerprint and another primary key
    # packet: refused, as an upload refuses them (Worker.parse).
    conflicts: List[pipeline.Outcome] = field(default_factory=list)

    @property
    def writes(self) -> bool:
        """A served view was derived: the key is written with it."""
        return self.view is not None

    @property
    def stores(self) -> bool:
        """The key is written (with its served view, or its network view alone)."""
        return self.view is not None or self.primary is not None


class Stopped(Exception):
    """The load stops (its StopFlag is set): keys it was given are left undone."""


class StopFlag:
    """Set by the loading process, read by its workers (forked with it): a
    bool in shared memory.  Setting it takes no lock, so a signal handler
    may: one taking a lock that the code it interrupted held would wait for
    ever."""

    def __init__(self) -> None:
        self._value = multiprocessing.get_context("fork").RawValue(ctypes.c_bool, False)

    def set(self) -> None:
        self._value.value = True

    def is_set(self) -> bool:
        return self._value.value


class _Worker:
    def __init__(self, store: Store, limits: pipeline.Limits,
                 stop: Optional[StopFlag] = None) -> None:
        self.store = store
        self.limits = limits
        self.stop = stop

    def group(self, group: Group) -> List[Result]:
        """The group's keys, read from the database with a few queries for
        all of them (not several per key: each is a round trip to a server)."""
        with self.store.read() as cursor:
            fingerprints = [t.fingerprint for t in group.tasks if t.fingerprint]
            known = _Known(self.store.rejection_reasons(cursor, fingerprints),
                           self.store.stored_keys(cursor, fingerprints))
            known.verdicts = self.store.load_verdicts_of(cursor, list(known.stored))
            return [self.task(cursor, task, group.primaries, known)
                    for task in self.until_stopped(group.tasks)]

    def until_stopped(self, tasks: List[Task]) -> Iterator[Task]:
        for task in tasks:
            if self.stop is not None and self.stop.is_set():
                raise Stopped("the load stops")
            yield task

    def task(self, cursor: Cursor, task: Task, primaries: Primaries,
             known: "_Known") -> Result:
        fingerprint = task.fingerprint
        reason, stored = known.rejected.get(fingerprint), known.stored.get(fingerprint)
        result = Result(fingerprint, first_seen=stored.first_seen if stored else None,
                        stored_hash=stored.sks_hash if stored else None)
        if task.chunks:
            key = self.parse(task, result, stored.keydata if stored else None)
            if key is None:
                return result
            refusal = pipeline.over_limits(key, self.limits)
            if refusal:
                result.outcome = pipeline.Outcome(fingerprint, pipeline.REFUSED, refusal,
                                                  pipeline.OVER_LIMIT)
            elif reason is not None:
                result.outcome = pipeline.rejected(fingerprint, reason)
            if result.outcome is not None:
                return result
            merged = pipeline.merge_stored(key, stored.keydata if stored else None,
                                           self.limits)
            result.outcome = merged.outcome
            key, result.keydata = merged.key, merged.data
        elif stored is not None:
            result.keydata = stored.keydata
            key = parse_keyring(stored.keydata).keys[0]
        else:
            return result  # deleted meanwhile
        if result.outcome is None and stored is None:
            result.primary = key.public_key
            result.sks_hash = sks_hash(key).hex().upper()
        elif result.outcome is None:
            self.derive(cursor, key, result, primaries, known)
        return result

    @staticmethod
    def parse(task: Task, result: Result, stored: Optional[bytes]) -> Optional[Key]:
        """The copies read, merged; what was wrong with them goes to `result`.
        Copies of another primary key packet under the same fingerprint (v3
        keys: it hashes the RSA numbers alone) are not merged: the one the
        stored key (`stored`) has is taken, else the first read, and the
        others are refused as conflicts (result.conflicts).  Until 2026-12-06
        they were dropped without a word, the stored key's own copy too."""
        keys: List[Key] = []
        for chunk, label in zip(task.chunks, task.labels):
            read = parse_keyring(chunk)
            result.problems.extend("%s: %s" % (label, problem) for problem in read.problems)
            keys.extend(read.keys)
        keys = [k for k in merge_all(keys) if k.fingerprint.hex().upper() == task.fingerprint]
        if len(keys) > 1:
            held = parse_keyring(stored).keys[:1] if stored else []
            keys.sort(key=lambda k: not held or k.primary.body != held[0].primary.body)
            result.conflicts = [pipeline.Outcome(
                task.fingerprint, pipeline.REFUSED, "another key with this fingerprint is "
                "read with it (its primary key packet differs)", pipeline.CONFLICT)
                for _ in keys[1:]]
        return keys[0] if keys else None

    def derive(self, cursor: Cursor, key: Key, result: Result, primaries: Primaries,
               known: "_Known") -> None:
        wanted = wanted_signers(key, self.limits.serve)
        lacking = [k for k in wanted if k not in known.packets]
        stored = self.store.primary_keys_by_keyid(cursor, lacking)
        read = {k: stored.get(k, []) for k in lacking}
        known.packets.update(read)
        known.issuers.update(parse_primaries(read))
        held = {}
        for keyid in wanted:
            keys = {k.fingerprint: k for k in known.issuers[keyid]}
            for fingerprint, body in primaries.get(keyid, ()):
                if bytes.fromhex(fingerprint) not in keys:
                    try:
                        keys[bytes.fromhex(fingerprint)] = PublicKey.parse(body)
                    except PacketError:  # the key is unusable: its worker reports it
                        pass
            held[keyid] = list(keys.values())
        result.view = derive_view(key, self.limits.serve,
                                  known.verdicts.get(result.fingerprint, {}), held)
        result.keyid = key.keyid.hex().upper()
        result.signers = third_party_issuers(key)
        result.wanted = wanted
        result.signers_digest = signers_digest(wanted, known.packets)


@dataclass
class _Known:
    """What a worker read for a group at once (_Worker.group), and the signers'
    primary keys it read so far (key ID hex -> keys), and as stored."""

    rejected: Dict[str, str]
    stored: Dict[str, StoredKey]
    verdicts: Dict[str, Dict[bytes, Tuple[str, bool, str]]] = field(default_factory=dict)
    issuers: Dict[str, List[PublicKey]] = field(default_factory=dict)
    packets: Dict[str, List[bytes]] = field(default_factory=dict)


_worker: Optional[_Worker] = None


def start_worker(db_url: str, limits: pipeline.Limits,
                 stop: Optional[StopFlag] = None) -> None:
    """Pool initializer: each worker process opens its own connection.  Once
    `stop` is set, it leaves the keys it has not begun (Stopped)."""
    global _worker
    _worker = _Worker(open_store(db_url, 1), limits, stop)


def start_pool_worker(db_url: str, limits: pipeline.Limits, stop: StopFlag) -> None:
    """start_worker for a worker process (workers.py), which ignores SIGINT:
    Ctrl-C on a terminal reaches the whole process group, and the loading
    process alone decides what comes of it (Loader.stop); a worker
    interrupted would print a traceback.  SIGTERM ends it at once, as by
    default, not as the handler of the loading process it inherits would
    (systemd and timeout send it to every process of the load: the loading
    process stops as for SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    start_worker(db_url, limits, stop)


def derive_group(group: Group) -> List[Result]:
    """The pool's function (see start_worker)."""
    assert _worker is not None, "start_worker was not called in this process"
    return _worker.group(group)


def primaries_of(entries: Sequence[Tuple[str, str, bytes]],
                 leave_out: Set[str] = frozenset()) -> Dict[str, List[Tuple[str, bytes]]]:
    """Group.primaries from (fingerprint, key ID, body) entries, without the
    fingerprints in `leave_out`."""
    out: Dict[str, List[Tuple[str, bytes]]] = {}
    for fingerprint, keyid, body in entries:
        if fingerprint not in leave_out:
            out.setdefault(keyid, []).append((fingerprint, body))
    return out

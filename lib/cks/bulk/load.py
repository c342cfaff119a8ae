"""`cks_admin.py load`: streaming, batched, parallel and resumable, in two
phases: the network view, then the served views.

Phase 1.  Input files are cut into keys as they are read (split.py).  Every
`batch_size` keys, worker processes (one per core) parse, check and merge
them (derive.py) and the parent writes the batch in ONE transaction with each
file's offset reached (cks_load_progress) and what was found in it up to
there (cks_load_counts, cks_load_problems), so a load killed at any point
goes on after the last committed batch when run again, and the run that
completes it reports the whole load.  Problem lines are reported as they
are found.  A key not stored before is
written as its network view alone (its row with its SKS hash, in the recon
tree: what recon and op=hget need) and no served view (Store.UNSERVED): no
lookup finds it yet.  A key stored before is merged and written with its new
served view at once, as the upload pipeline does.

Phase 2.  The keys stored without a served view (this load's and any an
interrupted load left) get theirs, `batch_size` at a time in fingerprint
order, derived on every core with every key of the load held, and written
with their index rows; they are served from then on.  Then the served views
of keys stored before the load that the new keys signed are derived again
(views.follow_signers, by the workers too), so the end result is the one
pipeline.submit gives whatever the order of the input.  What a key served in
phase 2 signed among the others served in phase 2 is not derived again:
each was derived with all of them held.  Those keys are listed in the
database (cks_load_served, written with their served views), not in memory,
so the loading process's memory does not grow with the input; one load runs
at a time per database (the "load" lock), as that list is the running load's.

Last, the database is tidied (Store.tidy_after_bulk_write; on PostgreSQL
VACUUM (ANALYZE), which autovacuum would do later), so that it reads as
one that has served a while does.

Overlap.  In both phases the parent sends a batch to the workers before it
writes the one before, so the cores verify while the database writes (and,
in phase 1, while the parent reads the input).  A batch is derived from the
database as it was before the previous batch was committed; what that
previous batch changes is caught as for any concurrent writer: a key it
stored meanwhile fails the stale check and is merged by the parent, and a
signer it added is followed up through cks_view_work.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import time
from dataclasses import dataclass, field
from typing import (Callable, Counter, Dict, Iterable, Iterator, List, Optional, Sequence,
                    Tuple)

from .. import pipeline, views
from ..openpgp.errors import PacketError
from ..openpgp.keypacket import PublicKey, identify
from ..openpgp.keys import merge_all, parse_keyring
from ..openpgp.packet import TAG_PUBLIC_KEY, read_packet
from ..store import Store
from ..store.loadprogress import (FileIdentity, Tally, forget, forget_served, mark_served,
                                  record, resume_offset, resumed_tally, save, served_together)
from ..store.rows import NetworkView, ServedView
from ..wording import counted
from .derive import (Group, Result, StopFlag, Stopped, Task, derive_group, primaries_of,
                     start_pool_worker, start_worker)
from .progress import ProgressLine, ViewsProgressLine
from .split import Chunk, key_file, read_chunks
from .workers import Job, WorkerDied, Workers

log = logging.getLogger("cks.bulk")

BATCH_SIZE = 4000
BATCH_BYTES = 8 << 20
"""A batch holds BATCH_SIZE keys, or fewer that reach BATCH_BYTES (of input
in phase 1, of stored key data in phase 2).  Large batches: the tree's upper
levels, the index pages and the commit are shared by more keys (100,000
small keys, phase 1 on SQLite: 13.3 s in batches of 250, 7.5 s in batches of
4,000); the byte limit bounds a batch's memory when the keys are large."""
GROUPS_PER_WORKER = 4
GC_THRESHOLD = 100_000
"""During a load, Python's cycle collector runs after this many new objects
instead of 700 (its default; the workers, forked meanwhile, inherit it).
A load keeps a batch's thousands of keys alive, so a collection had much
to look at and came often: 100,000 small keys, the first phase in 8.0 s
with the default and 6.8 s with this on SQLite (medians of 5), 9.2 and
7.8 s on PostgreSQL (of 3).  Reference counting still frees at once what
is in no cycle; cycles wait longer."""
LOAD_LOCK = "load"
REDERIVE_ROUNDS = 3
"""How many times a key whose wanted signers moved while it was derived
(_signers_moved: another process stored or deleted one) is derived again
in a row; past it, its view is left to the follow-up (cks_view_work, which
the load's own follow-up or cksd's background job does).  Until 2026-12-06
it was derived again until the signers stood still: when a worker kept
reading them otherwise than the loading process (seen once, after that
process closed its idle SQLite connections), the load ended in a
RecursionError."""


class LoadRunning(Exception):
    """Another load holds this database's load lock."""


Waiter = Callable[[], Tuple[List[List[Result]], float]]
Runner = Callable[[List[Group]], Waiter]
"""Sends groups to the workers; returns a function that waits for their
results and gives them with the time the workers were done."""


def outcome_name(outcome: pipeline.Outcome) -> str:
    """How a load counts `outcome`: its status, or 'refused:KIND'."""
    if outcome.status == pipeline.REFUSED:
        return "%s:%s" % (pipeline.REFUSED, outcome.refusal)
    return outcome.status


@dataclass
class Summary:
    counts: Counter = field(default_factory=collections.Counter)  # by pipeline status
    refused: Counter = field(default_factory=collections.Counter)  # by refusal kind
    problems: List[str] = field(default_factory=list)
    signatures_verified: int = 0
    derive_seconds: float = 0.0  # wall time waiting for the workers
    network_seconds: float = 0.0  # phase 1: until every key's network view was stored
    views_seconds: float = 0.0  # phase 2: the served views
    tidy_seconds: float = 0.0  # then Store.tidy_after_bulk_write
    seconds: float = 0.0

    def line(self) -> str:
        reasons = ", ".join("%s: %d" % item for item in sorted(self.refused.items()))
        return "%d added, %d updated, %d unchanged, %d refused%s; %s" % (
            self.counts[pipeline.ADDED], self.counts[pipeline.UPDATED],
            self.counts[pipeline.UNCHANGED], self.counts[pipeline.REFUSED],
            " (%s)" % reasons if reasons else "", counted(len(self.problems), "problem"))

    def count(self, name: str, keys: int = 1) -> None:
        """Count `keys` keys of the outcome `name` (outcome_name)."""
        status, _, refusal = name.partition(":")
        self.counts[status] += keys
        if refusal:
            self.refused[refusal] += keys


@dataclass
class _Read:
    """A chunk of input with where it came from."""

    path: str
    identity: Optional[FileIdentity]
    chunk: Chunk


Place = Tuple[Optional[FileIdentity], Optional[int]]
"""Where a key or a problem was read: its file (None: standard input, whose
findings are not recorded) and the offset of its chunk (None: the whole
file's problem)."""


@dataclass
class _Sent:
    """A batch of phase 1 sent to the workers (Loader._send)."""

    tasks: List[Task]
    entries: List[Tuple[str, str, bytes]]  # (fingerprint, key ID, primary key body)
    path_of: Dict[str, str]
    places: List[Place]  # of each task: where its first copy was read
    offsets: Dict[FileIdentity, int]
    problems: List[Tuple[Place, str]]  # chunks that could not be read
    results: Callable[[], List[Result]]
    keys: int
    read_to: int  # input bytes read, for the progress line


class Loader:
    def __init__(self, store: Store, db_url: str, limits: pipeline.Limits,
                 source: pipeline.Source, jobs: int, batch_size: int = BATCH_SIZE,
                 progress: bool = False, report: Callable[[str], None] = lambda line: None
                 ) -> None:
        """`report`: says a problem line, when it is found."""
        self.store = store
        self.db_url = db_url
        self.limits = limits
        self.source = source
        self.jobs = max(1, jobs)
        self.batch_size = batch_size
        self.show_progress = progress
        self.summary = Summary()
        self.report = report
        self.tallies: Dict[FileIdentity, Tally] = {}  # what is recorded of each file
        self.waiting: Dict[FileIdentity, Tally] = {}  # found, to record later (_Findings)
        self._line: Optional[ProgressLine] = None  # phase 1's, while shown
        self.stopping = StopFlag()  # (made before the workers are forked: they share it)
        self.run: Optional[Runner] = None
        self._keys_written = 0
        self._workers_free = 0.0  # when the workers finished what was sent last

    def load(self, paths: Sequence[str]) -> Summary:
        """Load every file of `paths` ('-': standard input)."""
        started = time.monotonic()
        identities = {path: FileIdentity.of(path) for path in paths if path != "-"}
        with _fewer_collections(), self._runner() as self.run, self._the_only_load():
            self._resume_tallies(identities.values())
            progress = self._line = self._network_progress(paths, identities)
            with progress or contextlib.nullcontext():
                sent: Optional[_Sent] = None
                for batch, read_to in self._batches(paths, identities):
                    previous, sent = sent, self._send(batch, read_to)
                    if previous is not None:
                        self._finish(previous, progress)
                if sent is not None:
                    self._finish(sent, progress)
                if progress:
                    progress.finish(self._keys_written)
            self._line = None
            self.summary.network_seconds = time.monotonic() - started
            self._serve_unserved()
            self._follow()
            with self.store.write() as cursor:
                forget_served(cursor)
        if self.stopping.is_set():  # (after the last batch: run again, it tidies up)
            raise Stopped("the load stops")
        forget(self.store)
        tidying = time.monotonic()
        self.summary.views_seconds = tidying - started - self.summary.network_seconds
        self.store.tidy_after_bulk_write()
        self.summary.tidy_seconds = time.monotonic() - tidying
        self.summary.seconds = time.monotonic() - started
        return self.summary

    def stop(self) -> None:
        """Have the load stop soon; a signal handler may call this (StopFlag).
        The batch being written is committed, the workers leave what they
        were given after the key in hand, and load() raises Stopped when it
        next waits for them (or, past them, before it forgets its progress
        and tidies up).  Run again, the load goes on."""
        self.stopping.set()

    def _resume_tallies(self, identities: Iterable[FileIdentity]) -> None:
        """Count and report what the interrupted loads of these files found."""
        with self.store.read() as cursor:
            for identity in identities:
                tally = self.tallies[identity] = resumed_tally(cursor, identity)
                for name, keys in tally.counts.items():
                    self.summary.count(name, keys)
                for problem in tally.problems:
                    self._problem(problem)

    def _problem(self, line: str) -> None:
        self.summary.problems.append(line)
        if self._line:
            self._line.above(lambda: self.report(line))
        else:
            self.report(line)

    @contextlib.contextmanager
    def _the_only_load(self) -> Iterator[None]:
        """Hold the load lock (after the workers are forked: they must not
        inherit its connection)."""
        with self.store.exclusive(LOAD_LOCK) as locked:
            if not locked:
                raise LoadRunning("another load is running on this database")
            yield

    def _network_progress(self, paths: Sequence[str], identities: Dict[str, FileIdentity]
                          ) -> Optional[ProgressLine]:
        """Phase 1's progress line, on a terminal; the input's size is not
        known when standard input is read."""
        if not self.show_progress:
            return None
        files = identities.values()
        with self.store.read() as cursor:
            before = sum(resume_offset(cursor, identity) for identity in files)
        size = None if "-" in paths else sum(identity.size for identity in files)
        return ProgressLine(size, before)

    @contextlib.contextmanager
    def _runner(self) -> Iterator[Runner]:
        """Workers are forked before this process takes the load lock (one
        forked after would hold it as long as it lives), with no connection
        of this process open (Database.before_fork).  One that dies is not
        replaced: the load ends (WorkerDied)."""
        if self.jobs == 1:
            start_worker(self.db_url, self.limits, self.stopping)

            def run_here(groups: List[Group]) -> Waiter:
                results = [derive_group(g) for g in groups]
                finished = time.monotonic()
                return lambda: (results, finished)
            yield run_here
            return
        self.store.before_fork()
        workers: Workers[List[Result]] = Workers(
            self.jobs, derive_group, start_pool_worker, (self.db_url, self.limits, self.stopping))
        try:
            yield lambda groups: _waiter([workers.give(group) for group in groups])
        except BaseException as exc:  # the load failed or stops: the workers leave what they have
            stopping = self.stopping.is_set()
            self.stopping.set()
            if isinstance(exc, WorkerDied) and stopping:
                raise Stopped("the load stops") from None  # (SIGTERM to the process group)
            raise
        finally:
            workers.close()

    def _batches(self, paths: Sequence[str], identities: Dict[str, FileIdentity]
                 ) -> Iterator[Tuple[List[_Read], int]]:
        """The input, `batch_size` chunks (or BATCH_BYTES) at a time, with the
        bytes read so far (Chunk.reached)."""
        batch: List[_Read] = []
        done_bytes = batch_bytes = 0
        for path in paths:
            for item in self._read(path, identities.get(path)):
                batch.append(item)
                batch_bytes += len(item.chunk.data)
                if len(batch) >= self.batch_size or batch_bytes >= BATCH_BYTES:
                    yield batch, done_bytes + item.chunk.reached
                    batch, batch_bytes = [], 0
            done_bytes += identities[path].size if path in identities else 0
        if batch:
            yield batch, done_bytes

    def _read(self, path: str, identity: Optional[FileIdentity]) -> Iterator[_Read]:
        start = 0
        if identity is not None:
            with self.store.read() as cursor:
                start = resume_offset(cursor, identity)
        with key_file(path) as handle:
            handle.seek(start)
            for chunk in read_chunks(handle, self.limits.max_key_bytes):
                yield _Read(path, identity, chunk)

    def _start_derive(self, tasks: List[Task], primaries) -> Callable[[], List[Result]]:
        """Send `tasks` to the workers; returns what waits for their results.
        The workers' time counted is from when they could start on these
        (after what was sent before) to when they were done."""
        size = max(1, -(-len(tasks) // (self.jobs * GROUPS_PER_WORKER)))
        groups = [Group(tasks[i:i + size], primaries) for i in range(0, len(tasks), size)]
        sent = time.monotonic()
        wait = self.run(groups)

        def results() -> List[Result]:
            derived, finished = wait()
            started = max(sent, self._workers_free)
            self._workers_free = finished
            self.summary.derive_seconds += max(0.0, self._workers_free - started)
            return [r for rs in derived for r in rs]
        return results

    def _derive(self, tasks: List[Task], primaries) -> List[Result]:
        return self._start_derive(tasks, primaries)()

    def _send(self, batch: List[_Read], read_to: int) -> _Sent:
        """Phase 1: cut a batch into keys and send them to the workers."""
        tasks: Dict[str, Task] = {}
        entries: List[Tuple[str, str, bytes]] = []
        path_of: Dict[str, str] = {}
        places: List[Place] = []
        offsets: Dict[FileIdentity, int] = {}
        problems: List[Tuple[Place, str]] = []
        for item in batch:
            chunk = item.chunk
            if item.identity is not None:
                offsets[item.identity] = chunk.resume_at
            place = item.identity, chunk.offset
            if chunk.problem:
                problems.append((place, "%s: %s" % (chunk.place(item.path), chunk.problem)))
                self._problem(problems[-1][1])
                continue
            fingerprint, keyid, body = _primary(chunk.data)
            task = tasks.get(fingerprint) if fingerprint else None
            if task is None:
                task = tasks.setdefault(fingerprint or "#%d" % len(tasks), Task(fingerprint))
                places.append(place)
                if fingerprint:
                    entries.append((fingerprint, keyid, body))
                    path_of[fingerprint] = item.path
            task.chunks.append(chunk.data)
            task.labels.append(chunk.place(item.path))
        todo = list(tasks.values())
        return _Sent(todo, entries, path_of, places, offsets, problems,
                     self._start_derive(todo, primaries_of(entries)), len(batch), read_to)

    def _finish(self, sent: _Sent, progress: Optional[ProgressLine]) -> None:
        """Phase 1: write a batch once the workers are done with it."""
        results = sent.results()
        # Keys of the batch that will not be held do not count for the others.
        lost = {r.fingerprint for r in results if not r.stores and r.stored_hash is None}
        lost_keyids = {keyid for fingerprint, keyid, _ in sent.entries if fingerprint in lost}
        again = [i for i, r in enumerate(results) if lost_keyids.intersection(r.wanted)]
        if again:
            redone = self._derive([sent.tasks[i] for i in again],
                                  primaries_of(sent.entries, lost))
            for i, result in zip(again, redone):
                results[i] = result
        self._write(sent.tasks, results, sent)
        self._follow()
        self._keys_written += sent.keys
        if progress:
            progress.update(self._keys_written, sent.read_to)

    def _write(self, tasks: List[Task], results: List[Result], sent: _Sent) -> None:
        now = int(time.time())
        outcomes: List[pipeline.Outcome] = []
        found = _Findings(sent.offsets)
        for place, problem in sent.problems:
            found.at(place).problems.append(problem)
        problems: List[str] = []  # found by the workers, and the keys refused
        storing = [r.fingerprint for r in results if r.stores]
        new_keys: List[NetworkView] = []  # written last, together (save_network_views)
        with self.store.write(storing, bulk=True) as cursor:
            current = self.store.sks_hashes(cursor, storing)
            moved = self._signers_moved(cursor, [
                r for r in results if r.writes and current.get(r.fingerprint) == r.stored_hash])
            rejected = self.store.rejection_reasons(cursor, storing)
            for task, result, place in zip(tasks, results, sent.places):
                if result.outcome is not None:
                    outcome = result.outcome
                elif result.fingerprint in rejected:
                    outcome = pipeline.rejected(result.fingerprint, rejected[result.fingerprint])
                elif result.stores:
                    outcome = self._store(cursor, task, result, current, now, new_keys)
                else:
                    outcome = None
                counted = ([outcome] if outcome is not None else []) + result.conflicts
                lines = result.problems + [_refusal(sent.path_of, o) for o in counted
                                           if o.status == pipeline.REFUSED]
                found.at(place).problems.extend(lines)
                problems.extend(lines)
                for each in counted:
                    outcomes.append(each)
                    found.at(place).counts[outcome_name(each)] += 1
            if new_keys:  # what an interrupted load's phase 2 served is not settled with these
                forget_served(cursor)
            self.store.save_network_views(cursor, new_keys, self.source.tag, now)
            save(cursor, sent.offsets, now)
            recorded = found.recorded(self.waiting)
            for identity, tally in recorded.items():
                record(cursor, identity, self.tallies[identity], tally)
        for identity, tally in recorded.items():
            self.tallies[identity].add(tally)
            self.waiting.pop(identity, None)
        for identity, tally in found.waiting.items():
            self.waiting.setdefault(identity, Tally()).add(tally)
        for outcome in outcomes:
            self.summary.count(outcome_name(outcome))
        for problem in problems:
            self._problem(problem)
        self.summary.signatures_verified += sum(len(r.view.new_verdicts) for r in results
                                                if r.writes)
        if moved:
            self._rederive(moved)

    def _store(self, cursor, task: Task, result: Result, current: Dict[str, str],
               now: int, new_keys: List[NetworkView]) -> pipeline.Outcome:
        fingerprint = result.fingerprint
        if current.get(fingerprint) != result.stored_hash:
            # Stored by someone else since the worker read it: merge here, now.
            key = merge_all(k for chunk in task.chunks for k in parse_keyring(chunk).keys)[0]
            # (its checks in this batch's transaction: a rare race, not worth a second one)
            return pipeline.merge_one(self.store, cursor, key, self.source, self.limits, now,
                                      checked={})
        if result.primary is not None:  # phase 2 derives its served view
            new_keys.append(NetworkView(result.primary, result.keydata, result.sks_hash))
            return pipeline.Outcome(fingerprint, pipeline.ADDED)
        views.write_view(self.store, cursor, fingerprint, result.keydata, result.view,
                         self.source.tag, result.first_seen, now)
        return pipeline.record_signers(self.store, cursor, fingerprint, result.keyid,
                                       result.signers, result.stored_hash is None,
                                       result.view.missing, self.source, now)

    def _signers_moved(self, cursor, results: List[Result]) -> List[str]:
        """The keys among `results` whose wanted signers' stored primary keys
        are not those their views were derived with: a signer another
        process stored or deleted since the worker read them, whose
        follow-up may have run already.  They are written as derived, then
        derived again (_rederive)."""
        return sorted(views.signers_moved(self.store, cursor, {
            r.fingerprint: (r.wanted, r.signers_digest) for r in results}))

    def _follow(self) -> None:
        views.follow_signers(self.store, self.limits.serve, rederive=self._rederive,
                             settled=served_together)

    def _serve_unserved(self) -> None:
        """Phase 2 (see the module notes)."""
        served = 0
        after = ""
        progress = None
        if self.show_progress:
            with self.store.read() as cursor:
                progress = ViewsProgressLine(self.store.count_unserved(cursor))
        sent: Optional[Tuple[List[str], Callable[[], List[Result]]]] = None
        with progress or contextlib.nullcontext():
            while True:
                # (in fingerprint order from `after`: one walk over the keys in all)
                with self.store.read() as cursor:
                    batch = self.store.unserved(cursor, after, self.batch_size, BATCH_BYTES)
                previous, sent = sent, None
                if batch:
                    after = batch[-1]
                    sent = batch, self._start_derive([Task(f) for f in batch], {})
                if previous is not None:
                    self._write_views(previous[1], newly_served=True)
                    served += len(previous[0])
                    if progress:
                        progress.update(served, self.summary.signatures_verified)
                if sent is None:
                    break

    def _rederive(self, fingerprints: List[str], rounds: int = 0) -> int:
        """Derive the served views of stored keys again, in the workers
        (`rounds`: how many times in a row they were, REDERIVE_ROUNDS)."""
        changed = 0
        for start in range(0, len(fingerprints), self.batch_size):
            chunk = fingerprints[start:start + self.batch_size]
            changed += self._write_views(self._start_derive([Task(f) for f in chunk], {}),
                                         rounds=rounds + 1)
        return changed

    def _write_views(self, derived: Callable[[], List[Result]],
                     newly_served: bool = False, rounds: int = 0) -> int:
        """Write the served views the workers derive for stored keys;
        `newly_served`: keys that had none (phase 2), whose signers and sync
        queue entries are written with it, as the upload pipeline does;
        `rounds`: see _rederive.  Returns how many changed."""
        results = [r for r in derived() if r.writes]
        changed = 0
        now = int(time.time())
        writing = [r.fingerprint for r in results]
        with self.store.write(writing, flush=False) as cursor:  # (resumable, as phase 1)
            states = self.store.served_states(cursor, writing)
            stale = {r.fingerprint for r in results if r.fingerprint not in states
                     or states[r.fingerprint].sks_hash != r.stored_hash}
            moved = self._signers_moved(cursor, [r for r in results if r.fingerprint not in stale])
            if moved and rounds >= REDERIVE_ROUNDS:
                self._leave_to_follow_up(cursor, [r for r in results if r.fingerprint in moved])
                moved = []
            unserved = []  # written together (Store.serve_unserved)
            for result in results:
                if result.fingerprint in stale:
                    continue
                if newly_served and states[result.fingerprint].served == b"":  # still UNSERVED
                    unserved.append(result)
                elif views.write_view(self.store, cursor, result.fingerprint,
                                      result.keydata, result.view, None, result.first_seen,
                                      now, states):
                    changed += 1
                    if newly_served:  # served meanwhile by another process
                        pipeline.record_signers(
                            self.store, cursor, result.fingerprint, result.keyid,
                            result.signers, True, result.view.missing, self.source, now)
            self.store.serve_unserved(cursor, [
                ServedView(r.view.info, r.view.served, r.view.new_verdicts, r.signers,
                           r.view.missing) for r in unserved], now)
            for result in unserved:
                pipeline.queue_for_peers(self.store, cursor, result.fingerprint, self.source,
                                         now)
            if newly_served:
                mark_served(cursor, writing)
            changed += len(unserved)
        self.summary.signatures_verified += sum(len(r.view.new_verdicts) for r in results)
        if stale:
            changed += views.reverify(self.store, self.limits.serve, sorted(stale))
        return changed + (self._rederive(moved, rounds) if moved else 0)

    def _leave_to_follow_up(self, cursor, results: List[Result]) -> None:
        """Queue the views of keys whose signers moved each time they were
        derived (REDERIVE_ROUNDS) for the follow-up, as a key stored while
        one of its signers was on its way is (pipeline.record_signers)."""
        log.warning("%d keys' signers moved each of the %d times their views were derived; "
                    "they are left to the follow-up", len(results), REDERIVE_ROUNDS)
        for result in results:
            self.store.queue_view_work(cursor, result.fingerprint, result.keyid, False,
                                       result.wanted)


class _Findings:
    """What a batch of phase 1 found in each file, in two parts: what lies
    before the offset the batch records for the file (`settled`), recorded
    with the batch, and what lies at or after it (`waiting`), which a load
    that goes on from there reads again: the keys of an armor block whose
    end a later batch reads.  Those wait, in memory, for the batch that
    records the block's end, which records them with its own findings."""

    def __init__(self, offsets: Dict[FileIdentity, int]) -> None:
        self.offsets = offsets
        self.settled: Dict[FileIdentity, Tally] = collections.defaultdict(Tally)
        self.waiting: Dict[FileIdentity, Tally] = collections.defaultdict(Tally)
        self.unrecorded = Tally()  # standard input's

    def at(self, place: Place) -> Tally:
        """The tally what was found at `place` goes in."""
        identity, offset = place
        if identity is None:
            return self.unrecorded
        if offset is not None and offset >= self.offsets[identity]:
            return self.waiting[identity]
        return self.settled[identity]

    def recorded(self, waited: Dict[FileIdentity, Tally]) -> Dict[FileIdentity, Tally]:
        """What to record of each file: what `waited` from the batches before,
        then what this batch settled."""
        out = {}
        for identity, tally in self.settled.items():
            out[identity] = Tally()
            out[identity].add(waited.get(identity, Tally()))
            out[identity].add(tally)
        return out


def _waiter(given: List[Job[List[Result]]]) -> Waiter:
    """What waits for the results of the jobs `given` to the workers."""
    def wait() -> Tuple[List[List[Result]], float]:
        results = [job.result() for job in given]
        return results, max((job.finished for job in given), default=time.monotonic())
    return wait


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cycle collector at GC_THRESHOLD for the block."""
    threshold = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


def _refusal(path_of: Dict[str, str], outcome: pipeline.Outcome) -> str:
    return "%s: key %s refused: %s" % (path_of.get(outcome.fingerprint, "?"),
                                       outcome.fingerprint, outcome.reason)


def _primary(data: bytes) -> Tuple[str, str, bytes]:
    """(fingerprint, key ID, body) of the primary key packet a chunk starts
    with; empty when it is none (the worker says why).  Its key material is
    not parsed here: the loading process is the first phase's busiest, and
    the worker that parses the key finds it unusable if it is."""
    try:
        packet, _ = read_packet(data)
        if packet.tag != TAG_PUBLIC_KEY:
            return "", "", b""
        ids = identify(packet.body)
        if ids is None:
            key = PublicKey.parse(packet.body)
            ids = key.fingerprint, key.keyid
    except PacketError:
        return "", "", b""
    return ids[0].hex().upper(), ids[1].hex().upper(), packet.body

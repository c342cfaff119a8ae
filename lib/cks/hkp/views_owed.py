"""Served views owed to answered uploads, and lookups that see them first.

cksd answers the upload of a new key once the key's network view is
committed (pipeline.store_keys with `defer_views`): the answer tells only
that the key was added, so the signature checks and the served view follow
it, in the serving process's background job, woken at once: it waits until
the uploads pause (QUIET_SECONDS, at most AT_MOST_SECONDS) and derives the
views of all of them together.  Until then no lookup finds the key.  So
that a lookup sent after an upload's answer finds the key all the same, a
lookup first settles what is owed: when uploads were answered since the
last settling began, it derives the new keys' own served views itself
(views.serve_new_keys), then answers; a lookup by key ID or fingerprint
(what GnuPG's --recv-keys and --refresh-keys send) derives only those of
the new keys it finds, by their primary keys' or subkeys' IDs, and a key
page those of the new keys among their signers too
(views.serve_new_keys_with_id), and leaves the rest owed: under a stream
of uploads it does not wait for the others' signature checks.  The rest
of the queue, the keys that
the new ones signed and what recon and push brought (views.follow_signers),
is the background job's, after the settling and without holding it: under
a sync's load it runs for many seconds where keys carry thousands of
certifications, and lookups waited behind it for a minute.  Such a lookup
is answered by a worker thread, never in the loop's (server.py): its
settling writes to the database and may wait for a lock.

A serving process that is not taking uploads derives the owed views at
once, on its own core (help_while_idle), while the uploads go on in another:
one GnuPG user sending many keys over one connection keeps one process
busy, and the keys are served as they come instead of after the pause.
On PostgreSQL writers of different keys do not wait for each other; on
SQLite an upload's commit waits for the views' commits, which are short,
and takes its turn the moment the one before it ends (sqlite.WriteTurns).

A lookup waits for the settling it needs, but not for long
(LOOKUP_WAIT_SECONDS; its own runs in a thread that goes on after the
answer): a key whose signature checks take minutes (made-up
self-signatures by the tens of thousands) is served when they are done,
and meanwhile searches are answered without it.  While an idle helper
settles, a lookup waits for it to reach the uploads answered before the
lookup began, rather than deriving the same views again itself.

Two counts, shared by the serving processes of one cksd: uploads answered
with their views owed, ever (the sum of each process's); and the highest
value of the first that a finished settling had read before it began.
Every upload counted in that value had committed its work item
(cks_view_work) before the settling read the queue, so it was served.  No
lock is shared between processes (shared_counts.py): two of them settling
at once may derive the same view twice (the second writes nothing), two
idle helpers may take the turn at the same moment, with the same outcome,
and a process that dies leaves nothing locked; what a crash left undone
stays in cks_view_work, which the background job works off.  Idle helpers
look every HELPER_POLL_SECONDS for an upload answered since they last
looked: a multiprocessing Event, which woke them until 2026-12-07, made
one upload wait for good for a helper killed while waiting on it, and
with it the stop of cksd.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import threading
import time
from typing import Any, Callable, List, Optional, TypeVar

from ..repeated import RepeatedFailure
from ..served import ServePolicy
from ..shared_counts import SharedCounts
from ..store import Store, StoreError
from ..store.loadprogress import served_together
from ..views import NewKeyIds, follow_signers, serve_new_keys, serve_new_keys_with_id

T = TypeVar("T")

log = logging.getLogger("cks.hkp")

_OWED, _SETTLED = 0, 1  # the counts' columns
_OWED_AT, _RUNG_AT, _TURN_ENDS = 0, 1, 2  # the moments'
QUIET_SECONDS = 0.05
AT_MOST_SECONDS = 1.0
HELPER_LEASE_SECONDS = 60.0
"""One serving process's idle helper derives at a time, for this long at most
without handing back its turn (a helper that died holds the others up no
longer)."""
LOOKUP_WAIT_SECONDS = 2.0
"""How long a lookup waits at most for the settling it needs (its own, or
one that the background job, another lookup or an idle helper in any
process is running), before it answers with what is served: one key whose
signature checks take a minute (tens of thousands of made-up DSA
self-signatures, a 2.5 MB upload: 20 seconds) would otherwise hold every
search by words up that long.  The settling goes on after the answer."""
LOOKUP_POLL_SECONDS = 0.005
"""How often a lookup waiting for an idle helper's settling looks again."""
FAILED_PAUSE_SECONDS = 10.0
"""After a settling failed (the primary database unreachable), lookups leave
the work to the background job for this long, or until an upload is
answered, instead of trying at each lookup: a lookup that a replica can
answer must not wait for the primary."""


class ViewsOwed:
    """This process's alone; shared_by() makes those of cksd's serving
    processes, before it forks them."""

    def __init__(self, counts: Optional[SharedCounts] = None, moments: Any = None) -> None:
        self._counts = counts if counts is not None else SharedCounts(1, 2, shared=False)
        # (time.monotonic() values that every process writes whole: _OWED_AT,
        # _RUNG_AT, _TURN_ENDS)
        self._moments = moments if moments is not None else (ctypes.c_double * 3)()
        self._settling = threading.Lock()  # one settling at a time in each process
        self._failed_at = -FAILED_PAUSE_SECONDS  # (this process's)
        self._owed_here_at = -QUIET_SECONDS  # this process's last upload answered
        self._heard_at = 0.0  # _RUNG_AT when this process's helper last looked

    @classmethod
    def shared_by(cls, processes: int) -> List["ViewsOwed"]:
        """Each of `processes` processes' own: make them before the fork."""
        moments = multiprocessing.RawArray("d", 3)
        return [cls(row, moments) for row in SharedCounts.rows(processes, 2)]

    @property
    def _owed(self) -> int:
        return self._counts.total(_OWED)

    @property
    def _settled(self) -> int:
        return self._counts.highest(_SETTLED)

    def owe(self, awaited: bool = True) -> None:
        """An upload was answered whose views are owed (call after its commit).
        One not `awaited` (its client went over its upload budget, upload_cost.py)
        is left to the background job (follow_views): no lookup waits for it."""
        self._owed_here_at = self._moments[_OWED_AT] = time.monotonic()
        if awaited:
            self._counts.add(_OWED)
        self._moments[_RUNG_AT] = time.monotonic()

    @property
    def uploading_here(self) -> bool:
        """Did this process answer an upload in the last QUIET_SECONDS?"""
        return time.monotonic() - self._owed_here_at < QUIET_SECONDS

    def wait_for_owed(self, timeout: float) -> bool:
        """Wait until an upload (in any process) was answered since the last
        clear_owed() (call it before settling); True then."""
        deadline = time.monotonic() + timeout
        while self._moments[_RUNG_AT] == self._heard_at:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(HELPER_POLL_SECONDS, left))
        return True

    def clear_owed(self) -> None:
        self._heard_at = self._moments[_RUNG_AT]

    def take_turn(self) -> bool:
        """The idle helpers' turn, for one process at a time (the clock is the
        machine's, which every process reads alike), but for two that take it
        at the same moment; False if another has it."""
        if self.helper_settling:
            return False
        self._moments[_TURN_ENDS] = time.monotonic() + HELPER_LEASE_SECONDS
        return True

    @property
    def helper_settling(self) -> bool:
        """Does an idle helper (of any process) have the turn?"""
        return self._moments[_TURN_ENDS] > time.monotonic()

    def end_turn(self) -> None:
        self._moments[_TURN_ENDS] = 0.0

    @property
    def settled(self) -> bool:
        return self._settled >= self._owed

    def wait_for_quiet(self, quiet: float = QUIET_SECONDS,
                       at_most: float = AT_MOST_SECONDS) -> None:
        """Wait until no upload was answered for `quiet` seconds, or `at_most`
        seconds passed: the background job then takes the work of a run of
        uploads at once (one transaction, one commit) instead of one upload's
        at a time, racing the next for the database and the interpreter."""
        deadline = time.monotonic() + at_most
        seen = self._owed
        while True:
            time.sleep(max(0.0, min(quiet, deadline - time.monotonic())))
            now = self._owed
            if now == seen or time.monotonic() >= deadline:
                return
            seen = now

    @property
    def _worth_trying(self) -> bool:
        """Something is owed, and no settling failed in the last
        FAILED_PAUSE_SECONDS (a lookup a replica can answer does not wait
        for the primary) but before an upload was answered: that upload's
        commit says the primary takes writes again, and a lookup sent after
        its answer must find its key."""
        failed_at = self._failed_at
        return not self.settled and (failed_at < self._moments[_OWED_AT] or
                                     time.monotonic() - failed_at >= FAILED_PAUSE_SECONDS)

    def settle(self, work: Callable[[], bool], wait: Optional[float] = None) -> bool:
        """Run `work` (which derives the owed views, serve_views, and says
        whether it could) unless nothing is owed, or it failed in the last
        FAILED_PAUSE_SECONDS.  With `wait` (a lookup's, LOOKUP_WAIT_SECONDS):
        where an idle helper has the turn, wait for it to settle what was
        owed when this began instead; otherwise settle in a thread of its
        own, after any settling another thread of this process is running;
        either way return after `wait` seconds at most.  Whether what was
        owed when this began is settled now."""
        owed = self._owed
        if self._worth_trying:
            self._settle(work, owed, wait)
        return self._settled >= owed

    def _settle(self, work: Callable[[], bool], owed: int, wait: Optional[float]) -> None:
        if wait is None:
            with self._settling:
                if not self.settled:  # (or another thread of this process settled it)
                    self._run(work)
            return
        deadline = time.monotonic() + wait
        if self.helper_settling:
            while self._settled < owed and time.monotonic() < deadline:
                time.sleep(LOOKUP_POLL_SECONDS)
            return
        if not self._settling.acquire(timeout=wait):
            return
        settling = threading.Thread(target=self._settle_and_release, args=(work, owed),
                                    name="settling", daemon=True)
        settling.start()
        settling.join(max(0.0, deadline - time.monotonic()))

    def _settle_and_release(self, work: Callable[[], bool], owed: int) -> None:
        """A lookup's settling, in a thread of its own (the lookup waits for
        it LOOKUP_WAIT_SECONDS at most), the settling lock held for it."""
        try:
            if self._settled < owed:
                self._run(work)
        except Exception:  # noqa: BLE001 - no lookup is there to answer 500 for it
            log.exception("served views owed not derived")
        finally:
            self._settling.release()

    def serve_some(self, work: Callable[[], Optional[bool]]) -> bool:
        """Run `work` (serve_views_with_id: it derives the owed views a lookup
        can find, and says whether those were all that was owed, or None if
        it could not) unless nothing is owed, or a settling failed in the
        last FAILED_PAUSE_SECONDS.  The rest stays owed, to the next
        settling; when there was no rest, this was one.  Whether the views
        the lookup can find are settled now."""
        if not self._worth_trying:
            return self.settled
        owed = self._owed
        everything = work()
        if everything is None:
            self._failed_at = time.monotonic()
            return False
        if everything:
            self._settled_up_to(owed)
        return True

    def run(self, work: Callable[[], bool], rest: Callable[[], bool]) -> None:
        """The background job's round: when uploads are owed, once they pause
        (wait_for_quiet), settle them with `work` as a lookup would, even
        after a failure; then `rest` (follow_views: the rest of the queue,
        and what other programs, or a crash, left), not holding up lookups."""
        if not self.settled:
            self.wait_for_quiet()
            with self._settling:
                if not self.settled and not self._run(work):
                    return  # (the database is away: the rest can wait too)
        rest()

    def _run(self, work: Callable[[], bool]) -> bool:
        owed = self._owed
        if not work():
            self._failed_at = time.monotonic()
            return False  # still owed: the background job tries again
        self._settled_up_to(owed)
        return True

    def _settled_up_to(self, owed: int) -> None:
        """The uploads counted in `owed` (read before the queue was) are served."""
        self._counts.raise_to(_SETTLED, owed)


def serve_views(store: Store, policy: ServePolicy) -> bool:
    """Derive the served views of the keys answered uploads stored without
    one (views.serve_new_keys): a settling's work.  False when a database
    error (logged) left them owed."""
    return _logged(lambda: serve_new_keys(store, policy)) is not None


def serve_views_with_id(store: Store, policy: ServePolicy, new_ids: NewKeyIds, kind: str,
                        value: str, signers: bool = False) -> Optional[bool]:
    """Derive the served views owed that a search by key ID or fingerprint
    finds, and with `signers` those of their signers (views.serve_new_keys_with_id):
    a lookup's, when that is what it asks for.  Whether those were all the
    views owed; None when a database error (logged) left them owed."""
    return _logged(lambda: serve_new_keys_with_id(store, policy, new_ids, kind, value,
                                                  signers))


def follow_views(store: Store, policy: ServePolicy) -> bool:
    """Work off the queue of served views to derive (views.follow_signers);
    what a running (or interrupted) bulk load served together is not derived
    again here either (loadprogress.py).  Not while another process does
    (this job comes again in a moment).  False when a database error (logged)
    left work queued for the next time."""
    return _logged(lambda: follow_signers(store, policy, settled=served_together,
                                          wait=0)) is not None


_FAILURE = RepeatedFailure(log, "served views not derived yet", "served views derived again")


def _logged(work: Callable[[], T]) -> Optional[T]:
    """What `work` returns; None (logged, but not at every round of an
    outage) when a database error stopped it."""
    try:
        done = work()
    except StoreError as exc:
        _FAILURE.failed(exc)
        return None
    _FAILURE.succeeded()
    return done


HELPER_WAIT_SECONDS = 0.05
"""How long an idle helper's round waits for an upload before it ends (so
that the thread running it sees a stop in time: every stop of a serving
process waited for the round, 0.5 s until 2026-12-06, the most of the
0.57 s cksd took from SIGTERM to its exit)."""
HELPER_POLL_SECONDS = 0.01
"""How often an idle helper looks for an upload answered (see the module notes)."""


def help_while_idle(owed: ViewsOwed, work: Callable[[], bool]) -> None:
    """One round of a serving process's idle helper (run by a Periodic with
    no interval; see the module notes): when uploads left views owed,
    settle them at once (`work`: serve_views), unless this process is the
    one taking the uploads or another process's helper has the turn."""
    if not owed.wait_for_owed(HELPER_WAIT_SECONDS):
        return
    if owed.uploading_here or not owed.take_turn():
        time.sleep(QUIET_SECONDS)
        return
    try:
        owed.clear_owed()  # (an upload after this sets it again)
        owed.settle(work)
    finally:
        owed.end_turn()

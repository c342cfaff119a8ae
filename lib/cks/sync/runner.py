"""One synchronization pass (cks_sync.py): push owed keys to each peer in turn.

Per peer, lossless: a key leaves the peer's backlog only after the peer
acknowledged it (2xx), or refused it for good: a CKS peer's refusal naming
that key, or, in a run in which the peer took another key, a refusal of that
key alone (hkp_push.KEY_REFUSALS: a blanket 403 or 413 is a WAF's or a
proxy's, not about the key) or a failure on that key alone, twice: an HTTP
500 (Hockeypuck answered 500 to a key with no usable self-signature, and so
to the whole batch that held it, until its issue 341 was fixed), the
connection closed unanswered (SKS does that to a request over 5 MiB) or,
once, no answer within the timeout (a key the peer takes minutes over); the
summary says so, and it is not retried.  A later version of the key is
offered once more (an update may bring it under the peer's limit, the
peer's operator may take it off a rejected list); refused again for the
same reason, it is not reported again.  A peer that is down, cannot be
reached in time, fails, times out or answers 4xx on every key, answers
502-504 or a 4xx that is not about a key (404: no keyserver there) keeps
its backlog, and the next run resumes there; the other peers are not held
back.  Progress is committed after every
acknowledged request, so a crash at any point loses nothing: at worst a key
is sent twice, which merging makes harmless.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..openpgp.armor import encode
from ..store import Store, StoreError
from ..store.peers import Peer, PeerError, PeerStore
from ..store.rejections import StoredNotice, notice_backlog, notice_delivered
from ..hkp.rejections import NOTICE_PATH
from ..wording import counted
from .hkp_push import (FAILED_ALONE, FORM_OVERHEAD, OK, REFUSED, RETRY, SPLIT, Verdict,
                       form_bytes, notice_verdict, verdict)

log = logging.getLogger("cks.sync")

Item = Tuple[str, bytes]  # (fingerprint, binary key)
# takes keys out of the peer's backlog; the fingerprints given, the keys it
# took (not refused), out of its refusals
Done = Callable[[Sequence[Item], Sequence[str]], None]

FAILED_ALONE_IN_A_ROW = 10
"""Keys that failed alone one after the other, with no key taken in the run
and no key to ask the peer whether it takes any (PeerSync._takes_keys): the
peer is failing, not the keys; the run stops there and they stay owed."""
SLOW_ALONE_IN_A_ROW = 2
"""The same for keys not answered within the timeout: each costs all of it,
and a peer that answers none of two is more likely down than stuck on both."""


@dataclass
class SyncLimits:
    keys_per_request: int = 100
    bytes_per_request: int = 1 << 20  # as sent (Pusher.encoded_size); a bigger key goes alone
    keys_per_peer_run: int = 50_000  # a cap on work per run and peer
    seconds_per_run: float = 3000.0
    timeout: float = 30.0


@dataclass
class PeerReport:
    peer: str
    kind: str
    sent: int = 0
    refused: List[Tuple[str, str]] = field(default_factory=list)
    error: Optional[str] = None
    backlog_left: int = 0
    catching_up: bool = False
    would_send: int = 0  # --dry-run
    notices: int = 0  # rejection notices delivered
    notices_left: int = 0  # rejection notices still owed after the run
    busy: bool = False  # another process was pushing to this peer: not served
    removed: bool = False  # the peer left the list while this run pushed to it
    retry_after: float = 0.0  # the run stopped on a peer that asked us to wait this long

    @property
    def ok(self) -> bool:
        return self.error is None


class Pusher:
    """Delivers keys to one peer (HKP POST, mail, ...)."""

    keys_per_request = 100
    request_overhead = 0  # the bytes of a request's body besides its keys

    def push(self, items: Sequence[Item]) -> Verdict:
        raise NotImplementedError

    def encoded_size(self, keydata: bytes) -> int:
        """At most the bytes a key adds to a request's body: what [sync]
        bytes_per_request counts (a proxy's limit is on the body as sent)."""
        return len(keydata)

    def push_notice(self, notice: StoredNotice) -> Optional[Verdict]:
        """Deliver a signed rejection notice; None: this kind of peer takes none."""
        return None

    def close(self) -> None:
        pass


class HKPPusher(Pusher):
    request_overhead = FORM_OVERHEAD

    def __init__(self, client) -> None:
        self.client = client

    def encoded_size(self, keydata: bytes) -> int:
        return form_bytes(keydata)

    def push(self, items: Sequence[Item]) -> Verdict:
        armored = encode(b"".join(data for _, data in items))
        return verdict(self.client.post_keys(armored), [f for f, _ in items])

    def push_notice(self, notice: StoredNotice) -> Optional[Verdict]:
        answer = self.client.post_form(NOTICE_PATH, {"notice": notice.body,
                                                     "signature": notice.signature or ""})
        return notice_verdict(answer)

    def close(self) -> None:
        self.client.close()


class _Stop(Exception):
    """The peer failed in a way worth retrying later: stop serving it this run
    (and, where it said so, not for `retry_after` seconds)."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @classmethod
    def of(cls, verdict: Verdict) -> "_Stop":
        """The stop a verdict other than OK calls for (notices), or RETRY (keys)."""
        return cls(verdict.message, verdict.retry_after)


class PeerSync:
    def __init__(self, store: Store, peers: PeerStore, peer: Peer, pusher: Pusher,
                 limits: SyncLimits, deadline: float) -> None:
        self.store = store
        self.peers = peers
        self.peer = peer
        self.pusher = pusher
        self.limits = limits
        self.deadline = deadline
        self.report = PeerReport(peer.peer, peer.kind)
        self.budget = limits.keys_per_peer_run
        self.takes_keys = False  # the peer took a key in this run
        self.asked = False  # _takes_keys asked the peer (once a run at most)
        # Keys that failed alone while it was not known whether the peer takes
        # any: fingerprint -> (the key, how it leaves the backlog, the answer).
        self.set_aside: Dict[str, Tuple[Item, Done, Verdict]] = {}

    def run(self) -> PeerReport:
        """Serve the peer; whatever stops it (a failing peer, or an error no
        one foresaw) is its report's error and its last error.  Until
        2026-12-07 an unexpected exception (a MemoryError on a peer's endless
        answer) went up to the caller: cks_sync.py ended there, the peers
        after it unserved and the failure unrecorded (found by a review)."""
        now = int(time.time())
        try:
            self._backlog()
            self._notices()
            self.peers.record_attempt(self.peer.id, now, None)
        except _Stop as stop:
            self._failed(now, str(stop), stop.retry_after)
        except StoreError:
            raise  # (the database's trouble, not the peer's: the caller's to report)
        except Exception as exc:  # noqa: BLE001 - a fault no one foresaw stops this peer only
            # (said once, by the caller, with the peer's name; the traceback for debugging)
            log.debug("push to %s stopped", self.peer.peer, exc_info=True)
            self._failed(now, "unexpected error: %r" % exc)
        finally:
            self.pusher.close()
        try:
            refreshed = self.peers.get(self.peer.peer)
        except PeerError:  # (nothing is owed to it any more)
            self.report.removed = True
            return self.report
        self.report.backlog_left = refreshed.backlog
        self.report.catching_up = refreshed.catch_up > 0
        self.report.notices_left = len(notice_backlog(self.store, self.peer.id))
        return self.report

    def _failed(self, now: int, error: str, retry_after: float = 0.0) -> None:
        """The run stopped on this peer: reported and recorded as its last error."""
        self.report.error = error
        self.report.retry_after = retry_after
        self.peers.record_attempt(self.peer.id, now, error)

    def _notices(self) -> None:
        """Our signed rejection notices owed to this peer, losslessly like keys: a
        notice leaves the backlog when the peer took it or refused it
        (hkp_push.notice_verdict), or failed on it (FAILED_ALONE) while it
        takes keys (a keyserver without the notice endpoint: Hockeypuck's
        404); any other answer stops the run."""
        for notice in notice_backlog(self.store, self.peer.id):
            result = self.pusher.push_notice(notice)
            if result is None:
                return
            if result.action == FAILED_ALONE and self._takes_keys():
                result = Verdict(REFUSED, "%s (the peer takes keys, not this notice)"
                                 % result.message)
            if result.action not in (OK, REFUSED):
                raise _Stop.of(result)
            if result.action == REFUSED:
                self.report.refused.append(("notice " + notice.serial, result.message))
            else:
                self.report.notices += 1
            notice_delivered(self.store, self.peer.id, notice.serial)

    def _out_of_budget(self) -> bool:
        return self.budget <= 0 or time.monotonic() > self.deadline

    def _backlog(self) -> None:
        while not self._out_of_budget():
            entries = [e for e in self.peers.backlog(self.peer.id, min(1000, self.budget)
                                                     + len(self.set_aside))
                       if e[0] not in self.set_aside]
            if not entries:
                break
            pending = dict(entries)
            keydata = self.store.keydata(list(pending))
            gone = [(f, p) for f, p in entries if f not in keydata]
            if gone:  # deleted since it was queued: nothing left to send
                self.peers.delivered(self.peer.id, gone, int(time.time()))
            items = [(f, keydata[f]) for f, _ in entries if f in keydata]

            def done(batch: Sequence[Item], took: Sequence[str] = ()) -> None:
                self.peers.delivered(self.peer.id, [(f, pending[f]) for f, _ in batch],
                                     int(time.time()), took)

            self._deliver(items, done)
        if self.set_aside:  # no key went through after them: the peer is failing
            raise self._failing()

    def _batches(self, items: Sequence[Item]) -> List[List[Item]]:
        batches: List[List[Item]] = []
        current: List[Item] = []
        room = self.limits.bytes_per_request - self.pusher.request_overhead
        size = 0
        per_request = min(self.limits.keys_per_request, self.pusher.keys_per_request)
        for item in items:
            item_size = self.pusher.encoded_size(item[1])
            if current and (len(current) >= per_request or size + item_size > room):
                batches.append(current)
                current, size = [], 0
            current.append(item)
            size += item_size
        if current:
            batches.append(current)
        return batches

    def _deliver(self, items: Sequence[Item], done: Done) -> None:
        for batch in self._batches(items):
            if self._out_of_budget():
                return  # the per-run cap: the rest stays owed, for the next run
            self._send(batch, done)

    def _send(self, batch: List[Item], done: Done, again: bool = True) -> None:
        result = self.pusher.push(batch)
        if result.action == RETRY:
            raise _Stop.of(result)
        if result.action == SPLIT:
            for item in batch:
                self._send([item], done)
            return
        if result.action == FAILED_ALONE:
            if again and not result.once:  # a 500 may be a hiccup: once more
                self._send(batch, done, again=False)
            else:
                self.budget -= 1
                self._failed_alone(batch[0], done, result)
            return
        took: List[str] = []
        if result.action == REFUSED:
            self._refused(batch[0][0], result.message)
        else:
            assert result.action == OK
            for fingerprint, reason in result.refused:
                self._refused(fingerprint, reason)
            refused = {fingerprint for fingerprint, _ in result.refused}
            took = [fingerprint for fingerprint, _ in batch if fingerprint not in refused]
            self.report.sent += len(took)
            self._took_keys()
        self.budget -= len(batch)
        done(batch, took)

    def _failed_alone(self, item: Item, done: Done, result: Verdict) -> None:
        """The peer failed on this key alone (hkp_push.verdict's FAILED_ALONE;
        twice, unless it refused it or did not answer within the timeout): if
        it takes other keys, it cannot take this one, which is refused for
        good; if it takes none, it is failing and the run stops; until that is
        known, the key is set aside (it stays owed)."""
        if self._takes_keys():
            self._gave_up(item, done, result)
            return
        self.set_aside[item[0]] = (item, done, result)
        if len(self.set_aside) >= FAILED_ALONE_IN_A_ROW or sum(
                r.slow for _, _, r in self.set_aside.values()) >= SLOW_ALONE_IN_A_ROW:
            raise self._failing()

    def _failing(self) -> "_Stop":
        count = len(self.set_aside)
        return _Stop("%s, to %s alone, and no key went through"
                     % (list(self.set_aside.values())[-1][2].message, counted(count, "key")))

    def _takes_keys(self) -> bool:
        """Whether the peer took a key in this run.  If it has not yet, a key
        it took before is sent again, once a run (harmless: it merges), if
        there is one (PeerStore.held_by); if the peer fails on that one too,
        the run stops (the keys stay owed)."""
        if self.takes_keys or self.asked:
            return self.takes_keys
        self.asked = True
        fingerprint = self.peers.held_by(self.peer.id)
        data = self.store.keydata([fingerprint]).get(fingerprint) if fingerprint else None
        if data is None:
            return False
        answer = self.pusher.push([(fingerprint, data)])
        if answer.action not in (OK, REFUSED):
            raise _Stop.of(answer)
        self._took_keys()
        return True

    def _took_keys(self) -> None:
        """The peer took a key: those set aside failed on their own."""
        self.takes_keys = True
        for item, done, result in self.set_aside.values():
            self._gave_up(item, done, result)
        self.set_aside.clear()

    def _gave_up(self, item: Item, done: Done, result: Verdict) -> None:
        self._refused(item[0], result.message if result.refusal else
                      "%s (%sto this key alone, while the peer took other keys)"
                      % (result.message, "" if result.slow else "twice, "))
        done([item], ())

    def _refused(self, fingerprint: str, message: str) -> None:
        """Reported once: a later version of the key is offered to the peer
        again, and its refusal for the same reason says nothing new."""
        if self.peers.record_refusal(self.peer.id, fingerprint, message, int(time.time())):
            self.report.refused.append((fingerprint, message))
            log.info("%s refused %s for good: %s", self.peer.peer, fingerprint, message)


def dry_run(store: Store, peer: Peer) -> PeerReport:
    """What a pass would send to `peer`, changing nothing."""
    return PeerReport(peer.peer, peer.kind, backlog_left=peer.backlog,
                      catching_up=peer.catch_up > 0, would_send=peer.backlog,
                      notices_left=len(notice_backlog(store, peer.id)))

"""One synchronization pass (cks_sync.py): push owed keys to each peer in turn.

Per peer, lossless: a key leaves the peer's backlog only after the peer
acknowledged it (2xx), or refused it for good (a 4xx for that one key: the
summary says so, and it is not retried).  A peer that is down, times out,
answers 5xx or resets the connection keeps its backlog, and the next run
resumes there; the other peers are not held back.  Progress is committed
after every acknowledged request, so a crash at any point loses nothing: at
worst a key is sent twice, which merging makes harmless.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

from ..openpgp.armor import encode
from ..store import Store
from ..store.peers import Peer, PeerStore
from ..store.rejections import StoredNotice, notice_backlog, notice_delivered
from ..hkp.rejections import NOTICE_PATH
from .hkp_push import OK, REFUSED, RETRY, SPLIT, Verdict, verdict

log = logging.getLogger("cks.sync")

Item = Tuple[str, bytes]  # (fingerprint, binary key)


@dataclass
class SyncLimits:
    keys_per_request: int = 100
    bytes_per_request: int = 1 << 20  # binary; a single bigger key goes alone
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

    @property
    def ok(self) -> bool:
        return self.error is None


class Pusher:
    """Delivers keys to one peer (HKP POST, mail, ...)."""

    keys_per_request = 100

    def push(self, items: Sequence[Item]) -> Verdict:
        raise NotImplementedError

    def push_notice(self, notice: StoredNotice) -> Optional[Verdict]:
        """Deliver a signed rejection notice; None: this kind of peer takes none."""
        return None

    def close(self) -> None:
        pass


class HKPPusher(Pusher):
    def __init__(self, client) -> None:
        self.client = client

    def push(self, items: Sequence[Item]) -> Verdict:
        armored = encode(b"".join(data for _, data in items))
        return verdict(self.client.post_keys(armored), len(items))

    def push_notice(self, notice: StoredNotice) -> Optional[Verdict]:
        answer = self.client.post_form(NOTICE_PATH, {"notice": notice.body,
                                                     "signature": notice.signature or ""})
        return verdict(answer, 1)

    def close(self) -> None:
        self.client.close()


class _Stop(Exception):
    """The peer failed in a way worth retrying later: stop serving it this run."""


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

    def run(self) -> PeerReport:
        now = int(time.time())
        try:
            self._backlog()
            self._notices()
            self.peers.record_attempt(self.peer.id, now, None)
        except _Stop as stop:
            self.report.error = str(stop)
            self.peers.record_attempt(self.peer.id, now, str(stop))
        finally:
            self.pusher.close()
        refreshed = self.peers.get(self.peer.peer)
        self.report.backlog_left = refreshed.backlog
        self.report.catching_up = refreshed.catch_up > 0
        return self.report

    def _notices(self) -> None:
        """Our signed rejection notices owed to this peer, losslessly like keys; a
        peer that refuses them (an SKS node has no such endpoint) is not asked again."""
        for notice in notice_backlog(self.store, self.peer.id):
            result = self.pusher.push_notice(notice)
            if result is None:
                return
            if result.action == RETRY:
                raise _Stop(result.message)
            if result.action != OK:
                self.report.refused.append(("notice " + notice.serial, result.message))
            else:
                self.report.notices += 1
            notice_delivered(self.store, self.peer.id, notice.serial)

    def _out_of_budget(self) -> bool:
        return self.budget <= 0 or time.monotonic() > self.deadline

    def _backlog(self) -> None:
        while not self._out_of_budget():
            entries = self.peers.backlog(self.peer.id, min(1000, self.budget))
            if not entries:
                return
            pending = dict(entries)
            keydata = self.store.keydata(list(pending))
            gone = [(f, p) for f, p in entries if f not in keydata]
            if gone:  # deleted since it was queued: nothing left to send
                self.peers.delivered(self.peer.id, gone, int(time.time()))
            items = [(f, keydata[f]) for f, _ in entries if f in keydata]

            def done(batch: Sequence[Item]) -> None:
                self.peers.delivered(self.peer.id, [(f, pending[f]) for f, _ in batch],
                                     int(time.time()))

            self._deliver(items, done)

    def _batches(self, items: Sequence[Item]) -> List[List[Item]]:
        batches: List[List[Item]] = []
        current: List[Item] = []
        size = 0
        per_request = min(self.limits.keys_per_request, self.pusher.keys_per_request)
        for item in items:
            if current and (len(current) >= per_request
                            or size + len(item[1]) > self.limits.bytes_per_request):
                batches.append(current)
                current, size = [], 0
            current.append(item)
            size += len(item[1])
        if current:
            batches.append(current)
        return batches

    def _deliver(self, items: Sequence[Item], done: Callable[[Sequence[Item]], None]) -> None:
        for batch in self._batches(items):
            if self._out_of_budget():
                return  # the per-run cap: the rest stays owed, for the next run
            self._send(batch, done)

    def _send(self, batch: List[Item], done: Callable[[Sequence[Item]], None]) -> None:
        result = self.pusher.push(batch)
        if result.action == RETRY:
            raise _Stop(result.message)
        if result.action == SPLIT:
            for item in batch:
                self._send([item], done)
            return
        if result.action == REFUSED:
            self._refused(batch[0][0], result.message)
        else:
            assert result.action == OK
            for fingerprint, reason in result.refused:
                self._refused(fingerprint, reason)
            self.report.sent += len(batch) - len(result.refused)
        self.budget -= len(batch)
        done(batch)

    def _refused(self, fingerprint: str, message: str) -> None:
        self.report.refused.append((fingerprint, message))
        self.peers.record_refusal(self.peer.id, fingerprint, message, int(time.time()))
        log.info("%s refused %s for good: %s", self.peer.peer, fingerprint, message)


def dry_run(peer: Peer) -> PeerReport:
    """What a pass would send to `peer`, changing nothing."""
    return PeerReport(peer.peer, peer.kind, backlog_left=peer.backlog,
                      catching_up=peer.catch_up > 0, would_send=peer.backlog)

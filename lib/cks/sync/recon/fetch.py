"""Fetching the keys reconciliation found missing, by SKS key hash.

`fetch_missing` asks the peer's HTTP port for the hashes (POST /pks/hashquery,
100 per request, as SKS does; one kept-alive connection, reopened when the
peer closes it, as SKS does after every answer) and stores every key through
the one key pipeline (pipeline.store_keys, after the same binary parsing
pipeline.submit uses), with the source `recon:PEER`: what a peer sends is
queued for nobody, neither the push peers nor the mail peers, so nothing
travels in a loop (an SKS peer gets it from recon; a CKS peer from its own).

An answer is decoded whole before anything in it is stored: a peer that is
down, times out, or answers garbage leaves a clear error in the report (and a
log line), and nothing half stored.  The keys of one answer are stored as
cksd stores an upload: a new key's network view in the write transaction,
its served view (the signature checks) derived after it, outside the write
transaction, before the fetch goes on (store_keys's `defer_views`; follow).
Derived inside it, a fetch's 100 Debian keys held SQLite's one write lock,
and every upload and lookup behind it, for 0.41-0.45 s on an idle machine
(0.07-0.08 s since) and for seconds under bench/soak_sync.py's load.

Hashes not fetched again (table cks_recon_refused).  Recon lists the hashes
this node lacks at every round, with every peer that holds the key.  A key
fetched and then not stored under its hash would be fetched again at every
round from every peer, for ever.  A hash names fixed bytes, so fetching it
again can only bring the same answer; so the hash is recorded, and not asked
for again from any peer, when bytes that hash to it came (so any peer's
answer would be the same) and:

- its key was refused: rejected here, over a key limit, or unparseable (no
  key could be read from it);
- its key was stored but is held here under another hash: merged with packets
  the peer lacks (the peer fetches our version by recon, and its hash changes),
  or read differently (a packet the peer keeps and CKS drops).

One row per hash, whichever peer answered.  What a peer does wrong records
nothing for the hash, since nothing shows that another peer would answer the
same: an answer for one hash holding a key of another hash (counted in the
round's error, and the fetch goes on; until 2026-12-05 it was taken for that
hash's key and the hash refused), an answer over the size limit for one hash (split in halves
down to one hash first; not read, counted in the round's error, asked again
at the next round; until 2026-12-05 refused, so a peer declaring a huge
Content-Length blocked every hash it was asked for, from every peer, for 30
days).  A hash the peer did not return is NOT recorded and not an error: the
peer may have lost the key, or an answer was cut at its size limit; recon
lists it again if it still matters.  Rows expire after `refused_ttl` (30
days): then the hash is asked once more, so a raised limit takes effect
without anyone clearing the table.  Lifting a rejection, or deleting the
key, deletes the key's rows at once (store/rejections.py
forget_refused_hashes).

To know which hash an answer's key stands for, its packets are hashed as they
came (SKS's hash: MD5 over the packets sorted by tag and body) and as CKS
reads them; an answer holding a key that matches neither, in a request for
several hashes, is split in halves until it can be told.
"""

from __future__ import annotations

import http.client
import logging
import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Deque, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from ... import pipeline
from ...openpgp.errors import PacketError
from ...openpgp.keys import Key, merge_all, packets_hash, parse_keyring, sks_hash
from ...openpgp.packet import iter_packets
from ...store import Store, StoreError
from ...store.sql import Cursor, rows_in
from ...wording import counted
from ..hkp_push import Answer, HKPClient
from . import hashquery
from .field import HASH_BYTES

log = logging.getLogger("cks.recon")

REFUSED_TTL = 30 * 86400  # seconds a hash stays unasked (cks_recon_refused)
# The first word of a recorded hash's reason: pipeline.REJECTED or
# pipeline.OVER_LIMIT (refused), UNPARSEABLE (refused), OTHER_HASH (held).
UNPARSEABLE = "unparseable"
OTHER_HASH = "held-as"

HashLike = Union[bytes, str]


@dataclass
class FetchSettings:
    batch: int = hashquery.SKS_BATCH  # hashes per request
    timeout: float = 60.0  # seconds for a connection, a request's sending, or a read
    answer_seconds: float = 180.0  # for a whole answer (SKS's missing_keys_timeout)
    seconds: float = 900.0  # for the whole fetch: the rest is found again next round
    max_answer_bytes: int = hashquery.MAX_ANSWER_BYTES  # larger answers are split, not read
    refused_ttl: int = REFUSED_TTL
    user_agent: str = "CKS-recon"


@dataclass
class FetchReport:
    """What one fetch_missing did.  Counts of keys are by outcome of the
    pipeline; `refused` lists (hash, reason) for the hashes recorded as refused."""

    peer: str
    requested: int = 0  # hashes asked for (each once, however often re-asked)
    known_refused: int = 0  # not asked: recorded in cks_recon_refused
    held: int = 0  # not asked: a key with that hash is stored here already
    requests: int = 0  # HTTP requests made
    received: int = 0  # keys in the answers
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: List[Tuple[str, str]] = field(default_factory=list)
    other_hash: int = 0  # stored, now held under another hash (recorded too)
    not_returned: int = 0  # asked, not in the answer: not an error
    over_limit: int = 0  # hashes whose answer alone was over the size limit: not read
    wrong_bytes: int = 0  # hashes answered alone with bytes of another hash: skipped
    left: int = 0  # not asked: cks_sync.py's run reached its limits (RunShare), not an error
    errors: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def left_text(self) -> str:
        return "%s left for the next run (the run's limits)" % counted(self.left, "key")

    def summary(self) -> str:
        text = ("%s: asked %d hashes in %d requests, received %d keys: %d added, "
                "%d updated, %d unchanged, %d refused, %d not returned"
                % (self.peer, self.requested, self.requests, self.received, self.added,
                   self.updated, self.unchanged, len(self.refused), self.not_returned))
        if self.other_hash:
            text += "; %d held here under another hash" % self.other_hash
        if self.known_refused:
            text += "; %d refused earlier, not asked" % self.known_refused
        if self.left:
            text += "; %s" % self.left_text()
        return text + "".join("; error: " + e for e in self.errors)


# --- HTTP --------------------------------------------------------------------------

@dataclass
class HashAnswer(Answer):
    # X-HKP-Results-Truncated: a CKS node cut the answer (one from before
    # 2026-12-06, or one that does not have us as an enabled peer)
    truncated: bool = False
    over_limit: int = 0  # the answer's size (at least) when over the limit: not read
    short_of: int = 0  # the Content-Length declared, when fewer bytes came


class HashQueryClient(HKPClient):
    """hkp_push's client (one kept-alive connection, one retry on a fresh one
    when the peer closed it meanwhile) asking for hashes; it reads no more of
    an answer than the limit."""

    def __init__(self, host: str, port: int, settings: FetchSettings, source: str = "") -> None:
        super().__init__(host, port, settings.timeout, "", settings.answer_seconds, source)
        self.user_agent = settings.user_agent

    def query(self, body: bytes, max_bytes: int, deadline: float = math.inf) -> HashAnswer:
        answer = self.post(hashquery.PATH, body, {"User-Agent": self.user_agent},
                           lambda response: self._read(response, max_bytes), HashAnswer,
                           deadline)
        assert isinstance(answer, HashAnswer)
        return answer

    def _read(self, response: http.client.HTTPResponse, max_bytes: int) -> HashAnswer:
        truncated = response.getheader("X-HKP-Results-Truncated", "").lower() == "true"
        body = self.read_body(response, max_bytes)
        return HashAnswer(response.status, body.data, over_limit=body.over,
                          short_of=body.short_of,
                          truncated=truncated and not (body.over or body.short_of))


# --- hashes ------------------------------------------------------------------------

def hash_hex(value: HashLike) -> str:
    """A key hash as cks_keys.sks_hash spells it (32 upper-case hex digits),
    from its 16 bytes or its hex."""
    if isinstance(value, str):
        digest = bytes.fromhex(value)
    else:
        digest = bytes(value)
    if len(digest) != HASH_BYTES:
        raise ValueError("a key hash has %d bytes, not %d" % (len(digest), HASH_BYTES))
    return digest.hex().upper()


def raw_hash(blob: bytes) -> Optional[str]:
    """SKS's hash of the packets as they came, none dropped (SKS stores and
    serves its keys de-duplicated, so this is the hash it advertises); None
    when the packet framing breaks."""
    try:
        return packets_hash(iter_packets(blob)).hex().upper()
    except PacketError:
        return None


@dataclass
class _Blob:
    """One key of an answer: the requested hashes it stands for, the keys read
    from it, and why none could be, when none could."""

    names: Set[str]
    keys: List[Key]
    problem: str


def _read_blob(blob: bytes, asked: Sequence[str]) -> _Blob:
    result = parse_keyring(blob)
    candidates = {raw_hash(blob)} | {sks_hash(k).hex().upper() for k in result.keys}
    names = candidates & set(asked)
    problem = "; ".join(str(p) for p in result.problems if p.fatal) or "no key in it"
    return _Blob(names, result.keys, "" if result.keys else problem)


# --- the table of refused hashes -------------------------------------------------------

def refused_and_held(cursor: Cursor, hashes: Sequence[str],
                     since: int) -> Tuple[Set[str], Set[str]]:
    """Of these hashes (hash_hex), those recorded as refused since `since`
    (cks_recon_refused's rows before it have expired), and the others that a
    stored key has: the hashes not to ask for."""
    refused = {r[0] for r in rows_in(
        cursor, "SELECT sks_hash FROM cks_recon_refused WHERE refused_at >= ? "
        "AND sks_hash IN %s", hashes, (since,))}
    held = {r[0] for r in rows_in(
        cursor, "SELECT sks_hash FROM cks_keys WHERE sks_hash IN %s",
        [h for h in hashes if h not in refused])}
    return refused, held


def _to_ask(store: Store, wanted: List[str], ttl: int, now: int,
            report: FetchReport) -> List[str]:
    """`wanted` less the hashes recorded as refused (expired rows go first) and
    those already held."""
    with store.write() as cursor:
        cursor.execute("DELETE FROM cks_recon_refused WHERE refused_at < ?", (now - ttl,))
        refused, held = refused_and_held(cursor, wanted, now - ttl)
    report.known_refused = len(refused)
    report.held = len(held)
    return [h for h in wanted if h not in refused and h not in held]


def _record(store: Store, rows: Dict[str, Tuple[Optional[str], str]], now: int) -> None:
    """Remember hashes not to ask again: {hash: (fingerprint or None, reason)}."""
    if not rows:
        return
    with store.write() as cursor:
        cursor.executemany(
            "INSERT INTO cks_recon_refused (sks_hash, fingerprint, refused_at, reason) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (sks_hash) DO UPDATE SET "
            "fingerprint = excluded.fingerprint, refused_at = excluded.refused_at, "
            "reason = excluded.reason",
            [(h, fpr, now, reason) for h, (fpr, reason) in sorted(rows.items())])


# --- fetching ------------------------------------------------------------------------

@dataclass(frozen=True)
class RunShare:
    """What one cks_sync.py run gives a recon peer's fetch (README: a cap on
    work per run): its hashes beyond `keys` and those still to ask at
    `deadline` (time.monotonic()) wait for the next run, which is no failure
    (until 2026-12-06 the deadline was reported as "out of time" and failed
    the run, and `keys` was not applied: found by a review)."""

    deadline: float = math.inf
    keys: Optional[int] = None


class _Fetch:
    """One fetch_missing run: a queue of batches, worked off in order."""

    def __init__(self, store: Store, client: HashQueryClient, source: pipeline.Source,
                 limits: pipeline.Limits, settings: FetchSettings, now: int,
                 report: FetchReport, share: RunShare) -> None:
        self.share = share
        self.deadline = min(share.deadline, time.monotonic() + settings.seconds)
        self.store = store
        self.client = client
        self.source = source
        self.limits = limits
        self.settings = settings
        self.now = now
        self.report = report
        self.queue: Deque[List[str]] = deque()

    def run(self, hashes: List[str]) -> None:
        size = max(1, self.settings.batch)
        self.queue.extend(hashes[i:i + size] for i in range(0, len(hashes), size))
        while self.queue:
            batch = self.queue.popleft()
            error = self._out_of_time() or self._one(batch)
            if error:
                left = len(batch) + sum(len(b) for b in self.queue)
                if self._share_spent():
                    self.report.left += left
                else:
                    self._fail("%s (%d hashes not fetched)" % (error, left))
                return

    def _out_of_time(self) -> str:
        """The error when the fetch's time is up (settings.seconds, or the
        end of cks_sync.py's share of its run), else ''."""
        return "out of time" if time.monotonic() >= self.deadline else ""

    def _share_spent(self) -> bool:
        """The run's share is spent, with the peer answering in it or not yet
        asked in it: the rest waits for the next run.  (A peer that was asked
        and sent no key in the whole share failed: one that trickles its
        answers.)"""
        return time.monotonic() >= self.share.deadline and (
            self.report.received > 0 or self.report.requests == 0)

    def _fail(self, message: str) -> None:
        self.report.errors.append(message)
        log.warning("recon fetch from %s: %s", self.report.peer, message)

    def _split(self, batch: List[str]) -> None:
        half = len(batch) // 2
        self.queue.extendleft([batch[half:], batch[:half]])

    def _one(self, batch: List[str]) -> str:
        """Ask for one batch and store its answer; an error message that ends
        the run, or ''."""
        body = hashquery.encode_request(bytes.fromhex(h) for h in batch)
        answer = self.client.query(body, self.settings.max_answer_bytes, self.deadline)
        self.report.requests += 1
        if answer.status == 0:
            return self._out_of_time() or "no answer from %s:%d: %s" % (
                self.client.host, self.client.port, answer.error)
        if answer.status != 200:
            text = " ".join(answer.body[:200].decode("utf-8", "replace").split())
            return "HTTP %d to %s%s" % (answer.status, hashquery.PATH,
                                        ": " + text if text else "")
        if answer.over_limit:
            self._over_limit(batch)
            return ""
        if answer.short_of:
            return "the answer was cut short (%d of %d bytes)" % (len(answer.body),
                                                                  answer.short_of)
        try:
            blobs = hashquery.decode_answer(answer.body, len(batch),
                                            self.settings.max_answer_bytes)
        except hashquery.HashQueryError as exc:
            return "answered garbage to %s: %s" % (hashquery.PATH, exc)
        read = [_read_blob(blob, batch) for blob in blobs]
        if any(not b.names for b in read):
            if len(batch) > 1:
                self._split(batch)  # which hash is that key's? ask in halves
            else:  # the peer's fault, not the hash's: nothing recorded, the rest asked
                self.report.wrong_bytes += 1
            return ""
        self._store(read)
        self._left_out(batch, read, answer.truncated)
        return ""

    def _over_limit(self, batch: List[str]) -> None:
        """Split; for one hash, count it (its bytes unread, nothing shows that
        another peer's answer would be as large)."""
        if len(batch) > 1:
            self._split(batch)
        else:
            self.report.over_limit += 1

    def _left_out(self, batch: List[str], read: List[_Blob], truncated: bool) -> None:
        """Hashes asked for and not answered: asked again when a CKS peer cut
        its answer (and gave something, so this ends); else not an error."""
        answered = set().union(*(b.names for b in read)) if read else set()
        missing = [h for h in batch if h not in answered]
        if truncated and read and missing:
            self.queue.append(missing)
        else:
            self.report.not_returned += len(missing)

    def _store(self, read: List[_Blob]) -> None:
        """Store the answer's keys, count them, record the hashes not to ask again."""
        self.report.received += len(read)
        keys = merge_all(k for b in read for k in b.keys)
        outcomes = {o.fingerprint: o for o in
                    pipeline.store_keys(self.store, keys, self.source, self.limits, self.now,
                                        defer_views=True)}
        counts = Counter(o.status for o in outcomes.values())
        self.report.added += counts[pipeline.ADDED]
        self.report.updated += counts[pipeline.UPDATED]
        self.report.unchanged += counts[pipeline.UNCHANGED]
        held = self._hashes_of(list(outcomes))
        rows: Dict[str, Tuple[Optional[str], str]] = {}
        for blob in read:
            for name in sorted(blob.names):
                row = self._verdict(name, blob, outcomes, held)
                if row is not None:
                    rows[name] = row
        _record(self.store, rows, self.now)

    def _verdict(self, name: str, blob: _Blob, outcomes: Dict[str, pipeline.Outcome],
                 held: Dict[str, str]) -> Optional[Tuple[Optional[str], str]]:
        """(fingerprint, reason) when hash `name` is not to be asked again,
        counted in the report; None when a key is held under it now."""
        if not blob.keys:
            reason = "%s: %s" % (UNPARSEABLE, blob.problem)
            self.report.refused.append((name, reason))
            return None, reason
        for key in blob.keys:
            fingerprint = key.fingerprint.hex().upper()
            outcome = outcomes[fingerprint]
            if outcome.status == pipeline.REFUSED:
                reason = "%s: %s" % (outcome.refusal, outcome.reason)
                self.report.refused.append((name, reason))
                return fingerprint, reason
        if any(held.get(k.fingerprint.hex().upper()) == name for k in blob.keys):
            return None
        fingerprint = blob.keys[0].fingerprint.hex().upper()
        self.report.other_hash += 1
        return fingerprint, "%s %s: the key is held here in another form" % (
            OTHER_HASH, held.get(fingerprint, "?"))

    def _hashes_of(self, fingerprints: List[str]) -> Dict[str, str]:
        """The stored hash of each of these keys."""
        with self.store.read() as cursor:
            return dict(rows_in(cursor, "SELECT fingerprint, sks_hash FROM cks_keys "
                                           "WHERE fingerprint IN %s", fingerprints))


def fetch_missing(store: Store, peer_name: str, host: str, http_port: int,
                  hashes: Iterable[HashLike], limits: Optional[pipeline.Limits] = None,
                  settings: Optional[FetchSettings] = None,
                  now: Optional[int] = None, share: RunShare = RunShare(),
                  source: str = "") -> FetchReport:
    """Fetch the keys with these SKS hashes (16 bytes, or 32 hex digits) from
    the peer's HTTP port and store them as `recon:PEER_NAME`.  Hashes recorded
    as refused, and hashes held already, are not asked for.  The fetch ends
    after `settings.seconds` (an error), or within cks_sync.py's `share` of
    its run (the rest left for the next), keeping what it stored (until
    2026-12-05 a peer could hold it for days); `source`: the address to ask
    from (hkp_push.source_address).  Never raises for what the peer does:
    errors are in the report."""
    settings = settings or FetchSettings()
    now = int(time.time()) if now is None else now
    report = FetchReport(peer_name)
    wanted = list(dict.fromkeys(hash_hex(h) for h in hashes))
    try:
        ask = _to_ask(store, wanted, settings.refused_ttl, now, report)
        if share.keys is not None and len(ask) > share.keys:
            report.left, ask = len(ask) - share.keys, ask[:share.keys]
        report.requested = len(ask)
        if ask:
            client = HashQueryClient(host, http_port, settings, source)
            try:
                _Fetch(store, client, pipeline.Source.peer("recon", peer_name),
                       limits or pipeline.Limits(), settings, now, report, share).run(ask)
            finally:
                client.close()
        if report.over_limit:
            report.errors.append("%d answers for one key each over the limit of %d bytes "
                                 "(not read; asked again at the next round)"
                                 % (report.over_limit, settings.max_answer_bytes))
        if report.wrong_bytes:
            report.errors.append("%d hashes answered with bytes of another hash (skipped; "
                                 "asked again at the next round)" % report.wrong_bytes)
    except StoreError as exc:
        report.errors.append("database: %s" % exc)
        log.warning("recon fetch from %s: database: %s", peer_name, exc)
    log.info("recon fetch from %s", report.summary())
    return report

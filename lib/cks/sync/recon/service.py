"""cksd's part in reconciliation: it listens on the recon port for rounds its
recon peers start, and starts one itself with a random recon peer every
`[recon] interval` seconds (with jitter), as SKS gossips.  Its rounds share
the tree's nodes they read while the keys do not change (ptree_view.TreeCache),
and it reads the tree's first levels when it starts and every minute, so
that its database connection and that cache are ready for the next round."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from typing import Any, Callable, Optional

from ... import pipeline
from ...periodic import Periodic
from ...repeated import OncePerKey
from ...store import Store, StoreError
from ...store.peers import Peer
from ...store.ptree_view import TreeCache, open_tree
from .net import refuse_busy
from .rounds import Members, RoundReport, answer, dial, recon_peers, round_lock
from .wire import DEFAULT_FILTERS, Config, our_config

log = logging.getLogger("cks.recon")

GOSSIP_LOCK = "cks_recon_gossip"  # held by the one process that gossips for a database
MAX_SESSIONS = 4  # rounds served at once; past it a peer is refused as busy
MAX_REFUSING = 8  # busy refusals waiting for their peer to hang up; past it, closed at once
MEMBERS_REFRESH = 60.0  # seconds between readings of who may start a round (and of the tree)
UNKNOWN_REFRESH = 10.0  # a refused connection has them read again at once, this often at most
STOP_WAIT = 5.0  # seconds stop() waits for the session threads to end
REFUSED_LOG_SECONDS = 600.0  # a refused address is logged once in this time

RoundCounter = Callable[[RoundReport, bool], None]  # a round ended; did we dial it?


class ReconService:
    def __init__(self, store: Store, listener: Optional[socket.socket], http_port: int,
                 limits: pipeline.Limits, interval: float, source: str = "",
                 on_round: Optional[RoundCounter] = None,
                 tree_cache: Optional[TreeCache] = None) -> None:
        self.store = store
        self.tree_cache = tree_cache
        self.on_round = on_round or (lambda report, dialed: None)  # cksd counts them
        self.listener = listener
        self.source = source  # the address rounds are dialed from
        self.http_port = http_port
        self.limits = limits
        self.gossip = Periodic("recon-gossip", interval, self.gossip_once, jitter=0.1) \
            if interval > 0 else None
        self.members = Members(store)
        self._refusals_said = OncePerKey(REFUSED_LOG_SECONDS)
        self._refusals_reread = OncePerKey(UNKNOWN_REFRESH)
        self._members_refresh = Periodic("recon-members", MEMBERS_REFRESH, self.prepare)
        self._say_members = False  # (set by a SIGHUP: the next refresh writes its line)
        self._sessions = threading.BoundedSemaphore(MAX_SESSIONS)
        self._refusing = threading.BoundedSemaphore(MAX_REFUSING)  # busy refusals sent at once
        # Each session thread accepts its own connections: handing them from one
        # accepting thread to another cost a round 0.1-0.15 ms.  One more
        # than MAX_SESSIONS, so that while all rounds are under way one thread
        # is still there to accept and refuse.
        self._session_threads = [
            threading.Thread(target=self._session_loop, name="recon-session", daemon=True)
            for _ in range(MAX_SESSIONS + 1)]
        self._stopping = threading.Event()
        self._gossip_lock: Optional[Any] = None  # while this process gossips

    def start(self) -> None:
        if self.listener is not None:
            self.listener.settimeout(0.5)
            self._members_refresh.start()
            for thread in self._session_threads:
                thread.start()
        if self.gossip is not None:
            self.gossip.start()

    def stop(self) -> None:
        """At most STOP_WAIT in all: a round still under way then ends in its
        (daemon) thread, and so does the gossip lock's release, which waits
        for the database: until 2026-12-06 it came first, unbounded, and
        SIGTERM never stopped a cksd whose PostgreSQL did not answer (the
        lock goes with its connection when the process ends)."""
        deadline = time.monotonic() + STOP_WAIT
        self._stopping.set()
        if self.gossip is not None:
            self.gossip.stop(max(0.0, deadline - time.monotonic()))
        if self._gossip_lock is not None:
            release = threading.Thread(target=self.store.release, args=(self._gossip_lock,),
                                       name="recon-unlock", daemon=True)
            release.start()
            self._gossip_lock = None
            release.join(max(0.0, deadline - time.monotonic()))
        if self.listener is not None:
            self._members_refresh.stop(max(0.0, deadline - time.monotonic()))
        for thread in self._session_threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def gossip_once(self) -> None:
        """A round with one recon peer chosen at random, if this process
        gossips for the database (_gossips)."""
        try:
            peers = recon_peers(self.store) if self._gossips() else []
            if peers:
                self._ended(dial(self.store, random.choice(peers), self.http_port,
                                 self.limits, self.source, self.tree_cache), True)
        except StoreError as exc:
            log.warning("recon gossip skipped: %s", exc)

    def _gossips(self) -> bool:
        """The first serving process (of any cksd on the database) to take
        GOSSIP_LOCK keeps it while it lives, and it alone starts rounds: one
        round an interval for the database, not one for each process (as
        when each took the lock for its own rounds only, every `interval`).
        Should it end, or its lock's connection break, another takes over
        at its next turn."""
        if self._gossip_lock is not None and self.store.lock_held(self._gossip_lock):
            return True
        self._gossip_lock = self.store.take_lock(GOSSIP_LOCK)
        return self._gossip_lock is not None

    def _ended(self, report: RoundReport, dialed: bool) -> None:
        """A round's line in cksd's log (cks_sync.py prints its own), and its count."""
        log.log(logging.INFO if report.ok else logging.WARNING, "%s", report.summary())
        self.on_round(report, dialed)

    def reread_peers(self) -> None:
        """Read who may start a round again at once (SIGHUP), in the thread
        that does it every MEMBERS_REFRESH seconds, and say so in the log
        even if nothing changed: a reload is answered in each process."""
        if self.listener is not None:
            self._say_members = True
            self._members_refresh.run_now()

    def prepare(self) -> None:
        """Read who may start a round, and the tree's first levels (a
        serving process's first round was about 2 ms slower on PostgreSQL:
        its connection had not read the tree yet)."""
        say, self._say_members = self._say_members, False
        try:
            self.members.refresh(say)
        except StoreError as exc:
            log.warning("recon peers not read again: %s", exc)
        try:
            with open_tree(self.store, self.tree_cache) as tree:
                tree.read_top()
        except StoreError as exc:
            log.warning("recon tree not read ahead: %s", exc)

    def _session_loop(self) -> None:
        assert self.listener is not None
        while not self._stopping.is_set():
            try:
                sock, address = self.listener.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    return
                log.warning("recon port: accept failed: %s", exc)
                continue
            peer = self.members.find(address[0])
            if peer is None:
                self._refuse(sock, address[0])
                continue
            try:
                lock = self.store.take_lock(round_lock(peer))
            except StoreError as exc:
                log.warning("recon round with %s: %s", address[0], exc)
                sock.close()
                continue
            if lock is None:
                self._busy(sock, address[0], peer, "a round with you is under way")
            elif not self._sessions.acquire(blocking=False):
                self.store.release(lock)
                self._busy(sock, address[0], peer, "%d rounds under way" % MAX_SESSIONS)
            else:
                self._serve(sock, address[0], peer, lock)

    def _busy(self, sock: socket.socket, address: str, peer: Peer, why: str) -> None:
        """Refuse a peer's round, before a slot is taken, saying why: a round
        with it is under way (in any process: its fetch too), or every slot
        is taken.  Until 2026-12-05 the connection was closed without a
        word, and the peer logged a failure.  Counted as a round the peer
        started, busy (until 2026-12-06 it was not counted)."""
        log.info("recon round from %s refused: busy: %s", address, why)
        self.on_round(RoundReport(peer.peer, busy=why), False)
        if not self._refusing.acquire(blocking=False):
            sock.close()  # (refusals enough under way: this one without a word)
            return
        # In a thread of its own: it waits up to a second for the peer to
        # hang up, while this thread is the one left to accept connections.
        threading.Thread(target=self._refuse_busy, name="recon-refusal", daemon=True, args=(
            sock, our_config(self.http_port, peer.filters or DEFAULT_FILTERS), why)).start()

    def _refuse_busy(self, sock: socket.socket, ours: Config, why: str) -> None:
        try:
            refuse_busy(sock, ours, why)
        finally:
            self._refusing.release()

    def _refuse(self, sock: socket.socket, address: str) -> None:
        """Close on an address that is no enabled recon peer's at once, before
        the handshake, as SKS does outside its membership, and before taking
        a round's slot: until 2026-12-05 a flood of such connections took the
        slots (peers' rounds were refused as "4 rounds under way") and wrote
        a line each."""
        sock.close()
        # A peer just added (its operator starts a round at once): read the
        # list again, in the refresh's thread, so that its next round this
        # process accepts is taken (each serving process keeps its own list,
        # and its own record of the addresses it has logged).
        if self._refusals_reread.allows("members"):
            self._members_refresh.run_now()
        if self._refusals_said.allows(address):
            log.warning("recon connection from %s refused: not an enabled recon peer (said "
                        "once in %d minutes per address by each serving process)", address,
                        REFUSED_LOG_SECONDS // 60)

    def _serve(self, sock: socket.socket, address: str, peer: Peer, lock: Any) -> None:
        try:
            self._ended(answer(self.store, sock, address, peer, self.http_port, self.limits,
                               self.tree_cache), False)
        except StoreError as exc:
            log.warning("recon round with %s: %s", address, exc)
        except Exception:  # noqa: BLE001 - this thread serves the next rounds too
            log.exception("recon round with %s failed", address)
        finally:
            # The slot first: a peer that sees the connection close may start
            # its next round at once (answer closed it already after a round).
            self._sessions.release()
            self.store.release(lock)
            sock.close()

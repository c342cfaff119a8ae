"""The keyserver's HTTP plumbing: one event loop per process, a few worker threads.

One thread watches every connection (selectors) and does the socket work:
accepting, reading request heads and bodies, writing answers, enforcing the
deadline of each phase (an idle keep-alive connection, a head trickling in
byte by byte, a slow body).  Lookups are answered right in that thread: they
take a fraction of a millisecond, and Python gains nothing from handing them
to other threads, which only fight over the interpreter lock.  Uploads, text
searches and everything else that may take long go to a small pool of worker
threads, so a large upload or a broad search delays no key lookup.

Parsing lives in http1.py (no I/O); what to answer lives in app.py.  Room
is shared out among clients (fair_share.py): open connections up to
`max_connections`, and per address up to `max_connections_per_address`; the
bodies of uploads still arriving up to `upload_buffer_mb`.  A client that
would hold the most gives room back, mid-request or not; when a newcomer
would be that client (or one of them, on a tie), a connection that waits for
a request makes room, its own or another's that holds as many, and with none
it gets 503 at once.

hkps: a listener may serve TLS (tls.py).  Its connections start with the
handshake, done step by step in the loop like everything else (a client that
never finishes it holds up nobody, and is cut off at `head_timeout`); after
it, reads and writes go through the TLS socket, where "not yet" is
SSLWantReadError/SSLWantWriteError rather than BlockingIOError.

stop: the listening socket closes, idle connections close, requests in flight
(a body still arriving, a worker still busy, an answer still being written)
run to completion, then serve_forever() returns.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import selectors
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..batchlog import QuickLog
from .app import KeyServer, Request, Response
from .bodies import FileBody
from .cksd_metrics import METRICS_PATH
from .fair_share import Shares
from .http1 import CONTINUE, HTTPError, Head, format_response, parse_head
from .ratelimit import bucket_of, in_networks
from .rejections import ADMIN_PATH
from .request import is_address, is_hex_search, split_target
from .tls import Certificates

access_log = QuickLog(logging.getLogger("cks.access"))  # a line per request: the quick way
log = logging.getLogger("cks.server")

LISTENER = "listener"  # the selector data of a listening socket


class _ExclusiveListeners(selectors.EpollSelector):
    """epoll where a listening socket, which every serving process watches,
    wakes one of them per new connection (EPOLLEXCLUSIVE), not all: the
    others woke for nothing, found no connection to accept, and with two
    processes a new connection's answer came 0.05-0.15 ms later.  The
    selectors module has no way to pass the flag, so a listener is added to
    its epoll object (EpollSelector's `_selector`) again, with the flag: it
    can only be given when a file is added."""

    def register(self, fileobj, events, data=None) -> selectors.SelectorKey:
        key = super().register(fileobj, events, data)
        if data == LISTENER:
            self._selector.unregister(key.fd)
            self._selector.register(key.fd, select.EPOLLIN | select.EPOLLEXCLUSIVE)
        return key


def loop_selector() -> selectors.BaseSelector:
    """The selector a serving process's loop watches its sockets with."""
    if hasattr(select, "EPOLLEXCLUSIVE") and hasattr(selectors, "EpollSelector"):
        return _ExclusiveListeners()
    return selectors.DefaultSelector()


def is_quick(request: Request) -> bool:
    """Answered in the loop's thread: index lookups that read one range of an
    index (a capped list of keys by key ID, address or a single word), a get
    of one key by key ID, fingerprint or hash (what GnuPG sends most), a
    preflight.  A get by text (up to max_results keys to armor), an index
    of several words or exact=on (a word looked up for each key of another),
    vindex and stats may take longer and go to the workers, like uploads."""
    if request.method == "OPTIONS" or request.malformed is not None:
        return True  # a preflight, or a 400 for a malformed query
    if request.method not in ("GET", "HEAD") or request.path != "/pks/lookup":
        return False
    op = (request.query.get("op") or "").lower()
    search = (request.query.get("search") or "").strip().lower()
    if op == "index":
        return (request.query.get("exact") or "").lower() != "on" and (
            is_hex_search(search) or search.isalnum() or is_address(search))
    return op in ("get", "hget") and (is_hex_search(search) or len(search) == 32)


@dataclass
class ServerLimits:
    max_connections: int = 512  # open connections per process (see _room_for)
    max_connections_per_address: int = 64  # of them from one client (not exempt ones)
    upload_buffer_mb: float = 64.0  # bodies still arriving, per process (_hold_body)
    workers: int = 4  # threads for uploads and other slow requests
    idle_timeout: float = 15.0  # keep-alive connection without a request
    head_timeout: float = 10.0  # from the first byte of a request to the end of its head
    body_timeout: float = 60.0  # for the whole body
    write_timeout: float = 60.0  # to take an answer: its fixed part (write_seconds)
    min_write_rate_kb: float = 16.0  # KiB a second an answer is taken at, at least, past it
    drain_seconds: float = 5.0  # reading what follows an over-size upload, so the client
    drain_bytes: int = 64 << 20  # gets our 413 instead of a reset connection

    def write_seconds(self, size: int) -> float:
        """The seconds a client has to take an answer of `size` bytes, whole:
        write_timeout, and the time its bytes take at min_write_rate_kb.  An
        answer waiting for a slow client holds its memory or temporary file
        (until 2026-12-06 the deadline was renewed by each PIECE_BYTES taken,
        so an answer of 16 MiB taken a piece a minute was held 64 minutes)."""
        return self.write_timeout + size / (self.min_write_rate_kb * 1024)


PIPELINED_PER_TURN = 16
"""Requests one connection has answered in the loop, one after another, before
the other connections' turn: a client that sends hundreds at once (HTTP
pipelining) waits for the others between its runs."""

PIECE_BYTES = 256 << 10
"""An answer's body in a file (FileBody) is read this much at a time, as the
socket takes it: a hashquery answer of hundreds of megabytes costs no more
memory than that."""

# Connection states
HANDSHAKE, IDLE, HEAD, BODY, BUSY, WRITING, DRAINING = (
    "handshake", "idle", "head", "body", "busy", "writing", "draining")

# A non-blocking socket's "try again when it is ready", plain or TLS
NOT_YET = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)

CORS = ("Access-Control-Allow-Origin", "*")
EVERY_ANSWER = [CORS, ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "same-origin")]
"""Headers of every answer, the server's own refusals too: a web page's
script reads a 413 or a 400 only when it may (CORS); a browser takes each
answer as the type it says, never as a page or script it guessed (nosniff);
and a link or request from a page to another site tells it nothing of the
page's address, a search with it (same-origin).  Not no-referrer: with it a
browser sends `Origin: null` with a form, and the admin page refuses a form
from origin null (admin.same_origin).  Until 2026-12-07 only photo IDs
carried nosniff, and no answer a Referrer-Policy."""
HSTS = ("Strict-Transport-Security", "max-age=31536000")
"""On answers over cksd's own TLS (and only there: a browser ignores it over
plain HTTP): a browser that has seen it goes to this host by https only for
a year, so the admin page's password (HTTP Basic) never goes in clear by a
mistyped http:// address or a stripped redirect."""
OPERATORS_PATHS = frozenset({METRICS_PATH, "/health", ADMIN_PATH})
"""Pages for the operator, not for other sites' scripts: no CORS (until
2026-12-06 any web page could read /metrics through an allowed client's
browser)."""


def every_answer(tls: bool) -> List[Tuple[str, str]]:
    """EVERY_ANSWER, and HSTS over TLS."""
    return EVERY_ANSWER + [HSTS] if tls else EVERY_ANSWER


def answer_headers(path: str, own: Sequence[Tuple[str, str]] = (),
                   tls: bool = False) -> List[Tuple[str, str]]:
    """every_answer(), less CORS on the operator's pages, and less those an
    answer sets itself (`own`: the admin page's Cache-Control is no-store)."""
    named = {name.lower() for name, _ in own}
    return [h for h in every_answer(tls) if h[0].lower() not in named
            and not (h == CORS and path in OPERATORS_PATHS)]


def refusal(status: int, body: bytes, headers: Sequence[Tuple[str, str]] = (),
            tls: bool = False) -> bytes:
    """An answer the server gives without routing a request (a malformed or
    too large one, a busy server), after which it closes the connection;
    `tls`: it goes over cksd's own TLS (HSTS, as on every answer there:
    until 2026-12-06 these had none)."""
    return format_response(status, [("Content-Type", "text/plain; charset=utf-8")]
                           + every_answer(tls) + list(headers), body, keep_alive=False)


def busy(message: str, tls: bool = False) -> bytes:
    """The 503 of a connection refused, or closed to make room for another
    client's (fair_share.py)."""
    return refusal(503, (message + "\n").encode(), [("Retry-After", "10")], tls)


class _Connection:
    """One client connection and where it stands; the loop moves it along."""

    def __init__(self, sock: socket.socket, address: str, now: float,
                 limits: ServerLimits) -> None:
        self.sock = sock
        self.address = address
        self.buffer = bytearray()
        self.out = b""
        self.rest: Optional[FileBody] = None  # the answer's body still in its file
        self.sent = 0  # bytes of the answer being written that the socket took
        self.client = address  # whom it answers (behind a trusted proxy: the real client)
        self.group = bucket_of(address)  # whose share it counts in (fair_share.py)
        self.held_body = 0  # bytes of upload_buffer_mb its body holds while it arrives
        self.head: Optional[Head] = None
        self.length = 0
        self.keep_alive = False
        self.started = now
        self.state = IDLE
        self.deadline = now + limits.idle_timeout
        self.drain_left = 0
        self.watching = 0  # the selector events the loop waits for (HKPServer._watch)
        self.advancing = False  # HKPServer._advance is moving it on

    @property
    def sending(self) -> bool:
        """Whether some of the answer is still to be sent."""
        return bool(self.out) or self.rest is not None

    @property
    def unsent(self) -> int:
        """Bytes of the answer being written that the socket has not taken."""
        rest = self.rest
        return len(self.out) + (rest.size - rest.file.tell() if rest else 0)

    @property
    def tls(self) -> bool:
        """Whether it is over cksd's own TLS."""
        return isinstance(self.sock, ssl.SSLSocket)

    @property
    def in_flight(self) -> bool:
        return self.state not in (HANDSHAKE, IDLE, DRAINING) or bool(self.buffer)


def _bytes_arrived(sock: socket.socket) -> bool:
    """Whether bytes the loop has not read wait for it on `sock` (or its
    peer has closed it), in the kernel or decrypted in the TLS layer."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _received_rest(sock: socket.socket) -> bytes:
    """What a TLS socket decrypted past the last recv(): it waits in the TLS
    layer, where no select() sees it."""
    rest = b""
    while isinstance(sock, ssl.SSLSocket) and sock.pending():
        rest += sock.recv(sock.pending())
    return rest


class HKPServer:
    """Serves `listeners` (which several processes may share): each listening
    socket with the certificates it serves TLS with, or None for plain HTTP."""

    def __init__(self, app: KeyServer,
                 listeners: Sequence[Tuple[socket.socket, Optional[Certificates]]],
                 limits: Optional[ServerLimits] = None) -> None:
        self.app = app
        self.limits = limits or ServerLimits()
        self.stopping = False
        self.listeners = dict(listeners)
        for listener in self.listeners:
            listener.setblocking(False)  # shared between processes: accept may find nothing
        self._selector = loop_selector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        # (connection, request, response, seconds): answers the workers prepared
        self._done: "queue.SimpleQueue" = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(max_workers=self.limits.workers,
                                        thread_name_prefix="cksd-worker")
        self._connections: Dict[socket.socket, _Connection] = {}
        self._connection_shares = Shares()  # open connections, by client
        self._body_shares = Shares()  # bytes of bodies still arriving, by client
        # Connections with pipelined requests left for their next turn (_advance)
        self._pipelined: List[_Connection] = []

    # --- the loop --------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Serve until request_stop(), then until the requests in flight are done."""
        for listener in self.listeners:
            self._selector.register(listener, selectors.EVENT_READ, LISTENER)
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        listening = True
        while True:
            if self.stopping and listening:
                listening = False
                for listener in self.listeners:
                    self._selector.unregister(listener)
                    listener.close()
                for connection in list(self._connections.values()):
                    if not connection.in_flight:
                        self._close(connection)
            if not listening and not any(c.in_flight for c in self._connections.values()):
                break
            pipelined, self._pipelined = self._pipelined, []
            for key, events in self._selector.select(0 if pipelined else self._timeout()):
                if key.data == LISTENER:
                    self._accept(key.fileobj)
                elif key.data == "wake":
                    self._finish_work()
                elif key.data.state == HANDSHAKE:
                    self._handshake(key.data)
                elif events & selectors.EVENT_WRITE:
                    self._write(key.data)
                else:
                    self._read(key.data)
            for connection in pipelined:
                if connection.sock in self._connections:
                    self._advance(connection)
            self._expire()

    def _timeout(self) -> float:
        if not self._connections:
            return 1.0
        soonest = min(c.deadline for c in self._connections.values())
        return max(0.0, min(1.0, soonest - time.monotonic()))

    def _accept(self, listener: socket.socket) -> None:
        """One connection per wake-up: the serving processes share the listening
        socket, and one that took a whole burst of new connections (8 clients
        connecting at once) would serve them all while the others idle.  The
        listener stays readable while more are waiting."""
        try:
            sock, address = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("accept failed: %s", exc)
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        certificates = self.listeners[listener]
        if not self._room_for(address[0]):
            self._refuse(sock, address[0], plain=certificates is None)
            return
        if certificates is not None:
            try:
                sock = certificates.context.wrap_socket(sock, server_side=True,
                                                        do_handshake_on_connect=False)
            except OSError as exc:
                log.warning("TLS connection from %s not set up: %s", address[0], exc)
                sock.close()
                return
        connection = _Connection(sock, address[0], time.monotonic(), self.limits)
        if certificates is not None:
            connection.state = HANDSHAKE
            connection.deadline = connection.started + self.limits.head_timeout
        self._connections[sock] = connection
        self._connection_shares.take(connection.group)
        self._watch(connection, selectors.EVENT_READ)

    def _handshake(self, connection: _Connection) -> None:
        """The next step of a TLS handshake, when the socket is ready for it."""
        try:
            connection.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(connection, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._watch(connection, selectors.EVENT_WRITE)
            return
        except OSError as exc:  # not TLS, no protocol or cipher in common, a reset
            access_log.info('%s "-" TLS handshake failed (%s)', connection.address,
                            getattr(exc, "reason", None) or exc.strerror or exc)
            self._close(connection)
            return
        connection.state = IDLE
        connection.deadline = time.monotonic() + self.limits.idle_timeout
        self._watch(connection, selectors.EVENT_READ)
        self._read(connection)  # a request that came with the end of the handshake

    def _room_for(self, address: str) -> bool:
        """Whether a new connection from `address` may stay, once one is
        closed to make room if need be (fair_share.py).  Past
        `max_connections_per_address` (exempt addresses aside): one of its
        own connections that wait for a request.  At `max_connections`,
        when another client would hold more: one of that client's, in the
        middle of a request or not; when its own client would hold the most
        (a tie too): one of its own that waits, or else the longest waiting
        of any client that would hold as many, never one in the middle of a
        request.  (Until 2026-12-06 there was no cap per address and only
        waiting connections were closed: one address with 1,100
        connections, each sending a head a byte at a time, locked every
        other client out with 503.  Until 2026-12-06 a newcomer on a tie
        was refused: 8 silent connections from 8 addresses, with
        `max_connections = 8`, locked out every other address.)"""
        group = bucket_of(address)
        shares = self._connection_shares
        if shares.of(group) >= self.limits.max_connections_per_address \
                and not self._uncapped(address):
            return self._make_room(group, mid_request=False)
        if len(self._connections) < self.limits.max_connections:
            return True
        fullest = shares.fullest(group)
        if fullest != group:
            return self._make_room(fullest, mid_request=True)
        wanted = shares.of(group) + 1
        return self._make_room(group, mid_request=False) or self._close_waiting(
            [c for c in self._connections.values() if shares.of(c.group) >= wanted])

    def _uncapped(self, address: str) -> bool:
        """Addresses with no cap of their own: trusted proxies (each brings
        many clients; by default loopback, so the operator's tools on this
        host too), [ratelimit] exempt networks and the peers."""
        return in_networks(address, self.app.settings.trusted_proxies) \
            or self.app.upload_limiter.exempts(address)

    def _make_room(self, group: str, mid_request: bool) -> bool:
        """Close one of `group`'s connections: the one that has waited
        longest without sending a request (a keep-alive one, one that never
        sent a byte, or one still in its TLS handshake: a client may close
        an idle connection at any time, and clients expect that of servers
        too, RFC 9112 9.6), or else, when `mid_request`, the one whose
        request began first (a worker's aside), with a 503.  False when
        there is none to close."""
        theirs = [c for c in self._connections.values() if c.group == group]
        if self._close_waiting(theirs):
            return True
        cuttable = [c for c in theirs if c.state != BUSY] if mid_request else []
        if not cuttable:
            return False
        self._evict(min(cuttable, key=lambda c: c.started),
                    "server busy: too many connections from %s" % group)
        return True

    def _close_waiting(self, connections: Sequence[_Connection]) -> bool:
        """Close the one of `connections` that has waited longest without
        sending a request; False when none is waiting.  One whose request
        (or next TLS handshake message) has reached this host but is not
        read yet is not waiting: closed, it would be lost, and a client
        does not send an upload again (found by a review: with a flood of
        silent connections from many addresses, a keep-alive client asking
        every 50 ms lost half its requests)."""
        waiting = sorted((c for c in connections if c.state in (IDLE, HANDSHAKE)
                          and not c.buffer), key=self._waiting_since)
        quiet = next((c for c in waiting if not _bytes_arrived(c.sock)), None)
        if quiet is None:
            return False
        self._close(quiet)
        return True

    def _waiting_since(self, connection: _Connection) -> float:
        """When an idle or handshaking connection began to wait (its deadline
        counts from then, by the timeout of its state)."""
        return connection.deadline - (self.limits.head_timeout
                                      if connection.state == HANDSHAKE
                                      else self.limits.idle_timeout)

    @staticmethod
    def _refuse(sock: socket.socket, address: str, plain: bool) -> None:
        """Too many connections: say so at once (a TLS client would hear
        nothing before a handshake: it is just closed), then close."""
        try:
            if plain:
                sock.send(busy("server busy, try again later"))
        except OSError:
            pass
        sock.close()
        access_log.info("refused a connection from %s: too many open connections", address)

    def _evict(self, connection: _Connection, message: str) -> None:
        """Close a connection to make room for another client: one in the
        middle of a request head or body gets a 503, if its socket takes it
        at once, and its line in the log."""
        if connection.state in (HEAD, BODY):
            self._log_refusal(connection, 503, message)
            try:
                connection.sock.send(busy(message, connection.tls))
            except (OSError, ValueError):
                pass
        self._close(connection)

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(65536)
            data += _received_rest(connection.sock)
        except NOT_YET:
            return
        except OSError:
            data = b""
        if not data:
            self._close(connection)
            return
        if connection.state == DRAINING:
            connection.drain_left -= len(data)
            if connection.drain_left <= 0:
                self._close(connection)
            return
        connection.buffer += data
        self._advance(connection)

    def _advance(self, connection: _Connection) -> None:
        """Move a reading connection on as far as its buffer allows: its
        requests that the loop answers at once, one after another (pipelined;
        a loop, not a call per request from _write, which recursed until
        Python's limit), PIPELINED_PER_TURN at most until its next turn."""
        connection.advancing = True
        try:
            for _ in range(PIPELINED_PER_TURN):
                self._advance_one(connection)
                if connection.state != IDLE or not connection.buffer \
                        or connection.sock not in self._connections:
                    return
            self._pipelined.append(connection)
        finally:
            connection.advancing = False

    def _advance_one(self, connection: _Connection) -> None:
        """Read the request at the start of the buffer, as far as it has come;
        once whole, dispatch it."""
        try:
            if connection.state == IDLE and connection.buffer:
                connection.state = HEAD
                connection.started = time.monotonic()
                connection.deadline = connection.started + self.limits.head_timeout
            if connection.state == HEAD:
                parsed = parse_head(connection.buffer)
                if parsed is None:
                    return
                head, used = parsed
                del connection.buffer[:used]
                connection.head = head
                connection.length = head.content_length()
                limit = self.app.settings.max_upload_bytes
                if connection.length > limit:
                    self._too_large(connection, limit)
                    return
                if len(connection.buffer) < connection.length \
                        and not self._hold_body(connection):
                    return
                connection.state = BODY
                connection.deadline = time.monotonic() + self.limits.body_timeout
                if head.expects_continue and len(connection.buffer) < connection.length:
                    self._send_continue(connection)
            if connection.state == BODY and len(connection.buffer) >= connection.length:
                self._dispatch(connection)
        except HTTPError as exc:
            self._error(connection, exc.status, exc.message)
        except Exception:  # a bug must not stop the loop, which serves everyone
            log.exception("error reading a request from %s", connection.address)
            self._close(connection)

    def _hold_body(self, connection: _Connection) -> bool:
        """Count the body about to arrive against `upload_buffer_mb`
        (what the process may hold of bodies still arriving), making room
        if need be (fair_share.py): the unfinished body that holds the most
        of the client that would hold the most is cut off with 503, or, when
        that client is the connection's own, this one is.  False: it was.
        (Until 2026-12-06 only `max_connections` bounded it: 200 uploads of
        5 MiB less a byte, from one address, took two processes from 24 MB
        to 606 and 446 MB; README, Serving under abuse.)"""
        shares, length = self._body_shares, connection.length
        while shares.total + length > self.limits.upload_buffer_mb * (1 << 20):
            fullest = shares.fullest(connection.group, length)
            if fullest == connection.group:
                self._evict(connection, "server busy: too many uploads under way")
                return False
            self._evict(max((c for c in self._connections.values() if c.group == fullest),
                            key=lambda c: c.held_body),
                        "server busy: too many uploads under way")
        connection.held_body = length
        shares.take(connection.group, length)
        return True

    def _let_go_of_body(self, connection: _Connection) -> None:
        """The body no longer arrives (whole, refused, or the connection closed)."""
        if connection.held_body:
            self._body_shares.give_back(connection.group, connection.held_body)
            connection.held_body = 0

    @staticmethod
    def _send_continue(connection: _Connection) -> None:
        """CONTINUE, at once: nothing else is being written to the connection
        while it sends its request, so the socket takes these few bytes (if
        not, the client sends its body after its own wait anyway)."""
        try:
            connection.sock.send(CONTINUE)
        except (OSError, ValueError):
            pass

    def _dispatch(self, connection: _Connection) -> None:
        head = connection.head
        body = bytes(connection.buffer[:connection.length])
        del connection.buffer[:connection.length]
        self._let_go_of_body(connection)
        request = Request(head.method, head.target, head.headers, body, connection.address,
                          tls=connection.tls)
        connection.state = BUSY
        connection.deadline = float("inf")  # the app answers within its own time limits
        # While answered uploads still owe served views, a lookup first derives
        # them (views_owed.py): a database write, which may wait for a lock,
        # so a worker does it and the loop goes on serving everyone else.
        if is_quick(request) and self.app.views_owed.settled:
            request.in_loop = True  # (an upload answered meanwhile is not waited for)
            self._respond(connection, request, self._answer(request))
        else:
            self._watch(connection, 0)  # nothing more is read until it is answered
            future = self._pool.submit(self._answer, request)
            future.add_done_callback(lambda done: self._post(connection, request, done))

    def _answer(self, request: Request) -> Response:
        try:
            return self.app.handle(request)
        except Exception:  # a bug must not take the server down: log it, answer 500
            log.exception("error serving %s %s", request.method, request.target)
            return Response(500, b"internal server error\n")

    def _post(self, connection: _Connection, request: Request, done) -> None:
        """A worker finished: send what the socket takes of the answer at once
        (the loop does not touch a connection while a worker has it, and the
        client need not wait for the loop to wake), and hand the rest and the
        bookkeeping back to the loop's thread."""
        response, seconds = self._prepare(connection, request, done.result())
        if connection.sending:
            self._send_some(connection)  # (a broken one: the loop's write finds out)
        self._done.put((connection, request, response, seconds))
        try:
            os.write(self._wake_write, b"x")
        except OSError:
            pass

    def _finish_work(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while True:
            try:
                connection, request, response, seconds = self._done.get_nowait()
            except queue.Empty:
                return
            if connection.sock in self._connections:
                self._respond(connection, request, response, seconds)
            else:
                self._close(connection)  # (the file of an answer _post prepared)

    def _prepare(self, connection: _Connection, request: Request,
                 response: Response) -> Tuple[Response, float]:
        """The answer's bytes, in connection.out, and the answer counted in
        the metrics: the answer, and the seconds since its request began.
        One that cannot be written (a bug) is logged and a 500 goes instead:
        neither the loop nor the connection may be left stuck on it."""
        try:
            return response, self._format(connection, request, response)
        except Exception:  # noqa: BLE001
            log.exception("error answering %s %s", request.method, request.target)
            if isinstance(response.body, FileBody):
                response.body.close()
            error = Response(500, b"internal server error\n")
            return error, self._format(connection, request, error)

    def _format(self, connection: _Connection, request: Request, response: Response) -> float:
        """The answer's head (and body, unless it is in a file: connection.rest,
        sent after the head) in connection.out."""
        head = connection.head
        connection.keep_alive = head.keep_alive and not self.stopping
        headers = [("Content-Type", response.content_type)] \
            + answer_headers(request.path, response.headers, connection.tls) + response.headers
        body = response.body
        in_file = isinstance(body, FileBody)
        connection.out = format_response(response.status, headers, b"" if in_file else body,
                                         connection.keep_alive,
                                         head_only=head.method == "HEAD" or in_file,
                                         length=len(body))
        seconds = self._count(connection, request.path, request.query.get("op"),
                              response.status)
        if in_file:  # (last: nothing after it may fail)
            if head.method == "HEAD":
                body.close()
            else:
                connection.rest = body
        return seconds

    def _respond(self, connection: _Connection, request: Request, response: Response,
                 seconds: Optional[float] = None) -> None:
        """Log an answer and write it; `seconds`: it was prepared already (by
        _post, which may have sent some of it)."""
        head = connection.head
        if seconds is None:
            response, seconds = self._prepare(connection, request, response)
        # (request.client: the real client, when behind a trusted proxy; the
        # connection's address stays the proxy's for its next requests, which
        # may be other clients': until 2026-12-05 they were all taken for the
        # first one, its rate limit and its standing as a peer or exempt)
        access_log.info('%s "%s" %d %d %.1fms "%s"', request.client, head.request_line,
                        response.status, len(response.body), seconds * 1000,
                        head.headers.get("user-agent", ""))
        connection.client = request.client
        self._start_writing(connection)

    def _count(self, connection: _Connection, path: str, lookup_op: Optional[str],
               status: int) -> float:
        """Count an answer in the metrics; the seconds since its request began."""
        seconds = time.monotonic() - connection.started
        self.app.metrics.request(path, lookup_op, status, seconds)
        return seconds

    def _start_writing(self, connection: _Connection) -> None:
        connection.state = WRITING
        connection.deadline = time.monotonic() + self.limits.write_seconds(connection.unsent)
        self._write(connection)

    def _watch(self, connection: _Connection, events: int) -> None:
        """Wait for `events` on the connection (EVENT_READ, EVENT_WRITE, or 0:
        nothing, while a worker has its request).  Each change is a system
        call, so a keep-alive connection answered in the loop stays as it is."""
        if events == connection.watching:
            return
        if not connection.watching:
            self._selector.register(connection.sock, events, connection)
        elif not events:
            self._selector.unregister(connection.sock)
        else:
            self._selector.modify(connection.sock, events, connection)
        connection.watching = events

    @staticmethod
    def _send_some(connection: _Connection) -> bool:
        """Send what the socket takes of connection.out now (once it is all
        sent, the next piece of a body in a file: connection.rest, closed
        after its last); False: the connection is broken."""
        if not connection.out and connection.rest is not None:
            connection.out = connection.rest.file.read(PIECE_BYTES)
            if len(connection.out) < PIECE_BYTES:
                connection.rest.close()
                connection.rest = None
        try:
            sent = connection.sock.send(connection.out)
        except NOT_YET:  # TLS: the same bytes must be offered again
            sent = 0
        except OSError:
            return False
        connection.sent += sent
        connection.out = memoryview(connection.out)[sent:]  # no copy of a large answer
        return True

    def _write(self, connection: _Connection) -> None:
        # (a worker may have sent it all: _post)
        if connection.sending and not self._send_some(connection):
            self._close(connection)
            return
        if connection.sending:
            self._watch(connection, selectors.EVENT_WRITE)
            return
        if connection.state == DRAINING:
            self._watch(connection, selectors.EVENT_READ)
            return
        if not connection.keep_alive:
            self._close(connection)
            return
        connection.state = IDLE
        connection.head = None
        connection.sent, connection.client = 0, connection.address
        connection.deadline = time.monotonic() + self.limits.idle_timeout
        self._watch(connection, selectors.EVENT_READ)
        if connection.buffer and not connection.advancing:  # a pipelined request is here
            self._advance(connection)

    def _too_large(self, connection: _Connection, limit: int) -> None:
        """Refuse before reading the body: it is never parsed or stored.  Read
        and drop what the client still sends, for a short while, so a client
        that writes its whole body before reading sees the 413."""
        body = ("upload of %d bytes is over this server's limit of %d bytes\n"
                % (connection.length, limit)).encode()
        connection.drain_left = min(connection.length - len(connection.buffer),
                                    self.limits.drain_bytes)
        connection.buffer.clear()
        connection.keep_alive = False
        connection.out = refusal(413, body, tls=connection.tls)
        access_log.info('%s "%s" 413 %d', connection.address, connection.head.request_line,
                        len(body))
        self._count(connection, split_target(connection.head.target)[0], None, 413)
        connection.state = DRAINING
        connection.deadline = time.monotonic() + self.limits.drain_seconds
        self._write(connection)

    def _error(self, connection: _Connection, status: int, message: str) -> None:
        """A request that cannot be served: answer and close.  Once its head
        was read (a bad length, a body not sent in time), it is logged and
        counted by its request line and path, as a 413 is."""
        body = (message + "\n").encode()
        connection.buffer.clear()
        self._let_go_of_body(connection)
        connection.keep_alive = False
        connection.out = refusal(status, body, tls=connection.tls)
        self._log_refusal(connection, status, message)
        self._start_writing(connection)

    def _log_refusal(self, connection: _Connection, status: int, message: str) -> None:
        """The access log line and count of a request the server refuses:
        by its request line and path once its head was read."""
        head = connection.head
        access_log.info('%s "%s" %d %d (%s)', connection.address,
                        head.request_line if head else "-", status,
                        len((message + "\n").encode()), message)
        self._count(connection, split_target(head.target)[0] if head else "", None, status)

    def _expire(self) -> None:
        """Deadlines: an idle connection closes quietly; a request head or body
        not received in time gets 408; an answer not taken in time is dropped,
        with a line saying so."""
        now = time.monotonic()
        for connection in list(self._connections.values()):
            if connection.deadline > now:
                continue
            if connection.state in (HEAD, BODY):
                what = "head" if connection.state == HEAD else "body"
                self._error(connection, 408, "request %s not received in time" % what)
            elif connection.state == HANDSHAKE:
                access_log.info('%s "-" TLS handshake not finished in time',
                                connection.address)
                self._close(connection)
            else:
                if connection.state == WRITING:  # (until 2026-12-06 without a word)
                    self._log_not_taken(connection)
                self._close(connection)

    @staticmethod
    def _log_not_taken(connection: _Connection) -> None:
        """An answer the client did not take in time: who, and how much of it."""
        access_log.info('%s "%s" answer not taken in time: %d of %d bytes sent',
                        connection.client, connection.head.request_line
                        if connection.head else "-", connection.sent,
                        connection.sent + connection.unsent)

    def _close(self, connection: _Connection) -> None:
        if connection.rest is not None:  # an answer not sent to its end
            connection.rest.close()
            connection.rest = None
        if self._connections.pop(connection.sock, None) is not None:
            self._connection_shares.give_back(connection.group)
        self._let_go_of_body(connection)
        self._watch(connection, 0)
        try:
            connection.sock.close()
        except OSError:
            pass

    # --- stopping ----------------------------------------------------------------------

    def request_stop(self) -> None:
        """Make serve_forever() wind down; safe to call from a signal handler."""
        self.stopping = True
        try:
            os.write(self._wake_write, b"x")
        except OSError:
            pass

    def finish_stop(self) -> None:
        """After serve_forever(): release what is left."""
        self.stopping = True
        self._pool.shutdown(wait=True)  # (first: a worker's answer may still come, _post)
        for connection in list(self._connections.values()):
            self._close(connection)
        for listener in self.listeners:
            try:
                listener.close()
            except OSError:
                pass
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)


def listen(bind: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv6 when `bind` is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((bind, port))
        listener.listen(512)
    except OSError:
        listener.close()
        raise
    return listener

"""The keyserver's HTTP plumbing: sockets, worker threads, keep-alive, shutdown.

A fixed pool of worker threads serves connections (one at a time each) from
an accept queue: a slow client holds up only its own worker, and the number
of connections served at once is capped.  When every worker is busy and the
queue is full, a new connection gets 503 at once instead of waiting unseen.
Every phase of a request has a deadline: an idle keep-alive connection, a
request head trickling in byte by byte (slowloris), a body.  Parsing lives in
http1.py; what to answer lives in app.py.

stop: the listening socket closes, idle connections are closed, requests in
flight run to completion, then the workers end.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import List, Optional, Set, Tuple

from .app import KeyServer, Request, Response
from .http1 import HTTPError, Head, format_response, parse_head

access_log = logging.getLogger("cks.access")
log = logging.getLogger("cks.server")


@dataclass
class ServerLimits:
    workers: int = 64  # connections served at once
    queue: int = 256  # accepted connections waiting for a worker; past it: 503
    idle_timeout: float = 15.0  # keep-alive connection without a request
    head_timeout: float = 10.0  # from the first byte of a request to the end of its head
    body_timeout: float = 60.0  # for the whole body
    drain_seconds: float = 5.0  # reading what follows an over-size upload, so the client
    drain_bytes: int = 64 << 20  # gets our 413 instead of a reset connection


class _Connection:
    """One client connection, served by one worker."""

    def __init__(self, server: "HKPServer", sock: socket.socket, address: Tuple) -> None:
        self.server = server
        self.sock = sock
        self.address = address[0]
        self.buffer = bytearray()
        self.busy = False  # a request is in flight

    def serve(self) -> None:
        try:
            while not self.server.stopping or self.buffer:
                head = self._read_head()
                if head is None:
                    return
                if not self._handle(head):
                    return
        except HTTPError as exc:
            self._send_error(exc.status, exc.message)
        except (OSError, socket.timeout):
            pass
        finally:
            self.busy = False
            try:
                self.sock.close()
            except OSError:
                pass

    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        return self.sock.recv(65536)

    def _read_head(self) -> Optional[Head]:
        limits = self.server.limits
        deadline = time.monotonic() + limits.idle_timeout
        started = False
        while True:
            if self.buffer and not started:
                started = True
                self.busy = True
                deadline = time.monotonic() + limits.head_timeout
            parsed = parse_head(self.buffer)
            if parsed is not None:
                head, used = parsed
                del self.buffer[:used]
                self.busy = True
                return head
            try:
                data = self._recv(deadline)
            except socket.timeout:
                if started:
                    raise HTTPError(408, "request head not received in time")
                return None  # an idle keep-alive connection: close quietly
            if not data:
                return None
            self.buffer += data

    def _handle(self, head: Head) -> bool:
        """Serve one request; True to keep the connection open."""
        started = time.monotonic()
        length = head.content_length()
        limit = self.server.app.settings.max_upload_bytes
        if length > limit:
            # Refused before reading: the body is never parsed or stored.
            self._answer(head, started, Response(413, (
                "upload of %d bytes is over this server's limit of %d bytes\n"
                % (length, limit)).encode()), keep_alive=False)
            self._drain(length)
            return False
        deadline = time.monotonic() + self.server.limits.body_timeout
        while len(self.buffer) < length:
            try:
                data = self._recv(deadline)
            except socket.timeout:
                raise HTTPError(408, "request body not received in time") from None
            if not data:
                return False
            self.buffer += data
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        request = Request(head.method, head.target, head.headers, body, self.address)
        try:
            response = self.server.app.handle(request)
        except Exception:  # a bug must not take the server down: log it, answer 500
            log.exception("error serving %s", head.request_line)
            response = Response(500, b"internal server error\n")
        keep_alive = head.keep_alive and not self.server.stopping
        self.address = request.client  # the real client, when behind a trusted proxy
        self._answer(head, started, response, keep_alive)
        self.busy = False
        return keep_alive

    def _answer(self, head: Head, started: float, response: Response,
                keep_alive: bool) -> None:
        headers = [("Content-Type", response.content_type),
                   ("Access-Control-Allow-Origin", "*"),
                   ("Cache-Control", "no-cache")] + response.headers
        self.sock.settimeout(self.server.limits.body_timeout)
        self.sock.sendall(format_response(response.status, headers, response.body, keep_alive,
                                          head_only=head.method == "HEAD"))
        access_log.info('%s "%s" %d %d %.1fms "%s"', self.address, head.request_line,
                        response.status, len(response.body),
                        (time.monotonic() - started) * 1000, head.headers.get("user-agent", ""))

    def _send_error(self, status: int, message: str) -> None:
        body = (message + "\n").encode()
        try:
            self.sock.settimeout(5)
            self.sock.sendall(format_response(status, [("Content-Type",
                                                        "text/plain; charset=utf-8")],
                                              body, keep_alive=False))
        except OSError:
            pass
        access_log.info('%s "-" %d %d (%s)', self.address, status, len(body), message)

    def _drain(self, length: int) -> None:
        limits = self.server.limits
        deadline = time.monotonic() + limits.drain_seconds
        left = min(length - len(self.buffer), limits.drain_bytes)
        try:
            while left > 0:
                data = self._recv(deadline)
                if not data:
                    break
                left -= len(data)
        except OSError:
            pass

    def close_if_idle(self) -> None:
        if not self.busy:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


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


class HKPServer:
    """Serves `listener` (which several processes may share) with a worker pool."""

    def __init__(self, app: KeyServer, listener: socket.socket,
                 limits: Optional[ServerLimits] = None) -> None:
        self.app = app
        self.limits = limits or ServerLimits()
        self.stopping = False
        self.listener = listener
        self.server_address = self.listener.getsockname()[:2]
        self.listener.setblocking(False)  # shared between processes: accept may find nothing
        self._wake_read, self._wake_write = os.pipe()
        self._queue: "queue.Queue[Optional[_Connection]]" = queue.Queue()
        self._connections: Set[_Connection] = set()
        self._lock = threading.Lock()
        self._workers: List[threading.Thread] = [
            threading.Thread(target=self._work, name="cksd-worker-%d" % n, daemon=True)
            for n in range(self.limits.workers)]
        self._idle_workers = self.limits.workers
        for worker in self._workers:
            worker.start()

    def _work(self) -> None:
        while True:
            connection = self._queue.get()
            if connection is None:
                return
            with self._lock:
                self._idle_workers -= 1
            try:
                connection.serve()
            finally:
                with self._lock:
                    self._connections.discard(connection)
                    self._idle_workers += 1

    def serve_forever(self) -> None:
        """Accept connections until request_stop()."""
        while not self.stopping:
            ready, _, _ = select.select([self.listener, self._wake_read], [], [])
            if self._wake_read in ready or self.stopping:
                break
            try:
                sock, address = self.listener.accept()
            except BlockingIOError:
                continue  # another process sharing the socket took it
            except OSError:
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(self, sock, address)
            with self._lock:
                overloaded = self._idle_workers == 0 and \
                    self._queue.qsize() >= self.limits.queue
                if not overloaded:
                    self._connections.add(connection)
            if overloaded:
                self._refuse(sock)
                continue
            self._queue.put(connection)

    @staticmethod
    def _refuse(sock: socket.socket) -> None:
        """Every worker busy and the queue full: say so at once, then close."""
        try:
            sock.settimeout(2)
            sock.sendall(format_response(503, [("Content-Type", "text/plain; charset=utf-8"),
                                               ("Retry-After", "10")],
                                         b"server busy, try again later\n", keep_alive=False))
        except OSError:
            pass
        finally:
            sock.close()
        access_log.info("refused a connection: every worker busy")

    def request_stop(self) -> None:
        """Make serve_forever() return; safe to call from a signal handler."""
        self.stopping = True
        try:
            os.write(self._wake_write, b"x")
        except OSError:
            pass

    def finish_stop(self) -> None:
        """After serve_forever(): stop listening, close idle connections, let the
        requests in flight finish, end the workers."""
        self.stopping = True
        self.listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close_if_idle()
        while True:  # connections accepted but not yet picked up by a worker
            try:
                queued = self._queue.get_nowait()
            except queue.Empty:
                break
            if queued is not None:
                queued.sock.close()
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join()
        os.close(self._wake_read)
        os.close(self._wake_write)

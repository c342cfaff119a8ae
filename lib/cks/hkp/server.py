"""HTTP plumbing for the keyserver: threads, keep-alive, access log, shutdown.

One thread per connection (a slow client holds only its own thread); the
database is reached through the store's connection pool.  HTTP/1.0 and 1.1
with keep-alive.  On stop(), the listening socket closes, idle keep-alive
connections are closed, and requests in flight run to completion.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Set

from .app import KeyServer, Request, Response

access_log = logging.getLogger("cks.access")
log = logging.getLogger("cks.server")

IDLE_TIMEOUT_S = 30  # a keep-alive connection with no request for this long is closed
BODY_TIMEOUT_S = 60
DRAIN_SECONDS = 5  # after refusing an upload as too large
DRAIN_MAX_BYTES = 64 << 20


class HKPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else keep-alive answers wait ~40 ms for delayed ACKs
    server_version = "CKS"
    sys_version = ""
    server: "HKPServer"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(IDLE_TIMEOUT_S)
        self.busy = False
        self.sending = False
        self.server.track(self, True)

    def finish(self) -> None:
        self.server.track(self, False)
        try:
            super().finish()
        except OSError:
            pass

    def parse_request(self) -> bool:
        self.busy = True  # a request line arrived: it is in flight until answered
        self.started = time.monotonic()
        return super().parse_request()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (socket.timeout, ConnectionError):
            self.close_connection = True
        finally:
            self.busy = False
            if self.server.stopping:
                self.close_connection = True

    def do_GET(self) -> None:
        self._serve(b"")

    def do_HEAD(self) -> None:
        self._serve(b"", head=True)

    def do_OPTIONS(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length_text is None:
            self._send(Response(411, b"a Content-Length header is required\n"))
            self.close_connection = True
            return
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            self._send(Response(400, b"bad Content-Length\n"))
            self.close_connection = True
            return
        limit = self.server.app.settings.max_upload_bytes
        if length > limit:
            # Refuse before reading: the body is never parsed or stored.
            self.close_connection = True
            self._send(Response(413, ("upload of %d bytes is over this server's limit of %d "
                                      "bytes\n" % (length, limit)).encode()))
            self._discard_input(length)
            return
        self.connection.settimeout(BODY_TIMEOUT_S)
        try:
            body = self.rfile.read(length)
        except (socket.timeout, ConnectionError):
            self.close_connection = True
            return
        if len(body) != length:
            self.close_connection = True
            return
        self._serve(body)

    def _discard_input(self, length: int) -> None:
        """Read and drop what the client still sends, for a short while, so a
        client that writes its whole body before reading sees our answer
        instead of a reset connection."""
        deadline = time.monotonic() + DRAIN_SECONDS
        left = min(length, DRAIN_MAX_BYTES)
        try:
            self.wfile.flush()
            self.connection.settimeout(DRAIN_SECONDS)
            while left > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except (OSError, ValueError):
            pass

    def _serve(self, body: bytes, head: bool = False) -> None:
        request = Request(self.command, self.path,
                          {k.lower(): v for k, v in self.headers.items()}, body,
                          self.client_address[0])
        try:
            response = self.server.app.handle(request)
        except Exception:  # a bug must not take the server down: log it, answer 500
            log.exception("error serving %s %s", self.command, self.path)
            response = Response(500, b"internal server error\n")
        self._send(response, head)

    def _send(self, response: Response, head: bool = False) -> None:
        self.sending = True
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-cache")
        for name, value in response.headers:
            self.send_header(name, value)
        if self.close_connection or self.server.stopping:
            self.send_header("Connection", "close")
            self.close_connection = True
        elif self.request_version == "HTTP/1.0" and \
                self.headers.get("Connection", "").lower() == "keep-alive":
            self.send_header("Connection", "keep-alive")
        self.end_headers()
        if not head:
            self.wfile.write(response.body)
        self._access(response.status, len(response.body))
        self.sending = False

    def _access(self, code, size) -> None:
        """The access log: one line per request, written once the answer is out."""
        elapsed = (time.monotonic() - getattr(self, "started", time.monotonic())) * 1000
        agent = self.headers.get("User-Agent", "") if getattr(self, "headers", None) else ""
        access_log.info('%s "%s" %s %s %.1fms "%s"', self.client_address[0],
                        self.requestline, code, size, elapsed, agent)

    def log_request(self, code="-", size="-") -> None:
        if not self.sending:  # send_error() from http.server itself (a malformed request)
            self._access(code, size)

    def log_message(self, format: str, *args) -> None:
        log.debug("%s: %s", self.client_address[0], format % args)

    def log_error(self, format: str, *args) -> None:
        log.info("%s: %s", self.client_address[0], format % args)


class HKPServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() waits for requests in flight
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, app: KeyServer) -> None:
        self.app = app
        self.stopping = False
        self._handlers: Set[HKPHandler] = set()
        self._handlers_lock = threading.Lock()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, HKPHandler)

    def track(self, handler: HKPHandler, alive: bool) -> None:
        with self._handlers_lock:
            (self._handlers.add if alive else self._handlers.discard)(handler)

    def request_stop(self) -> None:
        """Ask serve_forever() to return; safe to call from a signal handler."""
        self.stopping = True
        threading.Thread(target=self.shutdown, name="cksd-shutdown", daemon=True).start()

    def finish_stop(self) -> None:
        """After serve_forever() returned: close idle connections, wait for the
        requests in flight, close the listening socket."""
        with self._handlers_lock:
            idle = [h for h in self._handlers if not h.busy]
        for handler in idle:
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()

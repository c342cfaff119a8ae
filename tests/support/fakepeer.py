"""A stand-in HKP peer for sync tests: records keys, or fails on purpose."""

from __future__ import annotations

import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List

from cks.openpgp.keys import read_keys


class FakePeer:
    """mode: 'ok' (store and answer 200), 'error' (answer 500), 'hang' (never answer)."""

    def __init__(self, mode: str = "ok", delay: float = 0.0) -> None:
        self.mode = mode
        self.delay = delay
        self.received: List[str] = []  # fingerprints, in arrival order
        self.requests = 0
        self.release = threading.Event()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                peer.requests += 1
                if peer.mode == "hang":
                    peer.release.wait(60)
                    return
                if peer.delay:
                    time.sleep(peer.delay)
                if peer.mode == "error":
                    self._answer(500, b"internal error")
                    return
                text = urllib.parse.parse_qs(body.decode())["keytext"][0]
                peer.received.extend(k.fingerprint.hex().upper()
                                     for k in read_keys(text.encode()).keys)
                self._answer(200, b"ok")

            def _answer(self, status, body):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def name(self) -> str:
        return "127.0.0.1:%d" % self.port

    def __enter__(self) -> "FakePeer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

"""A stand-in HKP peer for sync tests: records keys, or fails on purpose."""

from __future__ import annotations

import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List

from cks.openpgp.keys import read_keys


SKS_ERROR = (b'<?xml version="1.0" encoding="utf-8"?>\r\n<html><head>\r\n'
             b'<title>Error handling request</title></head><body><h1>Error handling request'
             b'</h1>Error handling request. Exception raised.</body></html>\r\n')
"""SKS 1.1.6's 500 page (it answers that to an upload it fails on, such as
armor without its checksum line)."""
NOTICE_APPLIED = (200, b'{"status": "applied", "reason": ""}\n', ())
FORBIDDEN = b"<html><head><title>403 Forbidden</title></head><body>nginx</body></html>"


class FakePeer:
    """mode: 'ok' (store and answer 200), 'error' (answer 500), 'hang' (never
    answer), 'not-found' (404: no keyserver at this address), 'forbidden'
    (403 to everything, as a WAF or a maintenance page answers),
    'unavailable' (503: overloaded, or a proxy whose backend is down; with
    `retry_after`, the Retry-After header it sends along).  In 'ok'
    mode, a request holding a key of `fail_on` (fingerprints) is answered
    500, and nothing of it is stored: as Hockeypuck answered a key with no
    usable self-signature until its issue 341 was fixed; one holding a key
    of `refuse_on` is answered a bare 403; one holding a key of `hang_on` is
    never answered (as SKS takes minutes over a flooded key); and one over
    `max_body` bytes is not answered at all: its connection is closed.
    A rejection notice (POST /pks/x-cks-rejection) in 'ok' mode gets the
    answers of `notice_answers` ((status, body, headers)) in turn, the last
    one from then on; without them, a CKS node's 200 ("applied"); a key
    upload gets `key_answer` ((status, body)) if given.  `chunked`: answers
    go out in chunked encoding, with no Content-Length."""

    def __init__(self, mode: str = "ok", delay: float = 0.0, fail_on=(),
                 max_body: int = 0, hang_on=(), refuse_on=(), retry_after: str = "",
                 notice_answers=(), key_answer=None, chunked: bool = False) -> None:
        self.mode = mode
        self.chunked = chunked
        self.key_answer = key_answer  # (status, body): every upload's answer
        self.notice_answers = list(notice_answers) or [NOTICE_APPLIED]
        self.notices: List[str] = []  # the serials of the notices it was sent, in order
        self.retry_after = retry_after
        self.delay = delay
        self.fail_on = set(fail_on)
        self.refuse_on = set(refuse_on)
        self.hang_on = set(hang_on)
        self.max_body = max_body  # a longer request: the connection is closed, as SKS does
        self.received: List[str] = []  # fingerprints, in arrival order
        self.requests = 0
        self.lengths: List[int] = []  # Content-Length of each request
        self.arrivals: List[float] = []  # time.monotonic() of each request
        self.release = threading.Event()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                peer.requests += 1
                peer.lengths.append(length)
                peer.arrivals.append(time.monotonic())
                if peer.max_body and length > peer.max_body:
                    self.close_connection = True  # unread, unanswered
                    return
                body = self.rfile.read(length)
                if peer.mode == "hang":
                    peer.release.wait(60)
                    return
                if peer.delay:
                    time.sleep(peer.delay)
                if peer.mode == "error":
                    self._answer(500, b"internal error")
                    return
                if peer.mode == "not-found":
                    self._answer(404, b"<html><title>404 Not Found</title></html>")
                    return
                if peer.mode == "forbidden":
                    self._answer(403, FORBIDDEN)
                    return
                if peer.mode == "unavailable":
                    self._answer(503, b"overloaded", [("Retry-After", peer.retry_after)]
                                 if peer.retry_after else [])
                    return
                form = urllib.parse.parse_qs(body.decode())
                if self.path == "/pks/x-cks-rejection":
                    self._answer(*peer._notice(form["notice"][0]))
                    return
                if peer.key_answer:
                    self._answer(*peer.key_answer)
                    return
                text = form["keytext"][0]
                keys = [k.fingerprint.hex().upper() for k in read_keys(text.encode()).keys]
                if peer.fail_on.intersection(keys):
                    self._answer(500, SKS_ERROR)
                    return
                if peer.refuse_on.intersection(keys):
                    self._answer(403, b"key not accepted")
                    return
                if peer.hang_on.intersection(keys):
                    peer.release.wait(60)
                    return
                peer.received.extend(keys)
                self._answer(200, b"ok")

            def _answer(self, status, body, headers=()):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                if peer.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _notice(self, text: str):
        self.notices.append(text.split("serial: ")[1].split("\n")[0])
        return self.notice_answers[min(len(self.notices), len(self.notice_answers)) - 1]

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

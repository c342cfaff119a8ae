"""Pushing keys to an HKP peer with POST /pks/add (the original's "http 1.0 cgi post").

`HKPClient` holds one persistent connection (reopened when the peer closes
it, as SKS does after every request).  What an answer means for the backlog
is decided by the pure function `verdict`.
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Type
from urllib.parse import urlencode

from ..hkp.app import SYNC_HEADER

OK, REFUSED, SPLIT, RETRY = "ok", "refused", "split", "retry"


@dataclass
class Answer:
    status: int = 0  # 0: no HTTP answer at all
    body: bytes = b""
    error: str = ""  # a transport failure, when status is 0


@dataclass
class Verdict:
    action: str  # OK, REFUSED (for good), SPLIT (send one by one), RETRY (later)
    message: str = ""
    refused: List[Tuple[str, str]] = field(default_factory=list)  # by a CKS peer, in a 200


def verdict(answer: Answer, batch_size: int) -> Verdict:
    """What to do with a batch of `batch_size` keys after this answer."""
    if answer.status == 0:
        return Verdict(RETRY, answer.error)
    if 200 <= answer.status < 300:
        return Verdict(OK, refused=_refused_in(answer.body))
    refused = _refused_in(answer.body)
    text = refused[0][1] if refused else \
        " ".join(answer.body.decode("utf-8", "replace").split())[:200]
    message = "HTTP %d%s" % (answer.status, ": " + text if text else "")
    if answer.status >= 500 or answer.status in (408, 429):
        return Verdict(RETRY, message)
    if 400 <= answer.status < 500:
        # One key the peer will not take (403 rejected, 413 too large, 422
        # unusable): that is final.  In a batch, find out which one.
        return Verdict(SPLIT if batch_size > 1 else REFUSED, message)
    return Verdict(RETRY, message)  # 1xx/3xx: not an answer we can act on


def _refused_in(body: bytes) -> List[Tuple[str, str]]:
    """Keys a CKS peer refused inside a 200 answer (options=mr gives JSON)."""
    try:
        result = json.loads(body)
        return [(r["fingerprint"], r.get("reason", "")) for r in result.get("refused", [])]
    except (ValueError, TypeError, KeyError, AttributeError):
        return []  # not CKS (SKS answers HTML): nothing more to learn


class HKPClient:
    def __init__(self, host: str, port: int, timeout: float, node_name: str) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.node_name = node_name
        self.conn: Optional[http.client.HTTPConnection] = None

    def post_keys(self, armored: str) -> Answer:
        # options=mr goes in the form, not the URL: SKS answers "200 Unexpected POST
        # request" to /pks/add?anything, storing nothing.
        return self.post_form("/pks/add", {"keytext": armored, "options": "mr"})

    def post_form(self, path: str, fields) -> Answer:
        return self.post(path, urlencode(fields).encode("ascii"),
                         {"Content-Type": "application/x-www-form-urlencoded",
                          SYNC_HEADER: self.node_name, "User-Agent": "CKS-sync"})

    def post(self, path: str, body: bytes, headers: Dict[str, str],
             read: Optional[Callable[[http.client.HTTPResponse], Answer]] = None,
             kind: Type[Answer] = Answer) -> Answer:
        """POST on the kept-alive connection; `read` makes the answer of the
        response (default: all of its body), `kind(error=...)` a failure."""
        for attempt in (1, 2):
            fresh = self.conn is None
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port,
                                                           timeout=self.timeout)
                self.conn.request("POST", path, body, headers)
                return (read or self._read_all)(self.conn.getresponse())
            except (http.client.HTTPException, OSError, socket.timeout) as exc:
                self.close()
                # A kept-alive connection the peer closed meanwhile: one retry on
                # a fresh one.  A fresh connection that fails is the answer.
                if fresh or attempt == 2 or isinstance(exc, socket.timeout):
                    return kind(error=_describe(exc))
        return kind(error="no answer")

    def _read_all(self, response: http.client.HTTPResponse) -> Answer:
        data = response.read()
        if response.will_close:
            self.close()
        return Answer(response.status, data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    return " ".join(str(exc).split()) or exc.__class__.__name__

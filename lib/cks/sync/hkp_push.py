"""Pushing keys to an HKP peer with POST /pks/add (the original's "http 1.0 cgi post").

`HKPClient` holds one persistent connection (reopened when the peer closes
it, as SKS does after every request).  What an answer means for the backlog
is decided by the pure function `verdict`.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import ipaddress
import json
import math
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type
from urllib.parse import urlencode

from ..hkp.app import SYNC_HEADER
from ..openpgp.armor import encode
from .recon.wire import peer_text

OK, REFUSED, SPLIT, RETRY, FAILED_ALONE = "ok", "refused", "split", "retry", "failed-alone"

KEY_REFUSALS = frozenset({400, 403, 413, 422})
"""What a keyserver answers for a key it will not take (a
rejected key, one too large, one it cannot read), but also what a WAF, a
maintenance page or a proxy's limit on a body's size answers to every
request: unless a CKS peer names the key it refuses, the runner writes the
key off only once the peer shows that it takes others.  Any other 4xx (404,
405, 401, ...) says that the address takes no keys at all: a web server
that is not a keyserver, a proxy's route or login missing; the keys stay
owed."""
PEER_TROUBLE = frozenset({502, 503, 504})
"""A proxy's or the peer's own "not now": never about the keys sent."""


def form_bytes(keydata: bytes) -> int:
    """At most the bytes `keydata` adds to post_keys' body, wherever in a
    batch it falls: its armor's base64 (64-column lines) URL-encoded, where
    '+', '/' and each line break take 3 bytes.  Which characters it gets
    depends on where its bytes fall in the 3-byte groups of the batch: the
    most '+' and '/' of the three placements, and up to the 8 characters of
    the two groups it shares with its neighbours."""
    chars = 4 * ((len(keydata) + 4) // 3)
    escaped = max(_plus_and_slash(b"\0" * shift + keydata) for shift in range(3)) + 8
    return chars + 2 * escaped + 3 * (chars // 64 + 1)


def _plus_and_slash(data: bytes) -> int:
    encoded = base64.b64encode(data)
    return encoded.count(b"+") + encoded.count(b"/")


FORM_OVERHEAD = len(urlencode({"keytext": encode(b""), "options": "mr"})) + 2 * (2 + 4)
"""post_keys' body around the keys' base64: the armor lines, the CRC line
and the other field; the CRC's 4 characters and the 2 of '=' padding may
each take 3 bytes."""


@dataclass
class Answer:
    status: int = 0  # 0: no HTTP answer at all
    body: bytes = b""
    error: str = ""  # a transport failure, when status is 0
    cut: bool = False  # the peer closed or reset a connection it had taken, unanswered
    unanswered: bool = False  # the request went out whole and no answer came in time
    retry_after: float = 0.0  # seconds a 429 or 503 asked us to wait (Retry-After), or 0


def retry_after(value: Optional[str], now: float) -> float:
    """The seconds a Retry-After header asks for (RFC 9110 10.2.3: a number
    of seconds, or an HTTP date; `now`: time.time()), 0 when it says nothing
    usable."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return 0.0
    return max(0.0, when.timestamp() - now) if when.tzinfo is not None else 0.0


@dataclass
class Verdict:
    """`action`: OK, REFUSED (for good), SPLIT (send the keys one by one),
    RETRY (later: they stay owed), FAILED_ALONE (a 500 or a 4xx to one key,
    or its connection closed unanswered: see verdict)."""

    action: str
    message: str = ""
    refused: List[Tuple[str, str]] = field(default_factory=list)  # by a CKS peer, in a 200
    slow: bool = False  # no answer within the timeout: each try cost all of it
    refusal: bool = False  # a 4xx of KEY_REFUSALS: a second try would be answered the same
    retry_after: float = 0.0  # RETRY: the peer asked us to wait this long (Answer)

    @property
    def once(self) -> bool:
        """A key that failed alone is not sent again in the run."""
        return self.slow or self.refusal


def verdict(answer: Answer, sent: Sequence[str]) -> Verdict:
    """What to do with a batch of keys (`sent`: their fingerprints; none for
    a rejection notice) after this answer: an answer about one key
    (_about_one_key) splits a batch to find which."""
    if 200 <= answer.status < 300:
        return Verdict(OK, refused=_refused_in(answer.body, sent))
    message = _message(answer, sent) if answer.status else answer.error
    alone = _about_one_key(answer, sent)
    if alone is None:
        # 408, 429, other 4xx, 502-504, 1xx/3xx, no answer
        return Verdict(RETRY, message, retry_after=answer.retry_after)
    return Verdict(SPLIT if len(sent) > 1 else alone, message, slow=answer.unanswered,
                   refusal=answer.status in KEY_REFUSALS)


def _about_one_key(answer: Answer, sent: Sequence[str]) -> Optional[str]:
    """What a failed answer means for a single key sent alone (REFUSED,
    FAILED_ALONE), or None when it is about the peer, not the keys."""
    if answer.status in KEY_REFUSALS:
        # A CKS peer names the key it refuses, and why: final.  A bare 403 or
        # 413 may be a WAF's or a proxy's answer to every request: the runner
        # weighs it as a 500 (once: it would be answered the same again).
        return REFUSED if _refused_in(answer.body, sent) else FAILED_ALONE
    if answer.status >= 500 and answer.status not in PEER_TROUBLE:
        # A peer that fails on one key (Hockeypuck answered 500 to a key with
        # no usable self-signature, hockeypuck issue 341) fails the whole
        # batch: one by one, the others go through.  A single key's 500 is
        # the runner's to weigh (runner.PeerSync).
        return FAILED_ALONE
    if answer.status == 0 and (answer.cut or answer.unanswered):
        # A connection cut while the request went out may be the peer's limit
        # on a request's size (SKS 1.1.6 closes it on a body over 5 MiB); a
        # request sent whole and not answered within the timeout, a key the
        # peer takes minutes over (SKS on a flooded key) or a batch too large
        # for it: each is weighed as a 500 is.  Sent alone, the keys of a
        # slow batch go through, and a key that holds the peer up stops
        # holding up the rest.  No connection at all is about the peer.
        return FAILED_ALONE
    return None


def notice_verdict(answer: Answer) -> Verdict:
    """What to do with a rejection notice after this answer: it is refused
    for good only when the peer says so of it (a CKS peer's 400 for a notice
    it cannot read: _notice_refusal).  Any other answer is about the peer, not
    the notice (a 429, a maintenance page's 404, a proxy's 401, 407 or 413):
    what `verdict` makes of it for a key sent alone, and anything but OK
    stops the run with the notice owed (RETRY: after the wait it asked for),
    but FAILED_ALONE, which the runner weighs as for a key: a 4xx (not 408
    or 429) or a 500 is about the notice if the peer takes keys.  Until
    2026-12-05 any 4xx wrote the notice off."""
    reason = _notice_refusal(answer)
    if reason is not None:
        return Verdict(REFUSED, reason)
    result = verdict(answer, ())
    if result.action == RETRY and 400 <= answer.status < 500 and answer.status not in (408, 429):
        # (a 404 or 405 from a keyserver without the endpoint, Hockeypuck's;
        # an older CKS's plain 400: about the notice if the peer takes keys)
        return Verdict(FAILED_ALONE, result.message)
    return result


def _notice_refusal(answer: Answer) -> Optional[str]:
    """The reason a CKS peer refuses a notice for: a 400 or 422 whose JSON
    says "refused" (hkp.rejections.receive_notice), or None."""
    if answer.status not in (400, 422):
        return None
    try:
        result = json.loads(answer.body)
        return str(result["reason"]) if result.get("status") == "refused" else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


_TITLE = re.compile(rb"<title>(.*?)</title>", re.I | re.S)


def _message(answer: Answer, sent: Sequence[str]) -> str:
    """An answer that is not 2xx, in a line: the reason a CKS peer gives in
    its JSON, alone (as for a key it refuses in a 200: one refusal, one
    message), or the status and what the answer says (an HTML page's title,
    as SKS answers, or the start of the body)."""
    refused = _refused_in(answer.body, sent)
    if refused:
        return refused[0][1]
    title = _TITLE.search(answer.body)
    text = " ".join(
        (title.group(1) if title else answer.body).decode("utf-8", "replace").split())[:200]
    return "HTTP %d%s" % (answer.status, ": " + text if text else "")


def _refused_in(body: bytes, sent: Sequence[str]) -> List[Tuple[str, str]]:
    """Keys of those `sent` that a CKS peer refused in its answer (options=mr
    gives JSON), each once, with its reason as peer_text keeps a peer's text
    (cut, printable characters only).  Until 2026-12-07 the list was taken
    whole: a peer naming 20,000 keys never sent, with reasons of a kilobyte
    holding line breaks, had them all recorded as refused and printed as
    lines of their own, and a NUL in a reason stopped the run on PostgreSQL
    (found by a review)."""
    try:
        listed = json.loads(body).get("refused", [])
        named = {str(r["fingerprint"]).upper(): r.get("reason", "") for r in reversed(listed)}
    except (ValueError, TypeError, KeyError, AttributeError):
        return []  # not CKS (SKS answers HTML): nothing more to learn
    return [(fingerprint, peer_text(str(named[fingerprint]).encode("utf-8", "replace")))
            for fingerprint in sent if fingerprint in named]


class _DeadlineSocket(socket.socket):
    """A connected socket whose reads end by `deadline` (time.monotonic()),
    each within `per_read` seconds (the socket's timeout, which bounds each
    read only: a peer sending a byte a second held a request for days)."""

    per_read: Optional[float] = None
    deadline = math.inf

    @classmethod
    def adopt(cls, sock: socket.socket) -> "_DeadlineSocket":
        per_read = sock.gettimeout()
        adopted = cls(sock.family, sock.type, sock.proto, sock.detach())
        adopted.per_read = per_read
        adopted.settimeout(per_read)
        return adopted

    def recv_into(self, buffer, nbytes=0, flags=0):  # http.client reads by it alone
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.settimeout(left if self.per_read is None else min(self.per_read, left))
        return super().recv_into(buffer, nbytes, flags)


class _Connection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket.adopt(self.sock)


def source_address(bind: str, host: str) -> Optional[Tuple[str, int]]:
    """Where to connect to a peer at `host` from: the address this node serves
    on (`[server] bind`), which its peers know it by (a CKS peer answers its
    peers' hashqueries in full and takes their pushes as a peer's, by their
    address), unless that is every address, or loopback while `host` is not
    (no answer could come back to it).  Until 2026-12-06 only recon rounds
    were dialed from it, so on a host of several addresses the fetch and the
    push came from another (found by a review)."""
    if not bind or bind in ("0.0.0.0", "::"):
        return None
    with contextlib.suppress(ValueError):  # (a name, not an address)
        mapped = ipaddress.ip_address(bind)
        if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped:
            bind = str(mapped.ipv4_mapped)  # (as a dual-stack socket names an IPv4 client)
    if _is_loopback(bind) and not _is_loopback(host):
        return None
    return (bind, 0)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


ANSWER_BYTES = 1 << 20
"""The most of a peer's answer to a push or a notice that is read: a CKS
peer's JSON for a full batch, or an error page, takes a few kilobytes."""


@dataclass
class Body:
    """An answer's body as HKPClient.read_body read it."""

    data: bytes = b""
    over: int = 0  # its size (at least) when over the limit: not read
    short_of: int = 0  # the Content-Length declared, when fewer bytes came


class HKPClient:
    """`timeout`: seconds for a connection, for sending a request, and for
    its whole answer (`answer_seconds`, when given, for that), however the
    peer spreads the answer out; `source`: the address this node serves on
    (source_address)."""

    def __init__(self, host: str, port: int, timeout: float, node_name: str,
                 answer_seconds: Optional[float] = None, source: str = "") -> None:
        self.host = host
        self.port = port
        self.source_address = source_address(source, host)
        self.timeout = timeout
        self.answer_seconds = timeout if answer_seconds is None else answer_seconds
        self.node_name = node_name
        self.conn: Optional[_Connection] = None

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
             kind: Type[Answer] = Answer, deadline: float = math.inf) -> Answer:
        """POST on the kept-alive connection; `read` makes the answer of the
        response (default: all of its body), `kind(error=...)` a failure.
        The answer must be in whole within `answer_seconds` of the request,
        and by `deadline` (time.monotonic()); until 2026-12-05 the timeout
        bounded each read only."""
        for attempt in (1, 2):
            fresh = self.conn is None
            sent = False
            try:
                if self.conn is None:
                    self.conn = _Connection(self.host, self.port, timeout=self.timeout,
                                            source_address=self.source_address)
                self.conn.request("POST", path, body, headers)
                sent = True
                assert isinstance(self.conn.sock, _DeadlineSocket)
                self.conn.sock.deadline = min(time.monotonic() + self.answer_seconds,
                                              deadline)
                return (read or self._read_all)(self.conn.getresponse())
            except (http.client.HTTPException, OSError, socket.timeout) as exc:
                self.close()
                # A kept-alive connection the peer closed meanwhile: one retry on
                # a fresh one.  A fresh connection that fails is the answer.
                timed_out = isinstance(exc, socket.timeout)
                if fresh or attempt == 2 or timed_out:
                    return kind(error=_describe(exc), cut=isinstance(exc, CUT),
                                unanswered=sent and timed_out)
        return kind(error="no answer")

    def _read_all(self, response: http.client.HTTPResponse) -> Answer:
        """The answer to a push or a notice, of up to ANSWER_BYTES: a longer
        one, or one cut short of its Content-Length, is no answer (the keys
        stay owed).  Until 2026-12-07 it was read whole, however long: a peer
        answering 200 with an endless body took cks_sync.py to 14.6 GB, and a
        Content-Length of 100 GB ended it in a MemoryError (found by a review)."""
        body = self.read_body(response, ANSWER_BYTES)
        if body.over:
            return Answer(error="HTTP %d with an answer of over %d MiB, not read"
                          % (response.status, ANSWER_BYTES >> 20))
        if body.short_of:
            return Answer(error="HTTP %d with an answer cut off after %d of its %d bytes"
                          % (response.status, len(body.data), body.short_of))
        asked = retry_after(response.getheader("Retry-After"), time.time()) \
            if response.status in (429, 503) else 0.0
        return Answer(response.status, body.data, retry_after=asked)

    def read_body(self, response: http.client.HTTPResponse, max_bytes: int) -> "Body":
        """The body of `response`, no more of it than `max_bytes`; the
        connection is closed when the rest is not read or the peer closed it."""
        declared = response.getheader("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            self.close()  # the rest of this answer is not read
            return Body(over=int(declared))
        data = response.read(max_bytes + 1)
        if len(data) > max_bytes:
            self.close()
            return Body(over=len(data))
        if declared.isdigit() and len(data) < int(declared):
            # (read() returns what came before the peer closed, without an error)
            self.close()
            return Body(data, short_of=int(declared))
        if response.will_close:
            self.close()
        return Body(data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


CUT = (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected)
"""The peer took the connection, then closed or reset it without an answer."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, CUT):
        return "connection closed by the peer, unanswered"
    return " ".join(str(exc).split()) or exc.__class__.__name__

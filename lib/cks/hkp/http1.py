"""A small HTTP/1.0 and 1.1 request parser and response writer, free of I/O
(in h11's sans-I/O style): bytes in, request heads out; responses to bytes.

Only what a keyserver needs: Content-Length bodies (no chunked request
bodies: 411), keep-alive by version and Connection header, bounded heads,
`Expect: 100-continue` (CONTINUE, sent before an upload's body is read).
A TLS handshake where a request should begin is refused at its first byte.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Dict, List, Optional, Tuple

MAX_HEAD_BYTES = 16384
MAX_HEADERS = 100

_METHOD = re.compile(r"[A-Z]+")
# ASCII digits (str.isdigit() takes "²", which int() refuses), few enough for int()
_LENGTH = re.compile(r"[0-9]{1,18}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a header name (RFC 9110 5.1)
# Control characters: never in a request target (RFC 9112 3.2) or a header value
# (RFC 9110 5.5: only HTAB); a NUL must not reach the database.
_TARGET_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

REASONS = {**{status.value: status.phrase for status in HTTPStatus},
           # RFC 9110's names, Python's only since 3.13
           413: "Content Too Large", 422: "Unprocessable Content"}
"""The reason phrase of every standard status (until 2026-12-05 a list of
those cksd was thought to send, without 401: "401 Unknown")."""


TLS_HANDSHAKE = 0x16
"""The first byte of a TLS handshake record (a ClientHello: 0x16 0x03 ...);
no HTTP request begins with it (a method is letters)."""
TLS_ON_PLAIN_PORT = ("this is the plain HTTP port: a TLS handshake came "
                     "(hkps:// needs cksd's TLS port or a proxy)")


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
"""The interim answer a client that sent `Expect: 100-continue` waits for
before it sends the body (curl waits a second for it, for uploads of 1 MB
and more)."""


class HTTPError(Exception):
    """A request that cannot be served; answer `status` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Head:
    method: str
    target: str
    version: str  # "HTTP/1.0" or "HTTP/1.1"
    headers: Dict[str, str] = field(default_factory=dict)  # lower-case names
    request_line: str = ""

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    @property
    def expects_continue(self) -> bool:
        """Whether the client waits for CONTINUE before it sends the body."""
        return self.version == "HTTP/1.1" and \
            self.headers.get("expect", "").strip().lower() == "100-continue"

    def content_length(self) -> int:
        codings = self.headers.get("transfer-encoding")
        if codings is not None:
            # RFC 9112 6.3: with any transfer coding the body's length is not
            # Content-Length's (a proxy that read it so would see another
            # request in the body); chunked last: it would be known, but
            # bodies come with a length here.
            if codings.split(",")[-1].strip().lower() == "chunked":
                raise HTTPError(411, "chunked request bodies are not accepted: "
                                     "send Content-Length")
            raise HTTPError(400, "a request body's transfer coding must end with chunked")
        text = self.headers.get("content-length")
        if text is None:
            # (no length is no body, RFC 9112 6.3; an upload must say its length)
            if self.method == "POST":
                raise HTTPError(411, "a Content-Length header is required")
            return 0
        if not _LENGTH.fullmatch(text):
            raise HTTPError(400, "bad Content-Length")
        return int(text)


def parse_head(buffer: bytearray) -> Optional[Tuple[Head, int]]:
    """The request head at the start of `buffer` and its length in bytes, or
    None while it is incomplete.  Raises HTTPError for a malformed head, and
    for a TLS client at once: it waits for the server's handshake, and would
    wait out the head timeout for a 408 it cannot read."""
    if buffer and buffer[0] == TLS_HANDSHAKE:
        raise HTTPError(400, TLS_ON_PLAIN_PORT)
    end = buffer.find(b"\r\n\r\n")
    separator = 4
    if end < 0:
        end = buffer.find(b"\n\n")  # tolerate bare LF, as many servers do
        separator = 2
    if end < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise HTTPError(431, "request head too large")
        return None
    if end > MAX_HEAD_BYTES:
        raise HTTPError(431, "request head too large")
    try:
        text = bytes(buffer[:end]).decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise HTTPError(400, "undecodable request head") from None
    lines = text.replace("\r\n", "\n").split("\n")
    # RFC 9112 2.2: ignore empty lines before the request line.
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        raise HTTPError(400, "empty request")
    request_line = lines[0]
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HTTPError(400, "malformed request line")
    method, target, version = parts
    if not version.startswith("HTTP/"):
        raise HTTPError(400, "malformed request line")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HTTPError(505, "only HTTP/1.0 and HTTP/1.1 are spoken here")
    if not _METHOD.fullmatch(method):
        raise HTTPError(400, "malformed method")
    if _TARGET_CONTROL.search(target):
        raise HTTPError(400, "control character in the request target")
    headers: Dict[str, str] = {}
    if len(lines) - 1 > MAX_HEADERS:
        raise HTTPError(431, "too many header fields")
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HTTPError(400, "malformed header line")
        if _VALUE_CONTROL.search(value):
            raise HTTPError(400, "control character in header %s" % name)
        name = name.lower()
        value = value.strip(" \t")
        headers[name] = headers[name] + ", " + value if name in headers else value
    return Head(method, target, version, headers, request_line), end + separator


_date_cache: Tuple[int, str] = (0, "")


def _date() -> str:
    """The Date header value, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def format_response(status: int, headers: List[Tuple[str, str]], body: bytes,
                    keep_alive: bool, head_only: bool = False,
                    length: Optional[int] = None) -> bytes:
    """The bytes of an HTTP/1.1 response with a Content-Length: `body`'s, or
    `length` for a body the caller sends after the head (server.py)."""
    lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Unknown")),
             "Date: " + _date(),
             "Server: CKS",
             "Content-Length: %d" % (len(body) if length is None else length)]
    lines.extend("%s: %s" % item for item in headers)
    lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body

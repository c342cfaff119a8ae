"""Stand-in recon peers: a /pks/hashquery server that answers what a test
needs (HashQueryPeer), and a recon port that requests (ReconPeer), as a
peer's does when cks_sync.py or cksd dials it."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from cks.sync.recon.hashquery import decode_request, encode_answer
from cks.sync.recon.wire import (DEFAULT_FILTERS, ROOT, Done, Error, Flush, MessageReader,
                                 ReconRqstFull, encode_verdict, our_config)

Answer = Tuple[int, bytes, Dict[str, str]]


class HashQueryPeer:
    """A peer's /pks/hashquery: `keys` maps 16-byte hashes to the binary key
    answered for them; `answer`, when set, makes the whole answer instead
    (its headers may declare a Content-Length the body does not have).
    `pace`: seconds between the bytes of an answer's body (a peer that
    trickles).  Speaks HTTP/1.0 and closes after each answer, as SKS does."""

    def __init__(self, keys: Dict[bytes, bytes],
                 answer: Optional[Callable[[List[bytes]], Answer]] = None,
                 pace: float = 0.0) -> None:
        self.keys = keys
        self.answer = answer
        self.batches: List[List[bytes]] = []
        self.clients: List[str] = []  # the address each request came from
        self.release = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self):
                stand_in.clients.append(self.client_address[0])
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hashes = decode_request(body)
                stand_in.batches.append(hashes)
                status, data, headers = stand_in.respond(hashes)
                self.send_response(status)
                for name, value in {"Content-Length": str(len(data)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                if not pace:
                    self.wfile.write(data)
                    return
                for index in range(len(data)):
                    if stand_in.release.wait(pace):
                        return
                    self.wfile.write(data[index:index + 1])
                    self.wfile.flush()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def respond(self, hashes: List[bytes]) -> Answer:
        if self.answer is not None:
            return self.answer(hashes)
        return 200, encode_answer([self.keys[h] for h in hashes if h in self.keys]), {}

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class ReconPeer:
    """A recon port on 127.0.0.1 that takes each connection as the side that
    requests: it passes the handshake (announcing `http_port`), asks for the
    root whole with `claims` as its elements (so that the dialer lacks them
    all), reads the answer and says Done; with `error`, it sends an Error
    message of that text in place of its request; with `flood`, that many
    requests and no Flush, and keeps what came back in `flooded`.  It
    announces `filters`.  `sessions` counts the connections served."""

    def __init__(self, claims: Sequence[int], http_port: int,
                 error: Optional[str] = None, flood: int = 0,
                 filters: str = DEFAULT_FILTERS) -> None:
        self.claims = list(claims)
        self.http_port = http_port
        self.filters = filters
        self.error = error
        self.flood = flood
        self.flooded: List[object] = []
        self.sessions = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with sock:
                self.sessions += 1
                try:
                    self._session(sock)
                except (OSError, EOFError):
                    pass

    def _session(self, sock: socket.socket) -> None:
        sock.settimeout(30)
        reader = MessageReader()
        sock.sendall(our_config(self.http_port, self.filters).encode())
        _read(sock, reader.next_message, reader)  # its Config
        sock.sendall(encode_verdict(None))
        if _read(sock, reader.next_string, reader) != b"passed":  # its verdict
            _until_hangup(sock)
            return
        if self.error is not None:
            sock.sendall(Error(self.error).encode())
            return
        if self.flood:
            sock.sendall(ReconRqstFull(ROOT, self.claims).encode() * self.flood)
            self.flooded = reader.feed(_until_hangup(sock))
            return
        sock.sendall(ReconRqstFull(ROOT, self.claims).encode() + Flush().encode())
        _read(sock, reader.next_message, reader)  # its Elements
        sock.sendall(Done().encode())
        _until_hangup(sock)

    def close(self) -> None:
        self.listener.close()


def _until_hangup(sock: socket.socket) -> bytes:
    """What the dialer sends until it hangs up (5 s at most)."""
    data = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        more = sock.recv(1 << 16)
        if not more:
            break
        data += more
    return data


def _read(sock: socket.socket, take, reader: MessageReader):
    """Read until `take()` (a reader's next_message or next_string) has something."""
    while True:
        item = take()
        if item is not None:
            return item
        data = sock.recv(1 << 16)
        if not data:
            raise EOFError("the dialer closed the connection")
        reader.push(data)

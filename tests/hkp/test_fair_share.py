"""One client address cannot take every connection or all the memory for
uploads (fair_share.py): a cksd process, raw sockets from several loopback
addresses (127.0.0.0/8 is all loopback on Linux), loopback neither a trusted
proxy nor exempt here, as an address on the Internet is."""

import socket
import time
import urllib.parse

import pytest

from cks.hkp.app import KeyServer, ServerSettings
from cks.hkp.server import HKPServer, _Connection
from support import fixture
from support.server import Cksd

STRANGERS = "[ratelimit]\ntrusted_proxies =\n"  # (loopback is by default: no cap)
PARTIAL_HEAD = b"GET /pks/lookup?op=stats HTTP/1.1\r\nHost: x\r\n"  # never ended


def _config(tmp_path, server, more=""):
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 1\n" + server + STRANGERS + more)
    return str(config)


def _connect(server, source):
    return socket.create_connection(("127.0.0.1", server.port), timeout=10,
                                    source_address=(source, 0))


def _hold(server, source, count, request=PARTIAL_HEAD):
    """`count` connections from `source`, each in the middle of `request`."""
    held = []
    for _ in range(count):
        sock = _connect(server, source)
        sock.sendall(request)
        held.append(sock)
        time.sleep(0.05)  # (accepted and read in this order)
    return held


def _answer(sock, timeout=5.0):
    """What the server sent before closing (b"" when it sent nothing)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def _stats_from(server, source):
    with _connect(server, source) as sock:
        sock.sendall(b"GET /pks/lookup?op=stats&options=mr HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
        return _answer(sock, 10)


def _close_all(socks):
    for sock in socks:
        sock.close()


def test_at_the_cap_another_address_takes_room_from_the_one_holding_most(tmp_path):
    """Until 2026-12-06 connections half-way through a request were never
    closed to make room: one address trickling request heads held every
    slot and the others got 503."""
    config = _config(tmp_path, "max_connections = 8\nmax_connections_per_address = 100\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        held = _hold(server, "127.0.0.2", 8)
        try:
            assert _stats_from(server, "127.0.0.3").startswith(b"HTTP/1.1 200 ")
            # room was made at 127.0.0.2: its request that began first, with a 503
            answer = _answer(held[0])
            assert answer.startswith(b"HTTP/1.1 503 ") and b"too many connections" in answer
            assert _stats_from(server, "127.0.0.3").startswith(b"HTTP/1.1 200 ")
            held += _hold(server, "127.0.0.2", 1)  # (the cap again)
            # the holder of the most is refused itself, not let take more
            assert _stats_from(server, "127.0.0.2").startswith(b"HTTP/1.1 503 ")
            server.wait_for_output(r"refused a connection from 127\.0\.0\.2")
        finally:
            _close_all(held)


@pytest.mark.parametrize("opening", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"],
                         ids=["silent", "idle-after-a-request"])
def test_at_the_cap_many_addresses_holding_one_each_lock_nobody_out(tmp_path, opening):
    """8 addresses each holding a connection that waits for a request (one
    that never sent a byte, or a keep-alive one after its answer), with
    `max_connections = 8`: a newcomer from another address would tie with
    them, and the one that waited longest makes room.  Until 2026-12-06 the
    newcomer was refused (503) for as long as the holders came back."""
    config = _config(tmp_path, "max_connections = 8\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        held = []
        try:
            for number in range(2, 10):
                held.append(_connect(server, "127.0.0.%d" % number))
                if opening:
                    held[-1].sendall(opening)
                    assert held[-1].recv(65536).startswith(b"HTTP/1.1 200 ")
                time.sleep(0.05)  # (accepted in this order)
            assert _stats_from(server, "127.0.1.9").startswith(b"HTTP/1.1 200 ")
            assert _answer(held[0]) == b""  # the longest waiting, closed without a word
            held.append(_connect(server, "127.0.0.10"))  # (the cap again)
            time.sleep(0.1)
            assert _stats_from(server, "127.0.1.10").startswith(b"HTTP/1.1 200 ")
            assert _answer(held[1]) == b""
            for sock in held[2:]:  # the others stay
                sock.settimeout(0.2)
                with pytest.raises(socket.timeout):
                    sock.recv(100)
        finally:
            _close_all(held)


def test_at_the_cap_no_request_under_way_is_closed_for_a_tie(tmp_path):
    """8 addresses each in the middle of a request: a newcomer from another
    address would tie with them, and none of theirs waits for a request, so
    it is refused and their requests go on."""
    config = _config(tmp_path, "max_connections = 8\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        held = []
        try:
            for number in range(2, 10):
                held += _hold(server, "127.0.0.%d" % number, 1)
            assert _stats_from(server, "127.0.1.9").startswith(b"HTTP/1.1 503 ")
            for sock in held:
                sock.sendall(b"\r\n")  # the end of each head
                assert sock.recv(100).startswith(b"HTTP/1.1 200 ")
        finally:
            _close_all(held)


def test_a_connection_whose_request_has_arrived_is_no_room_to_take():
    """Of the connections waiting for a request, the longest waiting makes
    room, but not one whose request has reached the host unread (closed,
    the request would be lost): a flood of silent connections cost a
    keep-alive client asking every 50 ms half its requests (found by a
    review).  On the server's own choice, where the moment can be held
    still: the loop reads such a request within microseconds."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = HKPServer(KeyServer(None, ServerSettings()), [(listener, None)])
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        now = time.monotonic()
        connections = [_Connection(ours, "127.0.0.%d" % (n + 2), now + n, server.limits)
                       for n, (ours, _) in enumerate(pairs)]  # the first waited longest
        for connection in connections:
            server._connections[connection.sock] = connection
            server._connection_shares.take(connection.group)
        pairs[0][1].sendall(b"GET /pks/lookup?op=stats HTTP/1.1\r\n\r\n")  # unread
        assert server._close_waiting(connections)
        assert list(server._connections.values()) == [connections[0], connections[2]]
        pairs[2][1].sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert not server._close_waiting([connections[0], connections[2]])
        assert len(server._connections) == 2
    finally:
        server.finish_stop()  # (closes what is left, and the listener)
        for _, theirs in pairs:
            theirs.close()


def test_one_address_may_hold_its_share_of_connections_only(tmp_path):
    config = _config(tmp_path, "max_connections = 50\nmax_connections_per_address = 5\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        held = _hold(server, "127.0.0.2", 5)
        try:
            extra = _hold(server, "127.0.0.2", 3)
            for sock in extra:
                assert _answer(sock).startswith(b"HTTP/1.1 503 ")
            assert _stats_from(server, "127.0.0.3").startswith(b"HTTP/1.1 200 ")
            for sock in held:  # its own 5 stay (head_timeout: 10 s)
                sock.settimeout(0.2)
                try:
                    assert sock.recv(100) == b"x"
                except socket.timeout:
                    pass
            # an idle one of its own makes room for its next
            held.append(_connect(server, "127.0.0.2"))
        finally:
            _close_all(held)


def test_exempt_addresses_have_no_cap_of_their_own(tmp_path):
    """[ratelimit] exempt networks (and trusted proxies, loopback by default:
    the operator's tools on the host) may hold more."""
    config = _config(tmp_path, "max_connections = 50\nmax_connections_per_address = 2\n",
                     "exempt = 127.0.0.4\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        held = _hold(server, "127.0.0.4", 6)
        try:
            assert _stats_from(server, "127.0.0.4").startswith(b"HTTP/1.1 200 ")
            held += _hold(server, "127.0.0.5", 3)  # (no exempt address: 2 at most)
            assert _answer(held[-1]).startswith(b"HTTP/1.1 503 ")
            server.wait_for_output(r"refused a connection from 127\.0\.0\.5")
            assert "refused a connection from 127.0.0.4" not in server.output()
        finally:
            _close_all(held)


def _upload_head(length):
    return (b"POST /pks/add HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n" % length)


def test_unfinished_uploads_of_one_address_stay_within_the_buffer(db_url, tmp_path):
    """Until 2026-12-06 bodies still arriving were bounded only by
    max_connections x max_upload_bytes (200 unfinished uploads of 5 MiB
    from one address: two processes took 601 and 481 MB)."""
    size = 300_000  # 3 fit in 1 MiB
    config = _config(tmp_path, "upload_buffer_mb = 1\n", "[limits]\nmax_upload_bytes = %d\n"
                     % size)
    unfinished = _upload_head(size) + b"x" * (size - 1)
    with Cksd(db_url, config=config) as server:
        held = _hold(server, "127.0.0.2", 3, unfinished)
        try:
            extra = _hold(server, "127.0.0.2", 2, unfinished)
            for sock in extra:
                answer = _answer(sock)
                assert answer.startswith(b"HTTP/1.1 503 ") and b"uploads" in answer
            # another address's upload is taken: room is made at 127.0.0.2
            body = urllib.parse.urlencode({"keytext": fixture("rsa2048")}).encode()
            body += b"&pad=" + b"p" * (size - len(body) - 5)
            with _connect(server, "127.0.0.3") as sock:
                sock.sendall(_upload_head(len(body)) + body)
                assert _answer(sock, 20).startswith(b"HTTP/1.1 200 ")
            assert _answer(held[0]).startswith(b"HTTP/1.1 503 ")
        finally:
            _close_all(held)

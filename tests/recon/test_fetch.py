"""Fetching keys by SKS hash (lib/cks/sync/recon/fetch.py), on SQLite and
PostgreSQL: between two real cksd processes, from a stand-in peer that
answers what each test needs (garbage, silence, splits), and from a real SKS
1.1.6 node when one can be started."""

import hashlib
import http.client
import os
import re
import signal
import socket
import tempfile
import time
from typing import Tuple

import pytest

from cks import pipeline
from cks.hkp.app import KEYS_ANSWER_BYTES
from cks.openpgp.keys import parse_keyring, read_keys, sks_hash
from cks.openpgp.packet import Packet
from cks.store import open_store
from cks.store.rows import UNSERVED
from cks.sync.recon.fetch import REFUSED_TTL, FetchSettings, fetch_missing, raw_hash
from cks.sync.recon.hashquery import decode_answer, encode_answer, encode_request
from support import DEBIAN_KEYRING, fixture
from support.db import run_sql, with_schema
from support.nodes import fpr, manage
from support.procs import tool
from support.reconpeer import HashQueryPeer
from support.server import LOOPBACK_EXEMPT, Cksd, raw_exchange
from support.writes import checks_in_writes

NAMES = ["rsa2048", "nistp256", "photo", "certified", "v6-ed25519", "dsa-elg"]
HQ_LINE = '"POST /pks/hashquery HTTP/1.1"'


def key_of(name):
    return read_keys(fixture(name)).keys[0]


def blob_of(name):
    return key_of(name).serialize()


def hash_of(name):
    return sks_hash(key_of(name))


def unknown_hash(n=0):
    return hashlib.md5(b"not a key %d" % n).digest()


def stored(url):
    return {f: (h, s) for f, h, s in
            run_sql(url, "SELECT fingerprint, sks_hash, source FROM cks_keys")}


def recorded(url):
    return {h: (f, r) for h, f, r in
            run_sql(url, "SELECT sks_hash, fingerprint, reason FROM cks_recon_refused")}


def fetch(url, port, hashes, limits=None, **settings):
    store = open_store(url)
    try:
        return fetch_missing(store, "peer-a", "127.0.0.1", port, hashes, limits,
                             FetchSettings(**settings))
    finally:
        store.close()


def count_connects(monkeypatch):
    """The (host, port) of every connection http.client opens from now on."""
    made = []
    connect = http.client.HTTPConnection.connect

    def counting(conn):
        made.append((conn.host, conn.port))
        connect(conn)

    monkeypatch.setattr(http.client.HTTPConnection, "connect", counting)
    return made


# --- two cksd processes ------------------------------------------------------------

def test_keys_fetched_by_hash_are_stored_from_recon_unqueued_and_served(new_db, monkeypatch):
    with Cksd(new_db("a")) as a, Cksd(new_db("b")) as b:
        for name in NAMES:
            assert a.add(fixture(name))[0] == 200
        # b has push peers of both kinds: nothing fetched may be queued for them
        assert manage(b, "add", "peer.example:11371", "--no-catch-up").returncode == 0
        assert manage(b, "add", "keys@peer.example").returncode == 0
        held_by_a = stored(a.db_url)
        hashes = [h for h, _ in held_by_a.values()]
        # three per request, over one kept-alive connection
        connects = count_connects(monkeypatch)
        report = fetch(b.db_url, a.port, hashes + [unknown_hash().hex()], batch=3)
        assert report.errors == [] and report.refused == []
        assert (report.requested, report.requests, report.received, report.added,
                report.not_returned) == (len(NAMES) + 1, 3, len(NAMES), len(NAMES), 1)
        assert connects == [("127.0.0.1", a.port)]
        assert stored(b.db_url) == {f: (h, "recon:peer-a") for f, (h, _) in held_by_a.items()}
        assert run_sql(b.db_url, "SELECT count(*) FROM cks_pending_sync") == [(0,)]
        assert run_sql(b.db_url, "SELECT count(*) FROM cks_sync_backlog") == [(0,)]
        assert recorded(b.db_url) == {}  # every hash is held as asked
        for name in NAMES:
            status, _, body = b.lookup(op="get", options="mr", search="0x" + fpr(name))
            assert status == 200 and read_keys(body).keys[0].fingerprint == \
                key_of(name).fingerprint
        wait_for_count(a, HQ_LINE + " 200", 3)
        # held now: not asked again
        again = fetch(b.db_url, a.port, hashes)
        assert (again.held, again.requested, again.requests) == (len(NAMES), 0, 0)


def test_asked_the_sks_way_http_1_0_and_only_content_length(db_url):
    with Cksd(db_url) as a:
        for name in NAMES:
            assert a.add(fixture(name))[0] == 200
        wanted = [hash_of("photo"), unknown_hash(), hash_of("rsa2048")]
        body = b"".join([len(wanted).to_bytes(4, "big")]
                        + [b"\x00\x00\x00\x10" + h for h in wanted])
        head, answer = _raw_exchange(a.port, b"POST /pks/hashquery HTTP/1.0\r\n"
                                     b"content-length: %d\r\n\r\n" % len(body) + body)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0] == "HTTP/1.1 200 OK"
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        assert headers["content-type"] == "pgp/keys"
        assert headers["connection"] == "close"
        assert int(headers["content-length"]) == len(answer)
        assert answer.endswith(b"\r\n")  # as SKS and Hockeypuck write it
        keys = [parse_keyring(k).keys[0] for k in decode_answer(answer)]
        assert [k.fingerprint for k in keys] == [key_of("photo").fingerprint,
                                                 key_of("rsa2048").fingerprint]
        assert [sks_hash(k) for k in keys] == [hash_of("photo"), hash_of("rsa2048")]
        head, answer = _raw_exchange(a.port, b"POST /pks/hashquery HTTP/1.0\r\n"
                                     b"content-length: 6\r\n\r\n\x00\x00\x00\x01\x00\x00")
        assert head.startswith(b"HTTP/1.1 400 ") and b"malformed hashquery" in answer


def _raw_exchange(port: int, request: bytes) -> Tuple[bytes, bytes]:
    """Send `request`, read until the server closes: (head, body)."""
    head, _, body = raw_exchange(port, request).partition(b"\r\n\r\n")
    return head, body


def big_key(name: str, megabytes: int) -> bytes:
    """The fixture key `name` with `megabytes` user attributes of 1 MB each
    (random: nothing compresses them), as /tmp/rv_hp/m/big.py made them."""
    data = key_of(name).serialize()
    for _ in range(megabytes):
        image = b"\x01\x10\x00\x01\x01" + bytes(12) + b"\xff\xd8\xff\xe0" + os.urandom(10 ** 6)
        data += Packet(17, b"\xff" + (len(image)).to_bytes(4, "big") + image).serialize()
    return data


def _proc_status(pid: int, field: str) -> int:
    """A /proc/PID/status field in kB (VmHWM, VmRSS)."""
    with open("/proc/%d/status" % pid) as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def _answer_files(pid: int) -> int:
    """The temporary files (open, already removed) process `pid` holds: a
    hashquery's answers being sent.  (Until 2026-12-06 the test counted every
    open file, and one opened by something else now and then failed it.)"""
    held = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:  # (closed meanwhile)
            continue
        held += target.startswith(tempfile.gettempdir()) and target.endswith(" (deleted)")
    return held


BIG = ["rsa1024", "rsa2048", "rsa4096", "dsa-elg", "ed25519", "nistp256", "nistp384",
       "nistp521", "brainpoolp256", "brainpoolp384", "brainpoolp512", "secp256k1",
       "v4-ed25519-native", "v4-ed448-native", "v6-ed25519", "v6-ed448", "multi-uid",
       "certified", "photo", "expires-2040"]


def _big_keys(db_url: str, names) -> Tuple[dict, list]:
    """The keys `names` stored with 2 MB of user attributes each: their
    stored bytes by fingerprint, and their SKS hashes."""
    keys = [big_key(name, 2) for name in names]
    store = open_store(db_url)
    try:
        for key in keys:
            assert pipeline.submit(store, key, pipeline.Source.admin(queue=False)).stored
        held = store.keydata([fpr(name) for name in names])
    finally:
        store.close()
    return held, [sks_hash(read_keys(key).keys[0]) for key in keys]


def _hashquery(hashes, forwarded_for: str = "") -> bytes:
    """A hashquery as SKS sends it; from `forwarded_for` through loopback (a
    trusted proxy), or else from the operator's own host (as a peer)."""
    body = encode_request(hashes)
    via = b"x-forwarded-for: %s\r\n" % forwarded_for.encode() if forwarded_for else b""
    return b"POST /pks/hashquery HTTP/1.0\r\n%scontent-length: %d\r\n\r\n%s" % (
        via, len(body), body)


def test_a_hashquery_answers_every_key_however_large_in_flat_memory(db_url, tmp_path):
    """Keys of 40 MB in all, past KEYS_ANSWER_BYTES (16 MiB): every one is in
    the answer (Hockeypuck and SKS do not ask again for what an answer cut:
    until 2026-12-06 the last keys were cut and X-HKP-Results-Truncated
    said so), while the serving process grows by far less than the answer
    (the keys are read a few at a time, written to a file, sent from it in
    pieces); a client that reads half of it and closes leaves no file open."""
    held, hashes = _big_keys(db_url, BIG)
    request = _hashquery(hashes)
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 1\n" + LOOPBACK_EXEMPT)
    with Cksd(db_url, config=str(config)) as a:
        serving = a.proc.pid  # (one serving process: cksd's own)
        assert a.lookup(op="get", options="mr", search="0x" + fpr("ed25519"))[0] == 200
        grown_before = _proc_status(serving, "VmHWM")
        head, answer = _raw_exchange(a.port, request)
        assert b"x-hkp-results-truncated" not in head.lower()
        assert decode_answer(answer, max_bytes=64 << 20) == [held[fpr(n)] for n in BIG]
        assert len(answer) > 40 * 10 ** 6
        grown = _proc_status(serving, "VmHWM") - grown_before
        # (a key read costs a few times its size, most on PostgreSQL: 13 MB
        # here; until 2026-12-06 an answer of 16 MiB cost three times that)
        assert grown * 1024 < len(answer) // 2, "grew by %d kB" % grown
        assert _answer_files(serving) == 0
        with socket.create_connection(("127.0.0.1", a.port), timeout=20) as sock:
            sock.sendall(request)
            taken = 0
            while taken < len(answer) // 2:
                taken += len(sock.recv(1 << 20))
            assert _answer_files(serving) == 1
        a.wait_until(lambda: _answer_files(serving) == 0)


def test_a_strangers_hashquery_stops_at_the_budget_a_peers_holds_every_key(db_url, tmp_path):
    """Until 2026-12-06 anyone's hashquery of 16 KB made an answer of up to
    1,000 keys of max_key_bytes (8 GB) in a temporary file.  Now one from a
    client that is no enabled peer stops at KEYS_ANSWER_BYTES, its first key
    always in, and says so (X-HKP-Results-Truncated); an enabled peer's
    holds every key."""
    names = BIG[:9]  # (18 MB)
    held, hashes = _big_keys(db_url, names)
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 1\n")
    with Cksd(db_url, config=str(config)) as a:
        head, answer = _raw_exchange(a.port, _hashquery(hashes, "203.0.113.5"))
        assert b"\r\nx-hkp-results-truncated: true" in head.lower()
        keys = decode_answer(answer, max_bytes=64 << 20)
        assert 0 < len(keys) < len(names) and keys == [held[fpr(n)] for n in names[:len(keys)]]
        assert sum(map(len, keys)) <= KEYS_ANSWER_BYTES
        added = tool("cks_sync_manage.py", ["--db", db_url, "add", "192.0.2.50:11371",
                                            "--no-catch-up"])
        assert added.returncode == 0, added.stderr
        a.proc.send_signal(signal.SIGHUP)
        a.wait_for_output(r"peer addresses exempt from rate limits: 192\.0\.2\.50\n")
        head, answer = _raw_exchange(a.port, _hashquery(hashes, "192.0.2.50"))
        assert b"x-hkp-results-truncated" not in head.lower()
        assert decode_answer(answer, max_bytes=64 << 20) == [held[fpr(n)] for n in names]


def _narrow_connection(port: int) -> socket.socket:
    """A connection whose receive buffer holds little of an answer (the
    kernel would grow it to megabytes): the server sends as it is read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


SLOW_LINKS = "[server]\nprocesses = 1\nwrite_timeout = 2\nmin_write_rate_kb = 1024\n"
"""An answer of 8 MB must be taken within 2 s + 8 MB at 1 MiB/s: some 10 s."""


def _read_slowly(sock: socket.socket) -> bytes:
    """What the server sends until it closes, read 64 KiB each 0.02 s (some
    3 MB/s; the kernel buffers more), for 60 s at most."""
    started = time.monotonic()
    chunks = [b"-"]
    while chunks[-1] and time.monotonic() - started < 60:
        try:
            chunks.append(sock.recv(64 << 10))
        except ConnectionResetError:
            break
        time.sleep(0.02)
    return b"".join(chunks[1:])


def test_a_slow_reader_of_a_hashquery_gets_it_all_and_one_that_stops_is_cut(db_url, tmp_path):
    """A client above min_write_rate_kb (about 3 MB/s here) gets the whole
    answer, however long past write_timeout it takes (until 2026-12-06 a
    peer on a slow link was cut off at write_timeout, 60 s, from the
    answer's start, with no log line).  A client that stops taking it is cut
    at its deadline, with one line, and its temporary file is released."""
    names = BIG[:4]  # (8 MB: more than the sockets' buffers)
    held, hashes = _big_keys(db_url, names)
    config = tmp_path / "cks.conf"
    config.write_text(SLOW_LINKS)
    with Cksd(db_url, config=str(config)) as a:
        with _narrow_connection(a.port) as sock:
            sock.sendall(_hashquery(hashes))
            whole = _read_slowly(sock)
        head, _, answer = whole.partition(b"\r\n\r\n")
        assert decode_answer(answer, max_bytes=64 << 20) == [held[fpr(n)] for n in names]
        assert "not taken" not in a.output()
        with _narrow_connection(a.port) as sock:
            sock.sendall(_hashquery(hashes, "192.0.2.9"))
            sock.recv(1000)
            assert _answer_files(a.proc.pid) == 1
            line = a.wait_for_output(r"192\.0\.2\.9 \"POST /pks/hashquery HTTP/1\.0\" "
                                     r"answer not taken in time: (\d+) of (\d+) bytes sent\n",
                                     timeout=30)
            assert 0 < int(line.group(1)) < int(line.group(2))
            assert _answer_files(a.proc.pid) == 0


def test_a_reader_below_the_minimum_rate_is_cut_at_the_answers_deadline(db_url, tmp_path):
    """A client that takes a piece (PIECE_BYTES) well within write_timeout
    but the answer at 256 KiB/s, under min_write_rate_kb, is cut at the
    deadline of the whole answer and its temporary file released.  Until
    2026-12-06 each piece renewed the deadline: 400 connections reading a
    3.7 MB answer slowly held 1,503 MB of temporary files, an answer of
    16 MiB for 64 minutes each."""
    names = BIG[:4]
    held, hashes = _big_keys(db_url, names)
    config = tmp_path / "cks.conf"
    config.write_text(SLOW_LINKS)
    cut = re.compile(r"192\.0\.2\.9 \"POST /pks/hashquery HTTP/1\.0\" "
                     r"answer not taken in time: (\d+) of (\d+) bytes sent\n")
    with Cksd(db_url, config=str(config)) as a:
        with _narrow_connection(a.port) as sock:
            sock.sendall(_hashquery(hashes, "192.0.2.9"))
            started = time.monotonic()
            while not cut.search(a.output()) and time.monotonic() - started < 25:
                assert sock.recv(64 << 10)
                time.sleep(0.25)
            seconds = time.monotonic() - started
            line = cut.search(a.output())
            assert line and int(line.group(1)) < int(line.group(2))
            assert 8 < seconds < 20  # (2 s + 8 MB at 1 MiB/s)
            a.wait_until(lambda: _answer_files(a.proc.pid) == 0)


def test_a_rejected_key_is_refused_recorded_and_not_asked_again(new_db):
    with Cksd(new_db("a")) as a:
        for name in ("rsa2048", "nistp256"):
            assert a.add(fixture(name))[0] == 200
        b = with_schema(new_db("b"))  # (a node whose cksd has not run yet)
        out = tool("cks_admin.py", ["--db", b, "reject", fpr("rsa2048"), "--reason", "x"])
        assert out.returncode == 0, out.stderr
        hashes = [hash_of("rsa2048"), hash_of("nistp256")]
        report = fetch(b, a.port, hashes)
        assert report.errors == [] and report.added == 1
        reason = "rejected: key is rejected on this server: x"
        assert report.refused == [(hash_of("rsa2048").hex().upper(), reason)]
        assert recorded(b) == {hash_of("rsa2048").hex().upper(): (fpr("rsa2048"), reason)}
        assert list(stored(b)) == [fpr("nistp256")]
        # the next round, whichever peer it is from, asks for neither
        again = fetch(b, a.port, hashes)
        assert (again.known_refused, again.held, again.requested, again.requests) == \
            (1, 1, 0, 0)
        assert again.refused == [] and again.errors == []
        # after the row's time is up, the hash is asked once more
        later = fetch_at(b, a.port, hashes, int(time.time()) + REFUSED_TTL + 60)
        assert (later.known_refused, later.requested, len(later.refused)) == (0, 1, 1)
        wait_for_count(a, HQ_LINE, 2)  # the serving node saw two requests, not three


def test_an_unrejected_key_is_asked_again_at_the_next_round(new_db):
    """Lifting a rejection forgets the key's refused hashes (until 2026-12-05
    they stayed, and recon did not fetch the key for 30 days)."""
    with Cksd(new_db("a")) as a:
        assert a.add(fixture("rsa2048"))[0] == 200
        b = with_schema(new_db("b"))
        tool("cks_admin.py", ["--db", b, "reject", fpr("rsa2048"), "--reason", "x"])
        assert len(fetch(b, a.port, [hash_of("rsa2048")]).refused) == 1
        out = tool("cks_admin.py", ["--db", b, "unreject", fpr("rsa2048")])
        assert out.returncode == 0, out.stderr
        assert recorded(b) == {}
        again = fetch(b, a.port, [hash_of("rsa2048")])
        assert (again.known_refused, again.requested, again.added) == (0, 1, 1)
        assert list(stored(b)) == [fpr("rsa2048")]


def wait_for_count(node, text, count, timeout=10):
    """The access log is written from a background thread: wait for it."""
    deadline = time.monotonic() + timeout
    while node.output().count(text) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    assert node.output().count(text) == count, node.output()


def fetch_at(url, port, hashes, now):
    store = open_store(url)
    try:
        return fetch_missing(store, "peer-b", "127.0.0.1", port, hashes, now=now)
    finally:
        store.close()


# --- a stand-in peer -----------------------------------------------------------------

@pytest.fixture
def stand_in():
    made = []

    def make(keys=None, answer=None, pace=0.0):
        peer = HashQueryPeer(dict(keys or {}), answer, pace)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


def keys_named(*names):
    return {hash_of(n): blob_of(n) for n in names}


def test_hashes_are_asked_100_at_a_time(db_url, stand_in):
    peer = stand_in(keys_named("rsa2048"))
    hashes = [unknown_hash(i) for i in range(230)] + [hash_of("rsa2048")]
    report = fetch(db_url, peer.port, hashes + hashes[:5])  # duplicates asked once
    assert [len(b) for b in peer.batches] == [100, 100, 31]
    assert sorted(sum(peer.batches, [])) == sorted(hashes)
    assert (report.requested, report.requests, report.added, report.not_returned) == \
        (231, 3, 1, 230)
    assert report.errors == [] and recorded(db_url) == {}  # not returned is no error


def test_a_fetch_checks_no_signature_while_it_holds_a_write_transaction(db_url, stand_in,
                                                                        monkeypatch):
    """A fetched key's served view is derived after its network view's commit,
    as an upload's is: on SQLite a write transaction holds the one write lock
    that every upload and lookup waits for."""
    checked = checks_in_writes(monkeypatch)
    names = ["rsa2048", "certified", "dsa-elg"]
    report = fetch(db_url, stand_in(keys_named(*names)).port, [hash_of(n) for n in names])
    assert report.added == len(names) and report.errors == []
    assert checked and not any(checked)  # checked, and never inside a write
    assert run_sql(db_url, "SELECT count(*) FROM cks_keys WHERE served_crc24 = ?",
                   (UNSERVED,)) == [(0,)]
    assert run_sql(db_url, "SELECT count(*) FROM cks_view_work") == [(0,)]


def test_over_the_key_limits_is_refused_and_recorded(db_url, stand_in):
    peer = stand_in(keys_named("rsa2048", "dsa-elg"))
    limits = pipeline.Limits(max_packet_bytes=500)  # dsa-elg has a packet of 814 bytes
    hashes = [hash_of("rsa2048"), hash_of("dsa-elg")]
    report = fetch(db_url, peer.port, hashes, limits)
    reason = "over-limit: has a packet of 814 bytes, over this server's limit of 500"
    assert report.refused == [(hash_of("dsa-elg").hex().upper(), reason)]
    assert recorded(db_url) == {hash_of("dsa-elg").hex().upper(): (fpr("dsa-elg"), reason)}
    assert list(stored(db_url)) == [fpr("rsa2048")]
    again = fetch(db_url, peer.port, hashes, limits)
    assert (again.known_refused, again.held, again.requests) == (1, 1, 0)


def test_an_answer_over_the_size_limit_is_split_down_to_the_key_and_not_recorded(db_url,
                                                                                 stand_in):
    """Its bytes unread, nothing shows that another peer's answer would be as
    large: the hash is asked again at the next round, from any peer."""
    names = ["nistp256", "photo", "dsa-elg", "certified"]
    peer = stand_in(keys_named(*names))
    big = len(blob_of("dsa-elg")) + 10  # its answer: count, length, key, CRLF
    report = fetch(db_url, peer.port, [hash_of(n) for n in names], max_answer_bytes=big - 1)
    # all four: over; the first half fits; the second is over, then split
    assert [len(b) for b in peer.batches] == [4, 2, 2, 1, 1]
    assert report.refused == [] and report.added == 3 and report.over_limit == 1
    assert report.errors == ["1 answers for one key each over the limit of %d bytes (not "
                             "read; asked again at the next round)" % (big - 1)]
    assert recorded(db_url) == {}
    assert sorted(stored(db_url)) == sorted(fpr(n) for n in names if n != "dsa-elg")


def test_a_peer_declaring_a_huge_answer_blocks_no_hash(db_url, stand_in):
    huge = lambda hashes: (200, b"", {"Content-Length": str(2 * 10 ** 9)})  # noqa: E731
    peer = stand_in(answer=huge)
    hashes = [hash_of("rsa2048"), hash_of("nistp256")]
    report = fetch(db_url, peer.port, hashes)
    assert report.over_limit == 2 and recorded(db_url) == {} and not report.ok
    # another peer holding the keys is asked for them, and gives them
    again = fetch(db_url, stand_in(keys_named("rsa2048", "nistp256")).port, hashes)
    assert (again.known_refused, again.added) == (0, 2)


def test_unparseable_bytes_are_recorded_under_their_own_hash(db_url, stand_in):
    junk = b"\x99\x00\x03abc"  # a public key packet that is no key
    bad = bytes.fromhex(raw_hash(junk))
    keys = keys_named("rsa2048", "nistp256", "certified")
    keys[bad] = junk
    peer = stand_in(keys)
    hashes = [hash_of("rsa2048"), bad, hash_of("nistp256"), hash_of("certified")]
    report = fetch(db_url, peer.port, hashes)
    assert [len(b) for b in peer.batches] == [4]  # its bytes name it
    ((refused_hash, reason),) = report.refused
    assert refused_hash == bad.hex().upper() and reason.startswith("unparseable: ")
    assert (report.received, report.added) == (4, 3)
    assert recorded(db_url) == {bad.hex().upper(): (None, reason)}
    again = fetch(db_url, peer.port, hashes)
    assert (again.known_refused, again.held, again.requests) == (1, 3, 0)


@pytest.mark.parametrize("answer", ["another key", "junk"])
def test_bytes_of_another_hash_are_the_peers_error_and_record_nothing(db_url, stand_in,
                                                                      answer):
    """A peer answering a hash with a key (or junk) of another hash: found by
    halving, the peer's error for the round, nothing recorded for the hash, so
    another peer may still give it, and the hashes after it are fetched.
    Until 2026-12-05 an answer to a single hash was taken for that hash's
    key, and the hash was refused for 30 days; for a while that day the
    error ended the fetch, at the same hash every round."""
    wanted = [hash_of("rsa2048"), hash_of("nistp256"), hash_of("ed25519")]
    wrong = blob_of("certified") if answer == "another key" else b"\x99\x00\x03abc"
    keys = {hash_of("rsa2048"): blob_of("rsa2048"), hash_of("nistp256"): wrong,
            hash_of("ed25519"): blob_of("ed25519")}
    peer = stand_in(keys)
    report = fetch(db_url, peer.port, wanted)
    assert report.errors == ["1 hashes answered with bytes of another hash (skipped; "
                             "asked again at the next round)"]
    assert recorded(db_url) == {}
    assert sorted(stored(db_url)) == sorted([fpr("rsa2048"), fpr("ed25519")])
    honest = fetch(db_url, stand_in(keys_named("nistp256")).port, wanted)
    assert (honest.known_refused, honest.held, honest.added) == (0, 2, 1)


def read_differently(name):
    """(the peer's hash, its bytes) of a key the peer holds with a packet CKS
    drops (an unknown non-critical tag), so CKS stores it under another hash."""
    extra = key_of(name).serialize() + Packet(60, b"peer-only").serialize()
    theirs = bytes.fromhex(raw_hash(extra))
    assert theirs != hash_of(name)
    return theirs, extra


def test_a_key_read_differently_is_recorded_under_the_peers_hash(db_url, stand_in):
    theirs, extra = read_differently("nistp256")
    peer = stand_in({theirs: extra, **keys_named("rsa2048")})
    report = fetch(db_url, peer.port, [theirs, hash_of("rsa2048")])
    assert report.added == 2 and report.other_hash == 1 and report.refused == []
    assert len(peer.batches) == 1  # its packets as they came name it: no halving
    ((name, (fingerprint, reason)),) = recorded(db_url).items()
    assert (name, fingerprint) == (theirs.hex().upper(), fpr("nistp256"))
    assert reason == "held-as %s: the key is held here in another form" \
        % hash_of("nistp256").hex().upper()
    again = fetch(db_url, peer.port, [theirs, hash_of("rsa2048")])
    assert (again.known_refused, again.held, again.requests) == (1, 1, 0)


def test_a_deleted_key_is_asked_again_at_the_next_round(db_url, stand_in):
    """Deleting a key forgets the hashes recorded for it, as lifting a
    rejection does (until 2026-12-05 they stayed, and recon did not fetch the
    key back for 30 days)."""
    theirs, extra = read_differently("nistp256")
    peer = stand_in({theirs: extra})
    assert fetch(db_url, peer.port, [theirs]).other_hash == 1
    assert list(recorded(db_url)) == [theirs.hex().upper()]
    out = tool("cks_admin.py", ["--db", db_url, "delete", fpr("nistp256")])
    assert out.returncode == 0, out.stderr
    assert recorded(db_url) == {}
    again = fetch(db_url, peer.port, [theirs])
    assert (again.known_refused, again.requested, again.added) == (0, 1, 1)
    assert list(stored(db_url)) == [fpr("nistp256")]


def test_a_cut_answer_is_asked_again_for_the_rest(db_url, stand_in):
    names = ["rsa2048", "nistp256", "certified"]
    keys = keys_named(*names)

    def first_only(hashes):
        found = [keys[h] for h in hashes if h in keys]
        return 200, encode_answer(found[:1]), {"X-HKP-Results-Truncated": "true"}

    peer = stand_in(answer=first_only)
    report = fetch(db_url, peer.port, [hash_of(n) for n in names])
    assert [len(b) for b in peer.batches] == [3, 2, 1]
    assert report.added == 3 and report.not_returned == 0 and report.errors == []


GARBAGE = {
    "html": (200, b"<html><body>Unexpected POST request</body></html>"),
    "count past the keys": (200, b"\x00\x00\x00\x02\x00\x00\x00\x03abc"),
    "4 GiB length": (200, b"\x00\x00\x00\x01\xff\xff\xff\xff" + b"x" * 50),
    "more keys than asked": (200, encode_answer([b"a", b"b", b"c"])),
    "trailing bytes": (200, encode_answer([b"a"]) + b"more"),
    "server error": (500, b"internal error"),
    "not found": (404, b"no such page"),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_a_peer_answering_garbage_stores_nothing(db_url, stand_in, kind):
    status, body = GARBAGE[kind]
    if kind == "count past the keys":
        # a whole first key, then the second missing: the first is not kept either
        body = b"\x00\x00\x00\x02" + encode_answer([blob_of("rsa2048")])[4:-2]
    peer = stand_in(answer=lambda hashes: (status, body, {}))
    report = fetch(db_url, peer.port, [hash_of("rsa2048"), hash_of("nistp256")])
    (error,) = report.errors
    if status == 200:
        assert error.startswith("answered garbage to /pks/hashquery: ")
    else:
        assert error.startswith("HTTP %d to /pks/hashquery: " % status)
    assert error.endswith("(2 hashes not fetched)")
    assert stored(db_url) == {} and recorded(db_url) == {}
    assert (report.received, report.added, report.refused) == (0, 0, [])


def test_an_answer_cut_short_is_said_so(db_url, stand_in):
    """Not "garbage": http.client hands over what came before the peer closed."""
    whole = encode_answer([blob_of("rsa2048")])
    peer = stand_in(answer=lambda hashes: (200, whole[:20], {"Content-Length": str(len(whole))}))
    report = fetch(db_url, peer.port, [hash_of("rsa2048")])
    assert report.errors == ["the answer was cut short (20 of %d bytes) (1 hashes not fetched)"
                             % len(whole)]
    assert stored(db_url) == {} and recorded(db_url) == {}


def test_a_peer_that_is_down_or_silent_gives_a_clear_error(db_url, stand_in):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    report = fetch(db_url, port, [hash_of("rsa2048")])
    assert report.errors == ["no answer from 127.0.0.1:%d: connection refused "
                             "(1 hashes not fetched)" % port]
    peer = stand_in(answer=lambda hashes: (peer.release.wait(30), (200, b"", {}))[1])
    started = time.monotonic()
    report = fetch(db_url, peer.port, [hash_of("rsa2048")] + [unknown_hash(i)
                                                                for i in range(150)],
                   timeout=1)
    assert time.monotonic() - started < 10
    assert report.errors == ["no answer from 127.0.0.1:%d: timed out (151 hashes not fetched)"
                             % peer.port]
    assert report.requests == 1 and stored(db_url) == {} and recorded(db_url) == {}
    assert not report.ok and "error: no answer" in report.summary()


# --- a real SKS 1.1.6 node -----------------------------------------------------------

def test_fetch_from_a_real_sks_node(tmp_path):
    import os
    from support.sks import ADDRESS, sks_node
    if not os.path.exists(DEBIAN_KEYRING):
        pytest.skip("no Debian keyring")
    with open(DEBIAN_KEYRING, "rb") as handle:
        keys = parse_keyring(handle.read()).keys[:150]
    keyring = tmp_path / "some.gpg"
    keyring.write_bytes(b"".join(k.serialize() for k in keys))
    url = "sqlite:///%s" % (tmp_path / "cks.db")
    with sks_node(tmp_path / "sks", [keyring]) as sks:
        hashes = [sks_hash(k) for k in keys] + [unknown_hash()]
        store = open_store(url)
        try:
            report = fetch_missing(store, "sks", ADDRESS, sks.hkp_port, hashes)
        finally:
            store.close()
    assert report.errors == [] and report.refused == []
    assert (report.requests, report.received, report.added, report.not_returned) == \
        (2, 150, 150, 1)
    assert {h for h, _ in stored(url).values()} == {h.hex().upper() for h in hashes[:-1]}
    assert {s for _, s in stored(url).values()} == {"recon:sks"}
    assert recorded(url) == {}


def test_an_answer_sent_a_byte_at_a_time_ends_at_the_answers_deadline(db_url, stand_in):
    """Each byte within the timeout, the whole answer not within answer_seconds."""
    peer = stand_in(keys_named("rsa2048"), pace=0.02)  # some 1,100 bytes: 20 s or more
    started = time.monotonic()
    report = fetch(db_url, peer.port, [hash_of("rsa2048")], timeout=5, answer_seconds=1)
    assert time.monotonic() - started < 4
    assert report.errors == ["no answer from 127.0.0.1:%d: timed out (1 hashes not fetched)"
                             % peer.port]
    assert stored(db_url) == {} and recorded(db_url) == {}


def test_a_fetch_past_its_time_keeps_what_it_stored(db_url, stand_in):
    names = ["rsa2048", "nistp256", "certified", "dsa-elg"]
    keys = keys_named(*names)

    def slowly(hashes):
        time.sleep(0.4)
        return 200, encode_answer([keys[h] for h in hashes if h in keys]), {}

    peer = stand_in(answer=slowly)
    report = fetch(db_url, peer.port, [hash_of(n) for n in names], batch=1, seconds=1)
    assert 1 <= report.added < len(names)
    assert len(peer.batches) - report.added in (0, 1)  # (one cut short by the deadline)
    assert report.errors == ["out of time (%d hashes not fetched)" % (len(names) - report.added)]
    assert len(stored(db_url)) == report.added and recorded(db_url) == {}

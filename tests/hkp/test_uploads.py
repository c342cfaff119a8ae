"""Uploads over HTTP: the forms clients use, answers, and every kind of bad input."""

import json
import os
import socket
import threading
import urllib.parse

import pytest

from cks.openpgp import packet as pk
from cks.openpgp.armor import encode, scan
from cks.openpgp.keys import packets_hash, read_keys
from cks.store import open_store
from support import fixture
from support.db import run_sql, with_schema
from support.procs import tool
from support.server import LOOPBACK_EXEMPT, Cksd, raw_exchange


@pytest.fixture(scope="module")
def server(module_db_url, tmp_path_factory):
    config = tmp_path_factory.mktemp("conf") / "cks.conf"
    config.write_text("[limits]\nmax_upload_bytes = 2000000\n" + LOOPBACK_EXEMPT)
    with Cksd(module_db_url, config=str(config)) as cksd:
        yield cksd


def _count(server):
    return json.loads(server.lookup(op="stats", options="mr")[2])["keys"]["total"]


def _binary(name):
    return scan(fixture(name))[0][0].data


def test_form_upload_with_plus_for_spaces_and_answers(server):
    text = fixture("rsa1024").decode()
    body = "keytext=" + urllib.parse.quote_plus(text)
    status, _, answer = server.request("POST", "/pks/add", body.encode(),
                                       {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and answer.decode().startswith("added ")
    status, _, answer = server.add(fixture("rsa1024"))
    assert status == 200 and answer.decode().startswith("unchanged ")


def test_raw_pgp_keys_body_binary_and_armored(server):
    status, _, answer = server.request("POST", "/pks/add", _binary("nistp384"),
                                       {"Content-Type": "application/pgp-keys"})
    assert status == 200 and b"added" in answer
    status, _, answer = server.request("POST", "/pks/add", fixture("brainpoolp256"),
                                       {"Content-Type": "application/pgp-keys"})
    assert status == 200 and b"added" in answer


def test_an_armored_key_after_a_byte_order_mark_is_read(server):
    """A key saved by an editor that starts its files with a UTF-8
    byte-order mark (Windows Notepad), pasted or posted: until 2026-12-05
    the mark (0xEF) was taken for a binary packet, and the key refused."""
    bom = b"\xef\xbb\xbf"
    status, _, answer = server.add(bom + fixture("rsa4096"))  # keytext=, as gpg posts
    assert status == 200 and answer.decode().startswith("added "), answer
    status, _, answer = server.request("POST", "/pks/add", bom + fixture("dsa-elg"),
                                       {"Content-Type": "application/pgp-keys"})
    assert status == 200 and answer.decode().startswith("added "), answer


def test_several_keys_json_answer(server):
    status, headers, answer = server.add(fixture("two-keys") + fixture("alice-t1"),
                                         options="mr")
    result = json.loads(answer)
    assert status == 200 and headers["content-type"] == "application/json"
    assert len(result["added"]) == 3 and result["refused"] == [] and result["problems"] == []
    status, _, answer = server.request("POST", "/pks/add?options=mr", urllib.parse.urlencode(
        {"keytext": fixture("alice-t2").decode()}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"})
    assert json.loads(answer)["updated"] == [json.loads(
        server.add(fixture("alice-t2"), options="mr")[2])["unchanged"][0]]


def test_html_answer_for_browsers(server):
    status, headers, answer = server.request(
        "POST", "/pks/add", urllib.parse.urlencode({"keytext": fixture("nistp521")}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"added" in answer


def _noise(size):
    return os.urandom(size)


def _huge_length():
    return b"\xc6\xff\xff\xff\xff\xff" + bytes(50)


def _truncated():
    return encode(_binary("rsa2048")[:-40]).encode()


def _bad_crc():
    text = fixture("rsa2048").decode().splitlines()
    index = next(i for i, line in enumerate(text) if line.startswith("=") and len(line) == 5)
    text[index] = "=AAAA"
    return "\n".join(text).encode()


def _revocation_certificate():
    """A key revocation alone, as gpg writes it to openpgp-revocs.d/."""
    revocation = next(packet for packet in pk.iter_packets(_binary("revoked"))
                      if packet.tag == pk.TAG_SIGNATURE and packet.body[1] == 0x20)
    return encode(revocation.serialize()).encode()


def _message():
    literal = pk.Packet(pk.TAG_LITERAL, b"b\x00\x00\x00\x00\x00hello").serialize()
    return encode(literal, kind="MESSAGE").encode()


BAD_UPLOADS = {
    "truncated key": (_truncated, 422, "incomplete"),
    "garbage text": (lambda: b"this is not a key at all", 422, "no OpenPGP data"),
    "binary garbage": (lambda: b"\xfe" + _noise(3000), 422, ""),
    "4 GiB length field": (_huge_length, 422, "only 50 present"),
    "400 kB of noise": (lambda: b"\x99" + _noise(400_000), 422, ""),
    "secret key": (lambda: fixture("secret/ed25519"), 422, "secret key material refused"),
    "PGP message": (_message, 422, "OpenPGP message"),
    "wrong checksum": (_bad_crc, 422, "checksum mismatch"),
    "revocation certificate alone": (_revocation_certificate, 422,
                                     "gpg --import it, then gpg --send-keys"),
    "whitespace only": (lambda: b"   \n ", 400, "empty submission"),
}


@pytest.mark.parametrize("name", sorted(BAD_UPLOADS))
@pytest.mark.parametrize("form", [True, False])
def test_bad_uploads_are_refused_and_change_nothing(server, name, form):
    make, status, reason = BAD_UPLOADS[name]
    data = make()
    before = _count(server)
    if form:  # forms carry text: binary payloads go armored, as a client would send them
        text = encode(data) if data[:1] and data[0] & 0x80 else data.decode()
        code, _, answer = server.add(text)
    else:
        code, _, answer = server.request("POST", "/pks/add", data,
                                         {"Content-Type": "application/pgp-keys"})
    assert code == status, answer
    assert reason.encode() in answer
    assert _count(server) == before
    assert server.lookup(op="stats", options="mr")[0] == 200  # still serving


def test_missing_keytext_and_empty_body(server):
    assert server.request("POST", "/pks/add", b"foo=bar",
                          {"Content-Type": "application/x-www-form-urlencoded"})[0] == 400
    assert server.request("POST", "/pks/add", b"",
                          {"Content-Type": "application/pgp-keys"})[0] == 400


def test_over_the_size_limit_is_413_without_reading_the_body(server):
    before = _count(server)
    answer = raw_exchange(server.port, b"POST /pks/add HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          b"application/pgp-keys\r\nContent-Length: 5000000\r\n\r\n"
                          + b"x" * 1000, then_end=True)
    assert answer.startswith(b"HTTP/1.1 413") and b"over this server's limit" in answer
    status, _, answer = server.request("POST", "/pks/add", b"\x99" + _noise(5 << 20),
                                       {"Content-Type": "application/pgp-keys"})
    assert status == 413
    assert _count(server) == before


def test_no_content_length_is_411(server):
    answer = raw_exchange(server.port, b"POST /pks/add HTTP/1.1\r\nHost: x\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 411")


def test_an_upload_that_expects_100_continue_gets_it_before_sending_its_body(server):
    """curl sends `Expect: 100-continue` with every upload of 1 MB or more and
    waits for the interim answer before the body (until 2026-12-05 cksd sent
    none: each such upload waited a second for curl to give up)."""
    key = fixture("rsa2048")
    body = b"keytext=" + urllib.parse.quote(key).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /pks/add HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # (a second at most)
        sock.sendall(body)
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]


@pytest.mark.parametrize("coding", [b"gzip", b"chunked, gzip", b"identity"])
def test_a_body_in_a_transfer_coding_not_ending_with_chunked_is_400(server, coding):
    """Its length is not Content-Length's (RFC 9112 6.3): a proxy in front
    that read it otherwise would see another request in the body.  Until
    2026-12-05 cksd took the Content-Length."""
    before = _count(server)
    answer = raw_exchange(server.port, b"POST /pks/add HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/pgp-keys\r\nTransfer-Encoding: " + coding
                          + b"\r\nContent-Length: 5\r\n\r\nhello")
    assert answer.startswith(b"HTTP/1.1 400 ") and b"transfer coding" in answer, answer
    assert _count(server) == before


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST /pks/add HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n\r\n", b"413"),
    (b"POST /pks/add HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", b"411"),
    (b"POST /pks/add HTTP/1.1\r\nHost: x\r\n\r\n", b"411"),
    (b"POST /pks/add HTTP/1.1\r\nContent-Length: abc\r\n\r\n", b"400"),
    (b"HELLO\r\n\r\n", b"400"),
    (b"GET / HTTP/2.0\r\n\r\n", b"505"),
])
def test_the_servers_own_refusals_carry_the_headers_of_every_answer(server, request_bytes,
                                                                     status):
    """A web page's script reads why its upload was refused only when the
    answer allows it (CORS), whoever made the answer."""
    answer = raw_exchange(server.port, request_bytes, then_end=True)
    head = answer.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0].startswith(b"HTTP/1.1 " + status), head
    assert b"Access-Control-Allow-Origin: *" in head and b"Cache-Control: no-cache" in head


def test_the_operators_pages_do_not_allow_other_sites_scripts_to_read_them(server):
    """CORS on the HKP endpoints only: until 2026-12-06 /metrics, /health and the
    admin page said `Access-Control-Allow-Origin: *` too, so any web page could
    read the metrics through the browser of a client allowed to see them."""
    for path, cors in (("/metrics", False), ("/health", False), ("/pks/admin", False),
                       ("/pks/lookup?op=stats", True), ("/pks/lookup?op=get&search=x", True)):
        head = raw_exchange(server.port, b"GET %s HTTP/1.1\r\nHost: x\r\n"
                            b"Connection: close\r\n\r\n" % path.encode())
        head = head.split(b"\r\n\r\n")[0].split(b"\r\n")
        assert (b"Access-Control-Allow-Origin: *" in head) == cors, (path, head)


def test_a_method_never_served_is_405_with_or_without_a_body(server):
    for body in (b"", b"Content-Length: 1\r\n\r\nx"):
        answer = raw_exchange(server.port, b"PUT /pks/lookup?op=get&search=alice HTTP/1.1\r\n"
                              b"Host: x\r\nConnection: close\r\n" + (body or b"\r\n"))
        assert answer.startswith(b"HTTP/1.1 405"), answer


def test_garbage_request_line(server):
    answer = raw_exchange(server.port, b"\x17\x03\x01\x02\x00 garbage\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") and answer.endswith(b"malformed request line\n")
    answer = raw_exchange(server.port, b"GET /pks/lookup HTTP/9.9\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 505 ")
    answer = raw_exchange(server.port, b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") and b"malformed header" in answer
    assert server.lookup(op="stats", options="mr")[0] == 200


def test_rejected_key_is_refused_with_403_and_never_stored(server):
    from cks.openpgp.keys import read_keys
    key = read_keys(fixture("secp256k1")).keys[0]
    fingerprint = key.fingerprint.hex().upper()
    store = open_store(server.db_url)
    try:
        with store.write() as cursor:
            cursor.execute("INSERT INTO cks_rejected_keys (fingerprint, reason, rejected_at) "
                           "VALUES (?, ?, ?)", (fingerprint, "test rejection", 1))
    finally:
        store.close()
    status, _, answer = server.add(fixture("secp256k1"))
    assert status == 403 and b"rejected on this server: test rejection" in answer
    assert server.lookup(op="get", search="0x" + fingerprint)[0] == 404
    # with another, acceptable key in the same upload: 200, and the rejected one refused
    status, _, answer = server.add(fixture("secp256k1") + fixture("brainpoolp384"), options="mr")
    result = json.loads(answer)
    assert status == 200 and result["refused"][0]["fingerprint"] == fingerprint
    assert server.lookup(op="get", search="0x" + fingerprint)[0] == 404


def test_sync_header_stores_without_queueing(server):
    from cks.openpgp.keys import read_keys
    fingerprint = read_keys(fixture("brainpoolp512")).keys[0].fingerprint.hex().upper()
    status, _, _ = server.request(
        "POST", "/pks/add", urllib.parse.urlencode({"keytext": fixture("brainpoolp512")}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "X-CKS-Sync": "peer.example:11371"})
    assert status == 200
    store = open_store(server.db_url)
    try:
        with store.read() as cursor:
            queued = cursor.scalar("SELECT count(*) FROM cks_pending_sync WHERE fingerprint = ?",
                                   (fingerprint,))
            source = cursor.scalar("SELECT source FROM cks_keys WHERE fingerprint = ?",
                                   (fingerprint,))
    finally:
        store.close()
    assert queued == 0 and source == "hkp-sync:peer.example:11371"


def test_the_sync_header_counts_only_from_a_peer_or_the_operators_own(db_url):
    """From anyone else an upload with X-CKS-Sync is a user's, queued for the
    peers (until 2026-12-05 it was stored as a peer's and queued for none, so a
    stranger could keep a key's update from ever reaching the peers)."""
    from cks.openpgp.keys import read_keys
    added = tool("cks_sync_manage.py", ["--db", with_schema(db_url), "add", "192.0.2.50:11371",
                                        "--no-catch-up"])  # no traffic is ever sent to it
    assert added.returncode == 0, added.stderr
    senders = {"rsa2048": "198.51.100.7", "nistp256": "192.0.2.50", "ed25519": None}
    with Cksd(db_url) as server:
        server.wait_for_output(r"peer addresses exempt from rate limits: 192\.0\.2\.50\n")
        for name, forwarded_for in senders.items():
            headers = {"Content-Type": "application/x-www-form-urlencoded",
                       "X-CKS-Sync": "peer.example:11371"}
            if forwarded_for:  # (loopback is a trusted proxy: the client it names)
                headers["X-Forwarded-For"] = forwarded_for
            body = urllib.parse.urlencode({"keytext": fixture(name)}).encode()
            assert server.request("POST", "/pks/add", body, headers)[0] == 200
    fprs = {n: read_keys(fixture(n)).keys[0].fingerprint.hex().upper() for n in senders}
    assert dict(run_sql(db_url, "SELECT fingerprint, source FROM cks_keys")) == {
        fprs["rsa2048"]: "user", fprs["nistp256"]: "hkp-sync:peer.example:11371",
        fprs["ed25519"]: "hkp-sync:peer.example:11371"}
    assert run_sql(db_url, "SELECT fingerprint FROM cks_sync_backlog") == [(fprs["rsa2048"],)]


def test_parallel_uploads_of_the_same_key_end_with_the_union(server):
    from cks.openpgp.keys import parse_keyring
    packets = list(pk.iter_packets(_binary("revoked-parts")))
    # Split the key: each variant keeps the primary and one component with its sigs.
    components, current = [], None
    for packet in packets[1:]:
        if packet.tag != pk.TAG_SIGNATURE:
            current = [packet]
            components.append(current)
        elif current is not None:
            current.append(packet)
    variants = [b"".join(p.serialize() for p in [packets[0]] + c) for c in components]
    variants += [v for v in variants]  # everyone twice
    barrier = threading.Barrier(len(variants))
    results = []

    def post(data):
        barrier.wait()
        results.append(server.request("POST", "/pks/add", data,
                                      {"Content-Type": "application/pgp-keys"})[0])

    threads = [threading.Thread(target=post, args=(v,)) for v in variants]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * len(variants)
    fingerprint = parse_keyring(variants[0]).keys[0].fingerprint.hex().upper()
    status, _, body = server.lookup(op="get", options="mr", search="0x" + fingerprint)
    stored = parse_keyring(scan(body)[0][0].data).keys[0]
    whole = parse_keyring(_binary("revoked-parts")).keys[0]
    assert {(p.tag, p.body) for p in stored.packets()} == \
        {(p.tag, p.body) for p in whole.packets()}


def test_limits_on_signatures_and_packet_size(db_url, tmp_path):
    from cks.openpgp import signature as sg
    from support.forge import Signer, keyring
    config = tmp_path / "cks.conf"
    config.write_text("[limits]\nmax_signatures_per_key = 50\nmax_packet_bytes = 4000\n"
                      + LOOPBACK_EXEMPT)
    parts = list(pk.iter_packets(_binary("ed25519")))
    from cks.openpgp.keys import parse_keyring
    key = parse_keyring(keyring(parts)).keys[0]
    signer = Signer.new()
    certifications = [pk.Packet(pk.TAG_SIGNATURE, signer.sign(
        sg.CERT_GENERIC, key.public_key, key.user_ids[0].value, created=1704067200 + n)
        .serialize()) for n in range(60)]
    flooded = keyring(parts[:3] + certifications + parts[3:])
    big_uid = keyring(parts[:3] + [pk.Packet(pk.TAG_USER_ID, b"x" * 5000)] + parts[3:])
    with Cksd(db_url, config=str(config)) as server:
        for data, reason in ((flooded, b"signatures, over this server's limit of 50"),
                             (big_uid, b"a packet of 5000 bytes, over this server's limit")):
            status, _, answer = server.request("POST", "/pks/add", data,
                                               {"Content-Type": "application/pgp-keys"})
            assert status == 413 and reason in answer
        assert server.lookup(op="stats", options="mr")[0] == 200
        assert _count(server) == 0


def test_five_megabytes_of_noise_under_the_default_limit(db_url):
    with Cksd(db_url) as server:
        status, _, answer = server.request("POST", "/pks/add", b"\x99" + _noise(5_000_000),
                                           {"Content-Type": "application/pgp-keys"})
        assert status == 422 and _count(server) == 0
        assert server.lookup(op="stats", options="mr")[0] == 200


def test_a_signature_that_cannot_be_read_is_kept_for_peers_and_not_served(server):
    """The network view keeps every packet as sent, as SKS and Hockeypuck
    do, so that its SKS hash is theirs (op=hget finds the key by it); the
    served view (op=get) has only what could be read and checked."""
    packets = list(pk.iter_packets(_binary("v4-ed448-native")))  # (no other test sends it)
    unreadable = pk.Packet(pk.TAG_SIGNATURE, b"\x04\x10\x16\x08\x00\x00\x00\x00\xab\xcd"
                                             b"\x00\x08\xff")  # its MPI cut short
    sent = packets + [unreadable]
    status, _, answer = server.add(encode(b"".join(p.serialize() for p in sent)).encode())
    assert status == 200 and answer.decode().startswith("added "), answer
    assert "a signature that cannot be read, kept for the keyserver peers and not served" \
        in answer.decode()
    network = server.lookup(op="hget", options="mr", search=packets_hash(sent).hex())
    assert network[0] == 200
    assert unreadable.body in {p.body for p in pk.iter_packets(scan(network[2])[0][0].data)}
    (served,) = read_keys(server.lookup(op="get", options="mr",
                                        search="0x" + read_keys(network[2]).keys[0]
                                        .fingerprint.hex())[2]).keys
    assert unreadable.body not in {p.body for p in served.packets()}
    assert {p.body for p in served.packets()} == {p.body for p in packets}

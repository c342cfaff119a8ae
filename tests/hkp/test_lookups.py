"""cksd as a process: lookups and uploads over HTTP, on SQLite and PostgreSQL."""

import json
import re
import socket
import urllib.parse

import pytest

from cks.openpgp.armor import encode, scan
from cks.openpgp.keypacket import PublicKey
from cks.openpgp.keys import read_keys
from cks.openpgp.packet import Packet
from cks.openpgp.userid import UserID
from cks.store import open_store
from cks.store.peers import PeerStore
from support import EXPECTED, fixture
from support.forge import Signer, key_flags, keyring, self_signed_key
from support.nodes import settled
from support.server import Cksd


LOADED = ["rsa2048", "nistp256", "certified", "multi-uid", "revoked", "expired", "photo",
          "v3-rsa", "v6-ed25519", "rfc9580-v6-sample", "dsa-elg", "desig-revoker", "revoker"]
# a key whose user IDs are not all UTF-8 (the same every run)
RAW_UIDS = self_signed_key(b"\x11" * 32, [
    b"Latin J\xfcrgen M\xfcller <latin1raw@example.org>", b"Nul \x00 byte <nul@example.org>",
    "J\u00f6rg \ufffd <utf8@example.org>".encode()])
GNUPG = {"User-Agent": "GnuPG/2.2.40"}
CURL = {"User-Agent": "curl/8.0"}


def _fp(name, index=0):
    return EXPECTED[name + ".asc"][index]["fingerprint"]


@pytest.fixture(scope="module")
def server(module_db_url):
    with Cksd(module_db_url) as cksd:
        for name in LOADED:
            status, _, body = cksd.add(fixture(name))
            assert status == 200, body
        assert cksd.add(encode(RAW_UIDS[1]))[0] == 200
        yield cksd


def _fingerprints_in(armored: bytes):
    blocks, errors = scan(armored)
    assert not errors
    return sorted(k.fingerprint.hex().upper() for b in blocks
                  for k in read_keys(b.data).keys)


def _get(server, search, headers=CURL, **extra):
    query = urllib.parse.urlencode(dict(op="get", options="mr", search=search, **extra))
    return server.request("GET", "/pks/lookup?" + query, headers=headers)


@pytest.mark.parametrize("how", ["short", "long", "fingerprint", "subkey-id", "subkey-fpr",
                                 "lowercase"])
def test_get_by_ids(server, how):
    want = EXPECTED["rsa2048.asc"][0]
    search = {"short": "0x" + want["keyid"][-8:], "long": "0x" + want["keyid"],
              "fingerprint": "0x" + want["fingerprint"],
              "subkey-id": "0x" + want["subkeys"][0]["keyid"],
              "subkey-fpr": "0x" + want["subkeys"][0]["fingerprint"],
              "lowercase": "0x" + want["fingerprint"].lower()}[how]
    status, headers, body = _get(server, search)
    assert status == 200
    assert headers["content-type"].startswith("application/pgp-keys")
    assert "gpgkey.asc" in headers["content-disposition"]
    assert _fingerprints_in(body) == [want["fingerprint"]]


def test_get_v3_by_fingerprint_and_key_id(server):
    want = EXPECTED["v3-rsa.asc"][0]
    for search in ("0x" + want["fingerprint"], "0x" + want["keyid"]):
        status, _, body = _get(server, search)
        assert status == 200 and _fingerprints_in(body) == [want["fingerprint"]]


def test_get_by_email_and_words(server):
    status, _, body = _get(server, "rsa2048@example.org")
    assert status == 200 and _fingerprints_in(body) == [_fp("rsa2048")]
    status, _, body = _get(server, "jürgen müller")
    assert status == 200 and _fingerprints_in(body) == [_fp("multi-uid")]
    status, _, body = _get(server, "JÜRGEN")
    assert status == 200


def test_exact_match(server):
    uid = EXPECTED["rsa2048.asc"][0]["uids"][0]
    status, _, body = _get(server, uid, exact="on")
    assert status == 200 and _fingerprints_in(body) == [_fp("rsa2048")]
    status, _, _ = _get(server, uid.split(" <")[0], exact="on")
    assert status == 404  # exact: the whole user ID, not some of its words


def test_all_words_must_match(server):
    status, _, _ = _get(server, "rsa2048 nistp256")
    assert status == 404
    # a word longer than the word index holds counts too (until 2026-12-05 it
    # was dropped: 200 with Jürgen's key)
    status, _, _ = _get(server, "jürgen " + "z" * 65)
    assert status == 404
    status, _, body = _get(server, "a" * 2000)
    assert status == 400 and body.startswith(b"every word of this search is longer than 64 ")


def test_v6_served_by_its_fingerprint_and_key_id_even_to_gnupg(server):
    want = EXPECTED["v6-ed25519.asc"][0]
    for search in ("0x" + want["fingerprint"], "0x" + want["keyid"]):
        status, _, body = _get(server, search, headers=GNUPG)
        assert status == 200 and _fingerprints_in(body) == [want["fingerprint"]]


def test_v6_hidden_from_gnupg_text_searches_but_not_from_others(server):
    email = "v6-ed25519@example.org"
    assert _get(server, email, headers=GNUPG)[0] == 404
    no_agent = _raw(server, ("GET /pks/lookup?op=get&options=mr&search=%s HTTP/1.0\r\n"
                             "Host: localhost\r\n\r\n" % email).encode())
    assert no_agent.startswith(b"HTTP/1.1 404")  # dirmngr before 2025: no User-Agent
    status, _, body = _get(server, email, headers=CURL)
    assert status == 200 and _fingerprints_in(body) == [_fp("v6-ed25519")]
    # a word search matching v4 and v6 keys answers GnuPG with the v4 ones only
    status, _, body = _get(server, "fixture", headers=GNUPG)
    assert status == 200
    assert _fp("v6-ed25519") not in _fingerprints_in(body) and _fp("rsa2048") in \
        _fingerprints_in(body)


def test_v5_keys_go_to_gnupg_24_and_later_in_text_searches(db_url):
    """GnuPG 2.4 makes and reads v5 keys (LibrePGP); 2.2 fails on a whole
    answer holding one, and a dirmngr that sends no User-Agent (2.2's and
    2.4's alike) may be 2.2: it gets v5 keys only where a search finds no
    v4 key (2.2 reads neither answer, 2.4 the second).  Until 2026-12-06 a
    GnuPG that named itself 2.4 or later was kept from v5 keys too, and one
    that sent no User-Agent from v5 keys alone.  No GnuPG reads v6 keys:
    they stay out for every one."""
    v4_fingerprint, v4_key = self_signed_key(b"\x0e" * 32,
                                             [b"Shared Four <ed448-v5@example.org>"])
    with Cksd(db_url) as server:
        for name in ("v5-ed25519", "gnupg24/ed448-v5", "v6-ed25519"):
            assert server.add(fixture(name))[0] == 200
        settled(server)
        for agent, v5, v6 in [(None, True, False), ("GnuPG/2.2.40", True, False),
                              ("GnuPG/2.6", True, False), ("GnuPG/2.5.1", True, False),
                              ("curl/8.0", True, True)]:
            for email, served in (("v5-ed25519@example.org", v5),
                                  ("ed448-v5@example.org", v5), ("v6-ed25519@example.org", v6)):
                status, body = _get_as(server, email, agent)
                assert status == (200 if served else 404), (email, agent)
                if served:
                    assert len(_fingerprints_in(body)) == 1
        assert server.add(encode(v4_key))[0] == 200  # a v4 key with the Ed448 key's address
        settled(server)
        for agent, v5 in [(None, False), ("GnuPG/2.2.40", False), ("GnuPG/2.6", True)]:
            status, body = _get_as(server, "ed448-v5@example.org", agent)
            assert status == 200
            assert (_fingerprints_in(body) == [v4_fingerprint]) != v5, agent
            assert len(_fingerprints_in(body)) == (2 if v5 else 1)
        status, _, body = _no_agent(server, "/pks/lookup?op=index&options=mr&search="
                                            "v5-ed25519@example.org")
        assert status == 200 and body.count(b"\npub:") == 1


def test_gnupg_24_finds_a_v5_key_by_its_v4_subkeys_id(db_url):
    """GnuPG 2.4 encrypts to a v5 key's v4 subkey and, sending no
    User-Agent, asks for the key by that subkey's ID; until 2026-12-06 the
    answer was 404 (the lookup by subkey ID kept v5 keys from clients that
    may be GnuPG 2.2, which reads neither answer)."""
    data = fixture("gnupg24/ed448-v5-cv25519-v4")
    (key,) = read_keys(data).keys
    subkey = key.subkeys[0].value
    with Cksd(db_url) as server:
        assert server.add(data)[0] == 200
        settled(server)
        for search in ("0x" + subkey.keyid.hex().upper(), "0x" + subkey.fingerprint.hex().upper()):
            for agent in (None, "GnuPG/2.6"):
                status, body = _get_as(server, search, agent)
                assert status == 200, (search, agent)
                assert _fingerprints_in(body) == [key.fingerprint.hex().upper()]
            status, _, body = _no_agent(server, "/pks/lookup?op=index&options=mr&search="
                                        + search)
            assert status == 200 and key.fingerprint.hex().upper().encode() in body


def _get_as(server, search, agent):
    """(status, body) of a get as a client naming itself `agent` (None: none)."""
    target = "/pks/lookup?op=get&options=mr&search=" + search
    status, _, body = server.request("GET", target, headers={"User-Agent": agent}) \
        if agent else _no_agent(server, target)
    return status, body


def key_with_a_native_x25519_subkey(uid: bytes) -> bytes:
    """A v4 EdDSA key with a validly bound RFC 9580 X25519 (25) subkey."""
    owner = Signer.new()
    sub = PublicKey.parse(b"\x04" + (1704067200).to_bytes(4, "big") + b"\x19" + b"\x09" * 32)
    return keyring([Packet(6, owner.public.serialize()), Packet(13, uid),
                    Packet(2, owner.sign(0x13, owner.public, UserID(uid)).serialize()),
                    Packet(14, sub.serialize()),
                    Packet(2, owner.sign(0x18, owner.public, sub,
                                         [key_flags(0x0C)]).serialize())])


def test_keys_of_rfc_9580s_own_algorithms_stay_out_of_gnupgs_text_searches(db_url):
    """GnuPG 2.4.7 stops importing a whole answer at a key of algorithm 25-28
    ("Unknown algorithm": it imported none of them); 2.2 skips such a key.
    Until 2026-12-06 they went to every GnuPG, so anyone's such key with
    someone's user ID kept GnuPG 2.4 from that person's key."""
    victim_fpr, victim = self_signed_key(b"\x0d" * 32, [b"Victim <victim@example.org>"])
    odd = key_with_a_native_x25519_subkey(b"Odd Subkey <victim@example.org>")
    with Cksd(db_url) as server:
        for data in (victim, odd, fixture("v4-ed25519-native"), fixture("v4-ed448-native")):
            assert server.add(data if data.startswith(b"-----") else encode(data))[0] == 200
        settled(server)
        for agent in ("GnuPG/2.2.40", "GnuPG/2.6"):
            status, _, body = _get(server, "victim@example.org", headers={"User-Agent": agent})
            assert status == 200 and _fingerprints_in(body) == [victim_fpr], agent
            for native in ("v4-ed25519-native", "v4-ed448-native"):
                search = native + "@example.org"
                assert _get(server, search, headers={"User-Agent": agent})[0] == 404
                assert server.request("GET", "/pks/lookup?op=index&options=mr&search=" + search,
                                      headers={"User-Agent": agent})[0] == 404
        assert len(_fingerprints_in(_get(server, "victim@example.org")[2])) == 2  # (curl)
        for native in ("v4-ed25519-native", "v4-ed448-native"):  # by fingerprint: asked for
            assert _get(server, "0x" + _fp(native), headers=GNUPG)[0] == 200


def test_words_match_across_case_folding_and_normal_forms(db_url):
    """Until 2026-12-06 `WEISS` missed `Wei\u00df`, a user ID typed decomposed was
    missed by its name typed composed, and one consonant found a Devanagari
    name (its vowel signs split the words)."""
    weiss, weiss_key = self_signed_key(b"\x21" * 32,
                                       ["Stra\u00dfe Wei\u00df <w@example.org>".encode()])
    jose, jose_key = self_signed_key(b"\x22" * 32, ["Jose\u0301 <j@example.org>".encode()])
    ram, ram_key = self_signed_key(b"\x23" * 32, [
        "\u0930\u093e\u092e \u0936\u0930\u094d\u092e\u093e <r@example.org>".encode()])
    with Cksd(db_url) as server:
        for data in (weiss_key, jose_key, ram_key):
            assert server.add(encode(data))[0] == 200
        settled(server)
        for search, found in (("WEISS strasse", weiss), ("jos\u00e9", jose),
                              ("Jose\u0301", jose), ("\u0930\u093e\u092e", ram)):
            status, _, body = _get(server, search)
            assert status == 200 and _fingerprints_in(body) == [found], search
        assert _get(server, "\u0930")[0] == 404  # (a consonant alone is no word of it)


def test_an_address_starting_with_0x_is_found(db_url):
    """dirmngr's --locate-keys sends `search=0xcafe@example.org&exact=on`;
    until 2026-12-06 cksd took it for a key ID and answered 400 (SKS finds
    the key)."""
    fingerprint, data = self_signed_key(b"\x0c" * 32, [b"Hex Nick <0xcafe@example.org>"])
    with Cksd(db_url) as server:
        assert server.add(encode(data))[0] == 200
        for search in ("0xcafe@example.org", "<0xcafe@example.org>", "0xcafe nick"):
            status, _, body = _get(server, search, headers=GNUPG)
            assert status == 200 and _fingerprints_in(body) == [fingerprint], search
        status, _, body = _get(server, "0xcafe@example.org", headers=GNUPG, exact="on")
        assert status == 200 and _fingerprints_in(body) == [fingerprint]


def _no_agent(server, target):
    """(status, None, body) of a GET without a User-Agent (urllib adds one)."""
    answer = _raw(server, ("GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" % target).encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), None, body


def test_index_machine_readable(server):
    status, headers, body = server.lookup(op="index", options="mr",
                                          search="0x" + _fp("multi-uid"))
    assert status == 200 and headers["content-type"].startswith("text/plain")
    lines = body.decode("ascii").splitlines()
    want = EXPECTED["multi-uid.asc"][0]
    assert lines[0] == "info:1:1"
    assert lines[1] == "pub:%s:22:255:%d::" % (want["fingerprint"], want["created"])
    uids = [line.split(":")[1] for line in lines[2:]]
    assert "J%C3%BCrgen M%C3%BCller <juergen@example.org>" == uids[0]  # the primary first
    assert any("%3A" in u and "%25" in u for u in uids)


def test_index_machine_readable_escapes_the_user_ids_bytes(server):
    """A user ID that is not UTF-8 is listed by its own bytes, as SKS lists it
    (the draft: every byte that is not printable 7-bit ASCII percent-encoded):
    until 2026-12-06 its undecodable bytes and NULs came out as U+FFFD
    (%EF%BF%BD), which GnuPG's --search-keys showed instead of the user ID
    of the key it then imported.  The HTML index shows the text."""
    fingerprint = RAW_UIDS[0]
    status, _, body = server.lookup(op="index", options="mr", search="0x" + fingerprint)
    assert status == 200
    assert sorted(line.split(":")[1] for line in body.decode("ascii").splitlines()[2:]) == [
        "J%C3%B6rg %EF%BF%BD <utf8@example.org>",
        "Latin J%FCrgen M%FCller <latin1raw@example.org>",
        "Nul %00 byte <nul@example.org>"]
    page = server.lookup(op="index", search="0x" + fingerprint)[2].decode()
    assert "Latin J\ufffdrgen M\ufffdller" in page and "Nul \ufffd byte" in page


def test_index_flags(server):
    body = server.lookup(op="index", options="mr", search="0x" + _fp("revoked"))[2].decode()
    assert body.splitlines()[1].endswith(":r")
    body = server.lookup(op="index", options="mr", search="0x" + _fp("expired"))[2].decode()
    assert body.splitlines()[1].endswith(":1451606400:e")


def test_index_html(server):
    status, headers, body = server.lookup(op="index", search="fixture", fingerprint="on")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert _fp("rsa2048") in text and "op=get" in text and "op=vindex" in text
    assert "&lt;rsa2048@example.org&gt;" in text


def test_vindex_lists_signatures_with_signer_names(server):
    status, _, body = server.lookup(op="vindex", search="0x" + _fp("certified"))
    text = body.decode()
    assert status == 200
    assert "self-signature" in text
    assert "rsa2048 fixture &lt;rsa2048@example.org&gt;" in text  # a signer we hold
    assert "says for every signature shown whether it verified it" in text


def test_get_html_and_hget(server):
    status, headers, body = server.lookup(op="get", search="0x" + _fp("rsa2048"))
    assert status == 200 and headers["content-type"].startswith("text/html")
    # The armor starts a line, as SKS's page has it: onak's HKP client reads it so
    # (until 2026-12-06 it followed <pre> on its line, and onak found no key)
    assert b"\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n" in body
    index = server.lookup(op="index", search="0x" + _fp("rsa2048"), hash="on")[2].decode()
    sks_hash = re.search(r"Hash=([0-9A-F]{32})", index).group(1)
    status, _, body = server.lookup(op="hget", options="mr", search=sks_hash)
    assert status == 200 and _fingerprints_in(body) == [_fp("rsa2048")]
    assert server.lookup(op="hget", search="0" * 32)[0] == 404


@pytest.mark.parametrize("query,status", [
    ("op=get&search=0x0000000000000000", 404),
    ("op=index&search=nosuchwordanywhere", 404),
    ("op=get", 400),
    ("op=get&search=0xNOTHEX", 404),  # (words: 0x and no hex after it)
    ("op=x-frob&search=a", 501),
    ("op=get&search=0x1234567890", 501),
])
def test_status_codes(server, query, status):
    assert server.request("GET", "/pks/lookup?" + query)[0] == status


def test_error_pages(server):
    status, headers, body = server.request("GET", "/pks/lookup?op=get&search=0x00000000",
                                           headers={"Accept": "text/html"})
    assert status == 404 and headers["content-type"].startswith("text/html")
    status, headers, body = server.request("GET", "/nope")
    assert status == 404
    assert server.request("POST", "/pks/lookup", b"x")[0] == 405
    assert server.request("GET", "/pks/add")[0] == 405


@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/", "GET, HEAD, OPTIONS"),
    ("POST", "/index.html", "GET, HEAD, OPTIONS"),
    ("DELETE", "/pks/lookup?op=stats", "GET, HEAD, OPTIONS"),
    ("POST", "/pks/lookup?op=get&search=alice", "GET, HEAD, OPTIONS"),
    ("GET", "/pks/add", "POST, OPTIONS"),
    ("PUT", "/health", "GET, HEAD, OPTIONS"),
    ("GET", "/pks/hashquery", "POST, OPTIONS"),
    ("DELETE", "/pks/x-cks-rejections", "GET, HEAD, OPTIONS"),
    ("GET", "/pks/x-cks-rejection", "POST, OPTIONS"),
])
def test_a_wrong_method_is_405_naming_the_methods_of_the_path(server, method, path, allow):
    """RFC 9110 15.5.6: a 405 carries Allow (until 2026-12-05 none did)."""
    for accept in ("*/*", "text/html"):
        status, headers, body = server.request(method, path, b"" if method != "GET" else None,
                                               {"Accept": accept})
        assert (status, headers.get("allow")) == (405, allow), body
    assert b"use %s for %s" % (allow.rsplit(", ", 1)[0].replace(", ", " or ").encode(),
                               path.split("?")[0].encode()) in body


def test_stats(server):
    status, headers, body = server.lookup(op="stats", options="mr")
    stats = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert stats["keys"]["total"] == len(LOADED) + 1
    assert stats["server"]["software"] == "CKS" and stats["server"]["port"] == server.port
    status, headers, body = server.lookup(op="stats")
    assert status == 200 and b"Server statistics" in body


def test_front_page(server):
    status, headers, body = server.request("GET", "/")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert 'action="/pks/lookup"' in text and 'action="/pks/add"' in text
    assert 'name="keytext"' in text


def test_cors_and_options(server):
    status, headers, _ = server.lookup(op="stats", options="mr")
    assert headers["access-control-allow-origin"] == "*"
    status, headers, _ = server.request("OPTIONS", "/pks/add")
    assert status == 204 and "POST" in headers["access-control-allow-methods"]


def _raw(server, data: bytes, read_until_close=True) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_http_10_and_11_keep_alive(server):
    get = "GET /pks/lookup?op=index&options=mr&search=0x%s HTTP/1.1\r\nHost: x\r\n\r\n" \
        % _fp("rsa2048")
    last = get.replace("HTTP/1.1\r\n", "HTTP/1.1\r\nConnection: close\r\n", 1)
    answer = _raw(server, (get + get + last).encode())
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    answer = _raw(server, b"GET /pks/lookup?op=stats&options=mr HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and b"Content-Length" in answer


def test_a_thousand_pipelined_lookups_are_all_answered_in_order(server):
    """Requests sent back to back on one connection (HTTP pipelining), each
    answered in the serving loop: every one is answered, in order.  Until
    2026-12-05 the loop went one call deeper for each: after about 200 a
    RecursionError dropped the connection and filled the log with tracebacks."""
    found = "GET /pks/lookup?op=index&options=mr&search=0x%s HTTP/1.1\r\nHost: x\r\n\r\n" \
        % _fp("rsa2048")
    missing = found.replace(_fp("rsa2048"), "0" * 40)
    last = found.replace("HTTP/1.1\r\n", "HTTP/1.1\r\nConnection: close\r\n", 1)
    answer = _raw(server, ((found + missing) * 500 + last).encode())
    statuses = re.findall(rb"^HTTP/1\.1 (\d+) ", answer, re.M)
    assert statuses == [b"200", b"404"] * 500 + [b"200"]
    assert "RecursionError" not in server.output()


def test_access_log(server):
    server.lookup(op="index", options="mr", search="accesslogmarker")
    server.wait_for_output(r'"GET /pks/lookup\?op=index&options=mr&search=accesslogmarker '
                           r'HTTP/1.1" 404 \d+ [\d.]+ms')


def _queued(db_url):
    """(the keys queued, and the peers owed each: peer -> fingerprints)."""
    store = open_store(db_url)
    try:
        with store.read() as cursor:
            queued = {r[0] for r in cursor.execute(
                "SELECT fingerprint FROM cks_pending_sync").fetchall()}
            owed = {}
            for peer, fingerprint in cursor.execute(
                    "SELECT s.peer, b.fingerprint FROM cks_sync_backlog b "
                    "JOIN cks_other_servers s ON s.id = b.peer_id").fetchall():
                owed.setdefault(peer, set()).add(fingerprint)
    finally:
        store.close()
    return queued, owed


def test_user_uploads_are_queued_for_the_push_peers(db_url):
    """Queued for push (HKP and mail) peers; with none (a recon peer is
    sent nothing), nothing is queued: no entry that nobody would clear."""
    with Cksd(db_url) as cksd:
        store = open_store(db_url)
        try:
            PeerStore(store).add("recon.example:11371", "recon", 100, None, False,
                                 recon_port=11370)
            assert cksd.add(fixture("rsa2048"))[0] == 200
            assert _queued(db_url) == (set(), {})
            PeerStore(store).add("push.example:11371", "hkp", 100, None, catch_up=False)
            assert cksd.add(fixture("nistp256"))[0] == 200
            new = {_fp("nistp256")}
            assert _queued(db_url) == (new, {"push.example:11371": new})
        finally:
            store.close()


def test_several_keys_in_one_answer_import_into_gnupg(server):
    from support.gpg import GnuPG
    status, _, body = _get(server, "fixture", headers=GNUPG)
    want = _fingerprints_in(body)
    assert status == 200 and len(want) > 3
    with GnuPG() as gpg:
        gpg.run(["--import"], input=body)
        assert sorted(gpg.fingerprints()) == want

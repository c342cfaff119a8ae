"""The /pks/hashquery bodies (SKS 1.1.6 dbserver.ml): byte-exact
encodings written by hand from the format, round trips, and every kind of
garbage refused with a reason; plus cksd's endpoint in process (no sockets)."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cks import pipeline
from cks.hkp.app import KeyServer, Request, ServerSettings
from cks.openpgp.keys import read_keys, sks_hash
from cks.store import open_store
from cks.sync.recon.hashquery import (CONTENT_TYPE, MAX_HASHES, PATH, HashQueryError,
                                      decode_answer, decode_request, encode_answer,
                                      encode_request)
from support import fixture

H1 = bytes(range(16))
H2 = hashlib.md5(b"two").digest()


# --- the request ---------------------------------------------------------------------

def test_request_bytes_by_hand():
    assert encode_request([]) == b"\x00\x00\x00\x00"
    assert encode_request([H1, H2]) == (b"\x00\x00\x00\x02"
                                        + b"\x00\x00\x00\x10" + H1
                                        + b"\x00\x00\x00\x10" + H2)


def test_request_decodes_and_drops_duplicates_in_order():
    body = b"\x00\x00\x00\x03" + b"\x00\x00\x00\x10" + H2 + b"\x00\x00\x00\x10" + H1 \
        + b"\x00\x00\x00\x10" + H2
    assert decode_request(body) == [H2, H1]
    assert decode_request(b"\x00\x00\x00\x00") == []


@settings(max_examples=200)
@given(st.lists(st.binary(min_size=16, max_size=16), max_size=50, unique=True))
def test_request_round_trip(hashes):
    assert decode_request(encode_request(hashes)) == hashes


def test_request_encoder_refuses_a_hash_of_another_length():
    with pytest.raises(ValueError):
        encode_request([b"\x01" * 15])


ENTRY = b"\x00\x00\x00\x10" + H1


@pytest.mark.parametrize("body,message", [
    (b"", "no room for the hash count"),
    (b"\x00\x00\x01", "no room for the hash count"),
    (b"\x00\x00\x00\x02" + ENTRY, "2 hashes need a body of 44 bytes; this one has 24"),
    (b"\x00\x00\x00\x01" + ENTRY[:-1], "1 hashes need a body of 24 bytes; this one has 23"),
    (b"\x00\x00\x00\x01" + ENTRY + b"\r\n", "this one has 26"),  # nothing may follow
    (b"\x00\x00\x00\x00" + ENTRY, "0 hashes need a body of 4 bytes"),
    (b"\xff\xff\xff\xff" + ENTRY, "4294967295 hashes in one request; this server answers "
                                  "at most 1000"),
    (b"\x00\x00\x03\xe9" + ENTRY * 1001, "1001 hashes in one request"),
    (b"\x00\x00\x00\x01\x00\x00\x00\x0f" + H1, "hash 1 has length 15; SKS key hashes have 16"),
    (b"\x00\x00\x00\x01\xff\xff\xff\xff" + H1, "hash 1 has length 4294967295"),
    (b"\x00\x00\x00\x02" + ENTRY + b"\x00\x00\x00\x11" + H1, "hash 2 has length 17"),
])
def test_request_garbage_is_refused_with_the_reason(body, message):
    with pytest.raises(HashQueryError) as caught:
        decode_request(body)
    assert message in str(caught.value)


def test_request_limit_is_a_parameter():
    assert len(decode_request(b"\x00\x00\x03\xe8" + ENTRY * 1000)) == 1  # 1000: allowed
    with pytest.raises(HashQueryError):
        decode_request(encode_request([H1, H2]), max_hashes=1)
    assert MAX_HASHES == 1000


# --- the answer ----------------------------------------------------------------------

def test_answer_bytes_by_hand():
    assert encode_answer([]) == b"\x00\x00\x00\x00\r\n"
    assert encode_answer([b"abc", b""]) == (b"\x00\x00\x00\x02" + b"\x00\x00\x00\x03abc"
                                            + b"\x00\x00\x00\x00" + b"\r\n")
    assert encode_answer([b"abc"], terminator=False) == b"\x00\x00\x00\x01\x00\x00\x00\x03abc"


def test_answer_decodes_with_or_without_the_crlf():
    keys = [b"\x99\x00\x01x", b"second key"]
    assert decode_answer(encode_answer(keys)) == keys
    assert decode_answer(encode_answer(keys, terminator=False)) == keys
    assert decode_answer(b"\x00\x00\x00\x00") == []


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=300), max_size=20), st.booleans())
def test_answer_round_trip(keys, terminator):
    assert decode_answer(encode_answer(keys, terminator)) == keys


@pytest.mark.parametrize("body,message", [
    (b"", "no room for the key count"),
    (b"\x00\x00", "no room for the key count"),
    (b"\x00\x00\x00\x01", "answer declares 1 keys; its 4 bytes cannot hold them"),
    (b"\xff\xff\xff\xff" + b"\x00" * 50, "answer declares 4294967295 keys"),
    (b"\x00\x00\x00\x01\xff\xff\xff\xff" + b"x" * 50, "key 1 declares 4294967295 bytes; "
                                                      "only 50 follow"),
    (b"\x00\x00\x00\x01\x00\x00\x00\x05abc", "key 1 declares 5 bytes; only 3 follow"),
    (b"\x00\x00\x00\x02\x00\x00\x00\x05abcde\x00\x00", "no room for the length of key 2"),
    (b"\x00\x00\x00\x01\x00\x00\x00\x01a\r", "1 unexpected bytes after the 1 keys"),
    (b"\x00\x00\x00\x01\x00\x00\x00\x01a\r\n\r\n", "4 unexpected bytes"),
    (b"\x00\x00\x00\x00<html>", "6 unexpected bytes after the 0 keys"),
    (b"<html><body>Unexpected POST request</body></html>", "answer declares"),
])
def test_answer_garbage_is_refused_with_the_reason(body, message):
    with pytest.raises(HashQueryError) as caught:
        decode_answer(body)
    assert message in str(caught.value)


def test_answer_limits():
    body = encode_answer([b"a", b"b", b"c"])
    assert decode_answer(body, max_keys=3) == [b"a", b"b", b"c"]
    with pytest.raises(HashQueryError, match="holds 3 keys for 2 hashes asked for"):
        decode_answer(body, max_keys=2)
    with pytest.raises(HashQueryError, match="answer of %d bytes is over the limit of 10"
                       % len(body)):
        decode_answer(body, max_bytes=10)


# --- cksd's endpoint, in process ------------------------------------------------------------

KEYS = ["rsa2048", "nistp256", "photo"]


@pytest.fixture
def app(tmp_path):
    store = open_store("sqlite:///%s" % (tmp_path / "cks.db"))
    for name in KEYS:
        pipeline.submit(store, fixture(name), pipeline.Source.admin(queue=False))
    yield KeyServer(store, ServerSettings())
    store.close()


def _hash(name):
    return sks_hash(read_keys(fixture(name)).keys[0])


def _ask(app, body, method="POST", headers=None):
    return app.handle(Request(method, PATH, headers or {"content-length": str(len(body))},
                              body, "127.0.0.1"))


def _answer(response):
    """The body of a hashquery's answer: in memory, or in a file (FileBody)
    past bodies.MEMORY_BYTES."""
    if isinstance(response.body, bytes):
        return response.body
    with response.body.file as file:
        data = file.read()
    assert len(data) == response.body.size
    return data


def test_endpoint_answers_the_network_view_and_leaves_out_what_it_lacks(app):
    unknown = hashlib.md5(b"nobody").digest()
    response = _ask(app, encode_request([_hash("photo"), unknown, _hash("rsa2048")]))
    assert response.status == 200 and response.content_type == CONTENT_TYPE
    body = _answer(response)
    assert body.endswith(b"\r\n")
    fingerprints = [read_keys(fixture(n)).keys[0].fingerprint.hex().upper()
                    for n in ("photo", "rsa2048")]
    stored = app.store.keydata(fingerprints)
    assert decode_answer(body) == [stored[f] for f in fingerprints]
    assert decode_answer(_answer(_ask(app, encode_request([unknown])))) == []


def test_endpoint_refuses_malformed_bodies_with_400_and_the_reason(app):
    response = _ask(app, b"\x00\x00\x00\x01\x00\x00\x00\x0f" + H1)
    assert response.status == 400
    assert response.body == (b"malformed hashquery: hash 1 has length 15; SKS key hashes "
                             b"have 16 bytes\n")
    assert _ask(app, b"\x00\x00\x03\xe9" + ENTRY * 1001).status == 400
    assert _ask(app, b"").status == 400
    assert _ask(app, b"", method="GET").status == 405


def test_endpoint_answers_every_key_whatever_their_size(app, monkeypatch):
    """Read a key at a time past HASHQUERY_READ_BYTES, and none left out past
    KEYS_ANSWER_BYTES for a peer, here the operator's own host (until
    2026-12-06 the answer stopped there, said so in X-HKP-Results-Truncated,
    and SKS and Hockeypuck never asked again; a stranger's still stops:
    test_fetch.py)."""
    import cks.hkp.app as app_module
    monkeypatch.setattr(app_module, "KEYS_ANSWER_BYTES", 10)  # every key is larger
    monkeypatch.setattr(app_module, "HASHQUERY_READ_BYTES", 10)
    runs = []
    keydata = app.store.keydata
    monkeypatch.setattr(app.store, "keydata", lambda run: runs.append(run) or keydata(run))
    response = _ask(app, encode_request([_hash(n) for n in KEYS]))
    assert response.status == 200
    assert len(decode_answer(_answer(response))) == len(KEYS)
    assert [len(run) for run in runs] == [1] * len(KEYS)
    assert not any(name == "X-HKP-Results-Truncated" for name, _ in response.headers)


def test_an_answer_past_memory_bytes_comes_in_a_file(app, monkeypatch):
    from cks.hkp import bodies
    from cks.hkp.bodies import FileBody
    request = encode_request([_hash(n) for n in KEYS])
    in_memory = _ask(app, request)
    assert isinstance(in_memory.body, bytes)
    monkeypatch.setattr(bodies, "MEMORY_BYTES", 100)
    in_file = _ask(app, request)
    assert isinstance(in_file.body, FileBody)
    assert _answer(in_file) == in_memory.body and len(decode_answer(in_memory.body)) == len(KEYS)

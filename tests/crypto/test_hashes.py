import hashlib

import pytest

from cks.crypto import UnsupportedAlgorithm
from cks.crypto import hashes
from cks.crypto.ripemd160 import RIPEMD160, ripemd160

# Test vectors from the RIPEMD-160 paper (Dobbertin, Bosselaers, Preneel),
# appendix B.
RIPEMD160_VECTORS = [
    (b"", "9c1185a5c5e9fc54612808977ee8f548b2258d31"),
    (b"a", "0bdc9d2d256b3ee9daae347be6f4dc835a467ffe"),
    (b"abc", "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"),
    (b"message digest", "5d0689ef49d2fae572b881b123a85ffa21595f36"),
    (b"abcdefghijklmnopqrstuvwxyz", "f71c27109c692c1b56bbdceb5b9d2865b3708dbc"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "12a053384a9c0c88e405a06c27dcf49ada62eb2b"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
     "b0e20b6e3116640286ed3a87a5713079b21f5189"),
    (b"1234567890" * 8, "9b752e45573d4b39f4dbd3323cab82bf63326bfb"),
]
MILLION_A = "52783243c1697bdbe16d37f97f68f08325dc1528"


@pytest.mark.parametrize("message,expected", RIPEMD160_VECTORS)
def test_ripemd160_pure_python_vectors(message, expected):
    assert ripemd160(message).hexdigest() == expected
    # byte-at-a-time feeding exercises the buffering
    h = RIPEMD160()
    for i in range(len(message)):
        h.update(message[i:i + 1])
    assert h.hexdigest() == expected


def test_ripemd160_pure_python_million_a():
    h = RIPEMD160()
    chunk = b"a" * 10000
    for _ in range(100):
        h.update(chunk)
    assert h.hexdigest() == MILLION_A


@pytest.mark.parametrize("message,expected", RIPEMD160_VECTORS)
def test_ripemd160_via_new_hash(message, expected):
    h = hashes.new_hash(3)
    h.update(message)
    assert h.hexdigest() == expected
    assert h.digest_size == 20


def test_ripemd160_new_hash_falls_back_to_pure_python(monkeypatch):
    monkeypatch.setattr(hashes, "_RIPEMD160_NATIVE", False)
    h = hashes.new_hash(3)
    assert isinstance(h, RIPEMD160)
    h.update(b"abc")
    assert h.hexdigest() == "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"


def test_ripemd160_block_boundaries_match_openssl():
    try:
        hashlib.new("ripemd160")
    except ValueError:
        pytest.skip("OpenSSL has no ripemd160 here")
    data = bytes(range(256)) * 3
    for n in list(range(0, 130)) + [500, 767, 768]:
        assert ripemd160(data[:n]).digest() == hashlib.new("ripemd160", data[:n]).digest()


def test_ripemd160_copy_is_independent():
    h = ripemd160(b"message ")
    c = h.copy()
    h.update(b"digest")
    c.update(b"digesT")
    assert h.hexdigest() == "5d0689ef49d2fae572b881b123a85ffa21595f36"
    assert c.hexdigest() != h.hexdigest()
    assert h.digest() == h.digest()  # digest() does not disturb the state


EXPECTED = {
    1: hashlib.md5, 2: hashlib.sha1, 8: hashlib.sha256, 9: hashlib.sha384,
    10: hashlib.sha512, 11: hashlib.sha224, 12: hashlib.sha3_256, 14: hashlib.sha3_512,
}


@pytest.mark.parametrize("algo", sorted(EXPECTED))
def test_new_hash_matches_hashlib(algo):
    h = hashes.new_hash(algo)
    h.update(b"hello ")
    c = h.copy()
    h.update(b"world")
    assert h.digest() == EXPECTED[algo](b"hello world").digest()
    assert c.digest() == EXPECTED[algo](b"hello ").digest()
    assert h.digest_size == hashes.DIGEST_SIZE[algo]
    assert isinstance(h.name, str)


@pytest.mark.parametrize("algo", [0, 4, 5, 6, 7, 13, 15, 100, 255, -1, "8", None])
def test_new_hash_unknown(algo):
    with pytest.raises(UnsupportedAlgorithm):
        hashes.new_hash(algo)


def _der_oid(dotted):
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body.extend(reversed(chunk))
    return bytes([0x06, len(body)]) + bytes(body)


def _der_seq(body):
    return bytes([0x30, len(body)]) + body


# Hash OIDs as registered (RFC 8017 appendix A.2.4, NIST CSOR, TeleTrusT).
HASH_OIDS = {
    1: "1.2.840.113549.2.5",
    2: "1.3.14.3.2.26",
    3: "1.3.36.3.2.1",
    8: "2.16.840.1.101.3.4.2.1",
    9: "2.16.840.1.101.3.4.2.2",
    10: "2.16.840.1.101.3.4.2.3",
    11: "2.16.840.1.101.3.4.2.4",
    12: "2.16.840.1.101.3.4.2.8",
    14: "2.16.840.1.101.3.4.2.10",
}


@pytest.mark.parametrize("algo", sorted(HASH_OIDS))
def test_digest_info_prefix_is_valid_der(algo):
    size = hashes.DIGEST_SIZE[algo]
    alg_id = _der_seq(_der_oid(HASH_OIDS[algo]) + b"\x05\x00")
    digest_info = _der_seq(alg_id + bytes([0x04, size]) + b"\x00" * size)
    assert hashes.DIGEST_INFO_PREFIX[algo] == digest_info[:-size]


def test_tables_cover_the_same_ids():
    assert set(hashes.DIGEST_INFO_PREFIX) == set(HASH_OIDS) == set(hashes.DIGEST_SIZE)
    assert hashes.WEAK_HASHES == {1, 2, 3}

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes as c_hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa as c_rsa

from cks.crypto import UnsupportedAlgorithm
from cks.crypto.hashes import DIGEST_INFO_PREFIX, new_hash
from cks.crypto.rsa import verify_pkcs1v15

MESSAGE = b"The quick brown fox jumps over the lazy dog"

# OpenPGP hash id -> cryptography hash class (RIPEMD-160 is not offered
# by cryptography; it is covered with raw RSA below).
C_HASHES = {
    1: c_hashes.MD5, 2: c_hashes.SHA1, 8: c_hashes.SHA256, 9: c_hashes.SHA384,
    10: c_hashes.SHA512, 11: c_hashes.SHA224, 12: c_hashes.SHA3_256, 14: c_hashes.SHA3_512,
}

_KEYS = {}


def rsa_key(bits):
    if bits not in _KEYS:
        _KEYS[bits] = c_rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return _KEYS[bits]


def numbers(key):
    pub = key.public_key().public_numbers()
    return pub.n, pub.e


def digest_of(algo, data):
    h = new_hash(algo)
    h.update(data)
    return h.digest()


def raw_sign(key, em: bytes) -> int:
    """RSA private operation on an arbitrary encoded message."""
    priv = key.private_numbers()
    return pow(int.from_bytes(em, "big"), priv.d, priv.public_numbers.n)


def pkcs1_em(key, prefix: bytes, digest: bytes) -> bytes:
    k = (key.key_size + 7) // 8
    t = prefix + digest
    return b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
@pytest.mark.parametrize("algo", sorted(C_HASHES))
def test_valid_signatures_from_cryptography(bits, algo):
    key = rsa_key(bits)
    n, e = numbers(key)
    sig = key.sign(MESSAGE, padding.PKCS1v15(), C_HASHES[algo]())
    s = int.from_bytes(sig, "big")
    digest = digest_of(algo, MESSAGE)
    assert verify_pkcs1v15(n, e, algo, digest, s) is True
    # same digest as bytearray / memoryview
    assert verify_pkcs1v15(n, e, algo, bytearray(digest), s) is True


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
def test_ripemd160_raw(bits):
    key = rsa_key(bits)
    n, e = numbers(key)
    digest = digest_of(3, MESSAGE)
    s = raw_sign(key, pkcs1_em(key, DIGEST_INFO_PREFIX[3], digest))
    assert verify_pkcs1v15(n, e, 3, digest, s) is True
    assert verify_pkcs1v15(n, e, 2, digest, s) is False  # SHA-1 has same size


def flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


@pytest.mark.parametrize("bits", [1024, 2048])
def test_negative_cases(bits):
    key = rsa_key(bits)
    n, e = numbers(key)
    sig = key.sign(MESSAGE, padding.PKCS1v15(), c_hashes.SHA256())
    s = int.from_bytes(sig, "big")
    d = hashlib.sha256(MESSAGE).digest()
    assert verify_pkcs1v15(n, e, 8, d, s)
    # flipped bits in digest, signature, modulus, exponent
    for bit in (0, 7, 100, 255):
        assert not verify_pkcs1v15(n, e, 8, flip(d, bit), s)
    for bit in (0, 1, 500, bits - 9):
        assert not verify_pkcs1v15(n, e, 8, d, s ^ (1 << bit))
    for bit in (1, 200, bits - 2):
        assert not verify_pkcs1v15(n ^ (1 << bit), e, 8, d, s)
    assert not verify_pkcs1v15(n, e + 2, 8, d, s)
    assert not verify_pkcs1v15(n, 3, 8, d, s)
    # message changed
    assert not verify_pkcs1v15(n, e, 8, hashlib.sha256(MESSAGE + b".").digest(), s)
    # other hash with the same digest size (SHA3-256): prefix differs
    assert not verify_pkcs1v15(n, e, 12, d, s)
    # wrong digest lengths
    assert not verify_pkcs1v15(n, e, 8, d[:-1], s)
    assert not verify_pkcs1v15(n, e, 8, d + b"\x00", s)
    assert not verify_pkcs1v15(n, e, 8, b"", s)
    assert not verify_pkcs1v15(n, e, 10, d, s)
    # out-of-range signature values
    assert not verify_pkcs1v15(n, e, 8, d, s + n)
    assert not verify_pkcs1v15(n, e, 8, d, n)
    assert not verify_pkcs1v15(n, e, 8, d, -s)
    assert not verify_pkcs1v15(n, e, 8, d, 0)
    assert not verify_pkcs1v15(n, e, 8, d, 1)
    assert not verify_pkcs1v15(n, e, 8, d, n - 1)
    # broken keys
    assert not verify_pkcs1v15(0, e, 8, d, s)
    assert not verify_pkcs1v15(-n, e, 8, d, s)
    assert not verify_pkcs1v15(n, 0, 8, d, s)
    assert not verify_pkcs1v15(n, 1, 8, d, s)
    assert not verify_pkcs1v15(n, -e, 8, d, s)
    assert not verify_pkcs1v15(n, 65536, 8, d, s)
    assert not verify_pkcs1v15(n, n + 2, 8, d, s)
    assert not verify_pkcs1v15(n + 1, e, 8, d, s)
    # wrong types never raise
    assert not verify_pkcs1v15(str(n), e, 8, d, s)
    assert not verify_pkcs1v15(n, e, 8, d, sig)
    assert not verify_pkcs1v15(n, e, 8, d.hex(), s)
    assert not verify_pkcs1v15(n, e, 8, None, s)
    assert not verify_pkcs1v15(n, e, 8, 32, s)


def test_modulus_too_small_for_hash():
    # 512-bit modulus cannot hold a SHA2-512 DigestInfo plus 11 bytes
    n = (1 << 511) + 1
    assert not verify_pkcs1v15(n, 65537, 10, b"\x00" * 64, 12345)


@pytest.mark.parametrize(
    "mangle",
    [
        "block_type_2", "short_padding", "garbage_after_digest", "no_null_param",
        "zero_padding", "missing_separator", "digest_moved",
    ],
)
def test_malformed_encodings_rejected(mangle):
    key = rsa_key(2048)
    n, e = numbers(key)
    k = (key.key_size + 7) // 8
    d = hashlib.sha256(MESSAGE).digest()
    prefix = DIGEST_INFO_PREFIX[8]
    t = prefix + d
    if mangle == "block_type_2":
        em = b"\x00\x02" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    elif mangle == "short_padding":
        # 00 01 FF..FF 00 T garbage: accepted by parsers that stop at T
        em = b"\x00\x01" + b"\xff" * 8 + b"\x00" + t
        em += b"\x42" * (k - len(em))
    elif mangle == "garbage_after_digest":
        em = b"\x00\x01" + b"\xff" * (k - len(t) - 4) + b"\x00" + t + b"\x00"
    elif mangle == "no_null_param":
        t2 = bytes.fromhex("302f300b0609608648016503040201") + b"\x04\x20" + d
        em = b"\x00\x01" + b"\xff" * (k - len(t2) - 3) + b"\x00" + t2
    elif mangle == "zero_padding":
        em = b"\x00\x01" + b"\x00" * (k - len(t) - 3) + b"\x00" + t
    elif mangle == "missing_separator":
        em = b"\x00\x01" + b"\xff" * (k - len(t) - 2) + t
    elif mangle == "digest_moved":
        em = b"\x00\x01" + b"\xff" * (k - len(t) - 4) + b"\x00" + t + b"\xff"
    assert len(em) == k
    s = raw_sign(key, em)
    assert verify_pkcs1v15(n, e, 8, d, s) is False
    # control: the correct encoding does verify
    assert verify_pkcs1v15(n, e, 8, d, raw_sign(key, pkcs1_em(key, prefix, d))) is True


@pytest.mark.parametrize("algo", [0, 4, 7, 13, 15, 110, -1, None, "8"])
def test_unknown_hash_raises(algo):
    with pytest.raises(UnsupportedAlgorithm):
        verify_pkcs1v15(3233, 17, algo, b"", 5)

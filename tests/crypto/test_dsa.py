import hashlib

import pytest
from cryptography.hazmat.primitives import hashes as c_hashes
from cryptography.hazmat.primitives.asymmetric import dsa as c_dsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from cks.crypto.dsa import verify

MESSAGE = b"DSA test message"

HASHES = [
    (c_hashes.SHA1, hashlib.sha1),
    (c_hashes.SHA224, hashlib.sha224),
    (c_hashes.SHA256, hashlib.sha256),
    (c_hashes.SHA384, hashlib.sha384),
    (c_hashes.SHA512, hashlib.sha512),
]

_PARAMS = {}


def dsa_key(bits):
    # Parameter generation is the slow part; do it once per size.
    if bits not in _PARAMS:
        _PARAMS[bits] = c_dsa.generate_parameters(bits)
    return _PARAMS[bits].generate_private_key()


def pub(key):
    nums = key.public_key().public_numbers()
    pn = nums.parameter_numbers
    return pn.p, pn.q, pn.g, nums.y


@pytest.mark.parametrize("bits", [1024, 2048, 3072])
@pytest.mark.parametrize("c_hash,h", HASHES, ids=lambda x: getattr(x, "name", ""))
def test_valid_signatures(bits, c_hash, h):
    key = dsa_key(bits)
    p, q, g, y = pub(key)
    r, s = decode_dss_signature(key.sign(MESSAGE, c_hash()))
    digest = h(MESSAGE).digest()
    assert verify(p, q, g, y, digest, r, s) is True


def flip(data, bit):
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


@pytest.mark.parametrize("bits", [1024, 2048])
def test_negative_cases(bits):
    key = dsa_key(bits)
    p, q, g, y = pub(key)
    r, s = decode_dss_signature(key.sign(MESSAGE, c_hashes.SHA256()))
    d = hashlib.sha256(MESSAGE).digest()
    assert verify(p, q, g, y, d, r, s)
    if q.bit_length() < 256:
        # bits beyond the truncation point are ignored, as FIPS 186-4 says
        assert verify(p, q, g, y, flip(d, 8 * 31), r, s)
    for bit in (0, 7, 100, 159):
        assert not verify(p, q, g, y, flip(d, bit), r, s)
    assert not verify(p, q, g, y, hashlib.sha256(MESSAGE + b"!").digest(), r, s)
    assert not verify(p, q, g, y, d, r ^ 1, s)
    assert not verify(p, q, g, y, d, r, s ^ 1)
    assert not verify(p, q, g, y, d, s, r)
    assert not verify(p, q, g, y ^ 2, d, r, s)
    assert not verify(p, q, g ^ 2, y, d, r, s)
    assert not verify(p ^ 4, q, g, y, d, r, s)
    assert not verify(p, q ^ 2, g, y, d, r, s)
    # out of range r, s
    for bad in (0, -r, q, q + r, r + q * 5):
        assert not verify(p, q, g, y, d, bad, s)
    for bad in (0, -s, q, q + s):
        assert not verify(p, q, g, y, d, r, bad)
    # degenerate parameters
    assert not verify(p, q, 1, y, d, r, s)
    assert not verify(p, q, g, 1, d, r, s)
    assert not verify(p, q, g, 0, d, r, s)
    assert not verify(p, q, p, y, d, r, s)
    assert not verify(p, q, g, p + y, d, r, s)
    assert not verify(p, p, g, y, d, r, s)
    assert not verify(0, q, g, y, d, r, s)
    assert not verify(p, 0, g, y, d, r, s)
    assert not verify(p, 1, g, y, d, r, s)
    # wrong digest lengths / types
    assert not verify(p, q, g, y, b"", r, s)
    assert not verify(p, q, g, y, d[:16], r, s)
    assert not verify(p, q, g, y, d.hex(), r, s)
    assert not verify(p, q, g, y, None, r, s)
    assert not verify(p, q, g, y, d, float(r), s)


def test_non_prime_q_does_not_raise():
    # q = 15 divides p - 1 = 30; s = 5 is not invertible modulo 15
    assert verify(31, 15, 2, 4, b"\x01", 3, 5) is False


def test_truncation_uses_leftmost_bits():
    key = dsa_key(1024)  # 160-bit q
    p, q, g, y = pub(key)
    r, s = decode_dss_signature(key.sign(MESSAGE, c_hashes.SHA512()))
    d = hashlib.sha512(MESSAGE).digest()
    assert verify(p, q, g, y, d, r, s)
    # only the first 20 bytes matter with a 160-bit q
    assert verify(p, q, g, y, d[:20], r, s)
    assert verify(p, q, g, y, d[:20] + b"\x00" * 44, r, s)
    assert not verify(p, q, g, y, d[1:21], r, s)

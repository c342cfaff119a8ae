import hashlib
import random

import pytest
from cryptography.hazmat.primitives import hashes as c_hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from cks.crypto import UnsupportedAlgorithm
from cks.crypto.ecc import CURVES, ecdsa_verify, get_curve

# OID body -> (expected name, cryptography curve)
EXPECTED = {
    bytes.fromhex("2a8648ce3d030107"): ("NIST P-256", ec.SECP256R1),
    bytes.fromhex("2b81040022"): ("NIST P-384", ec.SECP384R1),
    bytes.fromhex("2b81040023"): ("NIST P-521", ec.SECP521R1),
    bytes.fromhex("2b2403030208010107"): ("brainpoolP256r1", ec.BrainpoolP256R1),
    bytes.fromhex("2b240303020801010b"): ("brainpoolP384r1", ec.BrainpoolP384R1),
    bytes.fromhex("2b240303020801010d"): ("brainpoolP512r1", ec.BrainpoolP512R1),
    bytes.fromhex("2b8104000a"): ("secp256k1", ec.SECP256K1),
}
OIDS = sorted(EXPECTED)
IDS = [EXPECTED[o][0] for o in OIDS]
MESSAGE = b"ECDSA test message"
rng = random.Random(1234)


def is_probable_prime(n, rounds=25):
    if n < 4:
        return n in (2, 3)
    if n % 2 == 0:
        return False
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def point_bytes(public_key, compressed=False):
    fmt = (serialization.PublicFormat.CompressedPoint if compressed
           else serialization.PublicFormat.UncompressedPoint)
    return public_key.public_bytes(serialization.Encoding.X962, fmt)


def test_registry_is_complete():
    assert set(CURVES) == set(EXPECTED)
    for oid, (name, _) in EXPECTED.items():
        assert get_curve(oid).name == name
        assert get_curve(bytearray(oid)).oid == oid


@pytest.mark.parametrize("oid", OIDS, ids=IDS)
def test_domain_parameters_against_cryptography(oid):
    curve = get_curve(oid)
    c_curve = EXPECTED[oid][1]()
    p, n = curve.p, curve.n
    assert is_probable_prime(p) and is_probable_prime(n)
    # cofactor 1: n lies in the Hasse interval around p + 1
    assert (n - (p + 1)) ** 2 <= 4 * p
    assert p % 4 == 3  # decode_point's square root relies on it
    assert (curve.p.bit_length() + 7) // 8 == curve.field_bytes
    assert c_curve.key_size == n.bit_length() or c_curve.key_size == p.bit_length()
    # the generator is cryptography's 1*G
    g = ec.derive_private_key(1, c_curve).public_key().public_numbers()
    assert (g.x, g.y) == (curve.gx, curve.gy)
    assert curve.on_curve(curve.gx, curve.gy)
    # (n - 1) * G == -G, so n * G is the point at infinity
    assert curve.mul_add(n - 1, 0, 0, 0) == (curve.gx, p - curve.gy)
    assert curve.mul_add(1, n - 1, curve.gx, curve.gy) is None
    for _ in range(3):
        d = rng.randrange(1, n)
        q = ec.derive_private_key(d, c_curve).public_key().public_numbers()
        # random cryptography points satisfy our a and b...
        assert curve.on_curve(q.x, q.y)
        # ...and both multiplication paths agree with cryptography
        assert curve.mul_add(d, 0, 0, 0) == (q.x, q.y)
        k = rng.randrange(1, n)
        kq = ec.derive_private_key(k * d % n, c_curve).public_key().public_numbers()
        assert curve.mul_add(0, k, q.x, q.y) == (kq.x, kq.y)
        j = rng.randrange(1, n)
        jkq = ec.derive_private_key((j + k * d) % n, c_curve).public_key().public_numbers()
        assert curve.mul_add(j, k, q.x, q.y) == (jkq.x, jkq.y)


_KEYS = {}


def key_for(oid):
    if oid not in _KEYS:
        _KEYS[oid] = ec.generate_private_key(EXPECTED[oid][1]())
    return _KEYS[oid]


HASHES = [(c_hashes.SHA1, hashlib.sha1), (c_hashes.SHA256, hashlib.sha256),
          (c_hashes.SHA384, hashlib.sha384), (c_hashes.SHA512, hashlib.sha512)]


@pytest.mark.parametrize("oid", OIDS, ids=IDS)
@pytest.mark.parametrize("c_hash,h", HASHES, ids=["sha1", "sha256", "sha384", "sha512"])
def test_valid_signatures(oid, c_hash, h):
    key = key_for(oid)
    digest = h(MESSAGE).digest()
    r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(Prehashed(c_hash()))))
    pt = point_bytes(key.public_key())
    assert ecdsa_verify(oid, pt, digest, r, s) is True
    assert ecdsa_verify(oid, point_bytes(key.public_key(), compressed=True), digest, r, s) is True
    # ECDSA is malleable: (r, n - s) is valid as well
    assert ecdsa_verify(oid, pt, digest, r, get_curve(oid).n - s) is True


def flip(data, bit):
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


@pytest.mark.parametrize("oid", OIDS, ids=IDS)
def test_negative_cases(oid):
    curve = get_curve(oid)
    n = curve.n
    key = key_for(oid)
    digest = hashlib.sha256(MESSAGE).digest()
    r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(Prehashed(c_hashes.SHA256()))))
    pt = point_bytes(key.public_key())
    cpt = point_bytes(key.public_key(), compressed=True)
    assert ecdsa_verify(oid, pt, digest, r, s)
    for bit in (0, 7, 128, 255):
        assert not ecdsa_verify(oid, pt, flip(digest, bit), r, s)
    assert not ecdsa_verify(oid, pt, hashlib.sha256(MESSAGE + b"x").digest(), r, s)
    assert not ecdsa_verify(oid, pt, digest[:-1], r, s)
    assert not ecdsa_verify(oid, pt, b"", r, s)
    for bad in (0, -r, n, r + n, r ^ 1, r ^ (1 << 100)):
        assert not ecdsa_verify(oid, pt, digest, bad, s)
    for bad in (0, -s, n, s + n, s ^ 1, s ^ (1 << 100)):
        assert not ecdsa_verify(oid, pt, digest, r, bad)
    assert not ecdsa_verify(oid, pt, digest, s, r)
    # public key damage: flipped bits leave the curve, or give another key
    for bit in (8, 100, len(pt) * 8 - 1):
        assert not ecdsa_verify(oid, flip(pt, bit), digest, r, s)
    other = point_bytes(ec.generate_private_key(EXPECTED[oid][1]()).public_key())
    assert not ecdsa_verify(oid, other, digest, r, s)
    # negated public key (compressed with the other parity)
    assert not ecdsa_verify(oid, bytes([cpt[0] ^ 1]) + cpt[1:], digest, r, s)
    # wrong encodings
    assert not ecdsa_verify(oid, pt[:-1], digest, r, s)
    assert not ecdsa_verify(oid, pt + b"\x00", digest, r, s)
    assert not ecdsa_verify(oid, b"\x00", digest, r, s)
    assert not ecdsa_verify(oid, b"", digest, r, s)
    assert not ecdsa_verify(oid, b"\x06" + pt[1:], digest, r, s)  # hybrid form
    assert not ecdsa_verify(oid, b"\x05" + pt[1:], digest, r, s)
    assert not ecdsa_verify(oid, b"\x04" + b"\x00" * (len(pt) - 1), digest, r, s)
    assert not ecdsa_verify(oid, b"\x04" + b"\xff" * (len(pt) - 1), digest, r, s)
    assert not ecdsa_verify(oid, b"\x02" + b"\xff" * (len(cpt) - 1), digest, r, s)
    assert not ecdsa_verify(oid, cpt[:-1], digest, r, s)
    # x-coordinate with no point on the curve
    x = 1
    while True:
        enc = b"\x02" + x.to_bytes(curve.field_bytes, "big")
        if curve.decode_point(enc) is None:
            break
        x += 1
    assert not ecdsa_verify(oid, enc, digest, r, s)
    # wrong types
    assert not ecdsa_verify(oid, pt.hex(), digest, r, s)
    assert not ecdsa_verify(oid, None, digest, r, s)
    assert not ecdsa_verify(oid, pt, None, r, s)
    assert not ecdsa_verify(oid, pt, digest, float(r), s)
    assert not ecdsa_verify(oid, pt, digest, r, str(s))


def test_signature_on_wrong_curve():
    p256 = bytes.fromhex("2a8648ce3d030107")
    k1 = bytes.fromhex("2b8104000a")
    key = key_for(p256)
    digest = hashlib.sha256(MESSAGE).digest()
    r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(Prehashed(c_hashes.SHA256()))))
    assert not ecdsa_verify(k1, point_bytes(key.public_key()), digest, r, s)


def test_digest_truncation_to_order_bits():
    oid = bytes.fromhex("2a8648ce3d030107")
    key = key_for(oid)
    digest = hashlib.sha512(MESSAGE).digest()
    r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(Prehashed(c_hashes.SHA512()))))
    pt = point_bytes(key.public_key())
    assert ecdsa_verify(oid, pt, digest, r, s)
    assert ecdsa_verify(oid, pt, digest[:32], r, s)
    assert ecdsa_verify(oid, pt, digest[:32] + bytes(32), r, s)


@pytest.mark.parametrize(
    "oid",
    [b"", b"\x2a", bytes.fromhex("2b06010401da470f01"), bytes.fromhex("2b060104019755010501"),
     bytes.fromhex("2b2403030208010108"), "2a8648ce3d030107", None, 7],
)
def test_unknown_curve_raises(oid):
    with pytest.raises(UnsupportedAlgorithm):
        ecdsa_verify(oid, b"\x04", b"", 1, 1)
    with pytest.raises(UnsupportedAlgorithm):
        get_curve(oid)

"""libcrypto as the accelerator of verification (cks.crypto.libcrypto): the
same verdicts as the pure-Python code on random valid and damaged input."""

import concurrent.futures
import hashlib
import random

import pytest
from cryptography.hazmat.primitives import hashes as c_hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from cks.crypto import libcrypto
from cks.crypto.ecc import ecdsa_verify
from cks.crypto.eddsa import ed448_verify, ed25519_verify
from cks.crypto.rsa import verify_pkcs1v15
from support import in_ci

rng = random.Random(1705)


def both(check, *args):
    """(libcrypto's verdict, pure Python's verdict)."""
    libcrypto.use(True)
    fast = check(*args)
    libcrypto.use(False)
    try:
        return fast, check(*args)
    finally:
        libcrypto.use(True)


def damaged(data: bytes) -> bytes:
    position = rng.randrange(len(data))
    return data[:position] + bytes([data[position] ^ (1 << rng.randrange(8))]) \
        + data[position + 1:]


@pytest.fixture(autouse=True)
def needs_libcrypto(arithmetic):
    if arithmetic != "libcrypto":
        pytest.skip("compares the two paths itself")


def test_libcrypto_is_used_in_ci():
    # the machines CKS runs on have it (CPython's ssl module links it)
    if in_ci():
        assert libcrypto.available()


def test_mod_exp_agrees_with_pow():
    for bits in (17, 160, 1024, 2048, 4096, 8192):
        modulus = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        for base in (0, 1, modulus - 1, modulus, modulus + 5, rng.getrandbits(bits + 8)):
            for exponent in (0, 1, 2, 65537, rng.getrandbits(256)):
                assert libcrypto.mod_exp(base, exponent, modulus) == pow(base, exponent,
                                                                         modulus)
    # an even modulus (a damaged key's) has no Montgomery form: answered all the same
    assert libcrypto.mod_exp(7, 65537, 2 ** 2048 + 10) == pow(7, 65537, 2 ** 2048 + 10)


def test_mod_exp2_agrees_with_pow(monkeypatch):
    """Both powers in one chain of squarings (DSA's check); without
    BN_mod_exp2_mont in this libcrypto, the two apart."""
    cases = []
    for bits in (17, 1024, 2048, 3072, 4096):
        modulus = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        for base1, base2 in ((0, 1), (modulus - 1, modulus), (modulus + 5, rng.getrandbits(bits)),
                             (rng.getrandbits(bits + 8), rng.getrandbits(bits - 1))):
            for exponent1, exponent2 in ((0, 0), (1, 2), (rng.getrandbits(256), 0),
                                         (rng.getrandbits(256), rng.getrandbits(160))):
                cases.append((base1, exponent1, base2, exponent2, modulus))
    cases.append((7, 65537, 11, 3, 2 ** 2048 + 10))  # an even modulus: no Montgomery form

    def expected(base1, exponent1, base2, exponent2, modulus):
        return pow(base1, exponent1, modulus) * pow(base2, exponent2, modulus) % modulus
    assert libcrypto._native.lib.BN_mod_exp2_mont is not None or not in_ci()
    assert all(libcrypto.mod_exp2(*case) == expected(*case) for case in cases)
    monkeypatch.setattr(libcrypto._native.lib, "BN_mod_exp2_mont", None)
    assert all(libcrypto.mod_exp2(*case) == expected(*case) for case in cases)


def test_mod_exp_with_more_moduli_than_a_thread_keeps_and_in_threads():
    moduli = [rng.getrandbits(2048) | (1 << 2047) | 1
              for _ in range(libcrypto.MONTGOMERY_KEPT + 20)]
    cases = [(rng.getrandbits(2047), rng.choice((3, 65537)), m) for m in moduli * 2]

    def check(order):
        return all(libcrypto.mod_exp(*cases[i]) == pow(*cases[i]) for i in order)

    assert check(range(len(cases)))  # every kept context evicted and made again
    orders = [random.Random(seed).sample(range(len(cases)), len(cases)) for seed in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert all(pool.map(check, orders))


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
def test_rsa_verdicts_agree(bits):
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    n = key.public_key().public_numbers().n
    for _ in range(20):
        message = rng.randbytes(40)
        signature = key.sign(message, padding.PKCS1v15(), c_hashes.SHA256())
        digest = hashlib.sha256(message).digest()
        for sig, dig in ((signature, digest), (damaged(signature), digest),
                         (signature, damaged(digest))):
            fast, pure = both(verify_pkcs1v15, n, 65537, 8, dig, int.from_bytes(sig, "big"))
            assert fast == pure
        assert both(verify_pkcs1v15, n, 65537, 8, digest,
                    int.from_bytes(signature, "big")) == (True, True)


@pytest.mark.parametrize("scheme", ["ed25519", "ed448"])
def test_eddsa_verdicts_agree(scheme):
    private_class, verify = {"ed25519": (ed25519.Ed25519PrivateKey, ed25519_verify),
                             "ed448": (ed448.Ed448PrivateKey, ed448_verify)}[scheme]
    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    valid = 0
    for _ in range(40):
        key = private_class.generate()
        public = key.public_key().public_bytes(*raw)
        message = rng.randbytes(rng.randrange(1, 80))
        signature = key.sign(message)
        for args in ((public, message, signature), (damaged(public), message, signature),
                     (public, damaged(message), signature), (public, message, damaged(signature))):
            fast, pure = both(verify, *args)
            assert fast == pure, args
            valid += fast
    assert valid >= 40  # every undamaged signature, at least


ECDSA_CURVES = {"2a8648ce3d030107": (ec.SECP256R1, c_hashes.SHA256),
                "2b81040022": (ec.SECP384R1, c_hashes.SHA384),
                "2b81040023": (ec.SECP521R1, c_hashes.SHA512),
                "2b2403030208010107": (ec.BrainpoolP256R1, c_hashes.SHA512),  # truncated
                "2b240303020801010d": (ec.BrainpoolP512R1, c_hashes.SHA256),
                "2b8104000a": (ec.SECP256K1, c_hashes.SHA256)}


@pytest.mark.parametrize("oid", sorted(ECDSA_CURVES))
def test_ecdsa_verdicts_agree(oid):
    curve, hash_class = ECDSA_CURVES[oid]
    point_format = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    for _ in range(8):
        key = ec.generate_private_key(curve())
        point = key.public_key().public_bytes(*point_format)
        digest = hashlib.new(hash_class.name, rng.randbytes(30)).digest()
        r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(Prehashed(hash_class()))))
        cases = [(point, digest, r, s), (point, damaged(digest), r, s),
                 (point, digest, r ^ 1, s), (point, digest, r, s ^ (1 << 5)),
                 (damaged(point), digest, r, s), (point, digest, s, r)]
        for args in cases:
            fast, pure = both(ecdsa_verify, bytes.fromhex(oid), *args)
            assert fast == pure, args
        assert both(ecdsa_verify, bytes.fromhex(oid), point, digest, r, s) == (True, True)

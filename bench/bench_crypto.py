#!/usr/bin/env python3
"""Per-verify time of cks.crypto versus the cryptography package.

    python3 bench/bench_crypto.py [--all] [--number N] [--repeat R]

Both sides get the precomputed digest (cryptography via Prehashed) so
only the public-key operation is timed; EdDSA hashes the message on both
sides.  The figure is the best of R runs of N verifications, which is
the least disturbed by other load on the machine.  The first call of
each of our curves builds a cached base-point table; that one-off cost
is printed separately and not included in the per-verify time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import timeit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature  # noqa: E402

from cks.crypto import dsa as our_dsa  # noqa: E402
from cks.crypto import ecc, eddsa  # noqa: E402
from cks.crypto import rsa as our_rsa  # noqa: E402

MSG = b"benchmark message " * 8
SHA256 = hashlib.sha256(MSG).digest()
RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
X962 = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def case_rsa(bits):
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pub = key.public_key()
    nums = pub.public_numbers()
    sig = key.sign(SHA256, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    s = int.from_bytes(sig, "big")

    def ours():
        return our_rsa.verify_pkcs1v15(nums.n, nums.e, 8, SHA256, s)

    def theirs():
        pub.verify(sig, SHA256, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        return True
    return "RSA-%d" % bits, ours, theirs


def case_dsa(bits):
    key = dsa.generate_private_key(bits)
    pub = key.public_key()
    nums = pub.public_numbers()
    pn = nums.parameter_numbers
    sig = key.sign(SHA256, Prehashed(hashes.SHA256()))
    r, s = decode_dss_signature(sig)

    def ours():
        return our_dsa.verify(pn.p, pn.q, pn.g, nums.y, SHA256, r, s)

    def theirs():
        pub.verify(sig, SHA256, Prehashed(hashes.SHA256()))
        return True
    return "DSA-%d" % bits, ours, theirs


def case_ecdsa(oid_hex, c_curve, c_hash, h):
    oid = bytes.fromhex(oid_hex)
    key = ec.generate_private_key(c_curve())
    pub = key.public_key()
    point = pub.public_bytes(*X962)
    digest = h(MSG).digest()
    sig = key.sign(digest, ec.ECDSA(Prehashed(c_hash())))
    r, s = decode_dss_signature(sig)

    def ours():
        return ecc.ecdsa_verify(oid, point, digest, r, s)

    def theirs():
        pub.verify(sig, digest, ec.ECDSA(Prehashed(c_hash())))
        return True
    return "ECDSA %s" % ecc.get_curve(oid).name, ours, theirs


def case_eddsa(priv_cls, verify, name):
    key = priv_cls.generate()
    pub = key.public_key()
    pk = pub.public_bytes(*RAW)
    sig = key.sign(MSG)

    def ours():
        return verify(pk, MSG, sig)

    def theirs():
        pub.verify(sig, MSG)
        return True
    return name, ours, theirs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="also the other ECDSA curves")
    ap.add_argument("--number", type=int, default=50, help="verifications per run")
    ap.add_argument("--repeat", type=int, default=5, help="runs; the best is reported")
    args = ap.parse_args()

    cases = [
        lambda: case_rsa(2048),
        lambda: case_rsa(4096),
        lambda: case_dsa(2048),
        lambda: case_ecdsa("2a8648ce3d030107", ec.SECP256R1, hashes.SHA256, hashlib.sha256),
    ]
    if args.all:
        cases += [
            lambda: case_ecdsa("2b81040022", ec.SECP384R1, hashes.SHA384, hashlib.sha384),
            lambda: case_ecdsa("2b81040023", ec.SECP521R1, hashes.SHA512, hashlib.sha512),
            lambda: case_ecdsa("2b2403030208010107", ec.BrainpoolP256R1, hashes.SHA256, hashlib.sha256),
            lambda: case_ecdsa("2b240303020801010b", ec.BrainpoolP384R1, hashes.SHA384, hashlib.sha384),
            lambda: case_ecdsa("2b240303020801010d", ec.BrainpoolP512R1, hashes.SHA512, hashlib.sha512),
            lambda: case_ecdsa("2b8104000a", ec.SECP256K1, hashes.SHA256, hashlib.sha256),
        ]
    cases += [
        lambda: case_eddsa(ed25519.Ed25519PrivateKey, eddsa.ed25519_verify, "Ed25519"),
        lambda: case_eddsa(ed448.Ed448PrivateKey, eddsa.ed448_verify, "Ed448"),
    ]

    print("%-22s %12s %14s %8s %12s" % ("algorithm", "cks.crypto", "cryptography", "ratio", "first call"))
    for make in cases:
        name, ours, theirs = make()
        t0 = time.perf_counter()
        ok = ours() and theirs()  # also builds our cached tables
        first = time.perf_counter() - t0
        if not ok:
            raise SystemExit("%s: signature did not verify" % name)
        t_ours = min(timeit.repeat(ours, number=args.number, repeat=args.repeat)) / args.number
        t_theirs = min(timeit.repeat(theirs, number=args.number, repeat=args.repeat)) / args.number
        print("%-22s %9.1f us %11.1f us %7.1fx %9.1f ms" % (
            name, t_ours * 1e6, t_theirs * 1e6, t_ours / t_theirs, first * 1e3))


if __name__ == "__main__":
    main()

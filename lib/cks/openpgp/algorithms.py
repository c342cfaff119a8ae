"""Public-key algorithm numbers, names and elliptic curves (RFC 9580 section 9)."""

from __future__ import annotations

from typing import Dict, NamedTuple

RSA = 1
RSA_ENCRYPT = 2
RSA_SIGN = 3
ELGAMAL = 16
DSA = 17
ECDH = 18
ECDSA = 19
ELGAMAL_SIGN = 20  # formerly ElGamal encrypt-or-sign
EDDSA_LEGACY = 22
X25519 = 25
X448 = 26
ED25519 = 27
ED448 = 28

RSA_ALGORITHMS = frozenset({RSA, RSA_ENCRYPT, RSA_SIGN})
ELGAMAL_ALGORITHMS = frozenset({ELGAMAL, ELGAMAL_SIGN})
OID_ALGORITHMS = frozenset({ECDH, ECDSA, EDDSA_LEGACY})

# Native (fixed-size) key material lengths, RFC 9580 section 5.5.5.
NATIVE_KEY_SIZES: Dict[int, int] = {X25519: 32, X448: 56, ED25519: 32, ED448: 57}
NATIVE_SIGNATURE_SIZES: Dict[int, int] = {ED25519: 64, ED448: 114}
NATIVE_BITS: Dict[int, int] = {X25519: 255, X448: 448, ED25519: 255, ED448: 448}

# Short names as GnuPG prints them ("rsa4096", "ed25519", ...).
NAMES: Dict[int, str] = {
    RSA: "rsa", RSA_ENCRYPT: "rsa", RSA_SIGN: "rsa", ELGAMAL: "elg", ELGAMAL_SIGN: "xxx",
    DSA: "dsa", X25519: "cv25519", X448: "cv448", ED25519: "ed25519", ED448: "ed448",
}


class Curve(NamedTuple):
    name: str  # GnuPG's name
    bits: int


# Curve OIDs as they appear in key packets (the DER body, without tag and length).
CURVES: Dict[bytes, Curve] = {
    bytes.fromhex("2a8648ce3d030107"): Curve("nistp256", 256),
    bytes.fromhex("2b81040022"): Curve("nistp384", 384),
    bytes.fromhex("2b81040023"): Curve("nistp521", 521),
    bytes.fromhex("2b2403030208010107"): Curve("brainpoolP256r1", 256),
    bytes.fromhex("2b240303020801010b"): Curve("brainpoolP384r1", 384),
    bytes.fromhex("2b240303020801010d"): Curve("brainpoolP512r1", 512),
    bytes.fromhex("2b8104000a"): Curve("secp256k1", 256),
    bytes.fromhex("2b06010401da470f01"): Curve("ed25519", 255),
    bytes.fromhex("2b060104019755010501"): Curve("cv25519", 255),
    bytes.fromhex("2b6571"): Curve("ed448", 448),
    bytes.fromhex("2b656f"): Curve("cv448", 448),
}


def algorithm_name(algorithm: int, bits: int, curve: str = "") -> str:
    """GnuPG-style short algorithm name: rsa4096, dsa2048, nistp256, ed25519, ..."""
    if curve:
        return curve
    if algorithm in NATIVE_BITS:
        return NAMES[algorithm]
    name = NAMES.get(algorithm)
    if name is None:
        return "unknown%d" % algorithm
    return "%s%d" % (name, bits)

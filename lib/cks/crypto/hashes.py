"""OpenPGP hash algorithms by their numeric id (RFC 9580 section 9.5)."""

from __future__ import annotations

import hashlib
from typing import Any, Dict

from . import UnsupportedAlgorithm
from .ripemd160 import RIPEMD160

# id -> hashlib name
_HASHLIB_NAMES: Dict[int, str] = {
    1: "md5",
    2: "sha1",
    3: "ripemd160",
    8: "sha256",
    9: "sha384",
    10: "sha512",
    11: "sha224",
    12: "sha3_256",
    14: "sha3_512",
}

HASH_NAMES: Dict[int, str] = {
    1: "MD5",
    2: "SHA-1",
    3: "RIPEMD-160",
    8: "SHA2-256",
    9: "SHA2-384",
    10: "SHA2-512",
    11: "SHA2-224",
    12: "SHA3-256",
    14: "SHA3-512",
}

# Hashes with practical collision attacks (MD5, SHA-1) or too small a
# security margin (RIPEMD-160).  RFC 9580 forbids generating new
# signatures with them; whether to still accept old ones is a policy
# decision left to the caller.
WEAK_HASHES = {1, 2, 3}

# PKCS#1 v1.5 DER-encoded DigestInfo prefixes (RFC 9580 section 5.2.2):
# SEQUENCE { SEQUENCE { OID, NULL }, OCTET STRING <digest> }, everything
# up to and including the OCTET STRING length byte.
DIGEST_INFO_PREFIX: Dict[int, bytes] = {
    1: bytes.fromhex("3020300c06082a864886f70d020505000410"),
    2: bytes.fromhex("3021300906052b0e03021a05000414"),
    3: bytes.fromhex("3021300906052b2403020105000414"),
    8: bytes.fromhex("3031300d060960864801650304020105000420"),
    9: bytes.fromhex("3041300d060960864801650304020205000430"),
    10: bytes.fromhex("3051300d060960864801650304020305000440"),
    11: bytes.fromhex("302d300d06096086480165030402040500041c"),
    12: bytes.fromhex("3031300d060960864801650304020805000420"),
    14: bytes.fromhex("3051300d060960864801650304020a05000440"),
}

DIGEST_SIZE: Dict[int, int] = {
    1: 16, 2: 20, 3: 20, 8: 32, 9: 48, 10: 64, 11: 28, 12: 32, 14: 64,
}


def _openssl_has(name: str) -> bool:
    try:
        hashlib.new(name)
    except ValueError:
        return False
    return True


# OpenSSL 3 moved RIPEMD-160 to the "legacy" provider, so it may be absent.
_RIPEMD160_NATIVE = _openssl_has("ripemd160")


def new_hash(algo_id: int) -> Any:
    """Return a new hashlib-style object for an OpenPGP hash algorithm id.

    The object has ``update``, ``digest``, ``hexdigest``, ``copy``,
    ``name`` and ``digest_size``.  Raises :class:`UnsupportedAlgorithm`
    for ids not listed above (including ids that are unassigned).
    """
    name = _HASHLIB_NAMES.get(algo_id) if isinstance(algo_id, int) else None
    if name is None:
        raise UnsupportedAlgorithm("unsupported OpenPGP hash algorithm %r" % (algo_id,))
    if algo_id == 3 and not _RIPEMD160_NATIVE:
        return RIPEMD160()
    try:
        return hashlib.new(name)
    except ValueError:
        # e.g. MD5 disabled by a FIPS-mode OpenSSL
        raise UnsupportedAlgorithm("hash %s is not available here" % HASH_NAMES[algo_id]) from None

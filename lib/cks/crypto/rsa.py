"""RSA signature verification, EMSA-PKCS1-v1_5 (RFC 8017 section 8.2.2)."""

from __future__ import annotations

import hmac

from . import UnsupportedAlgorithm, libcrypto
from .hashes import DIGEST_INFO_PREFIX, DIGEST_SIZE

# Largest modulus we are willing to exponentiate with.  GnuPG caps RSA at
# 16384 bits; anything larger is not a real key and only costs CPU.
MAX_MODULUS_BITS = 16384

_BYTES = (bytes, bytearray, memoryview)


def verify_pkcs1v15(n: int, e: int, hash_algo: int, digest: bytes, signature: int) -> bool:
    """Check an RSASSA-PKCS1-v1_5 signature over an already computed digest.

    ``hash_algo`` is the OpenPGP hash id, used to pick the DigestInfo
    prefix; ``signature`` is the signature MPI as an integer.  The whole
    encoded message is rebuilt and compared (no parsing of the decrypted
    block), which avoids the classic Bleichenbacher-style forgeries on
    lax parsers.  Returns False for any malformed value; raises
    UnsupportedAlgorithm only for an unknown hash id.
    """
    prefix = DIGEST_INFO_PREFIX.get(hash_algo) if isinstance(hash_algo, int) else None
    if prefix is None:
        raise UnsupportedAlgorithm("unsupported OpenPGP hash algorithm %r" % (hash_algo,))
    if not (isinstance(n, int) and isinstance(e, int) and isinstance(signature, int)):
        return False
    if not isinstance(digest, _BYTES):
        return False
    digest = bytes(digest)
    if len(digest) != DIGEST_SIZE[hash_algo]:
        return False
    if n <= 0 or n.bit_length() > MAX_MODULUS_BITS or not n & 1:
        return False
    # RFC 8017 section 3.1: 3 <= e <= n - 1, and e must be odd to be
    # invertible modulo the (even) lambda(n).
    if e < 3 or e >= n or not e & 1:
        return False
    if signature < 0 or signature >= n:
        return False
    k = (n.bit_length() + 7) // 8
    t = prefix + digest
    if k < len(t) + 11:
        return False
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    em = libcrypto.mod_exp(signature, e, n).to_bytes(k, "big")
    return hmac.compare_digest(em, expected)

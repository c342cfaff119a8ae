"""DSA signature verification (FIPS 186-4 section 4.7)."""

from __future__ import annotations

# Sanity limits: FIPS 186-4 stops at L = 3072 / N = 256; OpenPGP
# implementations accept somewhat more.  Bigger values are not keys
# anybody uses and only cost CPU.
MAX_P_BITS = 16384
MAX_Q_BITS = 512

_BYTES = (bytes, bytearray, memoryview)


def _truncate(digest: bytes, bits: int) -> int:
    """Leftmost ``bits`` bits of ``digest`` as an integer (FIPS 186-4 4.6)."""
    z = int.from_bytes(digest, "big")
    excess = 8 * len(digest) - bits
    if excess > 0:
        z >>= excess
    return z


def verify(p: int, q: int, g: int, y: int, digest: bytes, r: int, s: int) -> bool:
    """Check a DSA signature (r, s) on ``digest`` for public key (p, q, g, y).

    The digest is truncated to the bit length of q (leftmost bits), as
    OpenPGP requires when the hash is longer than q.  Only cheap
    structural checks are made on the domain parameters (q | p - 1,
    ranges); full parameter validation is the key parser's business.
    """
    if not all(isinstance(v, int) for v in (p, q, g, y, r, s)):
        return False
    if not isinstance(digest, _BYTES):
        return False
    if p < 5 or p.bit_length() > MAX_P_BITS or not p & 1:
        return False
    if q < 2 or q.bit_length() > MAX_Q_BITS or q >= p or (p - 1) % q:
        return False
    if not (1 < g < p and 1 < y < p):
        return False
    if not (0 < r < q and 0 < s < q):
        return False
    try:
        w = pow(s, -1, q)
    except ValueError:  # s not invertible: q is not prime
        return False
    z = _truncate(bytes(digest), q.bit_length())
    u1 = z * w % q
    u2 = r * w % q
    v = pow(g, u1, p) * pow(y, u2, p) % p % q
    return v == r

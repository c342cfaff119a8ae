"""DSA signature verification (FIPS 186-4 section 4.7)."""

from __future__ import annotations

from . import libcrypto
from ._scalar import sliding_window, truncate_digest

# Sanity limits: FIPS 186-4 stops at L = 3072 / N = 256, and so does GnuPG
# (q of 160, 224 or 256 bits); p gets one size more.  Bigger values are not
# keys anybody uses and only cost CPU: a check costs about q's bits times
# p's squared (2026-12-04, libcrypto: 85 ms at 16384/512, the old limits,
# 4.4 ms at 4096/256, 1.1 ms at 2048/256; since 2026-12-05 both powers in
# one chain, libcrypto.mod_exp2: 1.84 against 3.07 ms at 4096/256, 0.55
# against 0.84 at 2048/256, another machine), and a key's owner can make
# every self-signature one to check.
MAX_P_BITS = 4096
MAX_Q_BITS = 256

_BYTES = (bytes, bytearray, memoryview)


def _double_pow(b1: int, e1: int, b2: int, e2: int, p: int) -> int:
    """b1**e1 * b2**e2 mod p with one shared squaring chain.

    Interleaved width-4 sliding windows: about 40% fewer modular
    multiplications than two separate pow() calls, which more than pays
    for running the loop in Python.
    """
    width = 4
    tables = []
    for b in (b1, b2):
        sq = b * b % p
        t = [b]
        for _ in range((1 << (width - 1)) - 1):
            t.append(t[-1] * sq % p)
        tables.append(t)
    t1, t2 = tables
    d1 = sliding_window(e1, width)
    d2 = sliding_window(e2, width)
    length = max(len(d1), len(d2))
    d1 += [0] * (length - len(d1))
    d2 += [0] * (length - len(d2))
    acc = 1
    for i in range(length - 1, -1, -1):
        acc = acc * acc % p
        a = d1[i]
        if a:
            acc = acc * t1[a >> 1] % p
        b = d2[i]
        if b:
            acc = acc * t2[b >> 1] % p
    return acc


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
    z = truncate_digest(bytes(digest), q.bit_length())
    u1 = z * w % q
    u2 = r * w % q
    if libcrypto.available():
        v = libcrypto.mod_exp2(g, u1, y, u2, p) % q
    else:
        v = _double_pow(g, u1, y, u2, p) % q
    return v == r

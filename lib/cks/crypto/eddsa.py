"""Ed25519 and Ed448 signature verification (RFC 8032, PureEdDSA).

This is plain RFC 8032: the ``message`` is whatever the caller signs.
(OpenPGP's EdDSALegacy and v4 Ed25519 signatures sign the *hash digest*
of the OpenPGP signature data; extracting that is the caller's job.)

Verification checks the cofactorless equation [S]B = R + [k]A by
computing [S]B - [k]A and comparing its canonical encoding with the R
bytes of the signature, like OpenSSL, libsodium and libgcrypt do (RFC
8032 allows this instead of the cofactored [8][S]B = [8]R + [8][k]A).
Comparing encodings also rejects a non-canonical R.  S >= L and public
keys that do not decode (y >= p, no square root, x = 0 with the sign bit
set) are rejected.

Ed25519 uses extended twisted-Edwards coordinates (X:Y:Z:T), Ed448
projective Edwards coordinates (X:Y:Z).  [S]B comes from a signed-window
table of base-point multiples built lazily once and cached; [k]A uses a
width-5 wNAF.  Public data only; no attempt at constant time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import List, Optional, Sequence, Tuple

from . import libcrypto
from ._scalar import signed_windows, wnaf

_BYTES = (bytes, bytearray, memoryview)

_DECODED_KEPT = 1024
"""Public keys whose decoded point is kept: a key's own signatures and its
certifications on other keys are checked with the same key again and again."""

_A_WIDTH = 5  # wNAF width for the public key A
_B_WIDTH = 7  # signed-window width for the base point table


def _batch_inverse(values: Sequence[int], p: int) -> List[int]:
    """Inverses of many non-zero values mod p with one modular inversion."""
    prefix = []
    acc = 1
    for v in values:
        prefix.append(acc)
        acc = acc * v % p
    inv = pow(acc, -1, p)
    out = [0] * len(values)
    for i in range(len(values) - 1, -1, -1):
        out[i] = inv * prefix[i] % p
        inv = inv * values[i] % p
    return out


# ---------------------------------------------------------------------------
# Ed25519: -x^2 + y^2 = 1 + d x^2 y^2 over GF(2^255 - 19)

_P25519 = 2 ** 255 - 19
_D25519 = -121665 * pow(121666, -1, _P25519) % _P25519
_D2_25519 = 2 * _D25519 % _P25519
_L25519 = 2 ** 252 + 27742317777372353535851937790883648493
_SQRT_M1 = pow(2, (_P25519 - 1) // 4, _P25519)

# A precomputed point in "Niels" form (y + x, y - x, 2*d*x*y), Z = 1.
Niels = Tuple[int, int, int]


@functools.lru_cache(maxsize=_DECODED_KEPT)
def _ed25519_decode(data: bytes) -> Optional[Tuple[int, int]]:
    """RFC 8032 5.1.3 point decoding; None if it fails.  (The square root's
    exponentiation by libcrypto where it is used: a sixth of pow's time.)"""
    p = _P25519
    v = int.from_bytes(data, "little")
    sign = v >> 255
    y = v & ((1 << 255) - 1)
    if y >= p:
        return None
    yy = y * y % p
    u = (yy - 1) % p
    w = u * pow((_D25519 * yy + 1) % p, -1, p) % p  # x^2; d*y^2 + 1 is never 0
    x = libcrypto.mod_exp(w, (p + 3) // 8, p)
    if (x * x - w) % p:
        x = x * _SQRT_M1 % p
        if (x * x - w) % p:
            return None
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = p - x
    return x, y


def _ed25519_niels_batch(points: List[Tuple[int, int, int, int]]) -> List[Niels]:
    p = _P25519
    out = []
    for (x, y, z, _), zi in zip(points, _batch_inverse([pt[2] for pt in points], p)):
        ax = x * zi % p
        ay = y * zi % p
        out.append(((ay + ax) % p, (ay - ax) % p, _D2_25519 * ax * ay % p))
    return out


def _ed25519_add(pt, n: Niels):
    """Extended point + Niels point (RFC 8032 5.1.4 addition, Z2 = 1)."""
    p = _P25519
    x1, y1, z1, t1 = pt
    yp, ym, t2d = n
    a = (y1 - x1) * ym % p
    b = (y1 + x1) * yp % p
    c = t1 * t2d % p
    d = 2 * z1
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return e * f % p, g * h % p, f * g % p, e * h % p


def _ed25519_double(pt):
    p = _P25519
    x1, y1, z1, _ = pt
    a = x1 * x1 % p
    b = y1 * y1 % p
    c = 2 * z1 * z1
    h = a + b
    e = h - (x1 + y1) * (x1 + y1)
    g = a - b
    f = c + g
    return e * f % p, g * h % p, f * g % p, e * h % p


_ED25519_TABLE: Optional[List[List[Niels]]] = None


def _ed25519_base_table() -> List[List[Niels]]:
    global _ED25519_TABLE
    if _ED25519_TABLE is None:
        p = _P25519
        by = 4 * pow(5, -1, p) % p
        bx, _ = _ed25519_decode(by.to_bytes(32, "little"))  # x even
        half = 1 << (_B_WIDTH - 1)
        rows = (_L25519.bit_length() + _B_WIDTH) // _B_WIDTH
        table = []
        base = (bx, by, 1, bx * by % p)
        for _ in range(rows):
            nb = _ed25519_niels_batch([base])[0]
            pts = [base]
            acc = base
            for _ in range(half - 1):
                acc = _ed25519_add(acc, nb)
                pts.append(acc)
            table.append(_ed25519_niels_batch(pts))
            base = _ed25519_double(acc)  # 2 * half * base = 2**W * base
        _ED25519_TABLE = table
    return _ED25519_TABLE


def _ed25519_sb_minus_ka(s: int, k: int, ax: int, ay: int) -> bytes:
    """Encoding of [s]B - [k]A."""
    p = _P25519
    # odd multiples of -A
    nx = p - ax if ax else 0
    neg_a = (nx, ay, 1, nx * ay % p)
    two = _ed25519_double(neg_a)
    two_n = _ed25519_niels_batch([two])[0]
    pts = [neg_a]
    for _ in range((1 << (_A_WIDTH - 2)) - 1):
        pts.append(_ed25519_add(pts[-1], two_n))
    odd = _ed25519_niels_batch(pts)

    x, y, z, t = 0, 1, 1, 0  # neutral element
    started = False
    digits = wnaf(k, _A_WIDTH)
    for i in range(len(digits) - 1, -1, -1):
        d = digits[i]
        if started:
            # doubling, inlined; T only when an addition follows
            a = x * x % p
            b = y * y % p
            c = 2 * z * z
            h = a + b
            e = h - (x + y) * (x + y)
            g = a - b
            f = c + g
            x = e * f % p
            y = g * h % p
            z = f * g % p
            if d or not i:
                t = e * h % p
        if d:
            if d > 0:
                yp, ym, t2d = odd[d >> 1]
            else:
                ym, yp, t2d = odd[(-d) >> 1]
                t2d = p - t2d
            a = (y - x) * ym % p
            b = (y + x) * yp % p
            c = t * t2d % p
            dd = 2 * z
            e = b - a
            f = dd - c
            g = dd + c
            h = b + a
            x = e * f % p
            y = g * h % p
            z = f * g % p
            t = e * h % p
            started = True
    pt = (x, y, z, t)
    table = _ed25519_base_table()
    for row, d in zip(table, signed_windows(s, _B_WIDTH, len(table))):
        if d > 0:
            pt = _ed25519_add(pt, row[d - 1])
        elif d < 0:
            yp, ym, t2d = row[-d - 1]
            pt = _ed25519_add(pt, (ym, yp, p - t2d))
    x, y, z, _ = pt
    zi = pow(z, -1, p)
    x = x * zi % p
    y = y * zi % p
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Verify a PureEdDSA Ed25519 signature (RFC 8032 section 5.1.7).

    ``public_key`` is the 32-byte encoded point A, ``signature`` the
    64-byte R || S.  Returns False for anything malformed.
    """
    return _verify(public_key, message, signature, 32, _ed25519_decode, _L25519,
                   lambda data: hashlib.sha512(data).digest(), _ed25519_sb_minus_ka)


# ---------------------------------------------------------------------------
# Ed448: x^2 + y^2 = 1 + d x^2 y^2 over GF(2^448 - 2^224 - 1), d = -39081

_P448 = 2 ** 448 - 2 ** 224 - 1
_D448 = -39081 % _P448
_L448 = 2 ** 446 - 13818066809895115352007386748515426880336692474882178609894547503885
_B448 = (
    224580040295924300187604334099896036246789641632564134246125461686950415467406032909029192869357953282578032075146446173674602635247710,  # noqa: E501
    298819210078481492676017930443930673437544040154080242095928241372331506189835876003536878655418784733982303233503462500531545062832660,  # noqa: E501
)
_DOM4 = b"SigEd448\x00\x00"  # dom4(phflag=0, context="")


@functools.lru_cache(maxsize=_DECODED_KEPT)
def _ed448_decode(data: bytes) -> Optional[Tuple[int, int]]:
    """RFC 8032 5.2.3 point decoding; None if it fails (square root as for
    Ed25519)."""
    p = _P448
    v = int.from_bytes(data, "little")
    sign = v >> 455
    y = v & ((1 << 455) - 1)
    if y >= p:
        return None
    yy = y * y % p
    u = (yy - 1) % p
    w = u * pow((_D448 * yy - 1) % p, -1, p) % p  # d*y^2 - 1 is never 0
    x = libcrypto.mod_exp(w, (p + 1) // 4, p)
    if (x * x - w) % p:
        return None
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = p - x
    return x, y


def _ed448_affine_batch(points: List[Tuple[int, int, int]]) -> List[Tuple[int, int]]:
    p = _P448
    return [(x * zi % p, y * zi % p)
            for (x, y, _), zi in zip(points, _batch_inverse([pt[2] for pt in points], p))]


def _ed448_add(pt, q):
    """Projective point + affine point (RFC 8032 5.2.4 addition, Z2 = 1)."""
    p = _P448
    x1, y1, z1 = pt
    x2, y2 = q
    b = z1 * z1 % p
    c = x1 * x2 % p
    d = y1 * y2 % p
    e = _D448 * c * d % p
    f = b - e
    g = b + e
    h = (x1 + y1) * (x2 + y2) % p
    return z1 * f * (h - c - d) % p, z1 * g * (d - c) % p, f * g % p


def _ed448_double(pt):
    p = _P448
    x1, y1, z1 = pt
    b = (x1 + y1) * (x1 + y1) % p
    c = x1 * x1 % p
    d = y1 * y1 % p
    e = c + d
    j = e - 2 * (z1 * z1 % p)
    return (b - e) * j % p, e * (c - d) % p, e * j % p


_ED448_TABLE: Optional[List[List[Tuple[int, int]]]] = None


def _ed448_base_table() -> List[List[Tuple[int, int]]]:
    global _ED448_TABLE
    if _ED448_TABLE is None:
        half = 1 << (_B_WIDTH - 1)
        rows = (_L448.bit_length() + _B_WIDTH) // _B_WIDTH
        table = []
        base = _B448
        for _ in range(rows):
            pts = [base + (1,)]
            acc = pts[0]
            for _ in range(half - 1):
                acc = _ed448_add(acc, base)
                pts.append(acc)
            table.append(_ed448_affine_batch(pts))
            base = _ed448_affine_batch([_ed448_double(acc)])[0]
        _ED448_TABLE = table
    return _ED448_TABLE


def _ed448_sb_minus_ka(s: int, k: int, ax: int, ay: int) -> bytes:
    """Encoding of [s]B - [k]A."""
    p = _P448
    neg_a = (p - ax if ax else 0, ay)
    two = _ed448_affine_batch([_ed448_double(neg_a + (1,))])[0]
    pts = [neg_a + (1,)]
    for _ in range((1 << (_A_WIDTH - 2)) - 1):
        pts.append(_ed448_add(pts[-1], two))
    odd = _ed448_affine_batch(pts)

    dd = _D448
    x, y, z = 0, 1, 1
    started = False
    for d in reversed(wnaf(k, _A_WIDTH)):
        if started:
            b = (x + y) * (x + y) % p
            c = x * x % p
            e = y * y % p
            h = c + e
            j = h - 2 * (z * z % p)
            x = (b - h) * j % p
            y = h * (c - e) % p
            z = h * j % p
        if d:
            if d > 0:
                x2, y2 = odd[d >> 1]
            else:
                x2, y2 = odd[(-d) >> 1]
                x2 = p - x2 if x2 else 0
            b = z * z % p
            c = x * x2 % p
            e = y * y2 % p
            m = dd * c * e % p
            f = b - m
            g = b + m
            h = (x + y) * (x2 + y2) % p
            x = z * f * (h - c - e) % p
            y = z * g * (e - c) % p
            z = f * g % p
            started = True
    pt = (x, y, z)
    table = _ed448_base_table()
    for row, d in zip(table, signed_windows(s, _B_WIDTH, len(table))):
        if d > 0:
            pt = _ed448_add(pt, row[d - 1])
        elif d < 0:
            x2, y2 = row[-d - 1]
            pt = _ed448_add(pt, (p - x2 if x2 else 0, y2))
    x, y, z = pt
    zi = pow(z, -1, p)
    x = x * zi % p
    y = y * zi % p
    return (y | ((x & 1) << 455)).to_bytes(57, "little")


def ed448_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Verify a PureEdDSA Ed448 signature with empty context (RFC 8032 5.2.7).

    ``public_key`` is the 57-byte encoded point A, ``signature`` the
    114-byte R || S.  Returns False for anything malformed.
    """
    return _verify(public_key, message, signature, 57, _ed448_decode, _L448,
                   lambda data: hashlib.shake_256(_DOM4 + data).digest(114),
                   _ed448_sb_minus_ka)


def _verify(public_key, message, signature, size: int, decode, order: int, challenge,
            sb_minus_ka) -> bool:
    """RFC 8032's verification, for either curve: decode A, check S < L, and
    compare the encoding of [S]B - [k]A, k = H(R || A || M), with R."""
    if not (isinstance(public_key, _BYTES) and isinstance(message, _BYTES)
            and isinstance(signature, _BYTES)):
        return False
    public_key = bytes(public_key)
    signature = bytes(signature)
    if len(public_key) != size or len(signature) != 2 * size:
        return False
    a = decode(public_key)
    if a is None:
        return False
    r_enc = signature[:size]
    s = int.from_bytes(signature[size:], "little")
    if s >= order:
        return False
    checked = libcrypto.eddsa_verify("ed25519" if size == 32 else "ed448", public_key,
                                     bytes(message), signature)
    if checked is not None:
        return checked
    k = int.from_bytes(challenge(r_enc + public_key + bytes(message)), "little") % order
    return hmac.compare_digest(sb_minus_ka(s, k, a[0], a[1]), r_enc)

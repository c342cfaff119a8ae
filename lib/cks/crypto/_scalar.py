"""Scalar helpers shared by the signature primitives (dsa, ecc, eddsa)."""

from __future__ import annotations

from typing import List


def truncate_digest(digest: bytes, bits: int) -> int:
    """The leftmost ``bits`` bits of a digest as an integer, as DSA (FIPS 186-4
    4.6) and ECDSA (SEC1 4.1.4 step 5) both use it."""
    z = int.from_bytes(digest, "big")
    excess = 8 * len(digest) - bits
    if excess > 0:
        z >>= excess
    return z


def wnaf(k: int, width: int) -> List[int]:
    """Width-``width`` non-adjacent form of k >= 0, least significant first.

    Every non-zero digit is odd, |d| < 2**(width-1), and any two non-zero
    digits are at least ``width`` positions apart, so a variable-base
    multiplication needs only the odd multiples P, 3P, ... of the point.
    """
    full = 1 << width
    half = full >> 1
    mask = full - 1
    digits = []
    append = digits.append
    while k:
        if k & 1:
            d = k & mask
            if d >= half:
                d -= full
            k -= d
            append(d)
        else:
            append(0)
        k >>= 1
    return digits


def signed_windows(k: int, width: int, count: int) -> List[int]:
    """Split 0 <= k < 2**(width*count - 1) into ``count`` signed digits.

    k == sum(d_i * 2**(width*i)) with -2**(width-1) < d_i <= 2**(width-1),
    least significant first; used with a fixed-base table holding
    j * 2**(width*i) * G for 1 <= j <= 2**(width-1).
    """
    full = 1 << width
    half = full >> 1
    mask = full - 1
    digits = []
    for _ in range(count):
        d = k & mask
        k >>= width
        if d > half:
            d -= full
            k += 1
        digits.append(d)
    return digits


def sliding_window(k: int, width: int) -> List[int]:
    """Unsigned sliding-window recoding of k >= 0, least significant first.

    Non-zero digits are odd and < 2**width, so only the odd powers
    b, b^3, ..., b^(2**width - 1) of a base are needed.
    """
    mask = (1 << width) - 1
    digits = []
    append = digits.append
    while k:
        if k & 1:
            d = k & mask
            k -= d
            append(d)
        else:
            append(0)
        k >>= 1
    return digits

"""The CRC-24 of OpenPGP armor (RFC 9580 section 6.1): libgcrypt's where the
host has it, otherwise at C speed in pure Python, as follows.

A byte-at-a-time loop costs about 0.15 us a byte in Python, which made the
armor checksum a sixth of an upload's time.  This version lets the
interpreter's C routines do the work instead of a Python loop per byte.

The CRC is linear over GF(2): with P the generator polynomial and the n
message bytes b_0 .. b_{n-1},

    crc = INIT * x^(8n)  +  sum_i  (b_i * x^24 mod P) * x^(8(n-1-i))   (mod P)

Each byte's term `b_i * x^24 mod P` is a table lookup, done for all bytes at
once with `bytes.translate` (three tables: one per byte of the 24-bit value).
The terms are then folded in pairs, left * x^(8s) + right, where s is the
length of the right block, doubling s at each round: multiplying by a
constant mod P is linear too, so it is again three table lookups per input
byte, i.e. nine `translate` calls, and the XORs are done by big-integer XOR
over whole byte strings.  About log2(n) rounds, each a few dozen C calls,
until few terms are left; a plain loop folds those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

from ..crypto import libgcrypt

INIT = 0xB704CE
_POLY = 0x864CFB  # x^24 is implicit
_MASK = 0xFFFFFF


def _times_x(value: int) -> int:
    value <<= 1
    return (value ^ _POLY) & _MASK if value & 0x1000000 else value


def _mulmod(a: int, b: int) -> int:
    """a * b mod P, both 24-bit polynomials over GF(2)."""
    out = 0
    for bit in range(23, -1, -1):
        out = _times_x(out)
        if b >> bit & 1:
            out ^= a
    return out


def _x_power(exponent: int) -> int:
    """x^exponent mod P."""
    result, base = 1, 2  # 1 and x
    while exponent:
        if exponent & 1:
            result = _mulmod(result, base)
        base = _mulmod(base, base)
        exponent >>= 1
    return result


@dataclass(frozen=True)
class _LinearMap:
    """A GF(2)-linear map on 24-bit values, by input byte (0 = high):
    `images[i][b]` is the image of byte b in position i, and
    `translate[i][j]` its output byte j as a `bytes.translate` table."""

    images: Tuple[List[int], ...]
    translate: Tuple[Tuple[bytes, ...], ...]

    def __call__(self, value: int) -> int:
        images = self.images
        return images[0][value >> 16] ^ images[1][value >> 8 & 0xFF] ^ images[2][value & 0xFF]


def _times_constant(constant: int) -> _LinearMap:
    """v -> v * constant mod P."""
    basis = []
    value = constant
    for _ in range(24):
        basis.append(value)
        value = _times_x(value)
    images = []
    for shift in (16, 8, 0):
        image = [0] * 256
        for byte in range(1, 256):
            low = byte & -byte
            image[byte] = image[byte ^ low] ^ basis[shift + low.bit_length() - 1]
        images.append(image)
    return _LinearMap(tuple(images), tuple(
        tuple(bytes((v >> out) & 0xFF for v in image) for out in (16, 8, 0))
        for image in images))


_BYTE_TERM = _times_constant(_x_power(24)).translate[2]  # b -> b * x^24 mod P, by byte
_FOLD: Dict[int, _LinearMap] = {}  # round -> v * x^(8 * 2^round) mod P
_HORNER_BELOW = 48  # terms left when a plain loop is cheaper than another round


def _fold(round_: int) -> _LinearMap:
    linear = _FOLD.get(round_)
    if linear is None:
        linear = _FOLD[round_] = _times_constant(_x_power(8 << round_))
    return linear


def _xor(size: int, *parts: bytes) -> bytes:
    total = 0
    for part in parts:
        total ^= int.from_bytes(part, "big")
    return total.to_bytes(size, "big")


def crc24(data: bytes) -> int:
    """The CRC-24 of RFC 9580 section 6.1 (crc24(b"123456789") == 0x21CF02):
    libgcrypt's where the host has it (crypto/libgcrypt.py), else folded here."""
    data = bytes(data)
    fast = libgcrypt.crc24(data)
    return folded_crc24(data) if fast is None else fast


def crc24_continued(crc: int, data: bytes) -> int:
    """The CRC-24 of the bytes whose CRC-24 is `crc` followed by `data`
    (crc24(a + b) == crc24_continued(crc24(a), b)), for data met in pieces:
    the register's start value, INIT in crc24(data), counts times x^(8n)."""
    return crc24(data) ^ _shifted(INIT ^ crc, len(data))


def _shifted(value: int, length: int) -> int:
    """value * x^(8 * length) mod P: by the folds of the set bits of length."""
    for bit in range(length.bit_length()):
        if length >> bit & 1:
            value = _fold(bit)(value)
    return value


def folded_crc24(data: bytes) -> int:
    """crc24() in Python, as the module notes describe."""
    high, middle, low = (data.translate(table) for table in _BYTE_TERM)
    round_ = 0
    while len(high) >= _HORNER_BELOW:
        if len(high) & 1:  # a zero term in front: leading zeros add nothing
            high, middle, low = b"\0" + high, b"\0" + middle, b"\0" + low
        size = len(high) // 2
        tables = _fold(round_).translate
        left = (high[0::2], middle[0::2], low[0::2])
        high, middle, low = (
            _xor(size, right, *(left[i].translate(tables[i][out]) for i in range(3)))
            for out, right in enumerate((high[1::2], middle[1::2], low[1::2])))
        round_ += 1
    step = _fold(round_)  # times x^(8s), s the length of each term's block
    terms = 0
    for value in zip(high, middle, low):
        terms = step(terms) ^ (value[0] << 16 | value[1] << 8 | value[2])
    return terms ^ _shifted(INIT, len(data))

"""Pure-Python RIPEMD-160 (Dobbertin, Bosselaers, Preneel, 1996).

Only used when the local OpenSSL does not offer "ripemd160" (OpenSSL 3
keeps it in the legacy provider).  Written from the published algorithm
description; the interface mimics a hashlib object.
"""

from __future__ import annotations

import struct

_M = 0xFFFFFFFF

# Message word selection for the left and right lines, per round.
_RL = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    (7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8),
    (3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12),
    (1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2),
    (4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13),
)
_RR = (
    (5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12),
    (6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2),
    (15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13),
    (8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14),
    (12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11),
)
# Left-rotation amounts.
_SL = (
    (11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8),
    (7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12),
    (11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5),
    (11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12),
    (9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6),
)
_SR = (
    (8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6),
    (9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11),
    (9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5),
    (15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8),
    (8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11),
)
_KL = (0x00000000, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E)
_KR = (0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0x00000000)

# The five boolean functions; the left line uses them in order 0..4,
# the right line in order 4..0.
_F = (
    lambda x, y, z: x ^ y ^ z,
    lambda x, y, z: (x & y) | ((x ^ _M) & z),
    lambda x, y, z: (x | (y ^ _M)) ^ z,
    lambda x, y, z: (x & z) | (y & (z ^ _M)),
    lambda x, y, z: x ^ (y | (z ^ _M)),
)

# Per round: (f, message-word order, rotations, constant), both lines.
_LEFT = tuple(zip(_F, _RL, _SL, _KL))
_RIGHT = tuple(zip(reversed(_F), _RR, _SR, _KR))

_IV = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)


def _line(rounds, h, x):
    a, b, c, d, e = h
    for f, order, shifts, k in rounds:
        for r, s in zip(order, shifts):
            t = (a + f(b, c, d) + x[r] + k) & _M
            t = (((t << s) | (t >> (32 - s))) + e) & _M
            a = e
            e = d
            d = ((c << 10) | (c >> 22)) & _M
            c = b
            b = t
    return a, b, c, d, e


def _compress(h, block):
    x = struct.unpack("<16I", block)
    al, bl, cl, dl, el = _line(_LEFT, h, x)
    ar, br, cr, dr, er = _line(_RIGHT, h, x)
    h0, h1, h2, h3, h4 = h
    return (
        (h1 + cl + dr) & _M,
        (h2 + dl + er) & _M,
        (h3 + el + ar) & _M,
        (h4 + al + br) & _M,
        (h0 + bl + cr) & _M,
    )


class RIPEMD160:
    """hashlib-compatible RIPEMD-160 object."""

    name = "ripemd160"
    digest_size = 20
    block_size = 64

    def __init__(self, data: bytes = b"") -> None:
        self._h = _IV
        self._buf = b""
        self._length = 0
        if data:
            self.update(data)

    def update(self, data: bytes) -> None:
        data = bytes(data)
        self._length += len(data)
        buf = self._buf + data
        h = self._h
        end = len(buf) - (len(buf) % 64)
        for i in range(0, end, 64):
            h = _compress(h, buf[i:i + 64])
        self._h = h
        self._buf = buf[end:]

    def copy(self) -> "RIPEMD160":
        other = RIPEMD160.__new__(RIPEMD160)
        other._h = self._h
        other._buf = self._buf
        other._length = self._length
        return other

    def digest(self) -> bytes:
        # MD4-style padding: 0x80, zeros, 64-bit little-endian bit count.
        pad_len = (55 - self._length) % 64
        tail = self._buf + b"\x80" + b"\x00" * pad_len
        tail += struct.pack("<Q", (self._length * 8) & 0xFFFFFFFFFFFFFFFF)
        h = self._h
        for i in range(0, len(tail), 64):
            h = _compress(h, tail[i:i + 64])
        return struct.pack("<5I", *h)

    def hexdigest(self) -> str:
        return self.digest().hex()


def ripemd160(data: bytes = b"") -> RIPEMD160:
    """Return a new pure-Python RIPEMD-160 object, like hashlib.new("ripemd160", data)."""
    return RIPEMD160(data)

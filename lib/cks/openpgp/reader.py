"""A bounds-checked cursor over packet bodies: every read fails with PacketError."""

from __future__ import annotations

from typing import Iterator, Tuple

from .errors import PacketError


class Reader:
    """Reads fields from `data` left to right; never slices past the end."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.what = what

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if count < 0 or end > len(self.data):
            raise PacketError("%s: truncated (needs %d more bytes, %d left)"
                              % (self.what, count, self.remaining()))
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise PacketError("%s: truncated" % self.what)
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def rest(self) -> bytes:
        return self.take(self.remaining())

    def mpi(self) -> bytes:
        """A multiprecision integer's value bytes (RFC 9580 section 3.2)."""
        bits = self.u16()
        return self.take((bits + 7) // 8)

    def oid(self) -> bytes:
        """A curve OID: one length octet, then the DER body."""
        length = self.u8()
        if length == 0 or length == 0xFF:
            raise PacketError("%s: reserved curve OID length %d" % (self.what, length))
        return self.take(length)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise PacketError("%s: %d unexpected trailing bytes" % (self.what, self.remaining()))


def subpacket_spans(area: bytes, what: str) -> Iterator[Tuple[int, int, int]]:
    """(type octet, start, end) of each subpacket's data in a signature or user
    attribute area, without copying anything.

    Subpacket lengths are one, two or five octets (RFC 9580 5.2.3.7); the
    length counts the type octet, so zero is malformed.
    """
    pos, end = 0, len(area)
    while pos < end:
        first = area[pos]
        if first < 192:
            length, pos = first, pos + 1
        elif first < 255:
            if pos + 2 > end:
                raise PacketError("%s: truncated subpacket length" % what)
            length, pos = ((first - 192) << 8) + area[pos + 1] + 192, pos + 2
        else:
            if pos + 5 > end:
                raise PacketError("%s: truncated subpacket length" % what)
            length, pos = int.from_bytes(area[pos + 1:pos + 5], "big"), pos + 5
        if length == 0 or pos + length > end:
            raise PacketError("%s: subpacket length %d does not fit" % (what, length))
        yield area[pos], pos + 1, pos + length
        pos += length


def iter_subpackets(area: bytes, what: str) -> Iterator[Tuple[int, bytes]]:
    """(type octet, data) of each subpacket in an area."""
    for kind, start, end in subpacket_spans(area, what):
        yield kind, area[start:end]

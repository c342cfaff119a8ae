"""Packet framing (RFC 9580 section 4): headers, lengths, tags.

A `Packet` is a tag and a body.  Reading keeps the exact bytes a packet came
in (legacy or OpenPGP header, any length form) so that parse -> serialize is
byte-identical; packets built in memory are written with the OpenPGP (new)
header and the shortest length, which is also the canonical form CKS stores.

Declared lengths are never trusted: every length is checked against the bytes
actually present before anything is sliced.
"""

from __future__ import annotations

from typing import FrozenSet, Iterator, List, Optional, Tuple

from .errors import PacketError
from .keypacket import algorithm_of

# Packet tags (RFC 9580 section 5).
TAG_PKESK = 1
TAG_SIGNATURE = 2
TAG_SKESK = 3
TAG_ONE_PASS_SIG = 4
TAG_SECRET_KEY = 5
TAG_PUBLIC_KEY = 6
TAG_SECRET_SUBKEY = 7
TAG_COMPRESSED = 8
TAG_SED = 9
TAG_MARKER = 10
TAG_LITERAL = 11
TAG_TRUST = 12
TAG_USER_ID = 13
TAG_PUBLIC_SUBKEY = 14
TAG_USER_ATTRIBUTE = 17
TAG_SEIPD = 18
TAG_MDC = 19
TAG_AEAD = 20
TAG_PADDING = 21

# Data packets are the only ones that may use partial body lengths.
PARTIAL_ALLOWED = frozenset({TAG_COMPRESSED, TAG_SED, TAG_LITERAL, TAG_SEIPD, TAG_AEAD})


class Packet:
    """One packet: its tag and body; equality ignores how it was framed."""

    __slots__ = ("tag", "body", "raw")

    def __init__(self, tag: int, body: bytes, raw: Optional[bytes] = None) -> None:
        self.tag = tag
        self.body = body
        self.raw = raw

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Packet):
            return NotImplemented
        return self.tag == other.tag and self.body == other.body

    def __hash__(self) -> int:
        return hash((self.tag, self.body))

    def __repr__(self) -> str:
        return "Packet(tag=%d, %d bytes)" % (self.tag, len(self.body))

    def serialize(self) -> bytes:
        """The packet as read, or in canonical framing when built in memory."""
        if self.raw is not None:
            return self.raw
        return encode_header(self.tag, len(self.body)) + self.body

    def canonical(self) -> "Packet":
        """The same packet without its original framing."""
        return self if self.raw is None else Packet(self.tag, self.body)


def tag_of(ctb: int) -> int:
    """The tag a packet header's first octet names (OpenPGP or legacy format)."""
    return ctb & 0x3F if ctb & 0x40 else (ctb >> 2) & 0x0F


def encode_length(length: int) -> bytes:
    """An OpenPGP-format body length in its shortest form."""
    if length < 192:
        return bytes((length,))
    if length < 8384:
        length -= 192
        return bytes(((length >> 8) + 192, length & 0xFF))
    return b"\xff" + length.to_bytes(4, "big")


def encode_header(tag: int, length: int) -> bytes:
    """An OpenPGP-format (new) packet header."""
    if not 0 < tag < 64:
        raise PacketError("packet tag %d out of range" % tag)
    if length >= 1 << 32:
        raise PacketError("packet too long for a 4-octet length")
    return bytes((0xC0 | tag,)) + encode_length(length)


def _new_length(data: bytes, pos: int, end: int) -> Tuple[int, int, bool]:
    """Decode an OpenPGP-format length at `pos`: (length, next pos, partial)."""
    if pos >= end:
        raise PacketError("truncated packet length at offset %d" % pos)
    first = data[pos]
    if first < 192:
        return first, pos + 1, False
    if first < 224:
        if pos + 2 > end:
            raise PacketError("truncated packet length at offset %d" % pos)
        return ((first - 192) << 8) + data[pos + 1] + 192, pos + 2, False
    if first == 255:
        if pos + 5 > end:
            raise PacketError("truncated packet length at offset %d" % pos)
        return int.from_bytes(data[pos + 1:pos + 5], "big"), pos + 5, False
    return 1 << (first & 0x1F), pos + 1, True


def read_packet(data: bytes, pos: int = 0, framing: bool = True) -> Tuple[Packet, int]:
    """The packet starting at `pos` of `data`, and the offset after it;
    without `framing`, the packet is canonical (its original header is not
    kept even when it differs from the canonical one)."""
    end = len(data)
    if pos >= end:
        raise PacketError("no packet at offset %d" % pos)
    start = pos
    ctb = data[pos]
    pos += 1
    if not ctb & 0x80:
        raise PacketError("offset %d: not an OpenPGP packet (byte 0x%02X)" % (start, ctb))
    if ctb & 0x40:
        tag = ctb & 0x3F
        length, pos, partial = _new_length(data, pos, end)
        if partial:
            return _read_partial(data, start, tag, length, pos)
    else:
        tag = (ctb >> 2) & 0x0F
        length_type = ctb & 3
        if length_type == 3:
            # Indeterminate length: legacy data packets running to the end.
            if tag not in PARTIAL_ALLOWED:
                raise PacketError("offset %d: indeterminate length on packet tag %d"
                                  % (start, tag))
            length = end - pos
        else:
            size = 1 << length_type
            if pos + size > end:
                raise PacketError("truncated packet header at offset %d" % start)
            length = int.from_bytes(data[pos:pos + size], "big")
            pos += size
    if tag == 0:
        raise PacketError("offset %d: packet tag 0 is reserved" % start)
    if pos + length > end:
        raise PacketError("offset %d: packet tag %d declares %d bytes, only %d present"
                          % (start, tag, length, end - pos))
    after = pos + length
    raw = None
    if framing and data[start:pos] != encode_header(tag, length):
        raw = data[start:after]  # keep the original framing for byte-identical output
    return Packet(tag, data[pos:after], raw), after


def _read_partial(data: bytes, start: int, tag: int, first: int, pos: int) -> Tuple[Packet, int]:
    if tag not in PARTIAL_ALLOWED:
        raise PacketError("offset %d: partial body length not allowed on packet tag %d"
                          % (start, tag))
    end = len(data)
    chunks: List[bytes] = []
    length, partial = first, True
    while True:
        if pos + length > end:
            raise PacketError("offset %d: partial packet truncated" % start)
        chunks.append(data[pos:pos + length])
        pos += length
        if not partial:
            break
        length, pos, partial = _new_length(data, pos, end)
    return Packet(tag, b"".join(chunks), data[start:pos]), pos


def iter_packets(data: bytes, framing: bool = True) -> Iterator[Packet]:
    """Every packet in `data`; raises PacketError where the framing breaks.
    `framing`: see read_packet."""
    pos = 0
    end = len(data)
    while pos < end:
        packet, pos = read_packet(data, pos, framing)
        yield packet


_VERSIONED_TAGS = frozenset({TAG_SIGNATURE, TAG_PUBLIC_KEY, TAG_PUBLIC_SUBKEY})


def holds_packet_beyond(data: bytes, version: int, algorithms: FrozenSet[int]) -> bool:
    """Whether these packets (a served key) hold a signature or key packet
    of a version above `version` (its body's first octet), or a key packet
    of one of `algorithms`: GnuPG 2.2 reads no key of an answer holding a v5
    or v6 one, GnuPG 2.4 none of one holding a key of algorithm 27."""
    return any(p.tag in _VERSIONED_TAGS and (
        p.body[:1] > bytes((version,))
        or p.tag != TAG_SIGNATURE and algorithm_of(p.body) in algorithms)
        for p in iter_packets(data))

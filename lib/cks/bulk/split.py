"""Cutting a key file into keys while reading it, so memory stays flat.

Binary input (keyrings, SKS dump files: concatenated transferable public
keys) is read packet header by packet header; a key starts at each primary
key packet.  Where the framing breaks, the key being read is lost (the one
whose primary key packet breaks, when that one does: the key before it
ended there, whole) and reading resynchronizes on the next packet that
parses as a primary key.
Armored input is read one armor block at a time, each decoded as it is
read (armor.BodyReader, ARMOR_BATCH_BYTES of lines at a time) into a
spooled temporary file, so memory stays flat for armored input too; a
PUBLIC KEY BLOCK whose END line comes and whose checksum is right is then
cut the same way (none of its keys is handed on before: a damaged block
loses them all, as an upload does).

Each Chunk says where to read on once it is stored (`resume_at`): after
it for binary input (after a problem, at the next key); for a key inside an
armor block, the block's start until its last key, then the block's end.
"""

from __future__ import annotations

import contextlib
import errno
import io
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import BinaryIO, Callable, Generator, Iterator, List, Optional, Tuple

from ..openpgp import armor
from ..openpgp.errors import ArmorError, PacketError
from ..openpgp.keypacket import PublicKey
from ..openpgp.keys import armor_refusal, is_binary
from ..openpgp.packet import PARTIAL_ALLOWED, TAG_PUBLIC_KEY, TAG_SECRET_KEY, tag_of
from ..openpgp.packet import read_packet as parse_packet

PRIMARY_TAGS = (TAG_PUBLIC_KEY, TAG_SECRET_KEY)
RESYNC_WINDOW = 1 << 16
READ_AHEAD = 1 << 20
LONGEST_HEADER = 6  # a tag octet, then a five-octet length
MAX_ARMOR_LINE = 1 << 20
ARMOR_BATCH_BYTES = 1 << 20
SPOOL_BYTES = 4 << 20
"""An armor block is decoded ARMOR_BATCH_BYTES of its lines at a time, into
memory up to SPOOL_BYTES of data, then into a temporary file."""


@dataclass
class Chunk:
    """One key's packets as read (`data`), or a problem found at `offset`
    (None: the problem is the whole file's)."""

    data: bytes
    offset: Optional[int]
    resume_at: int
    problem: str = ""
    read_to: Optional[int] = None
    """How far into the input the reader is with it (None: resume_at), for
    the progress line: inside an armor block, where resume_at stays at the
    block's start, the block's share that decodes to the data up to the
    chunk's end (until 2026-12-06 a load of one big block showed 0.0%)."""

    @property
    def reached(self) -> int:
        return self.resume_at if self.read_to is None else self.read_to

    def place(self, path: str) -> str:
        """Where in the file `path` it was read, as problem lines name it."""
        return path if self.offset is None else "%s: offset %d" % (path, self.offset)


class _Framing(Exception):
    """The packet framing is broken at `offset`; `tag`: the broken packet's,
    when its tag octet was read."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.tag: Optional[int] = None


def _read_exact(handle: BinaryIO, count: int, offset: int) -> bytes:
    data = handle.read(count)
    if len(data) != count:
        raise _Framing(offset, "truncated packet (needs %d bytes, %d left)" % (count, len(data)))
    return data


def _new_length(handle: BinaryIO, offset: int) -> Tuple[bytes, int, bool]:
    """(raw length octets, length, partial) of an OpenPGP-format length."""
    first = _read_exact(handle, 1, offset)
    if first[0] < 192:
        return first, first[0], False
    if first[0] < 224:
        second = _read_exact(handle, 1, offset)
        return first + second, ((first[0] - 192) << 8) + second[0] + 192, False
    if first[0] == 255:
        rest = _read_exact(handle, 4, offset)
        return first + rest, int.from_bytes(rest, "big"), False
    return first, 1 << (first[0] & 0x1F), True


def next_packet(handle: BinaryIO, offset: int,
                max_length: int) -> Optional[Tuple[int, int, bytes]]:
    """(tag, offset, raw bytes) of the next packet, read from `handle` at
    `offset` (its position, which the caller keeps: asking the file costs a
    system call per packet), None at the end; a packet declaring more than
    `max_length` bytes is a framing error (never read)."""
    ctb = handle.read(1)
    if not ctb:
        return None
    if not ctb[0] & 0x80:
        raise _Framing(offset, "not an OpenPGP packet (byte 0x%02X)" % ctb[0])
    tag = tag_of(ctb[0])
    try:
        return tag, offset, ctb + _packet_rest(handle, ctb[0], tag, offset, max_length)
    except _Framing as exc:
        exc.tag = tag
        raise


def _packet_rest(handle: BinaryIO, ctb: int, tag: int, offset: int, max_length: int) -> bytes:
    """The length octets and body of the packet whose tag octet was `ctb`."""
    parts = []
    if ctb & 0x40:
        raw_length, length, partial = _new_length(handle, offset)
        parts.append(raw_length)
        while partial:
            if tag not in PARTIAL_ALLOWED:
                raise _Framing(offset, "partial body length on packet tag %d" % tag)
            parts.append(_read_exact(handle, length, offset))
            raw_length, length, partial = _new_length(handle, offset)
            parts.append(raw_length)
    elif ctb & 3 == 3:
        if tag not in PARTIAL_ALLOWED:
            raise _Framing(offset, "indeterminate length on packet tag %d" % tag)
        parts.append(handle.read(max_length + 1))
        length = 0
    else:
        raw_length = _read_exact(handle, 1 << (ctb & 3), offset)
        parts.append(raw_length)
        length = int.from_bytes(raw_length, "big")
    if tag == 0:
        raise _Framing(offset, "packet tag 0 is reserved")
    if length > max_length:
        raise _Framing(offset, "packet tag %d declares %d bytes, over this server's limit of "
                               "%d" % (tag, length, max_length))
    parts.append(_read_exact(handle, length, offset))
    return b"".join(parts)


def _primary_at(handle: BinaryIO, offset: int, max_length: int) -> bool:
    """Does a primary key packet that parses start at `offset`?"""
    handle.seek(offset)
    try:
        packet = next_packet(handle, offset, max_length)
    except _Framing:
        return False
    if packet is None or packet[0] != TAG_PUBLIC_KEY:
        return False
    try:
        PublicKey.parse(parse_packet(packet[2])[0].body)
    except PacketError:
        return False
    return True


def _resync(handle: BinaryIO, after: int, max_length: int) -> Optional[int]:
    """The offset of the next primary key packet after `after`, None if none."""
    position = after + 1
    while True:
        handle.seek(position)
        window = handle.read(RESYNC_WINDOW)
        if not window:
            return None
        for index, byte in enumerate(window):
            if byte in (0x98, 0x99, 0xC6) and _primary_at(handle, position + index, max_length):
                return position + index
        position += len(window)


def binary_chunks(handle: BinaryIO, max_length: int) -> Iterator[Chunk]:
    """The keys of binary OpenPGP data read from `handle` (seekable), from its
    current position, with their offsets in it.

    Keys are cut from blocks read ahead (_framed_keys); a key whose framing
    that does not take (broken, or partial or indeterminate lengths) is read
    packet by packet (_key_by_packets), and the blocks take over again at
    the next key."""
    position: Optional[int] = handle.tell()
    while position is not None:
        position = yield from _framed_keys(handle, position, max_length)
        if position is not None:
            position = yield from _key_by_packets(handle, position, max_length)


def _framed_keys(handle: BinaryIO, position: int,
                 max_length: int) -> Generator[Chunk, None, Optional[int]]:
    """Keys from `position` (a key's start) on, cut from blocks of READ_AHEAD
    bytes while every packet has a definite length within `max_length`;
    returns where a key it does not take starts (None: the input ended).
    It holds the key being read and a block: memory stays flat.  (Read
    packet by packet from the file, the Debian keyring's 55,000 packets took
    the loading process 0.12 s; cut from blocks, 0.04 s.)"""
    handle.seek(position)
    data, ended = b"", False
    key = pos = 0  # in data: the key being read (at `position` in the file); the next packet
    while True:
        if len(data) - pos < LONGEST_HEADER and not ended:
            data, ended = _read_on(handle, data[key:], READ_AHEAD)
            key, pos = 0, pos - key
        if pos == len(data):
            if pos > key:
                yield Chunk(data[key:], position, position + pos - key)
            return None
        if len(data) - pos < LONGEST_HEADER:
            return position  # the input's last bytes: read them one by one
        ctb = data[pos]
        if ctb & 0xC0 == 0xC0:
            tag, first = ctb & 0x3F, data[pos + 1]
            if first < 192:
                length, body = first, pos + 2
            elif first < 224:
                length, body = ((first - 192) << 8) + data[pos + 2] + 192, pos + 3
            elif first == 255:
                length, body = int.from_bytes(data[pos + 2:pos + 6], "big"), pos + 6
            else:
                return position  # a partial length
        elif ctb & 0x80 and ctb & 3 != 3:
            size = 1 << (ctb & 3)
            tag, length = (ctb >> 2) & 0x0F, int.from_bytes(data[pos + 1:pos + 1 + size], "big")
            body = pos + 1 + size
        else:
            return position  # no packet, or an indeterminate length
        if tag == 0 or length > max_length:
            return position
        if body + length > len(data):
            if ended:
                return position  # truncated
            data, ended = _read_on(handle, data[key:], max(READ_AHEAD, body + length - len(data)))
            key, pos = 0, pos - key
            continue
        if tag in PRIMARY_TAGS and pos > key:
            yield Chunk(data[key:pos], position, position + pos - key)
            position += pos - key
            key = pos
        pos = body + length


def _read_on(handle: BinaryIO, kept: bytes, count: int) -> Tuple[bytes, bool]:
    """`kept` and at least the next `count` bytes of `handle` (as many as
    `kept` holds, when more: a key that spans many blocks is copied a few
    times, not once per block); whether the input ended."""
    count = max(count, len(kept))
    more = handle.read(count)
    return kept + more, len(more) < count


def _key_by_packets(handle: BinaryIO, position: int,
                    max_length: int) -> Generator[Chunk, None, Optional[int]]:
    """The key at `position`, read packet by packet: yields it, or what
    breaks its framing (the key is lost, and reading resynchronizes on the
    next primary key packet); returns where the next key starts (None: the
    input ended)."""
    handle.seek(position)
    parts: List[bytes] = []
    start = position
    while True:
        try:
            packet = next_packet(handle, position, max_length)
        except _Framing as exc:
            if parts and exc.tag in PRIMARY_TAGS:  # the key read is whole; the next is broken
                yield Chunk(b"".join(parts), start, exc.offset)
                parts = []
            after = _resync(handle, exc.offset, max_length)
            # (read on after the problem: a resumed load does not find it again)
            resume_at = _size(handle) if after is None else after
            if parts:  # reported where the key that is lost starts
                yield Chunk(b"", start, resume_at, "%s at offset %d; the key "
                            "there is incomplete and was skipped" % (exc, exc.offset))
            else:
                yield Chunk(b"", exc.offset, resume_at, str(exc))
            return after
        if packet is None:
            if parts:
                yield Chunk(b"".join(parts), start, position)
            return None
        tag, offset, raw = packet
        if tag in PRIMARY_TAGS and parts:
            yield Chunk(b"".join(parts), start, offset)
            return offset
        parts.append(raw)
        position = offset + len(raw)


def _size(handle: BinaryIO) -> int:
    handle.seek(0, io.SEEK_END)
    return handle.tell()


def _armored_chunks(handle: BinaryIO, max_length: int, resumed: bool) -> Iterator[Chunk]:
    found = False
    while True:
        offset = handle.tell()
        line = handle.readline(MAX_ARMOR_LINE)
        if not line:
            break
        begin = armor._BEGIN.match(line)
        if begin is None:
            continue
        found = True
        kind = begin.group(1).decode("ascii")
        with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as decoded:
            # (another kind of block is only checked: a PRIVATE KEY BLOCK's
            # secret key material must not reach a temporary file on disk)
            problem = _decode_block(handle, kind, decoded.write
                                    if kind == armor.PUBLIC_KEY_BLOCK else _discard)
            end = handle.tell()
            if problem or kind != armor.PUBLIC_KEY_BLOCK:
                yield Chunk(b"", offset, end, problem or armor_refusal(kind))
                continue
            size = decoded.tell()
            decoded.seek(0)
            chunks = binary_chunks(decoded, max_length)
            previous = next(chunks, None)
            for chunk in chunks:
                yield _in_block(previous, (offset, end), size, offset)
                previous = chunk
            if previous is not None:
                yield _in_block(previous, (offset, end), size, end)
    if not found and not resumed:
        yield Chunk(b"", None, handle.tell(), "no OpenPGP data found: expected an armored "
                                           "PUBLIC KEY BLOCK or binary key data")


def _discard(_data: bytes) -> None:
    pass


def _decode_block(handle: BinaryIO, kind: str, sink: Callable[[bytes], object]) -> str:
    """Read the armor block whose BEGIN line was just read from `handle`, to
    its END line (or, cut short, to the next BEGIN line, where `handle` is
    left), decoding it a batch of lines at a time into `sink`, as
    armor.scan decodes a block whole; returns what is wrong with it ('':
    nothing, and `sink` was given its data)."""
    reader = armor.BodyReader(kind, sink)
    marker = kind.encode("ascii")
    problem = ""
    lines: List[bytes] = []
    size = 0
    while True:
        line = handle.readline(MAX_ARMOR_LINE)
        if armor.is_begin_line(line):  # (cut short: the next block is read next)
            handle.seek(-len(line), io.SEEK_CUR)
            return armor.no_end_line(kind)
        ended = not line or armor.is_end_line(line, marker)
        if not ended:
            lines.append(line)
            size += len(line)
        if ended or size >= ARMOR_BATCH_BYTES:
            try:
                if not problem:  # (after one, the rest of the block is read, not decoded)
                    reader.feed(lines)
                    if ended and line:  # (the END line)
                        reader.end()
            except ArmorError as exc:
                problem = str(exc)
            lines, size = [], 0
        if not line:
            return armor.no_end_line(kind)
        if ended:
            return problem


def _in_block(chunk: Chunk, block: Tuple[int, int], decoded_size: int,
              resume_at: int) -> Chunk:
    """A chunk of the data decoded from the armor block at `block` (its
    start and end offsets in the input), which decodes to `decoded_size`
    bytes."""
    start, end = block
    problem = chunk.problem and "in the armor block at offset %d: byte %d: %s" % (
        start, chunk.offset, chunk.problem)
    read_to = start + (end - start) * chunk.resume_at // max(decoded_size, 1)
    return Chunk(chunk.data, start, resume_at, problem, read_to)


@contextlib.contextmanager
def key_file(path: str) -> Iterator[BinaryIO]:
    """The key file `path` to read chunks from ('-': standard input).  One
    that cannot seek (standard input, a pipe) is copied first, into memory
    up to SPOOL_BYTES and past that into a temporary file (TMPDIR), since
    reading goes back to where a packet or a key starts."""
    with contextlib.ExitStack() as stack:
        handle = standard_input() if path == "-" else stack.enter_context(open(path, "rb"))
        if _seekable(handle):
            yield handle
            return
        copy = stack.enter_context(tempfile.SpooledTemporaryFile(SPOOL_BYTES))
        shutil.copyfileobj(handle, copy, READ_AHEAD)
        copy.seek(0)
        yield copy


def standard_input() -> BinaryIO:
    """The binary standard input; OSError if the program started without one
    (`<&-`: Python's sys.stdin is then None)."""
    if sys.stdin is None:
        raise OSError(errno.EBADF, "standard input is closed", "-")
    return sys.stdin.buffer


def _seekable(handle: BinaryIO) -> bool:
    try:
        return handle.seekable()
    except (OSError, ValueError):  # (a closed standard input)
        return False


def read_chunks(handle: BinaryIO, max_length: int) -> Iterator[Chunk]:
    """The keys of a key file (binary or armored, told apart by its first
    byte that is not white space), from the handle's current position.  That
    is where an interrupted load goes on, which may be a corrupt spot, so
    the format is judged from the file's start, as the first read did."""
    start = handle.tell()
    head = _head(handle)
    handle.seek(start)
    if not head:
        yield Chunk(b"", None, 0, "no key data (empty input)")
    elif is_binary(head):
        yield from binary_chunks(handle, max_length)
    else:
        yield from _armored_chunks(handle, max_length, start > 0)


def _head(handle: BinaryIO) -> bytes:
    """The file's first bytes that are not white space, up to 4096 (b"":
    there are none)."""
    handle.seek(0)
    while True:
        head = handle.read(4096)
        if not head:
            return b""
        stripped = head.lstrip()
        if stripped:
            return stripped

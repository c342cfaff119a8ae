"""ASCII armor (RFC 9580 section 6): find, decode and encode armor blocks.

Decoding is lenient about what surrounds a block (mail text, CRLF line ends,
trailing blanks, header lines, a missing blank line after the headers, a
missing checksum line) but strict about the block itself: a checksum that does
not match rejects the block.  RFC 9580 asks receivers not to reject on a wrong
CRC24, but a keyserver republishes what it stores: a block damaged in transit
(a mail gateway re-wrapping lines, a truncated paste) whose base64 still
decodes could put corrupted packets into the network.  GnuPG and SKS reject
such blocks too.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple, Union

from .crc24 import INIT, crc24, crc24_continued
from .errors import ArmorError

PUBLIC_KEY_BLOCK = "PUBLIC KEY BLOCK"
DECODE_BYTES = 1 << 20
"""BodyReader decodes base64 once it holds this much (whole quanta of 4)."""


@dataclass
class ArmorBlock:
    """One decoded armor block."""

    kind: str  # the text between "BEGIN PGP " and "-----", e.g. "PUBLIC KEY BLOCK"
    data: bytes
    headers: List[Tuple[str, str]] = field(default_factory=list)
    has_checksum: bool = False


# (after a UTF-8 byte-order mark too: an editor puts one at a text file's start)
_BOM = b"\xef\xbb\xbf"
_BEGIN = re.compile(rb"^(?:\xef\xbb\xbf)?-----BEGIN PGP ([A-Z0-9 ,/]+)-----[ \t\r]*$", re.M)
_HEADER = re.compile(rb"^([!-9;-~]+): ?(.*)$")
_B64_LINE = re.compile(rb"^[A-Za-z0-9+/=]+$")
_BASE64_OR_NEWLINE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n"


def _end_line(text: bytes, kind: bytes, start: int) -> Optional[Tuple[int, int]]:
    """The first "-----END PGP <kind>-----" line from `start` (blanks may
    follow the marker on its line): where the line starts and ends.  Found
    with bytes.find: a multi-line regular expression tried a match at every
    byte of the block, 15 KB for a key."""
    marker = b"-----END PGP " + kind + b"-----"
    at = text.find(marker, start)
    while at >= 0:
        line_end = text.find(b"\n", at)
        line_end = len(text) if line_end < 0 else line_end
        if (at == 0 or text[at - 1] == 0x0A) \
                and not text[at + len(marker):line_end].strip(b" \t\r"):
            return at, line_end
        at = text.find(marker, at + 1)
    return None


def is_end_line(line: bytes, kind: bytes) -> bool:
    """Is `line` (one line, with or without its line break) the END line of
    a block of `kind`?"""
    end = _end_line(line, kind, 0)
    return end is not None and end[0] == 0


def is_begin_line(line: bytes) -> bool:
    """Is `line` (one line, with or without its line break) a BEGIN line?"""
    return _BEGIN.match(line) is not None


def no_end_line(kind: str) -> str:
    """The problem of a block cut short: its END line missing, before the
    end of the text or the next block's BEGIN line."""
    return "armor block 'BEGIN PGP %s' has no END line" % kind


def scan(text: Union[str, bytes]) -> Tuple[List[ArmorBlock], List[ArmorError]]:
    """Every armor block in `text`, in order, and an error for each broken one.

    Blocks of every kind are returned (the caller decides what a PGP MESSAGE
    or PRIVATE KEY BLOCK means); text outside blocks is ignored.  A block
    cut short ends at the next BEGIN line: until 2026-12-06 it ran to the
    next block's END line, and that block, whole, was lost with it (a mail
    of a cut key and a good one bounced, found by a review of mail sync).
    """
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    blocks: List[ArmorBlock] = []
    errors: List[ArmorError] = []
    begin = _BEGIN.search(text)
    while begin is not None:
        kind = begin.group(1)
        end = _end_line(text, kind, begin.end())
        cut = _begin_line(text, begin.end(), len(text) if end is None else end[0])
        if end is None or cut is not None:
            errors.append(ArmorError(no_end_line(kind.decode("ascii"))))
            begin = cut
            continue
        try:
            blocks.append(_decode_body(kind.decode("ascii"), text[begin.end():end[0]]))
        except ArmorError as exc:
            errors.append(exc)
        begin = _BEGIN.search(text, end[1])
    return blocks, errors


def _begin_line(text: bytes, start: int, stop: int) -> Optional["re.Match[bytes]"]:
    """The first BEGIN line from `start` that starts before `stop`.  Found
    with bytes.find, as _end_line finds END lines, each marker checked where
    it is (a line's start, or after a byte-order mark there): until later on
    2026-12-06 each looked back for its line's start, and a line of 300,000
    markers (4.8 MB) took 27 s instead of 0.03 (found by a review)."""
    at = text.find(b"-----BEGIN PGP ", start, stop)
    while at >= 0:
        line = at - len(_BOM) if text[max(at - len(_BOM), 0):at] == _BOM else at
        if line == 0 or text[line - 1] == 0x0A:
            begin = _BEGIN.match(text, line)
            if begin is not None:
                return begin
        at = text.find(b"-----BEGIN PGP ", at + 1, stop)
    return None


def sole_block(text: str) -> ArmorBlock:
    """The armor block `text` is, with nothing around it but blank space; raises
    ArmorError for anything else (where what surrounds a block is to be kept,
    text around it could be any size and say anything)."""
    data = text.encode("utf-8", "surrogateescape").strip()
    begin = _BEGIN.match(data)
    end = _end_line(data, begin.group(1), begin.end()) if begin else None
    if end is None or end[1] != len(data):
        raise ArmorError("not one armor block and nothing else")
    return _decode_body(begin.group(1).decode("ascii"), data[begin.end():end[0]])


def _decode_body(kind: str, body: bytes) -> ArmorBlock:
    parts: List[bytes] = []
    reader = BodyReader(kind, parts.append)
    reader.feed(body.split(b"\n")[1:])  # (the first: the BEGIN line's line break)
    reader.end()
    return ArmorBlock(kind, b"".join(parts), reader.headers, reader.checksum is not None)


class BodyReader:
    """Decodes the lines of an armor block's body (those between its BEGIN
    and END lines), fed any number at a time; hands the data decoded to
    `sink` as it goes.  A block fed whole is decoded as one; fed in
    batches, a block of any size is read in the memory of a batch
    (bulk/split.py).  Whether the block is sound is known at end(): a sink
    that wrote what it was given must then drop it if end() raises."""

    def __init__(self, kind: str, sink: Callable[[bytes], object]) -> None:
        self.kind = kind
        self.sink = sink
        self.headers: List[Tuple[str, str]] = []
        self.checksum: Optional[bytes] = None  # the checksum line's base64
        self._in_headers = True
        self._undecoded = b""  # base64 not decoded yet: under 4 characters, or the padding on
        self._crc = INIT
        self._size = 0

    def feed(self, lines: Sequence[bytes]) -> None:
        """Raises ArmorError where the block breaks a rule."""
        lines = [line.strip() for line in lines]
        index = 0
        # Header lines run up to the first blank line.  Some producers leave the
        # blank line out when there are no headers: then the data starts at once.
        while self._in_headers and index < len(lines):
            match = _HEADER.match(lines[index])
            if not lines[index] or match is None or _B64_LINE.match(lines[index]):
                self._in_headers = False
                break
            self.headers.append((match.group(1).decode("ascii"),
                                 match.group(2).decode("utf-8", "replace")))
            index += 1
        self._data([line for line in lines[index:] if line])

    def _data(self, lines: List[bytes]) -> None:
        # The data lines are checked together (an armored key has hundreds of
        # them), by C loops over them all: the base64 up to the checksum line,
        # then nothing after it.
        if not lines:
            return
        if self.checksum is not None:
            raise ArmorError("armor block %s: data after the checksum line" % self.kind)
        data = b"\n".join(lines)
        mark = _checksum_line(data)
        encoded = data if mark is None else data[:mark[0]]
        if encoded.translate(None, _BASE64_OR_NEWLINE):  # a byte left is not base64
            raise ArmorError("armor block %s: invalid characters in base64 data" % self.kind)
        if mark is not None:
            if mark[1] < len(data):
                raise ArmorError("armor block %s: data after the checksum line" % self.kind)
            self.checksum = data[mark[0] + 1:mark[1]]
        encoded = self._undecoded + encoded.replace(b"\n", b"")
        if b"=" in encoded.rstrip(b"="):
            # Padding before the end: a2b_base64 would stop there without a word
            # (b"QQ==QUJD" gives b"A"), and a block without a checksum line would
            # lose its rest unnoticed, where GnuPG refuses it.
            raise ArmorError("armor block %s: '=' inside the base64 data (the block was "
                             "damaged)" % self.kind)
        if len(encoded) < DECODE_BYTES or b"=" in encoded:
            self._undecoded = encoded  # (a block under DECODE_BYTES: decoded in one call)
            return
        whole = len(encoded) - len(encoded) % 4
        self._undecoded = encoded[whole:]
        self._decode(encoded[:whole])

    def _decode(self, encoded: bytes) -> None:
        try:
            data = binascii.a2b_base64(encoded)
        except binascii.Error as exc:
            raise ArmorError("armor block %s: bad base64 (%s)" % (self.kind, exc)) from None
        if data:
            self._crc = crc24_continued(self._crc, data)
            self._size += len(data)
            self.sink(data)

    def end(self) -> None:
        """The block ended (its END line was read): raises ArmorError if
        what was fed does not make a sound block."""
        if self._undecoded:
            self._decode(self._undecoded)
            self._undecoded = b""
        if self.checksum is not None:
            try:
                expected = int.from_bytes(base64.b64decode(self.checksum, validate=True), "big")
            except binascii.Error:
                raise ArmorError("armor block %s: unreadable checksum line" % self.kind) from None
            if self._crc != expected:
                raise ArmorError("armor block %s: checksum mismatch (the block was damaged)"
                                 % self.kind)
        if not self._size:
            raise ArmorError("armor block %s holds no data" % self.kind)


def _checksum_line(data: bytes) -> Optional[Tuple[int, int]]:
    """Where the checksum line is among armor data lines (joined by newlines):
    the first line of "=" and 4 more bytes, from its "=" to its end."""
    text = b"\n" + data  # every line starts after a newline
    at = text.find(b"\n=")
    while at >= 0:
        end = text.find(b"\n", at + 1)
        end = len(text) if end < 0 else end
        if end - at == 6:
            return at, end - 1
        at = text.find(b"\n=", end)
    return None


def encode(data: bytes, kind: str = PUBLIC_KEY_BLOCK,
           headers: Sequence[Tuple[str, str]] = (), checksum: Optional[int] = None) -> str:
    """Armor `data` with 64-column lines and a CRC24 checksum line (`checksum`,
    when the caller already knows crc24(data))."""
    out = ["-----BEGIN PGP %s-----" % kind]
    out.extend("%s: %s" % header for header in headers)
    out.append("")
    encoded = base64.b64encode(data).decode("ascii")
    out.extend(encoded[i:i + 64] for i in range(0, len(encoded), 64))
    if checksum is None:
        checksum = crc24(data)
    out.append("=" + base64.b64encode(checksum.to_bytes(3, "big")).decode("ascii"))
    out.append("-----END PGP %s-----" % kind)
    return "\n".join(out) + "\n"


def looks_armored(data: bytes) -> bool:
    """True when `data` is text that contains an armor BEGIN line."""
    return _BEGIN.search(data) is not None

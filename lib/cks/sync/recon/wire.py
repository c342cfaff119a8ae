"""The messages of SKS set reconciliation on the wire, free of I/O.

Format (SKS 1.1.6 reconMessages.ml / cMarshal.ml): an int is 4
bytes big-endian; a string is an int length and its bytes; a field element
(ZZp) is exactly 17 bytes little-endian; an element set is an int count and
that many ZZp values; a bit string is an int number of bits, then a string of
ceil(bits / 8) bytes, most significant bit first, unused tail bits zero.  A
message is an int body length, then the body: one type byte and the fields.

Each message type is a dataclass with `encode()` (the framed message) and a
`_decode` of its fields next to it.  `MessageReader` is fed bytes and hands
out complete messages; every malformed input raises ReconProtocolError before
anything large is allocated.  The handshake's Config message and its unframed
"passed" / "failed" strings are here too; the handshake's state machine is in
session.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import (ClassVar, Dict, Iterable, List, Optional, Sequence, Tuple, Type,
                    Union)

# The protocol constants and the ZZp encoding come from field.py.
from ...wording import printable
from .field import BITQUANTUM, MBAR, P, ZZP_BYTES, zzp_list_from_bytes

PREFIX_MAX_BITS = 8 * ZZP_BYTES  # a prefix of the 17-byte encoding: 136 bits at most
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # body length limit (Hockeypuck: 1 << 24)
MAX_HANDSHAKE_STRING = 64 * 1024  # the unframed "passed" / "failed" + reason strings
MAX_CONFIG_BYTES = 8 * 1024
"""The handshake's Config message, body length at most.  SKS and Hockeypuck
send five short entries (some 150 bytes).  Until 2026-12-07 a Config could
be 16 MiB: a review's Config of 1,048,575 entries took cksd to 200 MB."""
MAX_CONFIG_ENTRIES = 32  # in a Config: SKS and Hockeypuck send 5
MAX_SET_ELEMENTS = 100_000
"""Elements in one element set at most, refused past it before any is
decoded (each costs some 20 times its 17 bytes as Python objects).  A node
sent whole holds under 150; only an Elements reply to a requester that sent
the root or a large leaf whole (it holds under 150 keys) may be larger, and
a round collects 100,000 at most (session.MAX_MISSING).  Until 2026-12-07 a
set could fill 16 MiB: a review's Elements of 987,000 took cksd from 39 to
358 MB and stalled its lookups up to 1 s."""
PEER_TEXT_CHARS = 200  # of a peer's Error text or refusal reason, kept and logged
SKS_VERSION = "1.1.6"
MIN_VERSION = (0, 1, 5)  # SKS refuses peers below this (common.ml)
DEFAULT_FILTERS = "yminsky.dedup,yminsky.merge"


class ReconProtocolError(Exception):
    """The peer sent something this protocol does not allow: close the connection."""


class ReconPeerError(ReconProtocolError):
    """The peer sent an Error message; `text` is what it said."""

    def __init__(self, text: str) -> None:
        super().__init__("peer reported an error: %s" % text)
        self.text = text


# ----------------------------------------------------------------------------
# Field elements and prefixes

def element_key(element: int) -> int:
    """The element's 17-byte little-endian encoding read as one big-endian
    number: the order of the prefix tree.  The elements under a prefix are
    exactly those whose key lies in `prefix.key_range()`."""
    return int.from_bytes(element.to_bytes(ZZP_BYTES, "little"), "big")


@dataclass(frozen=True, order=True)
class Prefix:
    """A bit string naming a prefix-tree node: the first `length` bits (most
    significant bit of each byte first) of the elements' 17-byte little-endian
    encoding, held as the number `bits`.  Ordered by (length, bits)."""

    length: int = 0
    bits: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.length <= PREFIX_MAX_BITS:
            raise ValueError("prefix length %r out of range" % (self.length,))
        if not 0 <= self.bits < (1 << self.length):
            raise ValueError("prefix bits %r do not fit %d bits" % (self.bits, self.length))

    @classmethod
    def parse(cls, text: str) -> "Prefix":
        """From a string of 0s and 1s ("" is the root)."""
        if text.strip("01"):
            raise ValueError("a prefix is written in 0s and 1s: %r" % text)
        return cls(len(text), int(text, 2) if text else 0)

    @classmethod
    def of_element(cls, element: int, length: int) -> "Prefix":
        """The prefix of `length` bits that `element` lies under."""
        return cls(length, element_key(element) >> (PREFIX_MAX_BITS - length))

    def __str__(self) -> str:
        return format(self.bits, "0%db" % self.length) if self.length else ""

    def children(self, bitquantum: int = BITQUANTUM) -> List["Prefix"]:
        """The 2**bitquantum extensions by `bitquantum` bits, in order."""
        return [Prefix(self.length + bitquantum, (self.bits << bitquantum) | i)
                for i in range(1 << bitquantum)]

    def contains(self, element: int) -> bool:
        return element_key(element) >> (PREFIX_MAX_BITS - self.length) == self.bits

    def key_range(self) -> Tuple[int, int]:
        """[low, high) of element_key() over the elements under this prefix."""
        shift = PREFIX_MAX_BITS - self.length
        return self.bits << shift, (self.bits + 1) << shift

    def to_bytes(self) -> bytes:
        """ceil(length / 8) bytes, MSB first, unused tail bits zero."""
        nbytes = (self.length + 7) // 8
        return (self.bits << (8 * nbytes - self.length)).to_bytes(nbytes, "big")

    @classmethod
    def from_bytes(cls, data: bytes, length: int) -> "Prefix":
        """The first `length` bits of `data` (tail bits are ignored, as SKS does)."""
        nbytes = (length + 7) // 8
        if len(data) < nbytes:
            raise ValueError("%d bits need %d bytes, not %d" % (length, nbytes, len(data)))
        return cls(length, int.from_bytes(data[:nbytes], "big") >> (8 * nbytes - length))

    def encode(self) -> bytes:
        """The wire bit string: int bits, int bytes, the bytes."""
        data = self.to_bytes()
        return _int(self.length) + _int(len(data)) + data


ROOT = Prefix()


# ----------------------------------------------------------------------------
# Primitive encoders and a bounds-checked reader of one message body

def _int(value: int) -> bytes:
    if not 0 <= value < 1 << 32:
        raise ValueError("int out of range for the wire: %r" % (value,))
    return value.to_bytes(4, "big")


def encode_string(data: Union[bytes, str]) -> bytes:
    """A wire string: int length, then the bytes (text is sent as UTF-8)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return _int(len(data)) + data


def _zzp_list(values: Sequence[int]) -> bytes:
    """Checked as a whole and encoded inline: a round's message may hold
    thousands of elements, and two calls per element cost a third of it."""
    if values and not (min(values) >= 0 and max(values) < P):
        raise ValueError("not a field element among %d values" % len(values))
    return _int(len(values)) + b"".join([v.to_bytes(ZZP_BYTES, "little") for v in values])


class _Body:
    """A cursor over one message body; every read is checked against what is left."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, pos: int, what: str) -> None:
        self.data = data
        self.pos = pos
        self.what = what

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, field_name: str) -> bytes:
        if n > self.left():
            raise ReconProtocolError("%s: truncated %s (%d bytes needed, %d left)"
                                     % (self.what, field_name, n, self.left()))
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self, field_name: str) -> int:
        return int.from_bytes(self.take(4, field_name), "big")

    def string(self, field_name: str) -> bytes:
        return self.take(self.int(field_name + " length"), field_name)

    def zzp_list(self, field_name: str) -> List[int]:
        count = self.int(field_name + " count")
        if count > MAX_SET_ELEMENTS:
            raise ReconProtocolError("%s: %d %s, more than %d"
                                     % (self.what, count, field_name, MAX_SET_ELEMENTS))
        if count > self.left() // ZZP_BYTES:
            raise ReconProtocolError("%s: %s count %d does not fit the %d bytes left"
                                     % (self.what, field_name, count, self.left()))
        raw = self.take(count * ZZP_BYTES, field_name)
        try:
            return zzp_list_from_bytes(raw)
        except ValueError as exc:
            raise ReconProtocolError("%s: %s: %s" % (self.what, field_name, exc)) from None

    def prefix(self) -> Prefix:
        nbits = self.int("prefix bit count")
        nbytes = self.int("prefix byte count")
        if nbits > PREFIX_MAX_BITS:
            raise ReconProtocolError("%s: prefix of %d bits is longer than an element"
                                     % (self.what, nbits))
        if nbytes != (nbits + 7) // 8:
            raise ReconProtocolError("%s: prefix of %d bits in %d bytes"
                                     % (self.what, nbits, nbytes))
        return Prefix.from_bytes(self.take(nbytes, "prefix"), nbits)

    def end(self) -> None:
        if self.left():
            raise ReconProtocolError("%s: %d trailing bytes in the message body"
                                     % (self.what, self.left()))


def _frame(type_code: int, fields: bytes) -> bytes:
    return _int(1 + len(fields)) + bytes((type_code,)) + fields


def _element_set(values: Iterable[int]) -> List[int]:
    return sorted(set(values))


# ----------------------------------------------------------------------------
# The messages

@dataclass
class ReconRqstPoly:
    """Type 0: the requester's node size and sample values for `prefix`."""

    TYPE: ClassVar[int] = 0
    prefix: Prefix
    size: int
    samples: List[int]

    def encode(self) -> bytes:
        return _frame(self.TYPE, self.prefix.encode() + _int(self.size)
                      + _zzp_list(self.samples))

    @classmethod
    def _decode(cls, body: _Body) -> "ReconRqstPoly":
        prefix = body.prefix()
        size = body.int("size")
        return cls(prefix, size, body.zzp_list("samples"))


@dataclass
class ReconRqstFull:
    """Type 1: all of the requester's elements under `prefix`."""

    TYPE: ClassVar[int] = 1
    prefix: Prefix
    elements: List[int]

    def __post_init__(self) -> None:
        self.elements = _element_set(self.elements)

    def encode(self) -> bytes:
        return _frame(self.TYPE, self.prefix.encode() + _zzp_list(self.elements))

    @classmethod
    def _decode(cls, body: _Body) -> "ReconRqstFull":
        prefix = body.prefix()
        return cls(prefix, body.zzp_list("elements"))


@dataclass
class _ElementSet:
    """A message that is one set of elements (kept sorted and unique)."""

    TYPE: ClassVar[int]
    elements: List[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.elements = _element_set(self.elements)

    def encode(self) -> bytes:
        return _frame(self.TYPE, _zzp_list(self.elements))

    @classmethod
    def _decode(cls, body: "_Body"):
        return cls(body.zzp_list("elements"))


@dataclass
class Elements(_ElementSet):
    """Type 2: elements the receiver lacks."""

    TYPE: ClassVar[int] = 2


@dataclass
class FullElements(_ElementSet):
    """Type 3: all of the answerer's elements under the requested prefix."""

    TYPE: ClassVar[int] = 3


class _NoFields:
    """A message that is its type byte alone."""

    TYPE: ClassVar[int]

    def encode(self) -> bytes:
        return _frame(self.TYPE, b"")

    @classmethod
    def _decode(cls, body: "_Body"):
        return cls()


@dataclass
class SyncFail(_NoFields):
    """Type 4: interpolation failed and the node is large: ask its children."""

    TYPE: ClassVar[int] = 4


@dataclass
class Done(_NoFields):
    """Type 5: the requester has finished."""

    TYPE: ClassVar[int] = 5


@dataclass
class Flush(_NoFields):
    """Type 6: the answerer writes out the replies it has buffered."""

    TYPE: ClassVar[int] = 6


@dataclass
class Error:
    """Type 7: a failure described in text; the session ends."""

    TYPE: ClassVar[int] = 7
    text: str = ""

    def encode(self) -> bytes:
        return _frame(self.TYPE, encode_string(self.text))

    @classmethod
    def _decode(cls, body: _Body) -> "Error":
        return cls(peer_text(body.string("text")))


def peer_text(data: bytes) -> str:
    """A peer's text as it is logged and stored (the last error of its round,
    `op=stats`, `cks_sync_manage.py list`): its first PEER_TEXT_CHARS
    characters, printable ones only.  Until 2026-12-05 a peer's 16 MiB Error
    message went everywhere whole."""
    text = data[:4 * PEER_TEXT_CHARS].decode("utf-8", "replace")
    return printable(text, PEER_TEXT_CHARS, len(data) > 4 * PEER_TEXT_CHARS)


# Config keys whose values are a 4-byte binary big-endian int inside the string.
_NUMERIC_KEYS = ("http port", "bitquantum", "mbar")


@dataclass
class Config:
    """Type 10: the handshake's settings.  A field is None when the peer left
    the key out; keys this side does not know are kept in `extra` as bytes."""

    TYPE: ClassVar[int] = 10
    version: Optional[str] = None
    http_port: Optional[int] = None
    bitquantum: Optional[int] = None
    mbar: Optional[int] = None
    filters: Optional[str] = None
    extra: Dict[str, bytes] = field(default_factory=dict)

    def pairs(self) -> List[Tuple[str, bytes]]:
        """The (key, value) pairs sent, in SKS's order: sorted by key."""
        pairs: Dict[str, bytes] = dict(self.extra)
        for key, text in (("version", self.version), ("filters", self.filters)):
            if text is not None:
                pairs[key] = text.encode("utf-8")
        for key, number in (("http port", self.http_port), ("bitquantum", self.bitquantum),
                            ("mbar", self.mbar)):
            if number is not None:
                pairs[key] = _int(number)
        return sorted(pairs.items(), key=lambda item: item[0].encode("utf-8"))

    def encode(self) -> bytes:
        pairs = self.pairs()
        return _frame(self.TYPE, _int(len(pairs)) + b"".join(
            encode_string(key) + encode_string(value) for key, value in pairs))

    @classmethod
    def _decode(cls, body: _Body) -> "Config":
        count = body.int("config entry count")
        if count > MAX_CONFIG_ENTRIES:
            raise ReconProtocolError("Config: %d entries, more than %d"
                                     % (count, MAX_CONFIG_ENTRIES))
        if count > body.left() // 8:  # each entry holds two string lengths
            raise ReconProtocolError("Config: %d entries do not fit the %d bytes left"
                                     % (count, body.left()))
        config = cls()
        seen = set()
        for _ in range(count):
            key = _text(body.string("config key"), "config key")
            value = body.string("config value %r" % key)
            if key in seen:
                raise ReconProtocolError("Config: key %r given twice" % key)
            seen.add(key)
            if key in _NUMERIC_KEYS:
                if len(value) != 4:
                    raise ReconProtocolError("Config: %r must be a 4-byte binary int, "
                                             "not %d bytes" % (key, len(value)))
                setattr(config, key.replace(" ", "_"), int.from_bytes(value, "big"))
            elif key in ("version", "filters"):
                setattr(config, key, _text(value, "config value %r" % key))
            else:
                config.extra[key] = value
        return config


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ReconProtocolError("%s is not UTF-8 text" % what) from None


Message = Union[ReconRqstPoly, ReconRqstFull, Elements, FullElements, SyncFail, Done, Flush,
                Error, Config]

MESSAGE_TYPES: Dict[int, Type] = {cls.TYPE: cls for cls in (  # type: ignore[attr-defined]
    ReconRqstPoly, ReconRqstFull, Elements, FullElements, SyncFail, Done, Flush, Error,
    Config)}


def decode_body(body: bytes) -> Message:
    """One message from its body (type byte + fields, without the length)."""
    if not body:
        raise ReconProtocolError("empty message body")
    cls = MESSAGE_TYPES.get(body[0])
    if cls is None:
        raise ReconProtocolError("unknown message type %d" % body[0])
    cursor = _Body(body, 1, cls.__name__)
    message = cls._decode(cursor)
    cursor.end()
    return message


def decode_message(data: bytes) -> Message:
    """Exactly one framed message."""
    reader = MessageReader()
    messages = reader.feed(data)
    if len(messages) != 1 or reader.buffered():
        raise ReconProtocolError("expected exactly one complete message")
    return messages[0]


# ----------------------------------------------------------------------------
# Incremental reading

class MessageReader:
    """Bytes in (`feed`), complete messages out.  Also reads the handshake's
    unframed strings (`next_string`) from the same buffer.  After an error the
    reader is unusable: the connection must be closed."""

    def __init__(self, max_length: int = MAX_MESSAGE_BYTES) -> None:
        self.max_length = max_length
        self._buffer = bytearray()
        self._failed: Optional[ReconProtocolError] = None

    def push(self, data: bytes) -> None:
        """Add bytes without parsing them."""
        self._check()
        self._buffer += data

    def feed(self, data: bytes) -> List[Message]:
        """Add bytes; return every message now complete, in order."""
        self.push(data)
        messages = []
        while True:
            message = self.next_message()
            if message is None:
                return messages
            messages.append(message)

    def next_message(self) -> Optional[Message]:
        """The next complete framed message, or None while it is incomplete."""
        body = self._take_counted(self.max_length, "message")
        if body is None:
            return None
        try:
            return decode_body(body)
        except ReconProtocolError as exc:
            self._failed = exc
            raise

    def next_string(self, max_length: int = MAX_HANDSHAKE_STRING) -> Optional[bytes]:
        """The next unframed wire string (int length + bytes), or None while
        it is incomplete."""
        return self._take_counted(max_length, "string")

    def buffered(self) -> int:
        """How many bytes wait to be parsed."""
        return len(self._buffer)

    def leftover(self) -> bytes:
        """The unparsed bytes, removed from the reader (to hand to another reader)."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def _check(self) -> None:
        if self._failed is not None:
            raise ReconProtocolError("reader already failed: %s" % self._failed)

    def _take_counted(self, max_length: int, what: str) -> Optional[bytes]:
        self._check()
        if len(self._buffer) < 4:
            return None
        length = int.from_bytes(self._buffer[:4], "big")
        if length > max_length:
            self._failed = ReconProtocolError("%s length %d over the limit of %d bytes"
                                              % (what, length, max_length))
            raise self._failed
        if len(self._buffer) < 4 + length:
            return None
        data = bytes(self._buffer[4:4 + length])
        del self._buffer[:4 + length]
        return data


# ----------------------------------------------------------------------------
# Handshake helpers

PASSED = "passed"
FAILED = "failed"


def encode_verdict(reason: Optional[str]) -> bytes:
    """The unframed reply to the peer's Config: "passed", or "failed" and why."""
    if reason is None:
        return encode_string(PASSED)
    return encode_string(FAILED) + encode_string(reason)


BUSY = "busy"
"""How a CKS node's refusal of a round it has no room for begins ("busy: 4
rounds under way"): its Config and "failed" with that reason, at once, as
Hockeypuck refuses while it is busy (SKS closes the connection instead).
A CKS, SKS or Hockeypuck dialer reads it as any refused handshake."""
HOCKEYPUCK_BUSY = "sync not available, currently mutating"


def busy_refusal(ours: Config, why: str) -> bytes:
    """Our Config and the refusal of a round we have no room for, without
    waiting for the peer's Config."""
    return ours.encode() + encode_verdict("%s: %s" % (BUSY, why))


def says_busy(reason: str) -> bool:
    """Whether a peer refused the handshake because it is busy (CKS, Hockeypuck)."""
    return reason.startswith(BUSY + ":") or reason == HOCKEYPUCK_BUSY


def our_config(http_port: int, filters: Union[str, Sequence[str]] = DEFAULT_FILTERS,
               version: str = SKS_VERSION) -> Config:
    """The Config this node sends: `filters` is a per-peer setting (a
    comma-separated string or a list of filter names), sent sorted and without
    repeats: SKS compares filter sets, but Hockeypuck compares the text as is,
    against its own list, which it sorts."""
    names = filters.split(",") if isinstance(filters, str) else filters
    return Config(version=version, http_port=http_port, bitquantum=BITQUANTUM, mbar=MBAR,
                  filters=",".join(sorted(set(n for n in names if n))))


_VERSION_PART = re.compile(r"[+-]?[0-9]+")


def parse_version(text: str) -> Tuple[int, int, int]:
    """"1.1.6" -> (1, 1, 6), as SKS reads it; ValueError otherwise."""
    parts = text.split(".", 2)
    if len(parts) != 3 or not all(_VERSION_PART.fullmatch(p) for p in parts):
        raise ValueError("unreadable version %r" % peer_text(text.encode("utf-8")))
    return int(parts[0]), int(parts[1]), int(parts[2])


def _filter_set(filters: str) -> frozenset:
    return frozenset(f for f in filters.split(",") if f)


def check_config(theirs: Config, ours: Config) -> Optional[str]:
    """Why the peer's Config is refused, or None to proceed.  SKS's checks, in
    its order (reconCS.ml test_configdata): version at least 0.1.5, the same
    filter set (order does not matter), the same bitquantum and mbar.  A
    missing entry (the http port included) is refused too.  The peer's
    version and filters are quoted as `peer_text` (until 2026-12-07 uncut: a
    10 MiB filters value went into every log line and last error)."""
    if None in (theirs.version, theirs.filters, theirs.bitquantum, theirs.mbar,
                theirs.http_port):
        return "Missing entry in configdata"
    assert theirs.version is not None and theirs.filters is not None
    try:
        version = parse_version(theirs.version)
    except ValueError as exc:
        return "Error parsing configdata: %s" % exc
    if version < MIN_VERSION:
        return "Requires version at least %s.  %s provided" % (
            ".".join(map(str, MIN_VERSION)), peer_text(theirs.version.encode("utf-8")))
    if _filter_set(theirs.filters) != _filter_set(ours.filters or ""):
        return "filters do not match.\n\tlocal filters: %s\n\tremote filters: %s" % (
            ours.filters, peer_text(theirs.filters.encode("utf-8")))
    if theirs.bitquantum != ours.bitquantum:
        return "bitquantum values do not match"
    if theirs.mbar != ours.mbar:
        return "mbar values do not match"
    return None

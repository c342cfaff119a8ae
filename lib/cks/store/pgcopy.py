"""PostgreSQL's binary COPY format, as bytes (no I/O here): many rows written
with one COPY instead of an INSERT whose values are SQL literals.  A key's
bytes as a bytea literal are hex text twice their size, which PostgreSQL
then parses back; in the binary format they travel as they are.

The format (PostgreSQL's documentation, "COPY", Binary Format): a signature
and two 32-bit words; per row a 16-bit field count, then per field a 32-bit
length (-1: NULL) and the value in the type's binary form; a 16-bit -1 ends
the data.  Integers are big-endian.
"""

from __future__ import annotations

import functools
import struct
from typing import Any, Callable, Dict, Iterable, Iterator, List, Sequence

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
NULL = struct.pack("!i", -1)
_LENGTH = struct.Struct("!i").pack


def _with_length(data: bytes) -> bytes:
    return _LENGTH(len(data)) + data


ENCODERS: Dict[str, Callable[[Any], bytes]] = {
    "smallint": functools.partial(struct.Struct("!ih").pack, 2),
    "integer": functools.partial(struct.Struct("!ii").pack, 4),
    "bigint": functools.partial(struct.Struct("!iq").pack, 8),
    "boolean": lambda value: b"\x00\x00\x00\x01\x01" if value else b"\x00\x00\x00\x01\x00",
    "text": lambda value: _with_length(value.encode("utf-8")),
    "bytea": _with_length,
}
"""Each column type the COPYs here write: a value as its field, its length
then its binary form (format_type names).  One call a field: a bulk load
encodes fifteen for every key."""


def encoders_for(types: Dict[str, str], columns: Sequence[str]) -> List[Callable[[Any], bytes]]:
    """The encoder of each column, from the table's column types; a type
    not in ENCODERS is refused here rather than sent wrong."""
    missing = [c for c in columns if types.get(c) not in ENCODERS]
    if missing:
        raise ValueError("no binary COPY encoding for column(s) %s (types: %s)"
                         % (", ".join(missing), ", ".join(str(types.get(c)) for c in missing)))
    return [ENCODERS[types[c]] for c in columns]


def encode_rows(encoders: Sequence[Callable[[Any], bytes]], rows: Iterable[Sequence[Any]],
                max_bytes: int = 1 << 62) -> Iterator[bytes]:
    """The COPY data (header, rows, trailer) for `rows`, as one COPY's, or
    several once a COPY's fields add up to `max_bytes`."""
    count = struct.pack("!h", len(encoders))
    parts, size = [HEADER], 0
    for row in rows:
        fields = [NULL if value is None else encode(value)
                  for encode, value in zip(encoders, row)]
        parts.append(count)
        parts += fields
        size += sum(map(len, fields))
        if size >= max_bytes:
            parts.append(TRAILER)
            yield b"".join(parts)
            parts, size = [HEADER], 0
    if len(parts) > 1:
        parts.append(TRAILER)
        yield b"".join(parts)

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

import struct
from typing import Any, Callable, Dict, Iterable, List, Sequence

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
NULL = struct.pack("!i", -1)

ENCODERS: Dict[str, Callable[[Any], bytes]] = {
    "smallint": struct.Struct("!h").pack,
    "integer": struct.Struct("!i").pack,
    "bigint": struct.Struct("!q").pack,
    "boolean": lambda value: b"\x01" if value else b"\x00",
    "text": lambda value: value.encode("utf-8"),
    "bytea": bytes,
}
"""Binary form of each column type the COPYs here write (format_type names)."""


def encoders_for(types: Dict[str, str], columns: Sequence[str]) -> List[Callable[[Any], bytes]]:
    """The encoder of each column, from the table's column types; a type
    not in ENCODERS is refused here rather than sent wrong."""
    missing = [c for c in columns if types.get(c) not in ENCODERS]
    if missing:
        raise ValueError("no binary COPY encoding for column(s) %s (types: %s)"
                         % (", ".join(missing), ", ".join(str(types.get(c)) for c in missing)))
    return [ENCODERS[types[c]] for c in columns]


def encode_rows(encoders: Sequence[Callable[[Any], bytes]], rows: Iterable[Sequence[Any]]) -> bytes:
    """The whole COPY data (header, rows, trailer) for `rows`."""
    count = struct.pack("!h", len(encoders))
    parts = [HEADER]
    for row in rows:
        parts.append(count)
        for encode, value in zip(encoders, row):
            if value is None:
                parts.append(NULL)
            else:
                data = encode(value)
                parts.append(struct.pack("!i", len(data)))
                parts.append(data)
    parts.append(TRAILER)
    return b"".join(parts)

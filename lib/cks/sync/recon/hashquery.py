"""The bodies of SKS's `POST /pks/hashquery`, free of I/O.

After a reconciliation round each side knows the key hashes it lacks and
asks the peer's HTTP port for them (SKS 1.1.6: reconserver.ml asks,
dbserver.ml answers):

- request body: int count, then count x (int 16, the 16 hash bytes);
- answer body (content type `pgp/keys`): int count, then count x (int length,
  binary key), then CRLF.  SKS and Hockeypuck both write the CRLF; a reader
  tolerates its absence.  Hashes the answerer does not hold are left out.

An int is 4 bytes big-endian (SKS's cMarshal).  The hash bytes are the MD5
digest as `cks_keys.sks_hash` spells it in hex (the recon set element is
those bytes read little-endian: field.element_of_hash).

Both sides of the wire face a stranger, so the decoders refuse anything but
the exact format, each with a reason fit for a 400 answer or a log line: a
count or length that does not fit the bytes present (checked before anything
is sliced, so a 4 GiB length field over a 50-byte body allocates nothing), a
hash of another length than 16, bytes left over, more hashes than a server
answers in one request, a bigger answer than a client accepts.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO, Iterable, List, Optional, Sequence

from .field import HASH_BYTES

PATH = "/pks/hashquery"
CONTENT_TYPE = "pgp/keys"  # what SKS calls it; not a registered type
SKS_BATCH = 100  # SKS asks for 100 hashes per request
MAX_HASHES = 1000  # per request, what cksd answers: 10 x SKS's batch
MAX_ANSWER_BYTES = 32 << 20  # what fetch.py reads of one answer, by default
TERMINATOR = b"\r\n"

_INT = struct.Struct(">I")


class HashQueryError(ValueError):
    """A hashquery body that breaks the format; the message says how."""


def _int(value: int) -> bytes:
    return _INT.pack(value)


def _read_int(body: bytes, pos: int, what: str) -> int:
    if pos + 4 > len(body):
        raise HashQueryError("truncated at offset %d: no room for the %s" % (pos, what))
    return _INT.unpack_from(body, pos)[0]


# --- the request -----------------------------------------------------------------

def encode_request(hashes: Iterable[bytes]) -> bytes:
    """The request body for these 16-byte hashes, in the order given."""
    hashes = list(hashes)
    for digest in hashes:
        if len(digest) != HASH_BYTES:
            raise ValueError("a key hash has %d bytes, not %d" % (len(digest), HASH_BYTES))
    return _int(len(hashes)) + b"".join(_int(HASH_BYTES) + bytes(d) for d in hashes)


def decode_request(body: bytes, max_hashes: int = MAX_HASHES) -> List[bytes]:
    """The hashes asked for, duplicates dropped, first-asked order kept.

    The count is checked against `max_hashes` and against the body's length
    before the hashes are read, so a huge count costs nothing.
    """
    count = _read_int(body, 0, "hash count")
    if count > max_hashes:
        raise HashQueryError("%d hashes in one request; this server answers at most %d"
                             % (count, max_hashes))
    entry = 4 + HASH_BYTES
    if len(body) != 4 + count * entry:
        raise HashQueryError("%d hashes need a body of %d bytes; this one has %d"
                             % (count, 4 + count * entry, len(body)))
    hashes: List[bytes] = []
    seen = set()
    for index in range(count):
        pos = 4 + index * entry
        length = _read_int(body, pos, "hash length")
        if length != HASH_BYTES:
            raise HashQueryError("hash %d has length %d; SKS key hashes have %d bytes"
                                 % (index + 1, length, HASH_BYTES))
        digest = bytes(body[pos + 4:pos + entry])
        if digest not in seen:
            seen.add(digest)
            hashes.append(digest)
    return hashes


# --- the answer ------------------------------------------------------------------

def encode_answer(keys: Sequence[bytes], terminator: bool = True) -> bytes:
    """The answer body: the binary keys, each with its length, then CRLF (as
    SKS writes it; SKS's own reader stops after the keys)."""
    body = io.BytesIO()
    write_answer(body, keys, terminator)
    return body.getvalue()


def write_answer(out: BinaryIO, keys: Iterable[bytes], terminator: bool = True) -> int:
    """Write the answer body (encode_answer's) to `out`, a seekable file at
    its start, taking the keys one at a time: an answer of hundreds of
    megabytes need not be in memory (cksd's, app.py).  Its count goes in
    last, in the place held for it.  The number of keys."""
    out.write(_int(0))
    count = 0
    for key in keys:
        out.write(_int(len(key)))
        out.write(key)
        count += 1
    if terminator:
        out.write(TERMINATOR)
    end = out.tell()
    out.seek(0)
    out.write(_int(count))
    out.seek(end)
    return count


def decode_answer(body: bytes, max_keys: Optional[int] = None,
                  max_bytes: int = MAX_ANSWER_BYTES) -> List[bytes]:
    """The binary keys of an answer (each an OpenPGP key, not parsed here).

    `max_keys`: the number of hashes asked for; an answer holding more keys
    than that is not an answer to the request.  `max_bytes`: the largest
    answer accepted (the HTTP client stops reading past it; this checks it
    again for bodies from elsewhere).
    """
    if len(body) > max_bytes:
        raise HashQueryError("answer of %d bytes is over the limit of %d"
                             % (len(body), max_bytes))
    count = _read_int(body, 0, "key count")
    if max_keys is not None and count > max_keys:
        raise HashQueryError("answer holds %d keys for %d hashes asked for"
                             % (count, max_keys))
    if 4 + count * 4 > len(body):  # every key needs at least its length field
        raise HashQueryError("answer declares %d keys; its %d bytes cannot hold them"
                             % (count, len(body)))
    keys: List[bytes] = []
    pos = 4
    for index in range(count):
        length = _read_int(body, pos, "length of key %d" % (index + 1))
        pos += 4
        if length > len(body) - pos:
            raise HashQueryError("key %d declares %d bytes; only %d follow"
                                 % (index + 1, length, len(body) - pos))
        keys.append(bytes(body[pos:pos + length]))
        pos += length
    rest = bytes(body[pos:])
    if rest not in (b"", TERMINATOR):
        raise HashQueryError("%d unexpected bytes after the %d keys" % (len(rest), count))
    return keys

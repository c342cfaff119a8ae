"""Many small, valid OpenPGP keys for benchmarks: v4 EdDSA (Ed25519) keys, one
user ID each, with real self-signatures made by the `cryptography` package
(a bench-only dependency; the keyserver itself never imports it)."""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Iterator

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "lib"))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402

from cks.openpgp.packet import Packet  # noqa: E402
from cks.openpgp.signature import Subpacket, serialize_subpackets  # noqa: E402

ED25519_OID = bytes.fromhex("2b06010401da470f01")


def _mpi(value: bytes) -> bytes:
    value = value.lstrip(b"\0")
    bits = len(value) * 8 - (8 - value[0].bit_length()) if value else 0
    return bits.to_bytes(2, "big") + value


def make_key(index: int, created: int = 1704067200) -> bytes:
    """A binary transferable public key: primary key, user ID, self-signature."""
    secret = Ed25519PrivateKey.generate()
    public = secret.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    body = (b"\x04" + created.to_bytes(4, "big") + bytes((22, len(ED25519_OID))) + ED25519_OID
            + _mpi(b"\x40" + public))
    fingerprint = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).digest()
    uid = ("Bench Key %d <bench%d@example.org>" % (index, index)).encode()
    hashed = serialize_subpackets([
        Subpacket(2, created.to_bytes(4, "big")),
        Subpacket(33, b"\x04" + fingerprint),
        Subpacket(27, b"\x03"),
    ])
    head = bytes((4, 0x13, 22, 8)) + len(hashed).to_bytes(2, "big") + hashed
    digest = hashlib.sha256(b"\x99" + len(body).to_bytes(2, "big") + body
                            + b"\xb4" + len(uid).to_bytes(4, "big") + uid
                            + head + b"\x04\xff" + len(head).to_bytes(4, "big")).digest()
    signature = secret.sign(digest)
    unhashed = serialize_subpackets([Subpacket(16, fingerprint[-8:])])
    sig = (head + len(unhashed).to_bytes(2, "big") + unhashed + digest[:2]
           + _mpi(signature[:32]) + _mpi(signature[32:]))
    return b"".join(Packet(tag, data).serialize() for tag, data in
                    ((6, body), (13, uid), (2, sig)))


def make_keys(count: int, start: int = 0) -> Iterator[bytes]:
    for index in range(start, start + count):
        yield make_key(index)

"""Signature packets, versions 3, 4, 5 and 6, and their subpackets (RFC 9580 5.2).

Version 5 is LibrePGP's: laid out like version 4.  Subpacket areas are parsed
when the packet is; the raw areas are kept so that serialize() gives the body
back byte for byte, including unusual subpacket length encodings.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Collection, Dict, List, NamedTuple, Optional, Tuple

from . import algorithms as alg
from .errors import PacketError
from .packet import encode_length
from .reader import Reader, iter_subpackets, subpacket_spans

# Signature types (RFC 9580 5.2.1).
SIG_BINARY = 0x00
SIG_TEXT = 0x01
CERT_GENERIC = 0x10
CERT_PERSONA = 0x11
CERT_CASUAL = 0x12
CERT_POSITIVE = 0x13
CERTIFICATIONS = frozenset({CERT_GENERIC, CERT_PERSONA, CERT_CASUAL, CERT_POSITIVE})
ATTESTATION = 0x16
SUBKEY_BINDING = 0x18
PRIMARY_KEY_BINDING = 0x19
DIRECT_KEY = 0x1F
KEY_REVOCATION = 0x20
SUBKEY_REVOCATION = 0x28
CERT_REVOCATION = 0x30

# Subpacket types (RFC 9580 5.2.3.7 ff.).
SUB_CREATION_TIME = 2
SUB_EXPIRATION_TIME = 3
SUB_EXPORTABLE = 4
SUB_KEY_EXPIRATION_TIME = 9
SUB_REVOCATION_KEY = 12
SUB_ISSUER = 16
SUB_NOTATION = 20
SUB_PRIMARY_USER_ID = 25
SUB_KEY_FLAGS = 27
SUB_REVOCATION_REASON = 29
SUB_EMBEDDED_SIGNATURE = 32
SUB_ISSUER_FINGERPRINT = 33
SUB_ATTESTED_CERTIFICATIONS = 37

_V4_HEAD = struct.Struct(">BBBH")
_V6_HEAD = struct.Struct(">BBBI")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")

# v6 salt sizes per hash algorithm (RFC 9580 table 23).
SALT_SIZES = {8: 16, 9: 24, 10: 32, 11: 16, 12: 16, 14: 32}


class Subpacket(NamedTuple):
    type: int
    data: bytes
    critical: bool = False


def keyid_of(fingerprint: bytes) -> bytes:
    """The key ID of a v4 (the low 64 bits) or v5/v6 fingerprint (the high 64 bits)."""
    return fingerprint[-8:] if len(fingerprint) == 20 else fingerprint[:8]


class RevocationKey(NamedTuple):
    """A designated revoker named in a Revocation Key subpacket."""

    klass: int
    algorithm: int
    fingerprint: bytes


def parse_subpackets(area: bytes) -> List[Subpacket]:
    """The subpackets of one area (hashed or unhashed)."""
    return [Subpacket(kind & 0x7F, data, bool(kind & 0x80))
            for kind, data in iter_subpackets(area, "signature subpacket area")]


def serialize_subpackets(subpackets: List[Subpacket]) -> bytes:
    """An area holding `subpackets`, each with the shortest length encoding."""
    return b"".join(encode_length(len(sub.data) + 1)
                    + bytes((sub.type | (0x80 if sub.critical else 0),)) + sub.data
                    for sub in subpackets)


@dataclass
class Signature:
    """A signature packet body, parsed; `serialize()` gives the body back."""

    version: int
    sig_type: int
    pubkey_algorithm: int
    hash_algorithm: int
    hash_prefix: bytes
    material: bytes  # the signature values (MPIs or native bytes) as in the packet
    hashed_area: bytes = b""
    unhashed_area: bytes = b""
    salt: bytes = b""  # v6
    v3_created: int = 0  # v2/v3: creation time and issuer live outside subpackets
    v3_issuer: bytes = b""

    @classmethod
    def parse(cls, body: bytes) -> "Signature":
        reader = Reader(body, "signature packet")
        version = reader.u8()
        if version in (2, 3):
            if reader.u8() != 5:
                raise PacketError("v3 signature: hashed material length must be 5")
            sig_type = reader.u8()
            created = reader.u32()
            issuer = reader.take(8)
            pk_algo, hash_algo = reader.u8(), reader.u8()
            prefix = reader.take(2)
            material = reader.rest()
            _check_material(pk_algo, material)
            return cls(version, sig_type, pk_algo, hash_algo, prefix, material,
                       v3_created=created, v3_issuer=issuer)
        if version not in (4, 5, 6):
            raise PacketError("unsupported signature version %d" % version)
        # The fixed fields are read with struct: this runs once per signature
        # of every key loaded, so it is the parser's hot path.
        wide = version == 6
        size = 4 if wide else 2
        try:
            sig_type, pk_algo, hash_algo, hashed_len = _V6_HEAD.unpack_from(body, 1) if wide \
                else _V4_HEAD.unpack_from(body, 1)
            pos = 4 + size
            hashed_area = body[pos:pos + hashed_len]
            pos += hashed_len
            (unhashed_len,) = (_U32 if wide else _U16).unpack_from(body, pos)
        except struct.error:
            raise PacketError("signature packet: truncated") from None
        pos += size
        unhashed_area = body[pos:pos + unhashed_len]
        pos += unhashed_len
        prefix = body[pos:pos + 2]
        pos += 2
        if pos > len(body):
            raise PacketError("signature packet: truncated")
        salt = b""
        if wide:
            reader = Reader(body, "signature packet", pos)
            salt = reader.take(reader.u8())
            pos = reader.pos
            expected = SALT_SIZES.get(hash_algo)
            if expected is not None and len(salt) != expected:
                raise PacketError("v6 signature: salt of %d bytes for hash algorithm %d"
                                  % (len(salt), hash_algo))
        material = body[pos:]
        _check_material(pk_algo, material)
        hashed = _scan_area(hashed_area)
        unhashed = _scan_area(unhashed_area)
        sig = cls(version, sig_type, pk_algo, hash_algo, prefix, material,
                  hashed_area, unhashed_area, salt)
        # What grouping and sorting need, found while checking the framing: the
        # full subpacket lists are only built when something asks for them.
        created = hashed.get(SUB_CREATION_TIME)
        sig.__dict__["created"] = int.from_bytes(created, "big") \
            if created is not None and len(created) == 4 else None
        issuer_fpr = hashed.get(SUB_ISSUER_FINGERPRINT) or unhashed.get(SUB_ISSUER_FINGERPRINT)
        sig.__dict__["issuer_fingerprint"] = issuer_fpr[1:] \
            if issuer_fpr is not None and len(issuer_fpr) > 1 else None
        issuer = hashed.get(SUB_ISSUER) or unhashed.get(SUB_ISSUER)
        sig.__dict__["_issuer"] = issuer if issuer is not None and len(issuer) == 8 else None
        return sig

    def serialize(self) -> bytes:
        if self.version in (2, 3):
            return (bytes((self.version, 5, self.sig_type)) + self.v3_created.to_bytes(4, "big")
                    + self.v3_issuer + bytes((self.pubkey_algorithm, self.hash_algorithm))
                    + self.hash_prefix + self.material)
        size = 4 if self.version == 6 else 2
        out = (bytes((self.version, self.sig_type, self.pubkey_algorithm, self.hash_algorithm))
               + len(self.hashed_area).to_bytes(size, "big") + self.hashed_area
               + len(self.unhashed_area).to_bytes(size, "big") + self.unhashed_area
               + self.hash_prefix)
        if self.version == 6:
            out += bytes((len(self.salt),)) + self.salt
        return out + self.material

    # --- subpacket accessors -------------------------------------------------

    @cached_property
    def hashed(self) -> List[Subpacket]:
        return parse_subpackets(self.hashed_area)

    @cached_property
    def unhashed(self) -> List[Subpacket]:
        return parse_subpackets(self.unhashed_area)

    @cached_property
    def _hashed_by_type(self) -> Dict[int, Subpacket]:
        """The last hashed subpacket of each type (RFC 9580: later ones win)."""
        return {sub.type: sub for sub in self.hashed}

    def _hashed_u32(self, kind: int) -> Optional[int]:
        """A four-octet time field of the hashed area; one of another length
        reads as absent, as a malformed creation time does (Signature.parse)."""
        sub = self._hashed_by_type.get(kind)
        if sub is None or len(sub.data) != 4:
            return None
        return int.from_bytes(sub.data, "big")

    @cached_property
    def created(self) -> Optional[int]:
        if self.version in (2, 3):
            return self.v3_created
        return self._hashed_u32(SUB_CREATION_TIME)

    @property
    def expiration_seconds(self) -> Optional[int]:
        """Signature validity after creation; None or 0 means it never expires."""
        return self._hashed_u32(SUB_EXPIRATION_TIME)

    @property
    def key_expiration_seconds(self) -> Optional[int]:
        """Key validity after the KEY's creation; None or 0 means never."""
        return self._hashed_u32(SUB_KEY_EXPIRATION_TIME)

    @cached_property
    def issuer_fingerprint(self) -> Optional[bytes]:
        for sub in self.hashed + self.unhashed:
            if sub.type == SUB_ISSUER_FINGERPRINT and len(sub.data) > 1:
                return sub.data[1:]
        return None

    @cached_property
    def _issuer(self) -> Optional[bytes]:
        for sub in self.hashed + self.unhashed:
            if sub.type == SUB_ISSUER and len(sub.data) == 8:
                return sub.data
        return None

    @property
    def issuer_keyid(self) -> Optional[bytes]:
        """The signer's 8-byte key ID, from the issuer or issuer-fingerprint subpacket."""
        if self.version in (2, 3):
            return self.v3_issuer
        if self._issuer is not None:
            return self._issuer
        fingerprint = self.issuer_fingerprint
        return None if fingerprint is None else keyid_of(fingerprint)

    def names_issuer(self, fingerprints: Collection[bytes]) -> bool:
        """Does the signature name one of these keys as its issuer (by
        fingerprint, or by key ID when it carries no issuer fingerprint)?"""
        fingerprint = self.issuer_fingerprint
        if fingerprint is not None:
            return fingerprint in fingerprints
        keyid = self.issuer_keyid
        return keyid is not None and any(keyid_of(f) == keyid for f in fingerprints)

    @property
    def is_primary_user_id(self) -> bool:
        sub = self._hashed_by_type.get(SUB_PRIMARY_USER_ID)
        return bool(sub is not None and sub.data[:1] not in (b"", b"\0"))

    @property
    def key_flags(self) -> Optional[int]:
        sub = self._hashed_by_type.get(SUB_KEY_FLAGS)
        return int.from_bytes(sub.data[:2], "little") if sub is not None else None

    @property
    def revocation_reason(self) -> Optional[Tuple[int, str]]:
        sub = self._hashed_by_type.get(SUB_REVOCATION_REASON)
        if sub is None or not sub.data:
            return None
        return sub.data[0], sub.data[1:].decode("utf-8", "replace")

    @property
    def revocation_keys(self) -> List[RevocationKey]:
        out = []
        for sub in self.hashed:
            if sub.type == SUB_REVOCATION_KEY and len(sub.data) >= 22:
                out.append(RevocationKey(sub.data[0], sub.data[1], sub.data[2:]))
        return out

    @property
    def exportable(self) -> bool:
        sub = self._hashed_by_type.get(SUB_EXPORTABLE)
        return sub is None or sub.data[:1] != b"\0"

    @property
    def embedded_signatures(self) -> List["Signature"]:
        return [Signature.parse(sub.data) for sub in self.hashed + self.unhashed
                if sub.type == SUB_EMBEDDED_SIGNATURE]

    @property
    def expires(self) -> Optional[int]:
        """When this signature stops being valid (epoch seconds), or None."""
        created, seconds = self.created, self.expiration_seconds
        if created is None or not seconds:
            return None
        return created + seconds


_EAGER_SUBPACKETS = frozenset({SUB_CREATION_TIME, SUB_ISSUER, SUB_ISSUER_FINGERPRINT})


def _scan_area(area: bytes) -> Dict[int, bytes]:
    """Check a subpacket area's framing without building objects, and return the
    data of the subpackets every signature is asked for (last one of each type).

    Every signature of every key loaded passes through here: it spares the cost
    of parse_subpackets, which runs only when something needs the full list.
    """
    found: Dict[int, bytes] = {}
    for kind, start, end in subpacket_spans(area, "signature subpacket area"):
        kind &= 0x7F
        if kind in _EAGER_SUBPACKETS:
            found[kind] = area[start:end]
    return found


def _mpi_end(material: bytes, pos: int) -> int:
    if pos + 2 > len(material):
        raise PacketError("signature values: truncated MPI")
    end = pos + 2 + ((material[pos] << 8 | material[pos + 1]) + 7) // 8
    if end > len(material):
        raise PacketError("signature values: truncated MPI")
    return end


def mpi_count(algorithm: int) -> Optional[int]:
    """How many MPIs a signature of `algorithm` holds; None: its values are
    not MPIs (native octets, or an algorithm we do not know)."""
    if algorithm in alg.RSA_ALGORITHMS:
        return 1
    return 2 if algorithm in _TWO_MPI_ALGORITHMS else None


def _check_material(algorithm: int, material: bytes) -> None:
    """Check that the signature values have the shape the algorithm needs."""
    count = mpi_count(algorithm)
    if count is not None:
        end = 0
        for _ in range(count):
            end = _mpi_end(material, end)
    elif algorithm in alg.NATIVE_SIGNATURE_SIZES:
        end = alg.NATIVE_SIGNATURE_SIZES[algorithm]
    else:
        return  # an algorithm we do not know: kept opaque
    if end != len(material):
        raise PacketError("signature values (algorithm %d): %d bytes where %d were expected"
                          % (algorithm, len(material), end))


_TWO_MPI_ALGORITHMS = frozenset({alg.DSA, alg.ECDSA, alg.EDDSA_LEGACY}) | alg.ELGAMAL_ALGORITHMS

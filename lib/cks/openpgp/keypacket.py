"""Public key and public subkey packets, versions 3, 4, 5 and 6 (RFC 9580 5.5)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional, Tuple

from . import algorithms as alg
from .errors import PacketError
from .reader import Reader

MAX_V4_BODY = 0xFFFF
"""The longest key packet body that a v4 fingerprint, and a signature over a
v2-v4 key, can hash: they write the body's length in two octets."""

PublicParams = Tuple[bytes, ...]  # the material's fields: MPI values, OIDs, native keys


def algorithm_of(body: bytes) -> int:
    """A key packet's algorithm octet, read as PublicKey.parse finds it (after
    the version, creation time and, for v2/v3, validity days) without
    parsing the key material; -1 for a body too short to hold one."""
    at = 7 if body[:1] in (b"\x02", b"\x03") else 5
    return body[at] if len(body) > at else -1


@dataclass
class PublicKey:
    """A public (sub)key packet body, parsed; `serialize()` gives the body back."""

    version: int
    created: int
    algorithm: int
    material: bytes  # the algorithm-specific fields exactly as in the packet
    validity_days: int = 0  # v3 only
    params: PublicParams = field(default=(), compare=False, repr=False)
    _fingerprint: Optional[bytes] = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, body: bytes) -> "PublicKey":
        reader = Reader(body, "public key packet")
        version = reader.u8()
        if version in (2, 3):
            created = reader.u32()
            validity = reader.u16()
            algorithm = reader.u8()
            if algorithm not in alg.RSA_ALGORITHMS:
                raise PacketError("v3 public key with non-RSA algorithm %d" % algorithm)
            material = reader.rest()
            return cls(version, created, algorithm, material, validity,
                       _parse_material(algorithm, material))
        if version == 4:
            if len(body) > MAX_V4_BODY:
                raise PacketError("v4 key packet of %d bytes: over the 65,535 a v4 "
                                  "fingerprint can take" % len(body))
            created = reader.u32()
            algorithm = reader.u8()
            material = reader.rest()
        elif version in (5, 6):
            created = reader.u32()
            algorithm = reader.u8()
            length = reader.u32()
            material = reader.take(length)
            reader.end()
        else:
            raise PacketError("unsupported public key version %d" % version)
        return cls(version, created, algorithm, material, 0,
                   _parse_material(algorithm, material))

    def serialize(self) -> bytes:
        out = bytes((self.version,)) + self.created.to_bytes(4, "big")
        if self.version in (2, 3):
            out += self.validity_days.to_bytes(2, "big")
        out += bytes((self.algorithm,))
        if self.version in (5, 6):
            out += len(self.material).to_bytes(4, "big")
        return out + self.material

    @property
    def fingerprint(self) -> bytes:
        if self._fingerprint is None:
            self._fingerprint = fingerprint_of(self.version, self.serialize(), self.params)
        return self._fingerprint

    @property
    def keyid(self) -> bytes:
        """The 8-byte key ID: low 64 bits (v3: of n; v4: of the fingerprint), high 64 for v5/v6."""
        if self.version in (2, 3):
            return self.params[0][-8:].rjust(8, b"\0")
        if self.version == 4:
            return self.fingerprint[-8:]
        return self.fingerprint[:8]

    @property
    def curve(self) -> Optional[alg.Curve]:
        if self.algorithm in alg.OID_ALGORITHMS:
            return alg.CURVES.get(self.params[0])
        return None

    @property
    def bits(self) -> int:
        """Key size as GnuPG reports it: bits of n or p, or the curve's size."""
        if self.algorithm in alg.RSA_ALGORITHMS or self.algorithm == alg.DSA \
                or self.algorithm in alg.ELGAMAL_ALGORITHMS:
            return int.from_bytes(self.params[0], "big").bit_length()
        if self.algorithm in alg.OID_ALGORITHMS:
            curve = self.curve
            return curve.bits if curve else 0
        return alg.NATIVE_BITS.get(self.algorithm, 0)

    @property
    def algorithm_name(self) -> str:
        curve = self.curve
        return alg.algorithm_name(self.algorithm, self.bits, curve.name if curve else "")


def versions_fit(key_version: int, version: int) -> bool:
    """May a key of `key_version` make a signature of `version`?  RFC 9580:
    v6 keys make v6 signatures, v4 keys v3 or v4 signatures (and v3 keys,
    v3 or v4 signatures); LibrePGP's v5 keys likewise v5 signatures.  (A v4
    key with a v6 part would also be one GnuPG 2.2 cannot read at all.)"""
    return max(key_version, 4) == max(version, 4)


def subkey_fits(key_version: int, subkey_version: int) -> bool:
    """May a primary key of `key_version` carry a subkey of `subkey_version`?
    RFC 9580: a v6 key v6 subkeys, a v4 key v4 subkeys.  A v5 key (LibrePGP)
    v5 or v4 subkeys: GnuPG 2.4 makes v5 keys with v4 subkeys (an Ed448 key
    and a cv25519 subkey added to it) and uses them; GnuPG 2.2, which reads
    no v5 key, is not sent such a key anyway."""
    if key_version == 5:
        return subkey_version in (4, 5)
    return versions_fit(key_version, subkey_version)


def identify(body: bytes) -> Optional[Tuple[bytes, bytes]]:
    """(fingerprint, key ID) of a v4, v5 or v6 key packet body, without parsing
    its key material (which may not parse: PublicKey.parse says); None for
    other versions (a v3 key ID comes from the RSA modulus: parse it)."""
    version = body[0] if body else 0
    if version == 4 and len(body) <= MAX_V4_BODY:
        fingerprint = fingerprint_of(4, body, ())
        return fingerprint, fingerprint[-8:]
    if version in (5, 6):
        fingerprint = fingerprint_of(version, body, ())
        return fingerprint, fingerprint[:8]
    return None


def fingerprint_of(version: int, body: bytes, params: PublicParams) -> bytes:
    """The fingerprint of a key packet body (RFC 9580 5.5.4; v5 as
    draft-ietf-openpgp-rfc4880bis-10 12.2, v2/v3 as RFC 4880 12.2)."""
    if version in (2, 3):
        return hashlib.md5(params[0] + params[1]).digest()
    if version == 4:
        return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).digest()
    prefix = b"\x9a" if version == 5 else b"\x9b"
    return hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body).digest()


def _parse_material(algorithm: int, material: bytes) -> PublicParams:
    reader = Reader(material, "public key material (algorithm %d)" % algorithm)
    if algorithm in alg.RSA_ALGORITHMS:
        params: PublicParams = (reader.mpi(), reader.mpi())
    elif algorithm == alg.DSA:
        params = (reader.mpi(), reader.mpi(), reader.mpi(), reader.mpi())
    elif algorithm in alg.ELGAMAL_ALGORITHMS:
        params = (reader.mpi(), reader.mpi(), reader.mpi())
    elif algorithm in (alg.ECDSA, alg.EDDSA_LEGACY):
        params = (reader.oid(), reader.mpi())
    elif algorithm == alg.ECDH:
        oid = reader.oid()
        point = reader.mpi()
        kdf_length = reader.u8()
        params = (oid, point, reader.take(kdf_length))
    elif algorithm in alg.NATIVE_KEY_SIZES:
        params = (reader.take(alg.NATIVE_KEY_SIZES[algorithm]),)
    else:
        return (material,)  # an algorithm we do not know: kept opaque
    reader.end()
    return params

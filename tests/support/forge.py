"""Keys and signatures made in tests, for cases the fixtures lack: stolen
subkeys, missing back-signatures, weak-hash third-party certifications.

Keys are v4 EdDSA (legacy, algorithm 22) Ed25519, or v5 (LibrePGP) or v6
Ed25519 (algorithm 27) with v5 or v6 signatures, signed with `cryptography`;
what a signature covers comes from cks.openpgp.sighash, whose output the
fixtures and GnuPG check independently.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cks.openpgp import signature as sg
from cks.openpgp.keypacket import PublicKey
from cks.openpgp.packet import (TAG_PUBLIC_KEY, TAG_PUBLIC_SUBKEY, TAG_SIGNATURE,
                               TAG_USER_ATTRIBUTE, TAG_USER_ID, Packet)
from cks.openpgp.sighash import Target, signature_digest
from cks.openpgp.userid import UserID
from cks.openpgp.signature import Signature, Subpacket, serialize_subpackets

OID_ED25519 = bytes.fromhex("2b06010401da470f01")
CREATED = 1704067200  # 2024-01-01


def mpi(value: bytes) -> bytes:
    stripped = value.lstrip(b"\0")
    return int.from_bytes(stripped, "big").bit_length().to_bytes(2, "big") + stripped


@dataclass
class Signer:
    private: Ed25519PrivateKey
    public: PublicKey

    @classmethod
    def new(cls, created: int = CREATED, version: int = 4,
            seed: Optional[bytes] = None) -> "Signer":
        """A v4 key (EdDSA, algorithm 22), or a v5 or v6 key (Ed25519,
        algorithm 27), which makes v5 or v6 signatures (v6: salted; both name
        the key by its fingerprint); `seed` (32 bytes): the same key every run."""
        private = Ed25519PrivateKey.from_private_bytes(seed) if seed is not None \
            else Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        if version in (5, 6):
            body = bytes((version,)) + created.to_bytes(4, "big") + bytes((27,)) + \
                len(raw).to_bytes(4, "big") + raw
        else:
            body = (b"\x04" + created.to_bytes(4, "big") + bytes((22, len(OID_ED25519)))
                    + OID_ED25519 + mpi(b"\x40" + raw))
        return cls(private, PublicKey.parse(body))

    def sign(self, sig_type: int, primary: PublicKey, target: Target,
             hashed: Sequence[Subpacket] = (), created: int = CREATED,
             hash_algorithm: int = 8, named: bool = True,
             version: Optional[int] = None) -> Signature:
        """A signature by this key over `primary` and `target`, of the version
        the key makes (v4, v5 or v6) unless `version` says another (which
        RFC 9580 forbids); `named`: with issuer fingerprint (and for v4,
        issuer key ID) subpackets."""
        if version is None:
            version = self.public.version if self.public.version in (5, 6) else 4
        area = [Subpacket(sg.SUB_CREATION_TIME, created.to_bytes(4, "big"))]
        unhashed = []
        if named:
            area.append(Subpacket(sg.SUB_ISSUER_FINGERPRINT,
                                  bytes((self.public.version,)) + self.public.fingerprint))
            if version == 4:
                unhashed.append(Subpacket(sg.SUB_ISSUER, self.public.keyid))
        sig = Signature(version, sig_type, self.public.algorithm, hash_algorithm, b"\0\0", b"",
                        serialize_subpackets(area + list(hashed)),
                        serialize_subpackets(unhashed),
                        salt=os.urandom(sg.SALT_SIZES[hash_algorithm]) if version == 6 else b"")
        digest = signature_digest(sig, primary, target)
        raw = self.private.sign(digest)
        sig.hash_prefix = digest[:2]
        sig.material = raw if self.public.algorithm == 27 else mpi(raw[:32]) + mpi(raw[32:])
        return Signature.parse(sig.serialize())

    def made_up(self, sig_type: int, primary: PublicKey, target: Target, created: int,
                rng: random.Random) -> Signature:
        """A signature that names this key and has the right digest prefix,
        but whose values are made up: each costs a check to tell."""
        sig = self.sign(sig_type, primary, target, created=created)
        sig.material = mpi(rng.randbytes(32)) + mpi(rng.randbytes(32))
        return Signature.parse(sig.serialize())


def key_flags(flags: int) -> Subpacket:
    return Subpacket(sg.SUB_KEY_FLAGS, bytes((flags,)))


def embedded(sig: Signature) -> Subpacket:
    return Subpacket(sg.SUB_EMBEDDED_SIGNATURE, sig.serialize())


def image_attribute(*images: Tuple[int, bytes]) -> Packet:
    """A user attribute packet holding image subpackets, (format, data) each."""
    return Packet(TAG_USER_ATTRIBUTE, serialize_subpackets([
        Subpacket(1, b"\x10\x00\x01" + bytes((image_format,)) + bytes(12) + data)
        for image_format, data in images]))


def keyring(packets: Iterable[Packet]) -> bytes:
    return b"".join(packet.serialize() for packet in packets)


def self_signed_key(seed: bytes, user_ids: Sequence[bytes]) -> Tuple[str, bytes]:
    """(fingerprint, key data) of a key, the same every run (`seed`: 32
    bytes), whose user IDs (raw bytes, not UTF-8 if need be) are each validly
    self-signed."""
    signer = Signer.new(seed=seed)
    packets = [Packet(6, signer.public.serialize())]
    for value in user_ids:
        packets += [Packet(13, value), Packet(2, signer.sign(
            sg.CERT_POSITIVE, signer.public, UserID(value)).serialize())]
    return signer.public.fingerprint.hex().upper(), keyring(packets)


def made_up_self_signatures(primary: PublicKey, uid: bytes, count: int) -> List[Packet]:
    """A user ID for a DSA `primary` (whose private key we lack) and `count`
    self-certifications on it whose values are made up: each looks real up
    to the check (issuer, the digest's first two bytes), so each costs a
    DSA check to tell it is not."""
    q = int.from_bytes(primary.params[1], "big")
    rng = random.Random(count)
    user_id = UserID(uid)
    packets = [Packet(13, user_id.value)]
    for n in range(count):
        hashed = [Subpacket(sg.SUB_CREATION_TIME, (CREATED + n).to_bytes(4, "big")),
                  Subpacket(sg.SUB_ISSUER_FINGERPRINT, b"\x04" + primary.fingerprint)]
        sig = Signature(4, 0x13, primary.algorithm, 8, b"", b"".join(
            mpi(rng.randrange(1, q).to_bytes(len(primary.params[1]), "big")) for _ in "rs"),
            serialize_subpackets(hashed))
        sig.hash_prefix = signature_digest(sig, primary, user_id)[:2]
        packets.append(Packet(2, sig.serialize()))
    return packets


def key_of_made_up_self_signatures(primary: PublicKey, count: int) -> bytes:
    """Key data: the DSA `primary` and a user ID with `count` made-up
    self-signatures on it (made_up_self_signatures)."""
    return keyring([Packet(6, primary.serialize())] + made_up_self_signatures(
        primary, b"Made Up <made-up@example.org>", count))


def v3_key_of_id(keyid: str, created: int = CREATED) -> bytes:
    """A bare v3 RSA public key whose key ID is `keyid` (16 hex): a v3 key's
    ID is the low 64 bits of its modulus, so anyone can take any ID (no
    secret key behind it)."""
    low = int(keyid, 16)
    modulus = (random.getrandbits(2048) | (1 << 2047)) >> 64 << 64 | low
    body = (bytes((3,)) + created.to_bytes(4, "big") + bytes(2) + bytes((1,))
            + mpi(modulus.to_bytes(256, "big")) + mpi((65537).to_bytes(3, "big")))
    return Packet(6, body).serialize()


def key_binding(subkeys: Sequence[PublicKey], uid: bytes, revoked_by_v6: bool = False,
                owner: Optional[Signer] = None) -> bytes:
    """A v4 key (`owner`'s, else a new one) with `uid` that binds the public
    keys `subkeys` (someone else's: no secret key is needed) as its
    subkeys, for authentication and encryption, which no back-signature
    proves; `revoked_by_v6`: it also names a v6 key its designated revoker,
    whose revocation of it (a v6 signature, which GnuPG 2.2 cannot read) is
    served unverified."""
    owner, revoker = owner or Signer.new(), Signer.new(version=6)
    hashed = [Subpacket(sg.SUB_REVOCATION_KEY, bytes((0x80, 27))
                        + revoker.public.fingerprint)] if revoked_by_v6 else []
    packets = [Packet(TAG_PUBLIC_KEY, owner.public.serialize())]
    if revoked_by_v6:
        packets.append(Packet(TAG_SIGNATURE, revoker.sign(
            sg.KEY_REVOCATION, owner.public, None).serialize()))
    packets += [Packet(TAG_USER_ID, uid), Packet(TAG_SIGNATURE, owner.sign(
        sg.CERT_POSITIVE, owner.public, UserID(uid), hashed).serialize())]
    for subkey in subkeys:
        packets += [Packet(TAG_PUBLIC_SUBKEY, subkey.serialize()),
                    Packet(TAG_SIGNATURE, owner.sign(
                        sg.SUBKEY_BINDING, owner.public, subkey, [key_flags(0x2C)]
                    ).serialize())]
    return keyring(packets)

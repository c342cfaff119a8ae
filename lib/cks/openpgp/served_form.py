"""A signature as a keyserver serves it: one form for every byte-variant of
it, and nothing GnuPG cannot read.

Neither a signature's unhashed subpacket area nor the encoding of its values
is signed: anyone can take a copy of Alice's self-signature, fill its
unhashed area or pad its MPIs with zero octets, and the copy verifies as
well as the original.  Served beside it, such a copy made GnuPG read nothing
of the answer ("unhashed data too long", "mpi too large") until 2026-12-07,
`--refresh-keys` included, so anyone could keep a key's revocation from its
users (a review found it).  Served in this form the copies are the one
signature they copy: the unhashed area keeps only the issuer subpackets
and an embedded signature (itself in this form), the first of each, never
critical, an issuer fingerprint only of the signature's version (as
Sequoia's normalize() and Hagrid keep the same subpackets); the values are
encoded minimally.  GnuPG's own signatures (an issuer key ID alone in the
unhashed area) are in this form already.  A signature GnuPG
cannot parse even so (a hashed area over its limit: a certification with a
10 KB notation) is not served.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

from . import signature as sg
from .errors import PacketError
from .keys import Key, SignaturePacket
from .packet import TAG_SIGNATURE, Packet
from .reader import Reader

GNUPG_AREA_BYTES = 10_000
"""The most octets GnuPG reads in a subpacket area (parse-packet.c: "hashed
data too long", "unhashed data too long")."""
GNUPG_MPI_BITS = 16_384
"""GnuPG's largest MPI ("mpi too large")."""
UNHASHED_KEPT = frozenset({sg.SUB_ISSUER, sg.SUB_ISSUER_FINGERPRINT, sg.SUB_EMBEDDED_SIGNATURE})
_FINGERPRINT_SHAPES = {4: {(b"\x04", 21)}, 5: {(b"\x05", 33)}, 6: {(b"\x06", 33)}}
"""(version octet, length) of the issuer fingerprint a signature of each version names."""


def key_in_served_form(key: Key) -> Key:
    """`key` with each signature in the served form, once, and those GnuPG
    could not read left out."""
    return dataclasses.replace(
        key, direct_sigs=_entries(key.direct_sigs),
        identities=[dataclasses.replace(c, sigs=_entries(c.sigs)) for c in key.identities],
        subkeys=[dataclasses.replace(c, sigs=_entries(c.sigs)) for c in key.subkeys])


def _entries(entries: List[SignaturePacket]) -> List[SignaturePacket]:
    out = {}
    for entry in entries:
        form = served_form(entry.sig)
        if form is None:
            continue
        if form is not entry.sig:
            entry = SignaturePacket(Packet(TAG_SIGNATURE, form.serialize()), form)
        out.setdefault(entry.packet.body, entry)
    return list(out.values())


def served_form(sig: sg.Signature) -> Optional[sg.Signature]:
    """`sig` in the served form (itself when it is in it already), or None
    when GnuPG could not read it."""
    if len(sig.hashed_area) > GNUPG_AREA_BYTES:
        return None
    if _plain(sig.unhashed_area) and _minimal(sig.pubkey_algorithm, sig.material):
        return sig  # (most signatures: parsed no further)
    values = _minimal_values(sig.pubkey_algorithm, sig.material)
    if values is None:
        return None
    unhashed = sig.unhashed_area if sig.version in (2, 3) else _unhashed_kept(sig)
    if len(unhashed) > GNUPG_AREA_BYTES:
        return None
    if values == sig.material and unhashed == sig.unhashed_area:
        return sig
    return sg.Signature.parse(dataclasses.replace(
        sig, material=values, unhashed_area=unhashed).serialize())


def _unhashed_kept(sig: sg.Signature) -> bytes:
    """The unhashed area as served (see the module notes)."""
    kept = {}
    for sub in sig.unhashed:
        if sub.type not in UNHASHED_KEPT or sub.type in kept:
            continue
        data = sub.data
        if sub.type == sg.SUB_ISSUER_FINGERPRINT and \
                (data[:1], len(data)) not in _FINGERPRINT_SHAPES.get(sig.version, ()):
            continue
        if sub.type == sg.SUB_EMBEDDED_SIGNATURE:
            try:
                inner = served_form(sg.Signature.parse(data))
            except PacketError:
                continue
            if inner is None:
                continue
            data = inner.serialize()
        kept[sub.type] = sg.Subpacket(sub.type, data)
    return sg.serialize_subpackets(list(kept.values()))


def _plain(unhashed: bytes) -> bool:
    """Is this unhashed area empty, or an issuer key ID alone (GnuPG's)?"""
    return not unhashed or len(unhashed) == 10 and unhashed[:2] == b"\x09\x10"


def _minimal(algorithm: int, material: bytes) -> bool:
    """Are the values' MPIs (if any) each in their shortest encoding?"""
    return all(bits <= GNUPG_MPI_BITS and bits == _bit_length(value)
               for bits, value in _mpis(algorithm, material) or ())


def _minimal_values(algorithm: int, material: bytes) -> Optional[bytes]:
    """The signature values with each MPI in its shortest encoding (no
    leading zero octets); None when one is longer than GnuPG reads."""
    mpis = _mpis(algorithm, material)
    if mpis is None:
        return material  # (native octets of a fixed size, or opaque)
    out = b""
    for _, value in mpis:
        number = int.from_bytes(value, "big")
        if number.bit_length() > GNUPG_MPI_BITS:
            return None
        out += number.bit_length().to_bytes(2, "big") + \
            number.to_bytes((number.bit_length() + 7) // 8, "big")
    return out


def _mpis(algorithm: int, material: bytes) -> Optional[List[Tuple[int, bytes]]]:
    """(bit count as encoded, value octets) of each MPI of the signature
    values, which Signature.parse checked the shape of; None when the values
    are not MPIs."""
    count = sg.mpi_count(algorithm)
    if count is None:
        return None
    reader = Reader(material, "signature values")
    out = []
    for _ in range(count):
        bits = reader.u16()
        out.append((bits, reader.take((bits + 7) // 8)))
    return out


def _bit_length(value: bytes) -> int:
    """The bits of the number these octets hold, leading zeros left out."""
    return 8 * (len(value) - 1) + value[0].bit_length() if value else 0

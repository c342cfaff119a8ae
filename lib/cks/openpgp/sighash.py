"""What a signature over a key covers (RFC 9580 section 5.2.4; LibrePGP for v5).

A key signature hashes, in order: the v6 salt; the primary key; the user ID,
user attribute or subkey it binds (if any); then the signature's own trailer.
Which of those the signature type asks for is `TARGETS` below.
"""

from __future__ import annotations

from typing import Optional, Union

from ..crypto.hashes import new_hash
from . import signature as sg
from .errors import PacketError
from .keypacket import MAX_V4_BODY, PublicKey
from .signature import Signature
from .userid import UserAttribute, UserID

Target = Union[None, UserID, UserAttribute, PublicKey]

# What each signature type is made over, besides the primary key.
OVER_KEY = "key"  # the primary key alone
OVER_IDENTITY = "identity"  # primary key + user ID or user attribute
OVER_SUBKEY = "subkey"  # primary key + subkey
TARGETS = {
    **{kind: OVER_IDENTITY for kind in sg.CERTIFICATIONS},
    sg.CERT_REVOCATION: OVER_IDENTITY,
    sg.ATTESTATION: OVER_IDENTITY,
    sg.SUBKEY_BINDING: OVER_SUBKEY,
    sg.SUBKEY_REVOCATION: OVER_SUBKEY,
    sg.PRIMARY_KEY_BINDING: OVER_SUBKEY,
    sg.DIRECT_KEY: OVER_KEY,
    sg.KEY_REVOCATION: OVER_KEY,
}


def target_kind(target: Target) -> str:
    if target is None:
        return OVER_KEY
    return OVER_SUBKEY if isinstance(target, PublicKey) else OVER_IDENTITY


def hashed_key(key: PublicKey) -> bytes:
    """A key as signatures hash it: 0x99 + 2-octet length (v2-v4), 0x9A (v5) or
    0x9B (v6) + 4-octet length, then the packet body."""
    body = key.serialize()
    if key.version <= 4:
        if len(body) > MAX_V4_BODY:
            raise PacketError("v%d key packet of %d bytes is too long to be signed"
                              % (key.version, len(body)))
        return b"\x99" + len(body).to_bytes(2, "big") + body
    prefix = b"\x9a" if key.version == 5 else b"\x9b"
    return prefix + len(body).to_bytes(4, "big") + body


def hashed_identity(identity: Union[UserID, UserAttribute], sig_version: int) -> bytes:
    """A user ID (0xB4) or user attribute (0xD1) with a 4-octet length; v3
    signatures hash the bare contents."""
    body = identity.serialize()
    if sig_version < 4:
        return body
    tag = b"\xb4" if isinstance(identity, UserID) else b"\xd1"
    return tag + len(body).to_bytes(4, "big") + body


def trailer(sig: Signature) -> bytes:
    """The signature's own hashed fields and final length trailer."""
    if sig.version < 4:
        return bytes((sig.sig_type,)) + sig.v3_created.to_bytes(4, "big")
    size = 4 if sig.version == 6 else 2
    fields = (bytes((sig.version, sig.sig_type, sig.pubkey_algorithm, sig.hash_algorithm))
              + len(sig.hashed_area).to_bytes(size, "big") + sig.hashed_area)
    length = len(fields).to_bytes(8 if sig.version == 5 else 4, "big")
    return fields + bytes((sig.version, 0xFF)) + length


def signed_data(sig: Signature, primary: PublicKey, target: Target) -> Optional[bytes]:
    """Everything `sig` hashes after the salt, or None when its type cannot be
    made over `target` (a certification on a subkey, a binding on a user ID, ...)."""
    kind = TARGETS.get(sig.sig_type)
    if kind is None or kind != target_kind(target):
        return None
    data = hashed_key(primary)
    if isinstance(target, PublicKey):
        data += hashed_key(target)
    elif target is not None:
        data += hashed_identity(target, sig.version)
    return data + trailer(sig)


def signature_digest(sig: Signature, primary: PublicKey, target: Target) -> Optional[bytes]:
    """The digest `sig` signs, or None as for signed_data.  Raises
    UnsupportedAlgorithm for a hash algorithm we do not have."""
    data = signed_data(sig, primary, target)
    if data is None:
        return None
    digest = new_hash(sig.hash_algorithm)
    digest.update(sig.salt)
    digest.update(data)
    return digest.digest()

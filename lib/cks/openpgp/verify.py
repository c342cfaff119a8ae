"""Cryptographic verification of the signatures on a key.

`verify` answers one question: did `issuer` make `sig` over this key and
component?  The answer is a `Verdict`: valid, invalid, or unsupported (an
algorithm, curve or hash we cannot check), plus whether a weak hash (MD5,
SHA-1, RIPEMD-160) was used.  The verdict is pure mathematics and structure;
what a weak hash means for a key is policy, applied by the caller (see
`cryptocheck`).  Expiry, revocation and signature dates are not looked at.
A signature whose version does not fit the key that made it (a v6 one by a
v4 key, a v4 one by a v6 key: `keypacket.versions_fit`) is invalid, and so
is one the key made before it was created (`made_before_maker`).

Beyond the signature itself, a subkey binding (0x18) for a subkey that may
sign or certify is only valid with a valid embedded primary key binding
signature (0x19, the "back-signature") made by the subkey: without it anyone
could attach someone else's signing subkey to their own key.

Hostile input yields an invalid verdict; nothing but PGPError escapes, and the
primitives bound the work (moduli up to 16384 bits; RSA exponents are capped
here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from ..crypto import UnsupportedAlgorithm, dsa, ecc, eddsa, rsa
from ..crypto.hashes import WEAK_HASHES, new_hash
from . import algorithms as alg
from . import signature as sg
from .errors import PGPError
from .keypacket import PublicKey, versions_fit
from .keys import Component, Key
from .reader import Reader
from .sighash import Target, signature_digest, trailer
from .signature import Signature

VALID = "valid"
INVALID = "invalid"
UNSUPPORTED = "unsupported"

# Real keys use e = 3, 17, 41, 65537 or a 32-bit value; a huge exponent only
# costs time (a 16384-bit e on a 16384-bit modulus takes seconds).
MAX_RSA_EXPONENT_BITS = 64

# Key flags (RFC 9580 5.2.3.29) that make a subkey one that issues signatures.
_SIGNING_FLAGS = 0x01 | 0x02

_ED25519_OID = bytes.fromhex("2b06010401da470f01")
_ED448_OID = bytes.fromhex("2b6571")  # 1.3.101.113: GnuPG 2.4's ed448 keys (LibrePGP)

NO_BACKSIG = "signing subkey without a valid primary key binding signature (0x19)"


@dataclass(frozen=True)
class Verdict:
    status: str  # VALID, INVALID or UNSUPPORTED
    weak_hash: bool = False  # MD5, SHA-1 or RIPEMD-160, here or in the back-signature
    reason: str = ""  # why it is not valid

    @property
    def valid(self) -> bool:
        return self.status == VALID


def verify(key: Key, component: Optional[Component], sig: Signature,
           issuer: PublicKey) -> Verdict:
    """Did `issuer` make `sig` over `key` and `component` (None: the primary key)?"""
    return verify_signature(key.public_key, component.value if component else None,
                            sig, issuer)


def verify_signature(primary: PublicKey, target: Target, sig: Signature,
                     issuer: PublicKey) -> Verdict:
    """Did `issuer` make `sig` over `primary` and `target` (a UserID,
    UserAttribute or subkey PublicKey; None for the primary key alone)?"""
    weak = sig.hash_algorithm in WEAK_HASHES
    try:
        return _verify(primary, target, sig, issuer, weak)
    except UnsupportedAlgorithm as exc:
        return Verdict(UNSUPPORTED, weak, str(exc))
    except PGPError as exc:
        return Verdict(INVALID, weak, str(exc))


def verify_document(data: bytes, sig: Signature, signer: PublicKey) -> Verdict:
    """Did `signer` make `sig`, a detached signature over `data` (type 0x00,
    binary, or 0x01, text with line ends made CRLF)?"""
    weak = sig.hash_algorithm in WEAK_HASHES
    if sig.sig_type == sg.SIG_TEXT:
        data = b"\r\n".join(line.rstrip(b"\r") for line in data.split(b"\n"))
    elif sig.sig_type != sg.SIG_BINARY:
        return Verdict(INVALID, weak, "signature type 0x%02X is not a document signature"
                       % sig.sig_type)
    if not _same_algorithm(sig.pubkey_algorithm, signer.algorithm):
        return Verdict(INVALID, weak, "signature algorithm %d, signer key algorithm %d"
                       % (sig.pubkey_algorithm, signer.algorithm))
    try:
        digest = new_hash(sig.hash_algorithm)
        digest.update(sig.salt)
        digest.update(data)
        digest.update(trailer(sig))
        value = digest.digest()
        if value[:2] != sig.hash_prefix:
            return Verdict(INVALID, weak, "hash prefix does not match")
        if not check_values(sig, signer, value):
            return Verdict(INVALID, weak, "bad signature")
    except UnsupportedAlgorithm as exc:
        return Verdict(UNSUPPORTED, weak, str(exc))
    except PGPError as exc:
        return Verdict(INVALID, weak, str(exc))
    return Verdict(VALID, weak)


def unfit_version(sig: Signature, issuer: PublicKey) -> Optional[Verdict]:
    """INVALID when the signature's version does not fit its issuer's
    (versions_fit), else None.  CryptoCheck asks it before it takes a cached
    verdict: those cached until 2026-12-06 did not look at it."""
    if versions_fit(issuer.version, sig.version):
        return None
    return Verdict(INVALID, False, "a v%d key cannot make a v%d signature"
                   % (issuer.version, sig.version))


def made_before_maker(primary: PublicKey, sig: Signature, issuer: PublicKey) -> Optional[Verdict]:
    """INVALID when `sig` is the key's own (a self-signature, or a subkey's
    back-signature) and is dated before `issuer`, the key that made it, was
    created, else None.  GnuPG refuses such a signature ("public key ... is
    N days newer than the signature"): a key revocation dated before the key
    does not revoke it, a user ID with only such self-signatures is no user
    ID.  GnuPG 2.2 does not look at the date of a certification by another
    key, and neither does this.  CryptoCheck asks it before it takes a
    cached verdict: those cached until 2026-12-06 did not look at it."""
    own = issuer.fingerprint == primary.fingerprint or sig.sig_type == sg.PRIMARY_KEY_BINDING
    if own and sig.created is not None and sig.created < issuer.created:
        return Verdict(INVALID, False, "made before the key that made it")
    return None


def has_backsig_before_subkey(target: Target, sig: Signature) -> bool:
    """`sig` binds the subkey `target` and embeds a back-signature dated
    before that subkey (which made_before_maker refuses): verdicts on such
    bindings cached until 2026-12-06 did not look at it."""
    if sig.sig_type != sg.SUBKEY_BINDING or not isinstance(target, PublicKey):
        return False
    try:
        embedded = sig.embedded_signatures
    except PGPError:
        return False
    return any(backsig.sig_type == sg.PRIMARY_KEY_BINDING and backsig.created is not None
               and backsig.created < target.created for backsig in embedded)


def _verify(primary: PublicKey, target: Target, sig: Signature, issuer: PublicKey,
            weak: bool) -> Verdict:
    refused = unfit_version(sig, issuer) or made_before_maker(primary, sig, issuer)
    if refused is not None:
        return refused
    if sig.version == 6 and sig.hash_algorithm not in sg.SALT_SIZES:
        return Verdict(INVALID, weak, "hash algorithm %d is not allowed in v6 signatures"
                       % sig.hash_algorithm)
    if not _same_algorithm(sig.pubkey_algorithm, issuer.algorithm):
        return Verdict(INVALID, weak, "signature algorithm %d, issuer key algorithm %d"
                       % (sig.pubkey_algorithm, issuer.algorithm))
    digest = signature_digest(sig, primary, target)
    if digest is None:
        return Verdict(INVALID, weak, "signature type 0x%02X does not belong here"
                       % sig.sig_type)
    if digest[:2] != sig.hash_prefix:
        return Verdict(INVALID, weak, "hash prefix does not match")
    if not check_values(sig, issuer, digest):
        return Verdict(INVALID, weak, "bad signature")
    if sig.sig_type == sg.SUBKEY_BINDING and isinstance(target, PublicKey) \
            and (sig.key_flags or 0) & _SIGNING_FLAGS:
        return _with_backsig(primary, target, sig, weak)
    return Verdict(VALID, weak)


def _with_backsig(primary: PublicKey, subkey: PublicKey, binding: Signature,
                  weak: bool) -> Verdict:
    """The verdict on a good binding of a signing subkey: its back-signature's."""
    try:
        embedded = binding.embedded_signatures
    except PGPError:
        embedded = []
    unsupported = None
    for backsig in embedded:
        if backsig.sig_type != sg.PRIMARY_KEY_BINDING:
            continue
        verdict = verify_signature(primary, subkey, backsig, subkey)
        if verdict.valid:
            return Verdict(VALID, weak or verdict.weak_hash)
        if verdict.status == UNSUPPORTED:
            unsupported = verdict
    if unsupported is not None:
        return Verdict(UNSUPPORTED, weak, "back-signature: " + unsupported.reason)
    return Verdict(INVALID, weak, NO_BACKSIG)


def _same_algorithm(sig_algorithm: int, key_algorithm: int) -> bool:
    if sig_algorithm in alg.RSA_ALGORITHMS:
        return key_algorithm in alg.RSA_ALGORITHMS
    return sig_algorithm == key_algorithm


def _mpis(material: bytes, count: int) -> List[int]:
    reader = Reader(material, "signature values")
    values = [int.from_bytes(reader.mpi(), "big") for _ in range(count)]
    reader.end()
    return values


def check_values(sig: Signature, issuer: PublicKey, digest: bytes) -> bool:
    """The public-key step: do the signature values fit `digest` under `issuer`?

    Raises UnsupportedAlgorithm for an algorithm or curve we cannot check and
    PGPError for values that cannot be decoded.
    """
    algorithm, params = issuer.algorithm, issuer.params
    if algorithm in alg.RSA_ALGORITHMS:
        n, e = (int.from_bytes(v, "big") for v in params)
        if e.bit_length() > MAX_RSA_EXPONENT_BITS:
            return False
        (s,) = _mpis(sig.material, 1)
        return rsa.verify_pkcs1v15(n, e, sig.hash_algorithm, digest, s)
    if algorithm == alg.DSA:
        p, q, g, y = (int.from_bytes(v, "big") for v in params)
        r, s = _mpis(sig.material, 2)
        return dsa.verify(p, q, g, y, digest, r, s)
    if algorithm == alg.ECDSA:
        r, s = _mpis(sig.material, 2)
        return ecc.ecdsa_verify(params[0], params[1], digest, r, s)
    if algorithm == alg.EDDSA_LEGACY:
        if params[0] == _ED448_OID:
            return _ed448_legacy(params[1], digest, sig)
        if params[0] != _ED25519_OID:
            raise UnsupportedAlgorithm("EdDSA (legacy) on curve OID %s" % params[0].hex())
        point = params[1]
        if len(point) != 33 or point[0] != 0x40:
            return False
        r, s = _mpis(sig.material, 2)
        if r.bit_length() > 256 or s.bit_length() > 256:
            return False
        return eddsa.ed25519_verify(point[1:], digest, r.to_bytes(32, "big")
                                    + s.to_bytes(32, "big"))
    if algorithm == alg.ED25519:
        return eddsa.ed25519_verify(params[0], digest, sig.material)
    if algorithm == alg.ED448:
        return eddsa.ed448_verify(params[0], digest, sig.material)
    raise UnsupportedAlgorithm("public key algorithm %d cannot be verified" % algorithm)


def _ed448_legacy(point: bytes, digest: bytes, sig: Signature) -> bool:
    """EdDSA (algorithm 22) on Ed448, as GnuPG 2.4 makes it (its v5 keys): the
    native 57-octet point and the signature's R and S as two 57-octet
    numbers (SOS: leading zero octets may be left out), over the digest.
    (Until 2026-12-06 this curve was not checked, and such a key was served
    with no user ID and no subkey.)"""
    if len(point) == 58 and point[0] == 0x40:  # (a 0x40 prefix, as for Ed25519)
        point = point[1:]
    if len(point) > 57:
        return False
    r, s = _mpis(sig.material, 2)
    if r.bit_length() > 456 or s.bit_length() > 456:
        return False
    return eddsa.ed448_verify(point.rjust(57, b"\0"), digest,
                              r.to_bytes(57, "big") + s.to_bytes(57, "big"))

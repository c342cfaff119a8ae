"""`CryptoCheck`: the SignatureCheck that counts only signatures that verify.

Weak hashes (MD5, SHA-1, RIPEMD-160) are reported in every Verdict and
judged here:
- self-signatures count whatever their hash.  A collision attack needs the
  signer to sign data the attacker chose; for a self-signature the signer is
  the key's owner, so the attack gains nothing, while refusing would strip
  user IDs and subkeys from old keys still in use (one Debian key self-signs
  with RIPEMD-160).  GnuPG accepts SHA-1 self-signatures for the same reason.
- third-party signatures (certifications by other keys, designated
  revocations) with a weak hash count only when made before
  `WEAK_HASH_CUTOFF`: from 2019 chosen-prefix collisions on SHA-1 became
  practical ("SHA-1 is a Shambles" forged a PGP key certification), and the
  creation time is set by the signer, not by an attacker who needs its
  signature.

Verdicts can be cached: pass a mapping (a dict, or an object backed by the
database with `get` and item assignment) and every signature is verified
once.  Its keys are `cache_key(...)`, 32 bytes; its values are Verdicts,
which hold only the cryptographic answer, so a policy change here never
needs the cache cleared.
"""

from __future__ import annotations

import hashlib
from typing import MutableMapping, Optional

from .info import SignatureCheck
from .keypacket import PublicKey
from .keys import Component, Key, SignaturePacket
from .signature import Signature
from .verify import Verdict, has_backsig_before_subkey, made_before_maker, unfit_version, verify

# 2019-01-19T00:00:00Z, the date GnuPG also uses for SHA-1 key signatures.
WEAK_HASH_CUTOFF = 1547856000

_CACHE_KEY_VERSION = b"cks-verdict-1"


def cache_key(key: Key, component: Optional[Component], entry: SignaturePacket,
              issuer: PublicKey) -> bytes:
    """SHA-256 of everything a verdict depends on: the primary key, the
    component (tag and body), the issuer key and the signature packet body."""
    digest = hashlib.sha256(_CACHE_KEY_VERSION)
    parts = (key.primary.body,
             bytes((component.packet.tag,)) + component.packet.body if component else b"",
             issuer.serialize(), entry.packet.body)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def names_other_issuer(sig: Signature, issuer: PublicKey) -> bool:
    """The signature names an issuer (fingerprint or key ID) other than `issuer`."""
    fingerprint = sig.issuer_fingerprint
    if fingerprint is not None:
        return fingerprint != issuer.fingerprint
    keyid = sig.issuer_keyid
    return keyid is not None and keyid != issuer.keyid


class CryptoCheck(SignatureCheck):
    """A signature counts when it verifies (see the module notes on weak hashes).

    Without `issuer_key` the signature must be a self-signature: issued by the
    primary key.  A signature naming another issuer is refused without any
    cryptography, so flooding a key with third-party signatures costs nothing
    here.
    """

    def __init__(self, cache: Optional[MutableMapping[bytes, Verdict]] = None,
                 weak_hash_cutoff: int = WEAK_HASH_CUTOFF) -> None:
        self.cache = cache
        self.weak_hash_cutoff = weak_hash_cutoff

    def verdict(self, key: Key, component: Optional[Component], entry: SignaturePacket,
                issuer: PublicKey) -> Verdict:
        """The (possibly cached) verdict on `entry` made by `issuer`."""
        # (whatever a verdict cached earlier says)
        refused = unfit_version(entry.sig, issuer) or made_before_maker(
            key.public_key, entry.sig, issuer)
        if refused is not None:
            return refused
        if self.cache is None or has_backsig_before_subkey(
                component.value if component else None, entry.sig):
            return verify(key, component, entry.sig, issuer)
        slot = cache_key(key, component, entry, issuer)
        verdict = self.cache.get(slot)
        if verdict is None:
            verdict = verify(key, component, entry.sig, issuer)
            self.cache[slot] = verdict
        return verdict

    def is_valid(self, key: Key, component: Optional[Component], entry: SignaturePacket,
                 issuer_key: Optional[PublicKey] = None) -> bool:
        issuer = issuer_key if issuer_key is not None else key.public_key
        if names_other_issuer(entry.sig, issuer):
            return False
        verdict = self.verdict(key, component, entry, issuer)
        if not verdict.valid:
            return False
        if verdict.weak_hash and issuer.fingerprint != key.fingerprint:
            created = entry.sig.created
            return created is not None and created < self.weak_hash_cutoff
        return True

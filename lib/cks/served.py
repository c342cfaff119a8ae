"""The served view of a key: what CKS hands to clients.

CKS stores the network's view of each key (every packet peers and users sent,
merged), so its SKS hash matches its SKS and Hockeypuck peers' and
reconciliation does not fetch the key again at every round.  It serves the
verified view, computed here when a key is stored:

- the primary key with its valid direct-key self-signatures and key
  revocations: by the key itself, or by a designated revoker named in a valid
  self-signature.  A designated revoker's revocation is served when it
  verifies, and also while the revoker's key is not held here: it is then
  served unverified (`ServedView.unverified`), since withholding a
  revocation is the one failure a keyserver must never have, and clients
  check it themselves; with the revoker's key held, one that fails to verify
  is withheld;
- user IDs and user attributes only with a valid self-certification (or a
  valid self-revocation, so that clients learn it was revoked), and only
  their valid self-signatures;
- subkeys only with a valid binding (with the back-signature a signing subkey
  needs), and their valid bindings and revocations; never a subkey whose
  version does not fit the primary key's (a v6 subkey of a v4 key), and no
  signature counts whose version does not fit its maker's (verify.py), so
  a v4 key's served view holds no v5 or v6 packet but a designated
  revoker's revocation (which is never withheld: app.py leaves such a key
  out of GnuPG's text searches);
- third-party certifications by policy: `all`, `verified` (the issuer's key is
  held here and the signature verifies), `attested` (listed in the key
  owner's newest valid attestation, 0x16) or `none`; newest first and at most
  `max_certifications` per user ID, so a flooded key stays small.  Under
  `verified` at most `max_certification_checks` checks for the whole key,
  taken by its user IDs in turn: certifications made up in any number cost
  that many checks at most, and those made up on one user ID cannot use up
  another's share.  (The self-signatures a view checks are bounded where
  keys are stored: pipeline.Limits.max_self_signatures_per_key.)  A key is
  served no certification of a newer version than its own (a v5 or v6 key's
  on a v4 key): GnuPG 2.2 refuses a whole answer holding a v5 or v6
  signature packet, and 2.4 one holding a v6, so anyone could otherwise make
  any v4 key unusable to GnuPG's users.  The network view keeps them;
- every signature in the served form (openpgp/served_form.py), once: its
  byte-variants (another unhashed area, padded values), which anyone can
  make and which verify as it does, are the one signature; none GnuPG
  cannot read (an area over 10,000 octets, a value over 16,384 bits);
- no local certification or self-signature (a hashed Exportable Certification
  subpacket of 0, as `gpg --lsign-key` makes): "key servers always trim local
  certifications" (RFC 9580, 5.2.3.19), and GnuPG skips them on import.  The
  network view keeps them, as SKS does.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Callable, Deque, List, Optional, Sequence, Set, Tuple

from .crypto.hashes import new_hash
from .crypto import UnsupportedAlgorithm
from .openpgp import signature as sg
from .openpgp.cryptocheck import CryptoCheck
from .openpgp.keypacket import PublicKey, subkey_fits
from .openpgp.keys import Component, Key, SignaturePacket, canonicalize
from .openpgp.served_form import key_in_served_form

CERTIFICATION_POLICIES = ("all", "verified", "attested", "none")

SERVED_VIEWS_VERSION = 4
"""The rules of served views (this module's, and views.py's: whose keys a
view follows): one more whenever they change what is served of keys
already stored, so that cksd derives every view again by itself
(older_views.py).  The database stores the value its views were derived
under (cks_schema_version.served_views); a new database gets this one in
schema.sql, which follows it.  1 (2026-12-06): every database made before
counts as older.  2 (2026-12-07): signatures in the served form
(openpgp/served_form.py).  3: a v5 key's v4 subkeys served
(keypacket.subkey_fits).  4: no self-signature or back-signature counts
that is dated before the key that made it (verify.made_before_maker); a
key expiry of 0, or a signature that has expired, states none
(openpgp/info.py: the index rows' expiry)."""

# keyid -> the public keys (primary keys of stored keys) with that key ID
IssuerLookup = Callable[[bytes], Sequence[PublicKey]]


@dataclass
class ServePolicy:
    certifications: str = "verified"
    max_certifications: int = 100  # per user ID, newest first
    max_certification_checks: int = 2_000  # per key (the Debian keyring's need 604 at most)

    def __post_init__(self) -> None:
        if self.certifications not in CERTIFICATION_POLICIES:
            raise ValueError("certification policy must be one of %s, not %r"
                             % (", ".join(CERTIFICATION_POLICIES), self.certifications))


def third_party_issuers(key: Key) -> Set[bytes]:
    """Key IDs of every other key that signed something on `key` (to look up
    their keys in one go before calling served_view)."""
    out: Set[bytes] = set()
    for entries in [key.key_sigs] + [c.sigs for c in key.identities]:
        for entry in entries:
            keyid = entry.sig.issuer_keyid
            if keyid is not None and not key.is_self_issued(entry.sig):
                out.add(keyid)
    return out


def attestation_digest(certification: sg.Signature, hash_algorithm: int) -> Optional[bytes]:
    """The digest an attestation (0x16) lists for a third-party certification:
    the packet hashed as 0x88 + 4-octet length + body with the unhashed area
    left out (length zero), as RFC 4880bis and Sequoia compute it."""
    if certification.version != 4:
        return None
    try:
        digest = new_hash(hash_algorithm)
    except UnsupportedAlgorithm:
        return None
    body = (bytes((4, certification.sig_type, certification.pubkey_algorithm,
                   certification.hash_algorithm))
            + len(certification.hashed_area).to_bytes(2, "big") + certification.hashed_area
            + b"\0\0" + certification.hash_prefix + certification.material)
    digest.update(b"\x88" + len(body).to_bytes(4, "big") + body)
    return digest.digest()


def _newest_first(entries: List[SignaturePacket]) -> List[SignaturePacket]:
    return sorted(entries, key=lambda e: -(e.sig.created or 0))


@dataclass
class ServedView:
    key: Key
    # designated revokers' revocations served although the revoker's key is
    # not held here to verify them
    unverified: List[SignaturePacket] = field(default_factory=list)


class _View:
    def __init__(self, key: Key, check: CryptoCheck, policy: ServePolicy,
                 issuers: IssuerLookup) -> None:
        self.key = key
        self.check = check
        self.policy = policy
        self.issuers = issuers
        self.unverified: List[SignaturePacket] = []
        self.checks_left = policy.max_certification_checks  # by_other's

    def self_valid(self, component: Optional[Component], entry: SignaturePacket) -> bool:
        return self.key.is_self_issued(entry.sig) and \
            self.check.is_valid(self.key, component, entry)

    def by_other(self, component: Optional[Component], entry: SignaturePacket) -> bool:
        """Issued by another key we hold, and it verifies (each held key with
        its issuer's key ID tried spends one of `checks_left`)."""
        keyid = entry.sig.issuer_keyid
        if keyid is None:
            return False
        for issuer in self.issuers(keyid):
            if self.checks_left <= 0:
                return False
            self.checks_left -= 1
            if self.check.is_valid(self.key, component, entry, issuer):
                return True
        return False

    def direct(self) -> List[SignaturePacket]:
        key_sigs = self.key.key_sigs  # (wherever they were placed)
        kept = [e for e in key_sigs
                if e.sig.sig_type in (sg.DIRECT_KEY, sg.KEY_REVOCATION)
                and self.self_valid(None, e)]
        revokers = {rk.fingerprint for e in kept for rk in e.sig.revocation_keys}
        for component in self.key.identities:
            revokers.update(rk.fingerprint for e in component.sigs
                            if e.sig.sig_type in sg.CERTIFICATIONS
                            and self.self_valid(component, e)
                            for rk in e.sig.revocation_keys)
        for entry in key_sigs:
            if entry.sig.sig_type != sg.KEY_REVOCATION or self.key.is_self_issued(entry.sig) \
                    or not entry.sig.names_issuer(revokers):
                continue
            held = [issuer for issuer in self.issuers(entry.sig.issuer_keyid)
                    if issuer.fingerprint in revokers]
            if not held:
                kept.append(entry)
                self.unverified.append(entry)
            elif any(self.check.is_valid(self.key, None, entry, issuer) for issuer in held):
                kept.append(entry)
        return kept

    def identity(self, component: Component) -> Optional[Component]:
        """The user ID or attribute with its valid self-signatures, or None;
        its certifications come after (certify)."""
        own = [e for e in component.sigs if e.sig.exportable and self.self_valid(component, e)
               and e.sig.sig_type in sg.CERTIFICATIONS | {sg.CERT_REVOCATION, sg.ATTESTATION}]
        if not any(e.sig.sig_type != sg.ATTESTATION for e in own):
            return None  # no valid self-certification or self-revocation: not served
        return Component(component.packet, component.value, own)

    def certify(self, identities: List[Tuple[Component, Component]]) -> None:
        """Add to each served identity (paired with the original it was made
        from) its served certifications: the user IDs take one candidate
        each in turn, each newest first, until it has `max_certifications`
        or the key's checks run out."""
        queues: List[Deque[SignaturePacket]] = [
            collections.deque(_newest_first(self.candidates(served.sigs, original)))
            for served, original in identities]
        kept: List[List[SignaturePacket]] = [[] for _ in identities]
        verified = self.policy.certifications == "verified"
        active = [i for i, queue in enumerate(queues) if queue]
        while active and (self.checks_left > 0 or not verified):
            for i in active:
                entry = queues[i].popleft()
                if not verified or self.by_other(identities[i][1], entry):
                    kept[i].append(entry)
            active = [i for i in active
                      if queues[i] and len(kept[i]) < self.policy.max_certifications]
        for (served, _), certifications in zip(identities, kept):
            served.sigs.extend(certifications)

    def candidates(self, own: List[SignaturePacket], original: Component
                   ) -> List[SignaturePacket]:
        """The certifications of `original` the policy may serve, given its
        valid self-signatures `own`."""
        policy = self.policy.certifications
        if policy == "none" or self.policy.max_certifications <= 0:
            return []
        readable = max(self.key.public_key.version, 4)  # (the newest signature version)
        others = [e for e in original.sigs if not self.key.is_self_issued(e.sig)
                  and e.sig.sig_type in sg.CERTIFICATIONS | {sg.CERT_REVOCATION}
                  and e.sig.version <= readable and e.sig.exportable]
        if policy != "attested" or not others:
            return others
        attested = self.attested(own)
        return [e for e in others if attestation_digest(e.sig, attested[0]) in attested[1]] \
            if attested else []

    @staticmethod
    def attested(own: List[SignaturePacket]) -> Optional[Tuple[int, Set[bytes]]]:
        """(hash algorithm, digests) of the newest valid attestation, or None."""
        attestations = [e for e in own if e.sig.sig_type == sg.ATTESTATION]
        if not attestations:
            return None
        newest = _newest_first(attestations)[0].sig
        digests: Set[bytes] = set()
        size = len(new_hash(newest.hash_algorithm).digest()) if newest.hash_algorithm else 0
        for sub in newest.hashed:
            if sub.type == sg.SUB_ATTESTED_CERTIFICATIONS and size:
                digests.update(sub.data[i:i + size] for i in range(0, len(sub.data), size))
        return newest.hash_algorithm, digests

    def subkey(self, component: Component) -> Optional[Component]:
        if not subkey_fits(self.key.public_key.version, component.value.version):
            return None
        bindings = [e for e in component.sigs if e.sig.sig_type == sg.SUBKEY_BINDING
                    and self.self_valid(component, e)]
        if not bindings:
            return None
        revocations = [e for e in component.sigs if e.sig.sig_type == sg.SUBKEY_REVOCATION
                       and self.self_valid(component, e)]
        return Component(component.packet, component.value, bindings + revocations)


def served_view(key: Key, check: CryptoCheck, policy: ServePolicy,
                issuers: Optional[IssuerLookup] = None) -> ServedView:
    """The verified view of `key` (see the module notes), its signatures in
    the served form (openpgp/served_form.py)."""
    key = key_in_served_form(key)
    view = _View(key, check, policy, issuers or (lambda keyid: ()))
    pairs = [(served, c) for c in key.identities for served in [view.identity(c)]
             if served is not None]
    view.certify(pairs)
    identities = [served for served, _ in pairs]
    subkeys = [c for c in (view.subkey(c) for c in key.subkeys) if c is not None]
    direct = view.direct()
    return ServedView(canonicalize(Key(key.primary, key.public_key, direct, identities,
                                       subkeys)), view.unverified)

"""What lookups need, derived from a key: dates, flags, user IDs, subkeys.

Which signatures count is decided in one place, `SignatureCheck`.  What
lookups show is derived from a key's served view (served.py), which holds
only signatures that verified, so the default, `StructuralCheck`, counts a
signature whose issuer is the key itself (by fingerprint or key ID) without
checking it again; `cks_admin.py show` reads a file's keys the same way,
unverified.

The rules follow GnuPG where it is specific:
- key expiry and key flags: the newest direct-key self-signature's, when it
  states them (RFC 9580: the newest direct-key self-signature rules, so an
  older one's are void once a newer one leaves them out, as
  `sq key expire never` writes it); else the newest self-certification's,
  over all user IDs that are not revoked, that states them; else none.
  A key expiry of 0 states none, and a signature that has expired (by its
  own signature expiration time, at `now`) states nothing (GnuPG's
  merge_selfsigs_main: the next signature's then counts; a user ID whose
  newest self-certification has expired gives nothing, not its older
  one's).  v3 keys: their validity days.
- revoked: a key revocation issued by the key, or by a designated revoker
  named in one of its self-signatures (unless the caller says that one is
  unverified: then `revocation_unverified` is set instead).
- a user ID is revoked when a self-issued certification revocation is at
  least as new as its newest self-certification; a subkey is revoked by any
  self-issued subkey revocation.
- a user ID expires when its newest self-certification does (the
  signature's expiration); a subkey when its key expiration in its newest
  binding passes, or that binding signature expires, whichever comes first
  (GnuPG counts neither once it has: `uid:e`, `sub:i`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import AbstractSet, Callable, Dict, List, Optional, Sequence

from . import signature as sg
from .keypacket import PublicKey
from .keys import Component, Key, SignaturePacket, sks_hash
from .packet import TAG_USER_ATTRIBUTE
from .userid import UserAttribute


class SignatureCheck:
    """Decides whether a signature on `key` (over `component`, or over the
    primary key when component is None) counts as issued by `issuer_key`."""

    def is_valid(self, key: Key, component: Optional[Component], entry: SignaturePacket,
                 issuer_key: Optional[PublicKey] = None) -> bool:
        raise NotImplementedError


class StructuralCheck(SignatureCheck):
    """Structure alone: a self-signature is one that names the key as issuer
    (what describe asks; it never asks about another issuer's)."""

    def is_valid(self, key: Key, component: Optional[Component], entry: SignaturePacket,
                 issuer_key: Optional[PublicKey] = None) -> bool:
        return key.is_self_issued(entry.sig)


STRUCTURAL = StructuralCheck()


@dataclass
class UserIDInfo:
    text: str
    email: Optional[str]
    is_attribute: bool
    created: Optional[int]  # of the newest self-certification
    expires: Optional[int]  # that certification's expiry
    revoked: bool
    primary: bool
    images: int = 0  # photo IDs in a user attribute


@dataclass
class SubkeyInfo:
    fingerprint: str
    keyid: str
    version: int
    algorithm: int
    algorithm_name: str
    bits: int
    created: int
    expires: Optional[int]  # the key's, or its newest binding's if that expires first
    revoked: bool
    key_flags: Optional[int]


@dataclass
class KeyInfo:
    fingerprint: str
    keyid: str
    version: int
    algorithm: int
    algorithm_name: str
    bits: int
    curve: Optional[str]
    created: int
    expires: Optional[int]
    revoked: bool
    key_flags: Optional[int]
    sks_hash: str
    user_ids: List[UserIDInfo] = field(default_factory=list)
    subkeys: List[SubkeyInfo] = field(default_factory=list)
    designated_revokers: List[str] = field(default_factory=list)
    revocation_unverified: bool = False  # a revocation by a designated revoker whose
    # key this server does not hold (served; clients check it themselves)

    def to_dict(self) -> Dict:
        return asdict(self)


def _newest(entries: List[SignaturePacket]) -> Optional[SignaturePacket]:
    return max(entries, key=lambda e: e.sig.created or 0, default=None)


def _expiry(created: int, sig: Optional[sg.Signature]) -> Optional[int]:
    if sig is None:
        return None
    seconds = sig.key_expiration_seconds
    return created + seconds if seconds else None


def describe(key: Key, check: SignatureCheck = STRUCTURAL,
             network: Optional[Key] = None,
             unverified: Sequence[SignaturePacket] = (),
             now: Optional[int] = None) -> KeyInfo:
    """The lookup fields of `key`, counting only signatures `check` accepts.

    `network`: the stored key `key` is a view of; the SKS hash is its (what
    peers reconcile on), not the view's.  `unverified`: key revocations that
    do not make the key revoked, only `revocation_unverified`.  `now` (by
    default the time of the call): which signatures have expired."""
    public = key.public_key
    moment = int(time.time()) if now is None else now

    def live(entry: SignaturePacket) -> bool:
        expires = entry.sig.expires
        return expires is None or expires > moment
    fingerprint = key.fingerprint

    def valid(component: Optional[Component], types: AbstractSet[int],
              entries: List[SignaturePacket]) -> List[SignaturePacket]:
        return [e for e in entries if e.sig.sig_type in types
                and check.is_valid(key, component, e)]

    direct = valid(None, {sg.DIRECT_KEY}, key.key_sigs)
    revokers = [rk for e in direct for rk in e.sig.revocation_keys]

    identities = []
    newest_certs: List[SignaturePacket] = []
    for component in key.identities:
        certs = valid(component, sg.CERTIFICATIONS, component.sigs)
        newest = _newest(certs)
        revocations = valid(component, {sg.CERT_REVOCATION}, component.sigs)
        revoked = bool(revocations) and (newest is None or max(
            r.sig.created or 0 for r in revocations) >= (newest.sig.created or 0))
        revokers.extend(rk for e in certs for rk in e.sig.revocation_keys)
        if newest is not None and not revoked and live(newest):
            newest_certs.append(newest)
        value = component.value
        is_attribute = component.packet.tag == TAG_USER_ATTRIBUTE
        identities.append(UserIDInfo(
            text="[user attribute]" if is_attribute else value.text,
            email=None if is_attribute else value.email,
            is_attribute=is_attribute,
            created=newest.sig.created if newest else None,
            expires=newest.sig.expires if newest else None,
            revoked=revoked,
            primary=bool(newest and newest.sig.is_primary_user_id),
            images=len(value.images) if isinstance(value, UserAttribute) else 0))

    newest_direct = _newest([e for e in direct if live(e)])

    def stating(states: Callable[[sg.Signature], bool]) -> Optional[SignaturePacket]:
        """The self-signature a key-wide setting comes from (module notes)."""
        if newest_direct is not None and states(newest_direct.sig):
            return newest_direct
        return _newest([c for c in newest_certs if states(c.sig)])

    flag_source = stating(lambda sig: sig.key_flags is not None)

    if public.version in (2, 3):
        expires = public.created + public.validity_days * 86400 if public.validity_days else None
    else:
        source = stating(lambda sig: bool(sig.key_expiration_seconds))
        expires = _expiry(public.created, source.sig if source else None)

    revoker_fprs = {rk.fingerprint for rk in revokers}
    unverified_bodies = {e.packet.body for e in unverified}
    revoked = revocation_unverified = False
    for entry in key.key_sigs:
        if entry.sig.sig_type != sg.KEY_REVOCATION:
            continue
        if entry.packet.body in unverified_bodies:
            revocation_unverified = True
        elif check.is_valid(key, None, entry) or entry.sig.names_issuer(revoker_fprs):
            revoked = True

    subkeys = []
    for component in key.subkeys:
        sub: PublicKey = component.value
        bindings = valid(component, {sg.SUBKEY_BINDING}, component.sigs)
        newest = _newest(bindings)
        ends = [] if newest is None else [_expiry(sub.created, newest.sig), newest.sig.expires]
        subkeys.append(SubkeyInfo(
            fingerprint=sub.fingerprint.hex().upper(),
            keyid=sub.keyid.hex().upper(),
            version=sub.version,
            algorithm=sub.algorithm,
            algorithm_name=sub.algorithm_name,
            bits=sub.bits,
            created=sub.created,
            expires=min((end for end in ends if end is not None), default=None),
            revoked=bool(valid(component, {sg.SUBKEY_REVOCATION}, component.sigs)),
            key_flags=newest.sig.key_flags if newest else None))

    curve = public.curve
    return KeyInfo(
        fingerprint=fingerprint.hex().upper(),
        keyid=key.keyid.hex().upper(),
        version=public.version,
        algorithm=public.algorithm,
        algorithm_name=public.algorithm_name,
        bits=public.bits,
        curve=curve.name if curve else None,
        created=public.created,
        expires=expires,
        revoked=revoked,
        key_flags=flag_source.sig.key_flags if flag_source else None,
        sks_hash=sks_hash(network or key).hex().upper(),
        # Display order: the primary user ID first, revoked ones last.
        user_ids=sorted(identities, key=lambda u: (u.revoked, u.is_attribute, not u.primary)),
        subkeys=subkeys,
        designated_revokers=sorted({rk.fingerprint.hex().upper() for rk in revokers}),
        revocation_unverified=revocation_unverified and not revoked)

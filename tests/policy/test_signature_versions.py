"""A v6 certification (made by a v6 key) on a key of an older version is
kept in the network view but not served: GnuPG up to 2.4 drops the whole
answer that holds one ("packet(2) with unknown version 6"), so anyone who
certified a v4 key with a v6 key would make it unusable for GnuPG's users.
Checked with the real gpg."""

import pytest

from cks.openpgp import packet as pk
from cks.openpgp import signature as sg
from cks.openpgp.cryptocheck import CryptoCheck
from cks.openpgp.keys import parse_keyring
from cks.openpgp.userid import UserID
from cks.served import ServePolicy, served_view
from support.forge import Signer, keyring
from support.gpg import GnuPG

UID = b"Owner <owner@example.org>"


def _certified(owner, certifiers):
    """`owner`'s key: one user ID, self-certified and certified by each of
    `certifiers`."""
    packets = [pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
               pk.Packet(pk.TAG_USER_ID, UID)]
    signatures = [owner.sign(sg.CERT_POSITIVE, owner.public, UserID(UID))] + [
        certifier.sign(sg.CERT_GENERIC, owner.public, UserID(UID)) for certifier in certifiers]
    packets += [pk.Packet(pk.TAG_SIGNATURE, s.serialize()) for s in signatures]
    (key,) = parse_keyring(keyring(packets)).keys
    return key


def _served_certifiers(key, certifiers, policy):
    held = {c.public.keyid: [c.public] for c in certifiers}
    served = served_view(key, CryptoCheck({}), ServePolicy(certifications=policy),
                         lambda keyid: held.get(keyid, ())).key
    (uid,) = served.user_ids
    return served, [e.sig.issuer_fingerprint for e in uid.sigs
                    if not served.is_self_issued(e.sig)]


@pytest.mark.parametrize("policy", ["verified", "all"])
def test_a_v6_certification_of_a_v4_key_is_not_served(policy):
    owner, by_v4, by_v6 = Signer.new(), Signer.new(), Signer.new(version=6)
    key = _certified(owner, [by_v4, by_v6])
    (uid,) = key.user_ids
    v6_certification = uid.sigs[-1]
    assert v6_certification.sig.version == 6
    assert CryptoCheck().is_valid(key, uid, v6_certification, by_v6.public)  # (it verifies)
    served, issuers = _served_certifiers(key, [by_v4, by_v6], policy)
    assert issuers == [by_v4.public.fingerprint]
    with GnuPG() as gpg:
        whole = gpg.run(["--import"], input=key.serialize(), check=False)
        assert b"unknown version 6" in whole.stderr  # what the network view does to GnuPG
        assert gpg.fingerprints() == []
        gpg.run(["--import"], input=served.serialize())
        assert gpg.fingerprints() == [owner.public.fingerprint.hex().upper()]


def test_a_v6_certification_of_a_v6_key_is_served():
    owner, by_v6 = Signer.new(version=6), Signer.new(version=6)
    key = _certified(owner, [by_v6])
    _, issuers = _served_certifiers(key, [by_v6], "verified")
    assert issuers == [by_v6.public.fingerprint]

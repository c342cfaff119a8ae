"""A certification of a newer version than the key (a v5 or v6 key's on a
v4 key) is kept in the network view but not served: GnuPG 2.2 drops the
whole answer that holds a v5 or v6 signature packet ("packet(2) with
unknown version 6"), 2.4 one that holds a v6, so anyone who certified a v4
key with a newer key would make it unusable for GnuPG's users.  Checked
with the real gpg."""

import pytest

from cks.openpgp import packet as pk
from cks.openpgp import signature as sg
from cks.openpgp.cryptocheck import CryptoCheck
from cks.openpgp.keys import parse_keyring, read_keys
from cks.openpgp.userid import UserID
from cks.served import ServePolicy, served_view
from support import fixture
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


def test_a_v5_certification_of_a_v4_key_is_not_served():
    """The v5 fixture key's own v5 signature, put on a v4 key's user ID as
    a third-party one (under `all`, served unverified)."""
    (key,) = read_keys(fixture("ed25519")).keys
    (v5_key,) = read_keys(fixture("v5-ed25519")).keys
    v5_signature = v5_key.user_ids[0].sigs[0]
    assert v5_signature.sig.version == 5
    key.user_ids[0].sigs.append(v5_signature)
    served = served_view(key, CryptoCheck({}), ServePolicy(certifications="all")).key
    assert [e.sig.version for e in served.user_ids[0].sigs] == [4]
    with GnuPG() as gpg:
        whole = gpg.run(["--import"], input=key.serialize(), check=False)
        if gpg.run(["--version"]).stdout.startswith(b"gpg (GnuPG) 2.2."):
            assert b"unknown version 5" in whole.stderr  # (2.4 reads v5)
        gpg.run(["--import"], input=served.serialize())
        assert gpg.fingerprints() == [key.fingerprint.hex().upper()]


def test_a_v6_certification_of_a_v6_key_is_served():
    owner, by_v6 = Signer.new(version=6), Signer.new(version=6)
    key = _certified(owner, [by_v6])
    _, issuers = _served_certifiers(key, [by_v6], "verified")
    assert issuers == [by_v6.public.fingerprint]

"""A certification of a newer version than the key (a v5 or v6 key's on a
v4 key) is kept in the network view but not served: GnuPG 2.2 drops the
whole answer that holds a v5 or v6 signature packet ("packet(2) with
unknown version 6"), 2.4 one that holds a v6, so anyone who certified a v4
key with a newer key would make it unusable for GnuPG's users.  Checked
with the real gpg.

Nor does a key serve a signature whose version does not fit the key that
made it, or a subkey whose version does not fit the primary's (RFC 9580:
v6 keys make v6 signatures and carry v6 subkeys; v4 keys make v3 or v4
signatures and carry v4 subkeys; LibrePGP's v5 likewise with v5)."""

import pytest

from cks.openpgp import packet as pk
from cks.openpgp import signature as sg
from cks.openpgp.cryptocheck import CryptoCheck, cache_key
from cks.openpgp.keys import parse_keyring, read_keys
from cks.openpgp.userid import UserID
from cks.openpgp.verify import VALID, Verdict, verify
from cks.served import ServePolicy, served_view
from support import fixture
from support.forge import Signer, embedded, key_flags, keyring
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


def _key(owner, uid_version=None, subkey=None, binding_version=None, backsig_version=None):
    """`owner`'s key with one user ID and, given `subkey`, one signing
    subkey; each self-signature of the version given (None: the key's own)."""
    packets = [pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
               pk.Packet(pk.TAG_USER_ID, UID),
               pk.Packet(pk.TAG_SIGNATURE, owner.sign(sg.CERT_POSITIVE, owner.public, UserID(UID),
                                                      version=uid_version).serialize())]
    if subkey is not None:
        backsig = subkey.sign(sg.PRIMARY_KEY_BINDING, owner.public, subkey.public,
                              version=backsig_version)
        binding = owner.sign(sg.SUBKEY_BINDING, owner.public, subkey.public,
                             [key_flags(0x02), embedded(backsig)], version=binding_version)
        packets += [pk.Packet(pk.TAG_PUBLIC_SUBKEY, subkey.public.serialize()),
                    pk.Packet(pk.TAG_SIGNATURE, binding.serialize())]
    (key,) = parse_keyring(keyring(packets)).keys
    return key


def _served(key):
    return served_view(key, CryptoCheck({}), ServePolicy()).key


@pytest.mark.parametrize("primary,sig_version", [(4, 6), (4, 5), (6, 4), (5, 4), (6, 5)])
def test_a_self_certification_of_another_version_than_its_key_is_not_valid(
        primary, sig_version):
    owner = Signer.new(version=primary)
    key = _key(owner, uid_version=sig_version)
    (uid,) = key.user_ids
    assert uid.sigs[0].sig.version == sig_version
    verdict = verify(key, uid, uid.sigs[0].sig, owner.public)
    assert not verdict.valid
    assert verdict.reason == "a v%d key cannot make a v%d signature" % (primary, sig_version)
    assert _served(key).user_ids == []


def test_a_verdict_cached_before_the_versions_were_compared_is_not_taken():
    """Verdicts cached until 2026-12-06 (cks_sig_verdicts) say VALID for a
    v6 self-certification a v4 key made: the versions are compared before
    the cache is read, so reverify after the upgrade needs no check again."""
    owner = Signer.new()
    key = _key(owner, uid_version=6)
    (uid,) = key.user_ids
    entry = uid.sigs[0]
    cache = {cache_key(key, uid, entry, owner.public): Verdict(VALID, False)}
    check = CryptoCheck(cache)
    assert not check.is_valid(key, uid, entry, owner.public)
    assert served_view(key, check, ServePolicy()).key.user_ids == []


@pytest.mark.parametrize("primary,subkey", [(4, 6), (4, 5), (6, 4), (5, 6)])
def test_a_subkey_of_another_version_than_its_primary_is_not_served(primary, subkey):
    """Bound by a binding of the primary's version, with a back-signature
    of the subkey's: each signature fits its maker, the subkey does not fit."""
    owner, sub = Signer.new(version=primary), Signer.new(version=subkey)
    key = _key(owner, subkey=sub)
    (component,) = key.subkeys
    assert CryptoCheck().is_valid(key, component, component.sigs[0])
    served = _served(key)
    assert served.subkeys == [] and len(served.user_ids) == 1


@pytest.mark.parametrize("primary,binding,backsig", [
    (4, 6, None), (6, 4, None), (4, None, 6), (6, None, 4)])
def test_a_binding_or_back_signature_of_another_version_is_not_valid(primary, binding,
                                                                     backsig):
    owner, sub = Signer.new(version=primary), Signer.new(version=primary)
    key = _key(owner, subkey=sub, binding_version=binding, backsig_version=backsig)
    (component,) = key.subkeys
    assert not CryptoCheck().is_valid(key, component, component.sigs[0])
    assert _served(key).subkeys == []
    fitting = _key(owner, subkey=sub)
    assert len(_served(fitting).subkeys) == 1


def test_a_certification_of_another_version_than_its_issuer_is_not_served():
    """A v4 key's v6 certification of a v6 key: the version fits the key
    certified, not the key that made it."""
    owner, by_v4 = Signer.new(version=6), Signer.new()
    packets = [pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
               pk.Packet(pk.TAG_USER_ID, UID)]
    signatures = [owner.sign(sg.CERT_POSITIVE, owner.public, UserID(UID)),
                  by_v4.sign(sg.CERT_GENERIC, owner.public, UserID(UID), version=6)]
    packets += [pk.Packet(pk.TAG_SIGNATURE, s.serialize()) for s in signatures]
    (key,) = parse_keyring(keyring(packets)).keys
    _, issuers = _served_certifiers(key, [by_v4], "verified")
    assert issuers == []


def test_no_v4_key_serves_a_v5_or_v6_packet():
    """Every way a v4 key's owner could put a newer packet in its served
    view, at once: none is left (GnuPG 2.2 imports the served view)."""
    owner = Signer.new()
    key = _key(owner, subkey=Signer.new(version=6))
    for sub_version, sig_version in ((5, None), (4, 6), (4, 5)):
        more = _key(owner, uid_version=sig_version, subkey=Signer.new(version=sub_version),
                    binding_version=sig_version)
        key.subkeys.extend(more.subkeys)
        key.user_ids[0].sigs.extend(e for e in more.user_ids[0].sigs if e.sig.version > 4)
    served = _served(key)
    assert len(served.user_ids[0].sigs) == 1 and served.subkeys == []
    assert all(packet.body[0] <= 4 for packet in served.packets()
               if packet.tag != pk.TAG_USER_ID)
    with GnuPG() as gpg:
        gpg.run(["--import"], input=served.serialize())
        assert gpg.fingerprints() == [owner.public.fingerprint.hex().upper()]

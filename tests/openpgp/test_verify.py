"""Signature verification: every fixture signature, GnuPG's verdicts, forgeries,
back-signatures, the weak-hash policy and the verdict cache."""


import pytest

from cks.openpgp import keys, packet as pk
from cks.openpgp import signature as sg
from cks.openpgp.armor import scan
from cks.openpgp.cryptocheck import CryptoCheck, WEAK_HASH_CUTOFF, cache_key
from cks.openpgp.info import describe
from cks.openpgp.packet import Packet
from cks.openpgp.sighash import signature_digest
from cks.openpgp.signature import Signature, Subpacket, serialize_subpackets
from cks.openpgp.userid import UserID
from cks.openpgp.verify import INVALID, NO_BACKSIG, UNSUPPORTED, VALID, Verdict, verify
from support import GPG_READABLE, PUBLIC_FIXTURES, fixture
from support.checksigs import cks_verdicts, disagreements, gpg_verdicts, signatures
from support.forge import Signer, embedded, key_flags, keyring
from support.gpg import GnuPG

PUBLIC = PUBLIC_FIXTURES


def binary(name):
    return b"".join(block.data for block in scan(fixture(name))[0])


def load(name):
    result = keys.read_keys(fixture(name))
    assert result.problems == []
    return result.keys


def primaries(names):
    """Key ID -> primary public key, over the keys of `names`."""
    return {key.keyid: key.public_key for name in names for key in load(name)}


ISSUERS = primaries(PUBLIC)


@pytest.fixture(scope="module")
def gpg():
    with GnuPG() as home:
        yield home


# --- every fixture signature ---------------------------------------------------

@pytest.mark.parametrize("name", PUBLIC)
def test_every_fixture_signature_verifies(name):
    for key in load(name):
        for component, entry in signatures(key):
            sig = entry.sig
            verdict = verify(key, component, sig, ISSUERS[sig.issuer_keyid])
            assert verdict.status == VALID, (name, hex(sig.sig_type), verdict)
            assert verdict.weak_hash == (sig.hash_algorithm in (1, 2, 3))


def test_fixture_signature_count():
    """Guards against signatures silently skipped: 90 packets in the public
    fixtures (the fixture generator's 104 also counts secret/ files and the
    one embedded back-signature, which verify() checks inside its 0x18)."""
    count = sum(1 for name in PUBLIC for key in load(name) for _ in signatures(key))
    assert count == 90


def test_every_fixture_version_and_algorithm_is_covered():
    seen = {(key.public_key.version, key.public_key.algorithm)
            for name in PUBLIC for key in load(name)}
    assert {(3, 1), (4, 1), (4, 17), (4, 19), (4, 22), (4, 27), (4, 28), (5, 22), (6, 27),
            (6, 28), (6, 1)} <= seen


def test_third_party_certifications_verify_against_their_issuers():
    (key,) = load("certified")
    (uid,) = key.user_ids
    issuers = {k.keyid: k.public_key for k in load("rsa2048") + load("nistp256")}
    certs = [e.sig for e in uid.sigs if e.sig.issuer_keyid in issuers]
    assert len(certs) == 2
    for sig in certs:
        assert verify(key, uid, sig, issuers[sig.issuer_keyid]).valid
        assert not verify(key, uid, sig, key.public_key).valid


def test_designated_revocation_verifies_against_the_revoker():
    (key,) = load("desig-revoked")
    (revoker,) = load("revoker")
    (revocation,) = [e for e in key.direct_sigs if e.sig.sig_type == sg.KEY_REVOCATION]
    assert verify(key, None, revocation.sig, revoker.public_key).valid
    assert not verify(key, None, revocation.sig, key.public_key).valid
    check = CryptoCheck()
    assert check.is_valid(key, None, revocation, revoker.public_key)
    assert not check.is_valid(key, None, revocation)


def test_signature_over_the_wrong_component_is_invalid():
    (key,) = load("rsa2048")
    (uid,) = key.user_ids
    (sub,) = key.subkeys
    cert, binding = uid.sigs[0].sig, sub.sigs[0].sig
    assert not verify(key, sub, cert, key.public_key).valid
    assert not verify(key, uid, binding, key.public_key).valid
    assert not verify(key, None, cert, key.public_key).valid


# --- GnuPG's verdicts -------------------------------------------------------------

def test_gnupg_agrees_on_every_signature_of_the_fixtures(gpg):
    merged = keys.merge_all(k for name in GPG_READABLE for k in load(name))
    data = b"".join(key.serialize() for key in merged)
    ours = cks_verdicts(merged, {k.keyid: k.public_key for k in merged})
    theirs = gpg_verdicts(gpg, data)
    assert disagreements(ours, theirs) == {}
    assert {letter for letters in ours.values() for letter in letters} == {"!"}
    assert sum(len(letters) for letters in ours.values()) == 59


def _mutated(name, choose, change):
    """The binary key `name` with the body of the first packet `choose` picks
    replaced by change(body)."""
    out, done = [], False
    for index, packet in enumerate(pk.iter_packets(binary(name))):
        if not done and choose(index, packet):
            packet, done = Packet(packet.tag, change(packet.body)), True
        out.append(packet.serialize())
    assert done
    return b"".join(out)


def _flip_sig_value(body):
    sig = Signature.parse(body)
    pos = len(body) - len(sig.material) + 5  # inside the first value
    return body[:pos] + bytes((body[pos] ^ 0x10,)) + body[pos + 1:]


def _later_creation_time(body):
    sig = Signature.parse(body)
    hashed = [Subpacket(s.type, (int.from_bytes(s.data, "big") + 1).to_bytes(4, "big"))
              if s.type == sg.SUB_CREATION_TIME else s for s in sig.hashed]
    sig.hashed_area = serialize_subpackets(hashed)
    return sig.serialize()


def _is_tag(tag, nth=0):
    seen = []

    def choose(index, packet):
        if packet.tag == tag:
            seen.append(index)
        return packet.tag == tag and len(seen) == nth + 1
    return choose


def _after(tag, sig_tag=pk.TAG_SIGNATURE):
    """The first signature after the first packet with `tag`."""
    state = {"after": False}

    def choose(index, packet):
        if packet.tag == tag:
            state["after"] = True
            return False
        return state["after"] and packet.tag == sig_tag
    return choose


def _other_subkey(body):
    return load("rsa4096")[0].subkeys[0].packet.body


FORGERIES = {
    "uid-byte": (pk.TAG_USER_ID, lambda body: body[:-2] + b"X" + body[-1:]),
    "uid-sig-value": ("uid-sig", _flip_sig_value),
    "uid-sig-hashed-subpacket": ("uid-sig", _later_creation_time),
    "binding-value": ("binding", _flip_sig_value),
    "binding-over-other-subkey": (pk.TAG_PUBLIC_SUBKEY, _other_subkey),
}


@pytest.mark.parametrize("name", ["rsa2048", "dsa-elg", "nistp256", "ed25519", "brainpoolp384"])
@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forgeries_are_invalid_as_gnupg_says(gpg, name, forgery):
    where, change = FORGERIES[forgery]
    choose = {"uid-sig": _after(pk.TAG_USER_ID), "binding": _after(pk.TAG_PUBLIC_SUBKEY)}.get(
        where) or _is_tag(where)
    data = _mutated(name, choose, change)
    (key,) = keys.read_keys(data).keys
    ours = cks_verdicts([key], {key.keyid: key.public_key})
    assert disagreements(ours, gpg_verdicts(gpg, data)) == {}
    assert sorted(letter for letters in ours.values() for letter in letters) == ["!", "-"]
    info = describe(key, CryptoCheck())
    if "binding" in forgery:
        assert info.subkeys[0].key_flags is None  # no valid binding: nothing from it
    else:
        assert info.user_ids[0].created is None  # no valid self-certification


def _claiming(victim, revocation):
    """`revocation`, its issuer subpackets rewritten to name `victim`."""
    sig = Signature.parse(revocation.packet.body)

    def rename(subpackets):
        return serialize_subpackets([
            Subpacket(s.type, b"\x04" + victim.fingerprint, s.critical)
            if s.type == sg.SUB_ISSUER_FINGERPRINT else
            Subpacket(s.type, victim.keyid, s.critical) if s.type == sg.SUB_ISSUER else s
            for s in subpackets])
    sig.hashed_area, sig.unhashed_area = rename(sig.hashed), rename(sig.unhashed)
    return Packet(pk.TAG_SIGNATURE, sig.serialize())


def test_bogus_key_revocation(gpg):
    (victim,) = load("ed25519")
    (revoked,) = load("revoked")
    (revocation,) = [e for e in revoked.direct_sigs if e.sig.sig_type == sg.KEY_REVOCATION]
    forged = _claiming(victim.public_key, revocation)
    packets = victim.packets()
    data = keyring(packets[:1] + [forged] + packets[1:])
    (key,) = keys.read_keys(data).keys
    (entry,) = key.direct_sigs
    assert key.is_self_issued(entry.sig)
    assert verify(key, None, entry.sig, key.public_key).status == INVALID
    assert not CryptoCheck().is_valid(key, None, entry)
    assert describe(key).revoked and not describe(key, CryptoCheck()).revoked
    ours = cks_verdicts([key], {key.keyid: key.public_key})
    assert disagreements(ours, gpg_verdicts(gpg, data)) == {}


def test_corrupt_hash_prefix_is_invalid():
    """The 2-byte prefix is not signed, but RFC 9580 has it for a quick reject
    and we use it so.  GnuPG 2.2 does not compare it and still says '!': the
    one known disagreement, on packets no OpenPGP implementation writes."""
    (key,) = load("rsa2048")
    (uid,) = key.user_ids
    sig = Signature.parse(uid.sigs[0].packet.body)
    sig.hash_prefix = bytes((sig.hash_prefix[0] ^ 1, sig.hash_prefix[1]))
    verdict = verify(key, uid, sig, key.public_key)
    assert (verdict.status, verdict.reason) == (INVALID, "hash prefix does not match")


# --- back-signatures ------------------------------------------------------------

def _signing_subkey_key(binding_subpackets, subkey=None, owner=None):
    owner = owner or Signer.new()
    subkey = subkey or Signer.new()
    uid = UserID(b"Tester <tester@example.org>")
    cert = owner.sign(sg.CERT_POSITIVE, owner.public, uid, [key_flags(0x03)])
    binding = owner.sign(sg.SUBKEY_BINDING, owner.public, subkey.public,
                         binding_subpackets(owner, subkey))
    data = keyring([Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
                    Packet(pk.TAG_USER_ID, uid.value),
                    Packet(pk.TAG_SIGNATURE, cert.serialize()),
                    Packet(pk.TAG_PUBLIC_SUBKEY, subkey.public.serialize()),
                    Packet(pk.TAG_SIGNATURE, binding.serialize())])
    (key,) = keys.read_keys(data).keys
    (sub,) = key.subkeys
    return key, sub, sub.sigs[0]


def _backsig(owner, subkey, signer=None):
    return embedded((signer or subkey).sign(sg.PRIMARY_KEY_BINDING, owner.public,
                                            subkey.public))


def test_signing_subkey_with_back_signature():
    key, sub, entry = _signing_subkey_key(lambda o, s: [key_flags(0x02), _backsig(o, s)])
    assert verify(key, sub, entry.sig, key.public_key).status == VALID
    assert CryptoCheck().is_valid(key, sub, entry)


def test_signing_subkey_without_back_signature():
    key, sub, entry = _signing_subkey_key(lambda o, s: [key_flags(0x02)])
    verdict = verify(key, sub, entry.sig, key.public_key)
    assert (verdict.status, verdict.reason) == (INVALID, NO_BACKSIG)
    assert describe(key, CryptoCheck()).subkeys[0].key_flags is None


def test_back_signature_by_the_wrong_key():
    key, sub, entry = _signing_subkey_key(
        lambda o, s: [key_flags(0x02), _backsig(o, s, signer=o)])
    assert verify(key, sub, entry.sig, key.public_key).reason == NO_BACKSIG


def test_back_signature_with_an_unknown_hash_is_unsupported():
    def unknown_hash(owner, subkey):
        backsig = subkey.sign(sg.PRIMARY_KEY_BINDING, owner.public, subkey.public)
        backsig.hash_algorithm = 99
        return [key_flags(0x02), embedded(backsig)]
    key, sub, entry = _signing_subkey_key(unknown_hash)
    assert verify(key, sub, entry.sig, key.public_key).status == UNSUPPORTED


def test_encryption_subkey_needs_no_back_signature():
    key, sub, entry = _signing_subkey_key(lambda o, s: [key_flags(0x0C)])
    assert verify(key, sub, entry.sig, key.public_key).valid


def test_stolen_signing_subkey():
    """Mallory binds Alice's signing subkey to his key, with Alice's own
    back-signature: it is over Alice's primary key, so it does not fit."""
    alice, subkey = Signer.new(), Signer.new()
    alices_backsig = _backsig(alice, subkey)
    key, sub, entry = _signing_subkey_key(lambda o, s: [key_flags(0x02), alices_backsig],
                                          subkey=subkey)
    assert verify(key, sub, entry.sig, key.public_key).reason == NO_BACKSIG


# --- weak hashes and CryptoCheck --------------------------------------------------

def test_ripemd160_and_md5_self_signatures_count():
    (v3,) = load("v3-rsa")
    (uid,) = v3.user_ids
    verdict = verify(v3, uid, uid.sigs[0].sig, v3.public_key)
    assert uid.sigs[0].sig.hash_algorithm == 1 and verdict.valid and verdict.weak_hash
    assert CryptoCheck().is_valid(v3, uid, uid.sigs[0])
    owner = Signer.new()
    uid = UserID(b"Old <old@example.org>")
    sig = owner.sign(sg.CERT_POSITIVE, owner.public, uid, hash_algorithm=3, created=2 ** 31)
    key = _with_uid(owner, uid, sig)
    assert CryptoCheck().is_valid(key, key.user_ids[0], key.user_ids[0].sigs[0])


def _with_uid(owner, uid, *sigs):
    packets = [Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
               Packet(pk.TAG_USER_ID, uid.value)]
    packets += [Packet(pk.TAG_SIGNATURE, sig.serialize()) for sig in sigs]
    (key,) = keys.read_keys(keyring(packets)).keys
    return key


@pytest.mark.parametrize("created,counts", [(WEAK_HASH_CUTOFF - 1, True),
                                            (WEAK_HASH_CUTOFF, False)])
def test_weak_third_party_certifications_count_only_before_the_cutoff(created, counts):
    made = WEAK_HASH_CUTOFF - 86400  # (the keys, before their signatures)
    owner, certifier = Signer.new(created=made), Signer.new(created=made)
    uid = UserID(b"Owner <owner@example.org>")
    self_sig = owner.sign(sg.CERT_POSITIVE, owner.public, uid, hash_algorithm=2,
                          created=created)
    cert = certifier.sign(sg.CERT_GENERIC, owner.public, uid, hash_algorithm=2,
                          created=created)
    key = _with_uid(owner, uid, self_sig, cert)
    (component,) = key.user_ids
    by_owner, by_certifier = sorted(component.sigs, key=lambda e: e.sig.issuer_keyid !=
                                    owner.public.keyid)
    check = CryptoCheck()
    assert verify(key, component, cert, certifier.public).weak_hash
    assert check.is_valid(key, component, by_owner)  # self-signatures always count
    assert check.is_valid(key, component, by_certifier, certifier.public) is counts
    assert not check.is_valid(key, component, by_certifier)  # not a self-signature


def test_crypto_check_describes_fixtures_as_structure_does():
    """Every fixture signature is valid, so the verified view equals the structural one."""
    for name in PUBLIC:
        for key in load(name):
            assert describe(key, CryptoCheck()) == describe(key), name


def test_gnupg_24s_ed448_v5_key_verifies():
    """GnuPG 2.4.7 (Debian trixie) makes v5 keys only on Ed448: EdDSA
    (algorithm 22) with OID 1.3.101.113, the 57-octet point as is, R and S as
    57-octet numbers.  Until 2026-12-06 that curve was not checked: such a key
    was served with no user ID and no subkey (and its curve was named by
    Ed25519's OID, 1.3.101.112, so index said 22 / 0 bits).  A bit changed
    in R or S, or the digest of another user ID, fails."""
    (key,) = load("gnupg24/ed448-v5")
    assert (key.public_key.version, key.public_key.algorithm) == (5, 22)
    found = list(signatures(key))
    assert [e.sig.sig_type for _, e in found] == [0x13, 0x18]
    for component, entry in found:
        assert verify(key, component, entry.sig, key.public_key).status == VALID
    info = describe(key)
    assert (info.algorithm_name, info.bits, info.subkeys[0].algorithm_name) == \
        ("ed448", 448, "cv448")
    component, entry = found[0]
    for flipped in (3, len(entry.sig.material) - 3):  # in R, in S
        material = bytearray(entry.sig.material)
        material[flipped] ^= 0x01
        forged = Signature.parse(entry.sig.serialize())
        forged.material = bytes(material)
        assert verify(key, component, forged, key.public_key).status == INVALID
    assert verify(key, keys.Component(None, UserID(b"Mallory <m@example.org>"), []),
                  entry.sig, key.public_key).status == INVALID


def test_unsupported_algorithm():
    (key,) = load("dsa-elg")
    (sub,) = key.subkeys  # an ElGamal key: it cannot have made a signature we check
    (uid,) = key.user_ids
    sig = Signature.parse(uid.sigs[0].packet.body)
    sig.pubkey_algorithm = sub.value.algorithm
    sig.hash_prefix = signature_digest(sig, key.public_key, uid.value)[:2]
    assert verify(key, uid, sig, sub.value).status == UNSUPPORTED
    sig = Signature.parse(uid.sigs[0].packet.body)
    sig.hash_algorithm = 99
    assert verify(key, uid, sig, key.public_key).status == UNSUPPORTED


def test_verdict_cache(monkeypatch):
    from cks.openpgp import cryptocheck
    calls = []
    real = cryptocheck.verify
    monkeypatch.setattr(cryptocheck, "verify", lambda *a: calls.append(a) or real(*a))
    cache = {}
    check = CryptoCheck(cache)
    key = load("revoked-parts")[0]
    first = describe(key, check)
    verified = len(calls)
    assert verified == len(cache) > 0
    assert describe(key, check) == first
    assert len(calls) == verified  # the second pass came from the cache
    assert CryptoCheck({k: v for k, v in cache.items()}).is_valid(
        key, key.user_ids[0], key.user_ids[0].sigs[0])
    assert len(calls) == verified


def _cached_valid(key, component, entries):
    """A verdict cache that holds VALID for `entries`, as one filled before
    signatures made before their key were refused."""
    return {cache_key(key, component, entry, key.public_key): Verdict(VALID)
            for entry in entries}


def test_a_cached_verdict_does_not_keep_a_self_signature_made_before_the_key():
    owner = Signer.new()
    uid = UserID(b"Early <early@example.org>")
    key = _with_uid(owner, uid, owner.sign(sg.CERT_POSITIVE, owner.public, uid,
                                           created=owner.public.created - 1))
    (component,) = key.user_ids
    (entry,) = component.sigs
    assert verify(key, component, entry.sig, key.public_key).reason == \
        "made before the key that made it"
    check = CryptoCheck(_cached_valid(key, component, component.sigs))
    assert not check.is_valid(key, component, entry)


def test_a_cached_verdict_does_not_keep_a_back_signature_made_before_the_subkey():
    owner, subkey = Signer.new(), Signer.new(created=Signer.new().public.created + 10)
    backsig = subkey.sign(sg.PRIMARY_KEY_BINDING, owner.public, subkey.public,
                          created=subkey.public.created - 1)
    binding = owner.sign(sg.SUBKEY_BINDING, owner.public, subkey.public,
                         [key_flags(0x02), embedded(backsig)], created=subkey.public.created)
    (key,) = keys.read_keys(keyring([
        Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
        Packet(pk.TAG_PUBLIC_SUBKEY, subkey.public.serialize()),
        Packet(pk.TAG_SIGNATURE, binding.serialize())])).keys
    (component,) = key.subkeys
    (entry,) = component.sigs
    assert verify(key, component, entry.sig, key.public_key).reason == NO_BACKSIG
    assert not CryptoCheck(_cached_valid(key, component, component.sigs)).is_valid(
        key, component, entry)


def test_cache_key_covers_what_the_verdict_depends_on():
    (key,) = load("multi-uid")
    first, second = key.user_ids[:2]
    entry = first.sigs[0]
    (other,) = load("rsa2048")
    base = cache_key(key, first, entry, key.public_key)
    assert len(base) == 32
    assert base == cache_key(key, first, entry, key.public_key)
    assert base != cache_key(key, second, entry, key.public_key)
    assert base != cache_key(key, None, entry, key.public_key)
    assert base != cache_key(key, first, entry, other.public_key)
    assert base != cache_key(key, first, second.sigs[0], key.public_key)


def test_flooding_signatures_cost_no_verification(monkeypatch):
    from cks.openpgp import cryptocheck
    monkeypatch.setattr(cryptocheck, "verify", lambda *a: pytest.fail("verified"))
    (key,) = load("certified")
    (uid,) = key.user_ids
    third_party = [e for e in uid.sigs if not key.is_self_issued(e.sig)]
    assert len(third_party) == 2
    assert not any(CryptoCheck().is_valid(key, uid, e) for e in third_party)


def test_signature_without_issuer_is_checked_against_the_key():
    owner = Signer.new()
    uid = UserID(b"Anonymous <anonymous@example.org>")
    key = _with_uid(owner, uid, owner.sign(sg.CERT_POSITIVE, owner.public, uid, named=False))
    (component,) = key.user_ids
    (entry,) = component.sigs
    assert entry.sig.issuer_keyid is None
    assert CryptoCheck().is_valid(key, component, entry)
    assert not CryptoCheck().is_valid(key, component, entry, Signer.new().public)

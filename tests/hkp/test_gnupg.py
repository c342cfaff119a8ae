"""Real GnuPG against cksd: --send-keys, --recv-keys, --search-keys, --refresh-keys,
--locate-keys, on SQLite and PostgreSQL."""

import dataclasses
import time

import pytest

from cks.openpgp import packet as pk
from cks.openpgp.armor import encode
from cks.openpgp import signature as sg
from cks.openpgp.keys import read_keys
from cks.openpgp.userid import UserID
from support import EXPECTED, fixture
from support.forge import (Signer, key_binding, key_flags, keyring, self_signed_key,
                           v3_key_of_id)
from support.gpg import GnuPG, parse_colons
from support.server import Cksd


def _fp(name):
    return EXPECTED[name + ".asc"][0]["fingerprint"]


@pytest.fixture(scope="module")
def server(module_db_url):
    with Cksd(module_db_url) as cksd:
        # a v6 key in the database must not break anything GnuPG 2.2 does
        assert cksd.add(fixture("v6-ed25519"))[0] == 200
        yield cksd


@pytest.fixture
def gpg(server):
    with GnuPG(keyserver="hkp://127.0.0.1:%d" % server.port) as home:
        yield home


def test_send_then_receive_by_fingerprint_and_key_id(server, gpg):
    gpg.run(["--import"], input=fixture("rsa4096"))
    gpg.run(["--send-keys", _fp("rsa4096")])
    assert server.lookup(op="get", options="mr", search="0x" + _fp("rsa4096"))[0] == 200
    with GnuPG(keyserver="hkp://127.0.0.1:%d" % server.port) as other:
        other.run(["--recv-keys", _fp("rsa4096")])
        assert other.fingerprints() == [_fp("rsa4096")]
    with GnuPG(keyserver="hkp://127.0.0.1:%d" % server.port) as other:
        other.run(["--recv-keys", EXPECTED["rsa4096.asc"][0]["keyid"]])
        assert other.fingerprints() == [_fp("rsa4096")]


def test_send_several_keys(server, gpg):
    gpg.run(["--import"], input=fixture("nistp384") + fixture("brainpoolp256"))
    gpg.run(["--send-keys", _fp("nistp384"), _fp("brainpoolp256")])
    for name in ("nistp384", "brainpoolp256"):
        assert server.lookup(op="get", options="mr", search="0x" + _fp(name))[0] == 200


def test_receive_missing_key_fails_cleanly(gpg):
    result = gpg.run(["--recv-keys", "0x" + "12" * 20], check=False)
    assert result.returncode == 2 and b"No data" in result.stderr


def test_search_by_name_and_by_email(server, gpg):
    assert server.add(fixture("multi-uid"))[0] == 200
    for query in ("Jürgen Müller", "juergen@example.org", "<juergen@example.org>"):
        result = gpg.run(["--with-colons", "--search-keys", query])
        lines = result.stdout.decode("utf-8").splitlines()
        pubs = [line.split(":")[1] for line in lines if line.startswith("pub:")]
        assert pubs == [_fp("multi-uid")], (query, lines)
        # gpg --with-colons passes the server's escaped lines through
        assert "uid:J%C3%BCrgen M%C3%BCller <juergen@example.org>" in \
            [line.rsplit(":", 3)[0] for line in lines if line.startswith("uid:")]


def test_search_lists_a_latin1_user_id_as_the_key_it_imports_has_it(server, gpg):
    """Until 2026-12-06 the index listed U+FFFD for each byte of a user ID
    that is not UTF-8, and GnuPG showed that, not the user ID it imported."""
    raw = b"Latin J\xfcrgen M\xfcller <latin1raw@example.org>"
    fingerprint, key = self_signed_key(b"\x12" * 32, [raw])
    assert server.add(encode(key))[0] == 200
    listed = gpg.run(["--with-colons", "--search-keys", "latin1raw@example.org"]).stdout
    assert b"uid:Latin J%FCrgen M%FCller <latin1raw@example.org>:" in listed
    gpg.run(["--recv-keys", fingerprint])
    assert raw in gpg.run(["--with-colons", "--list-keys", fingerprint]).stdout


def test_search_that_also_matches_a_v6_key_works_in_gnupg_22(server, gpg):
    assert server.add(fixture("ed25519"))[0] == 200
    result = gpg.run(["--with-colons", "--search-keys", "fixture"])
    pubs = [line.split(":")[1] for line in result.stdout.decode().splitlines()
            if line.startswith("pub:")]
    assert _fp("ed25519") in pubs and _fp("v6-ed25519") not in pubs


def test_refresh_brings_the_newer_key(server, gpg):
    assert server.add(fixture("alice-t2"))[0] == 200
    gpg.run(["--import"], input=fixture("alice-t1"))
    before = parse_colons(gpg.run(["--with-colons", "--list-keys"]).stdout.decode())
    gpg.run(["--refresh-keys"])
    after = parse_colons(gpg.run(["--with-colons", "--list-keys"]).stdout.decode())
    assert len(before[0]["uids"]) == 1 and len(after[0]["uids"]) == 2
    assert len(after[0]["subkeys"]) == 2


def test_locate_keys_through_the_keyserver(server, gpg):
    assert server.add(fixture("nistp521"))[0] == 200
    email = EXPECTED["nistp521.asc"][0]["uids"][0].split("<")[1].rstrip(">")
    gpg.run(["--auto-key-locate", "clear,keyserver", "--locate-keys", email])
    assert gpg.fingerprints() == [_fp("nistp521")]


def test_locate_keys_of_an_address_with_a_plus(server, gpg):
    """dirmngr 2.2.40 sends `search=user%20tag@example.org&exact=on` for
    user+tag@example.org (it makes the '+' a space): until 2026-12-06 cksd
    wanted a user ID "user tag@example.org" and answered 404 ("No data")."""
    fingerprint, key = self_signed_key(b"\x13" * 32, [b"Plus Tag <user+tag@example.org>"])
    assert server.add(encode(key))[0] == 200
    gpg.run(["--auto-key-locate", "clear,keyserver", "--locate-keys", "user+tag@example.org"])
    assert gpg.fingerprints() == [fingerprint]
    # a user ID that is the search itself is still found by it, and only that
    named, key = self_signed_key(b"\x14" * 32, [b"other tag@example.org"])
    assert server.add(encode(key))[0] == 200
    found = server.lookup(op="index", options="mr", exact="on", search="other tag@example.org")
    assert found[0] == 200 and found[2].decode().splitlines()[1].startswith("pub:%s:" % named)
    found = server.lookup(op="index", options="mr", exact="on", search="tag@example.org user")
    assert found[0] == 404


def test_search_and_locate_an_address_stored_decomposed(server, gpg):
    """Until 2026-12-06 an address was only lower-cased: typed composed
    (as GnuPG sends it here), it missed the same address stored decomposed."""
    fingerprint, key = self_signed_key(b"\x15" * 32, ["Mu\u0308ller <mu\u0308ller@example.net>"
                                                      .encode()])
    assert server.add(encode(key))[0] == 200
    listed = gpg.run(["--with-colons", "--search-keys", "m\u00fcller@example.net"]).stdout
    assert [line.split(b":")[1].decode() for line in listed.splitlines()
            if line.startswith(b"pub:")] == [fingerprint]
    gpg.run(["--auto-key-locate", "clear,keyserver", "--locate-keys", "M\u00fcller@example.net"])
    assert gpg.fingerprints() == [fingerprint]


def _key_with_a_newer_packet(uid: bytes, subkey_version: int, sig_version: int) -> bytes:
    """A v4 key with `uid`, self-certified, and an encryption subkey of
    `subkey_version` bound by a binding of `sig_version`; with a v6 subkey,
    also a v6 self-certification of `uid` by the v4 key (each verifies)."""
    owner, sub = Signer.new(), Signer.new(version=subkey_version)
    signatures = [owner.sign(sg.CERT_POSITIVE, owner.public, UserID(uid))]
    if subkey_version == 6:
        signatures.append(owner.sign(sg.CERT_POSITIVE, owner.public, UserID(uid), version=6))
    binding = owner.sign(sg.SUBKEY_BINDING, owner.public, sub.public, [key_flags(0x0C)],
                         version=sig_version)
    return keyring([pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
                    pk.Packet(pk.TAG_USER_ID, uid)]
                   + [pk.Packet(pk.TAG_SIGNATURE, s.serialize()) for s in signatures]
                   + [pk.Packet(pk.TAG_PUBLIC_SUBKEY, sub.public.serialize()),
                      pk.Packet(pk.TAG_SIGNATURE, binding.serialize())])


def _key_with_a_newer_self_certification(uid: bytes) -> bytes:
    """A v4 key whose only self-certification of `uid` is a v6 signature."""
    owner = Signer.new()
    return keyring([pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
                    pk.Packet(pk.TAG_USER_ID, uid),
                    pk.Packet(pk.TAG_SIGNATURE, owner.sign(
                        sg.CERT_POSITIVE, owner.public, UserID(uid), version=6).serialize())])


def test_a_v4_key_revoked_by_a_v6_revoker_does_not_hide_others_from_gnupg(server, gpg):
    """A v4 key may name a v6 key its designated revoker, and that key's
    revocation (a v6 signature) is served, as every revocation is, even with
    the revoker's key not held here.  GnuPG 2.2 reads no key of an answer
    holding it, so a text search's `get` leaves such a key out for GnuPG
    (until 2026-12-06 anyone could so hide another's key from
    --locate-keys, with their own v4 key bearing that user ID)."""
    uid = b"Revoked Late <revoked-late@example.org>"
    victim_fpr, victim = self_signed_key(b"\x15" * 32, [uid])
    owner, revoker = Signer.new(), Signer.new(version=6)
    names_revoker = sg.Subpacket(sg.SUB_REVOCATION_KEY, bytes((0x80, 27))
                                 + revoker.public.fingerprint)
    attacker = keyring([pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
                        pk.Packet(pk.TAG_SIGNATURE, revoker.sign(
                            sg.KEY_REVOCATION, owner.public, None).serialize()),
                        pk.Packet(pk.TAG_USER_ID, uid),
                        pk.Packet(pk.TAG_SIGNATURE, owner.sign(
                            sg.CERT_POSITIVE, owner.public, UserID(uid),
                            [names_revoker]).serialize())])
    for key in (victim, attacker):
        assert server.add(encode(key))[0] == 200
    attacker_fpr = owner.public.fingerprint.hex().upper()
    served = server.lookup(op="get", options="mr", search="0x" + attacker_fpr)
    assert served[0] == 200 and len(read_keys(served[2]).keys[0].direct_sigs) == 1
    found = server.request("GET", "/pks/lookup?op=get&options=mr&search="
                           "revoked-late@example.org", headers={"User-Agent": "curl/8"})
    assert sorted(k.fingerprint.hex().upper() for k in read_keys(found[2]).keys) == \
        sorted([victim_fpr, attacker_fpr])  # (a client that reads v6 gets both)
    gpg.run(["--auto-key-locate", "clear,keyserver", "--locate-keys",
             "revoked-late@example.org"])
    assert gpg.fingerprints() == [victim_fpr]


def test_a_v4_key_with_v5_or_v6_packets_does_not_hide_others_from_gnupg(server, gpg):
    """Anyone could upload a v4 key with someone's user ID and a v5 or v6
    subkey, binding or self-certification: GnuPG 2.2 read no key of an
    answer holding it ("packet(14) with unknown version 6"), so neither
    --locate-keys nor --search-keys found that user ID's real key."""
    uid = EXPECTED["rsa2048.asc"][0]["uids"][0]
    email = uid.split("<")[1].rstrip(">")
    assert server.add(fixture("rsa2048"))[0] == 200
    attackers = [_key_with_a_newer_packet(uid.encode(), 6, 4),
                 _key_with_a_newer_packet(uid.encode(), 5, 4),
                 _key_with_a_newer_packet(uid.encode(), 4, 6),
                 _key_with_a_newer_self_certification(uid.encode())]
    for attacker in attackers:
        assert server.add(encode(attacker))[0] == 200
    gpg.run(["--auto-key-locate", "clear,keyserver", "--locate-keys", email])
    assert _fp("rsa2048") in gpg.fingerprints()
    for query in (email, uid):
        result = gpg.run(["--with-colons", "--search-keys", query])
        pubs = [line.split(":")[1] for line in result.stdout.decode().splitlines()
                if line.startswith("pub:")]
        assert _fp("rsa2048") in pubs and len(pubs) == 4, (query, pubs)
    with GnuPG(keyserver="hkp://127.0.0.1:%d" % server.port) as other:
        other.run(["--recv-keys"] + pubs)
        assert len(other.fingerprints()) == 4


def _stored_with_encryption_subkey(server, uid: bytes):
    """(primary, encryption subkey) Signers of a new v4 key with `uid`, uploaded to `server`."""
    owner, encryption = Signer.new(), Signer.new()
    key = keyring([
        pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()), pk.Packet(pk.TAG_USER_ID, uid),
        pk.Packet(pk.TAG_SIGNATURE, owner.sign(sg.CERT_POSITIVE, owner.public,
                                               UserID(uid)).serialize()),
        pk.Packet(pk.TAG_PUBLIC_SUBKEY, encryption.public.serialize()),
        pk.Packet(pk.TAG_SIGNATURE, owner.sign(sg.SUBKEY_BINDING, owner.public,
                                               encryption.public, [key_flags(0x0C)]
                                               ).serialize())])
    assert server.add(encode(key))[0] == 200
    return owner, encryption


def test_keys_binding_anothers_key_as_a_subkey_hide_it_from_no_one(server, gpg):
    """Anyone can bind someone's public primary key (and encryption subkey)
    to keys of their own as subkeys that sign nothing.  A lookup by the
    primary key's ID or fingerprint answers that key alone; one by the
    subkey's ID answers the keys that hold it, the first stored here first,
    and for GnuPG only those it can read.  Until 2026-12-07 such keys came
    with the one asked for (a hundred of them, sorted before it, cut it from
    the answer at max_results), and one holding a v6 signature made GnuPG
    2.2 read nothing of the answer (a review found both)."""
    owner, encryption = _stored_with_encryption_subkey(
        server, b"Subkey Owner <subkey-owner@example.org>")
    time.sleep(1.1)  # (a key's first_seen is in seconds)
    stolen = [owner.public, encryption.public]
    for n, revoked_by_v6 in enumerate([True, False, False]):
        taker = key_binding(stolen, b"Taker %d <taker@example.org>" % n, revoked_by_v6)
        assert server.add(encode(taker))[0] == 200
    victim_fpr = owner.public.fingerprint.hex().upper()
    for asked in (victim_fpr, owner.public.keyid.hex().upper()):
        index = server.request("GET", "/pks/lookup?op=index&options=mr&search=0x" + asked,
                               headers={"User-Agent": "curl/8"})
        assert index[0] == 200 and index[2].decode().count("\npub:") == 1, index[2]
        with GnuPG(keyserver="hkp://127.0.0.1:%d" % server.port) as other:
            other.run(["--recv-keys", asked])
            assert other.fingerprints() == [victim_fpr]
    subkey_id = encryption.public.keyid.hex().upper()
    everyone = server.request("GET", "/pks/lookup?op=index&options=mr&search=0x" + subkey_id,
                              headers={"User-Agent": "curl/8"})
    assert everyone[2].decode().count("\npub:") == 4
    assert everyone[2].decode().split("\npub:")[1].startswith(victim_fpr)  # (the first stored)
    gpg.run(["--recv-keys", subkey_id])
    assert victim_fpr in gpg.fingerprints() and len(gpg.fingerprints()) == 3


def test_copies_of_a_keys_signatures_keep_it_from_no_gnupg_user(server, gpg):
    """Anyone can copy a key's self-signature with another unhashed area, or
    its values padded with zero octets (neither is signed: the copy
    verifies), and make certifications GnuPG cannot read with a key of their
    own: the key is served with each signature once, in its served form,
    and without what GnuPG cannot read.  Until 2026-12-07 such copies made
    GnuPG read nothing of the answer ("unhashed data too long", "mpi too
    large", "hashed data too long"), --refresh-keys included: anyone could
    keep a key's revocation from its users (a review found it)."""
    uid = UserID(b"Copied Signatures <copied@example.org>")
    owner, certifier = Signer.new(), Signer.new()
    own = owner.sign(sg.CERT_POSITIVE, owner.public, uid)
    head = [pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
            pk.Packet(pk.TAG_USER_ID, uid.value)]
    victim = keyring(head + [pk.Packet(pk.TAG_SIGNATURE, own.serialize())])
    assert server.add(encode(victim))[0] == 200
    issuer = sg.Subpacket(sg.SUB_ISSUER, own.issuer_keyid)
    bits = own.material[0] << 8 | own.material[1]
    padded = (bits + 8 * 2049).to_bytes(2, "big") + b"\0" * 2049 + own.material[2:]
    copies = [dataclasses.replace(own, unhashed_area=sg.serialize_subpackets(
                  [issuer, sg.Subpacket(101, b"x" * 10_100)])),
              dataclasses.replace(own, material=padded)]
    unreadable = certifier.sign(sg.CERT_GENERIC, owner.public, uid,
                                [sg.Subpacket(100, b"v" * 10_010)])
    certifiers_key = keyring([pk.Packet(pk.TAG_PUBLIC_KEY, certifier.public.serialize()),
                              pk.Packet(pk.TAG_USER_ID, b"Certifier"),
                              pk.Packet(pk.TAG_SIGNATURE, certifier.sign(
                                  sg.CERT_POSITIVE, certifier.public,
                                  UserID(b"Certifier")).serialize())])
    assert server.add(encode(certifiers_key))[0] == 200
    flood = keyring(head + [pk.Packet(pk.TAG_SIGNATURE, s.serialize())
                            for s in copies + [unreadable]])
    status, _, body = server.add(encode(flood))
    assert status == 200 and body.startswith(b"updated"), body
    fingerprint = owner.public.fingerprint.hex().upper()
    served = server.lookup(op="get", options="mr", search="0x" + fingerprint)[2]
    assert read_keys(served).keys[0].serialize() == read_keys(victim).keys[0].serialize()
    gpg.run(["--recv-keys", fingerprint])
    assert gpg.fingerprints() == [fingerprint]
    gpg.run(["--refresh-keys"])
    gpg.run(["--auto-key-locate", "clear,keyserver", "--locate-keys", "copied@example.org"])


def _index(server, keyid):
    """The fingerprints an index lookup by `keyid` answers."""
    status, _, body = server.request("GET", "/pks/lookup?op=index&options=mr&search=0x" + keyid,
                                     headers={"User-Agent": "curl/8"})
    assert status == 200, body
    return [line.split(":")[1] for line in body.decode().splitlines()
            if line.startswith("pub:")]


def test_v3_keys_made_with_a_keys_ids_hide_it_from_no_one(server, gpg):
    """A v3 key's ID is the low 64 bits of its RSA modulus: anyone can make
    bare v3 keys with the IDs of someone's primary key and subkey.  A
    lookup by the primary key's ID answers that key alone; one by the
    subkey's ID answers it beside the v3 key, and GnuPG imports it.  Until
    2026-12-07 the v3 key answered alone for the subkey's ID (GnuPG, which
    cannot read v3 keys, imported nothing) and beside it for the primary
    key's (a review found it)."""
    owner, encryption = _stored_with_encryption_subkey(
        server, b"V3 Target <v3-target@example.org>")
    owner_fpr = owner.public.fingerprint.hex().upper()
    primary_id, subkey_id = (k.keyid.hex().upper() for k in (owner.public, encryption.public))
    for keyid in (primary_id, subkey_id):
        assert server.add(encode(v3_key_of_id(keyid)))[0] == 200
    assert _index(server, primary_id) == [owner_fpr]
    assert owner_fpr in _index(server, subkey_id) and len(_index(server, subkey_id)) == 2
    gpg.run(["--recv-keys", subkey_id])
    assert gpg.fingerprints() == [owner_fpr]

"""Store the network's view, serve the verified view: forgeries and floods, through
cksd and real GnuPG, on SQLite and PostgreSQL."""

import json

import pytest

from cks.openpgp import packet as pk
from cks.openpgp import signature as sg
from cks.openpgp.armor import encode, scan
from cks.openpgp.info import describe
from cks.openpgp.keys import parse_keyring, read_keys, sks_hash
from cks.openpgp.userid import UserID
from cks.store import open_store
from support import fixture
from support.forge import Signer, key_flags, keyring
from support.gpg import GnuPG, parse_colons
from support.nodes import settled
from support.procs import tool
from support.server import LOOPBACK_EXEMPT, Cksd


def packets(name):
    return list(pk.iter_packets(scan(fixture(name))[0][0].data))


def fpr(name):
    return read_keys(fixture(name)).keys[0].fingerprint.hex().upper()


@pytest.fixture(scope="module")
def server(module_db_url, tmp_path_factory):
    config = tmp_path_factory.mktemp("conf") / "cks.conf"
    config.write_text("[limits]\nmax_upload_bytes = 16000000\n" + LOOPBACK_EXEMPT)
    with Cksd(module_db_url, config=str(config)) as cksd:
        yield cksd


def upload(server, data):
    status, _, body = server.request("POST", "/pks/add?options=mr", data,
                                     {"Content-Type": "application/pgp-keys"})
    assert status == 200, body
    return json.loads(body)


def served_key(server, fingerprint):
    status, _, body = server.lookup(op="get", options="mr", search="0x" + fingerprint)
    assert status == 200
    (key,) = read_keys(body).keys
    return key


def network_key(server, fingerprint):
    row = server.lookup(op="index", search="0x" + fingerprint, hash="on")[2].decode()
    sks_hash = row.split("Hash=")[1][:32]
    (key,) = read_keys(server.lookup(op="hget", options="mr", search=sks_hash)[2]).keys
    return key


def gpg_receives(server, fingerprint, third_party=False):
    """What GnuPG imports by --recv-keys; `third_party`: with certifications by
    other keys too (GnuPG 2.2.17 and later drop them from keyservers by default)."""
    with GnuPG(keyserver="hkp://127.0.0.1:%d" % server.port) as gpg:
        options = ["--keyserver-options", "no-self-sigs-only"] if third_party else []
        gpg.run(options + ["--recv-keys", fingerprint])
        listing = gpg.run(["--with-colons", "--list-sigs", fingerprint]).stdout.decode()
        return parse_colons(listing)[0], listing


def test_forged_user_id_is_stored_but_not_served(server):
    parts = packets("rsa2048")
    mallory = pk.Packet(pk.TAG_USER_ID, b"Mallory <mallory@evil.example>")
    upload(server, keyring(parts[:3] + [mallory, parts[2]] + parts[3:]))  # a copied self-sig
    key = served_key(server, fpr("rsa2048"))
    assert [c.value.text for c in key.user_ids] == ["rsa2048 fixture <rsa2048@example.org>"]
    assert any(c.value.text.startswith("Mallory") for c in
               network_key(server, fpr("rsa2048")).user_ids)  # the network's view keeps it
    assert server.lookup(op="index", options="mr", search="mallory")[0] == 404
    assert server.lookup(op="index", options="mr", search="mallory@evil.example")[0] == 404
    theirs, _ = gpg_receives(server, fpr("rsa2048"))
    assert [u["text"] for u in theirs["uids"]] == ["rsa2048 fixture <rsa2048@example.org>"]


def test_forged_subkey_binding_is_not_served(server):
    parts = packets("nistp384")
    stolen = Signer.new().public
    subkey = pk.Packet(pk.TAG_PUBLIC_SUBKEY, stolen.serialize())
    upload(server, keyring(parts + [subkey, parts[-1]]))  # the real binding, copied
    key = served_key(server, fpr("nistp384"))
    assert stolen.fingerprint not in [c.value.fingerprint for c in key.subkeys]
    assert len(key.subkeys) == 1
    assert server.lookup(op="get", options="mr",
                         search="0x" + stolen.keyid.hex().upper())[0] == 404
    theirs, _ = gpg_receives(server, fpr("nistp384"))
    assert len(theirs["subkeys"]) == 1


def test_corrupted_self_signature(server):
    parts = packets("multi-uid")
    key = parse_keyring(keyring(parts)).keys[0]
    victim = next(c for c in key.user_ids if b"Colon" in c.value.value)
    broken = []
    for packet in parts:
        if packet.tag == pk.TAG_SIGNATURE and any(packet.body == s.packet.body
                                                  for s in victim.sigs):
            packet = pk.Packet(packet.tag, packet.body[:-1] + bytes([packet.body[-1] ^ 1]))
        broken.append(packet)
    upload(server, keyring(broken))
    served = served_key(server, fpr("multi-uid"))
    assert sorted(c.value.text for c in served.user_ids) == [
        "J\u00fcrgen M\u00fcller <juergen@example.org>", "Multi UID <multi-uid@example.org>"]
    theirs, _ = gpg_receives(server, fpr("multi-uid"))
    assert len(theirs["uids"]) == 2


def test_bogus_revocation_does_not_revoke(server):
    parts = packets("nistp256")
    victim = read_keys(fixture("nistp256")).keys[0].public_key
    forger = Signer.new()
    revocation = forger.sign(sg.KEY_REVOCATION, victim, None, named=False, hashed=[
        sg.Subpacket(sg.SUB_ISSUER_FINGERPRINT, b"\x04" + victim.fingerprint)])
    upload(server, keyring(parts[:1] + [pk.Packet(pk.TAG_SIGNATURE, revocation.serialize())]
                           + parts[1:]))
    index = server.lookup(op="index", options="mr", search="0x" + fpr("nistp256"))[2]
    assert index.decode().splitlines()[1].split(":")[6] == ""  # no 'r' flag
    theirs, _ = gpg_receives(server, fpr("nistp256"))
    assert theirs["validity"] != "r"


def test_real_revocation_still_revokes(server):
    upload(server, fixture("revoked"))
    index = server.lookup(op="index", options="mr", search="0x" + fpr("revoked"))[2]
    assert index.decode().splitlines()[1].endswith(":r")
    theirs, _ = gpg_receives(server, fpr("revoked"))
    assert theirs["validity"] == "r"


@pytest.mark.parametrize("after", ["subkey", "user ID"])
def test_a_revocation_placed_after_a_component_still_revokes(server, after):
    """`sq key generate` writes the revocation certificate apart; appended to
    the key it follows the last subkey, and GnuPG and Sequoia take it as the
    key's.  Until 2026-12-06 it was stored under that component and left out
    of every served view: the key was served unrevoked.  The network view
    keeps it where it was sent (op=hget's answer hashes to the same SKS hash)."""
    owner, sub = Signer.new(), Signer.new()
    uid = b"Placed Late <placed-late@example.org>"
    key_packets = [pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
                   pk.Packet(pk.TAG_USER_ID, uid),
                   pk.Packet(pk.TAG_SIGNATURE, owner.sign(
                       sg.CERT_POSITIVE, owner.public, UserID(uid)).serialize())]
    subkey_packets = [pk.Packet(pk.TAG_PUBLIC_SUBKEY, sub.public.serialize()),
                      pk.Packet(pk.TAG_SIGNATURE, owner.sign(
                          sg.SUBKEY_BINDING, owner.public, sub.public,
                          [key_flags(0x0C)]).serialize())]
    revocation = pk.Packet(pk.TAG_SIGNATURE,
                           owner.sign(sg.KEY_REVOCATION, owner.public, None).serialize())
    sent = key_packets + subkey_packets + [revocation] if after == "subkey" else \
        key_packets + [revocation] + subkey_packets
    assert describe(parse_keyring(keyring(sent)).keys[0]).revoked  # (cks_admin.py show)
    upload(server, keyring(sent))
    fingerprint = owner.public.fingerprint.hex().upper()
    index = server.lookup(op="index", options="mr", search="0x" + fingerprint)[2]
    assert index.decode().splitlines()[1].endswith(":r"), index
    assert [e.sig.sig_type for e in served_key(server, fingerprint).direct_sigs] == \
        [sg.KEY_REVOCATION]
    theirs, _ = gpg_receives(server, fingerprint)
    assert theirs["validity"] == "r"
    (stored,) = read_keys(server.lookup(op="hget", options="mr",
                                        search=sks_hash(parse_keyring(keyring(sent)).keys[0])
                                        .hex())[2]).keys
    assert sorted(p.body for p in stored.packets()) == sorted(p.body for p in sent)


def _flood(victim_name, signers, per_signer):
    parts = packets(victim_name)
    key = parse_keyring(keyring(parts)).keys[0]
    uid = key.user_ids[0]
    certifications = []
    for n, signer in enumerate(signers):
        for m in range(per_signer):
            created = 1704067200 + 3600 + n * per_signer + m
            sig = signer.sign(sg.CERT_GENERIC, key.public_key, uid.value, created=created)
            certifications.append(pk.Packet(pk.TAG_SIGNATURE, sig.serialize()))
    uid_index = next(i for i, p in enumerate(parts) if p.tag == pk.TAG_USER_ID)
    return keyring(parts[:uid_index + 2] + certifications + parts[uid_index + 2:])


def test_flooded_key_is_stored_whole_and_served_small(server, tmp_path):
    signers = [Signer.new() for _ in range(2000)]
    flooded = _flood("ed25519", signers, 10)  # 20,000 third-party certifications
    result = upload(server, encode(flooded).encode())
    assert result["added"] == [fpr("ed25519")] or result["updated"] == [fpr("ed25519")]
    network = network_key(server, fpr("ed25519"))
    assert len(network.user_ids[0].sigs) == 20001
    served = served_key(server, fpr("ed25519"))
    assert len(served.user_ids[0].sigs) == 1  # the issuers are unknown here: none verified
    theirs, listing = gpg_receives(server, fpr("ed25519"), third_party=True)
    assert len(theirs["uids"]) == 1
    assert listing.count("\nsig:") == 1 + 1  # the self-certification and the subkey binding

    # Once 150 of the certifiers' keys are here, their newest certifications are
    # served, at most 100 per user ID (the default cap), newest first.
    known = signers[-150:]
    for signer in known:
        uid = pk.Packet(pk.TAG_USER_ID, b"certifier")
        self_sig = signer.sign(sg.CERT_POSITIVE, signer.public, read_keys(keyring([
            pk.Packet(pk.TAG_PUBLIC_KEY, signer.public.serialize()), uid])).keys[0]
            .user_ids[0].value)
        upload(server, keyring([pk.Packet(pk.TAG_PUBLIC_KEY, signer.public.serialize()), uid,
                                pk.Packet(pk.TAG_SIGNATURE, self_sig.serialize())]))
    settled(server)  # without an operator's command: cksd follows the certifiers
    served = served_key(server, fpr("ed25519"))
    third_party = [s for s in served.user_ids[0].sigs if not served.is_self_issued(s.sig)]
    assert len(third_party) == 100
    newest_known = {s.public.keyid for s in known[-10:]}
    assert newest_known <= {s.sig.issuer_keyid for s in third_party}
    theirs, listing = gpg_receives(server, fpr("ed25519"), third_party=True)
    assert listing.count("\nsig:") == 102
    out = tool("cks_admin.py", ["--db", server.db_url, "reverify", fpr("ed25519")])
    assert out.returncode == 0 and out.stdout.decode().strip() == "0 served views changed"


def test_each_signature_is_verified_once(server):
    store = open_store(server.db_url)

    def count():
        with store.read() as cursor:
            return cursor.scalar("SELECT count(*) FROM cks_sig_verdicts WHERE "
                                 "key_fingerprint = ?", (fpr("alice-t1"),))
    try:
        upload(server, fixture("alice-t1"))
        settled(server)  # (a new key's served view follows its upload's answer)
        first = count()
        assert first == 2  # the self-certification and the subkey binding
        upload(server, fixture("alice-t1"))
        assert count() == first
        upload(server, fixture("alice-t2"))  # two more self-signatures and a subkey binding
        assert count() == first + 3
    finally:
        store.close()


def test_designated_revocation_counts_once_the_revokers_key_is_here(server):
    upload(server, fixture("desig-revoked"))
    index = lambda: server.lookup(op="index", options="mr",  # noqa: E731
                                  search="0x" + fpr("desig-revoked"))[2].decode()
    assert not index().splitlines()[1].endswith(":r")  # cannot be verified yet
    upload(server, fixture("revoker"))
    out = tool("cks_admin.py", ["--db", server.db_url, "reverify"])
    assert out.returncode == 0
    assert index().splitlines()[1].endswith(":r")


def test_local_certifications_are_stored_but_not_served(server):
    """A certification whose hashed Exportable Certification subpacket says 0
    (`gpg --lsign-key`, exported with export-local-sigs) is local: "key
    servers always trim local certifications from any key they handle" (RFC
    9580, 5.2.3.19).  Until 2026-12-06 a third party's was served, and a
    user ID whose only self-certification was local was served with it.
    The network view keeps them, as SKS does (op=hget hashes the same)."""
    owner, friend = Signer.new(), Signer.new()
    local = [sg.Subpacket(sg.SUB_EXPORTABLE, b"\0")]
    published, private = b"Local Certs <local-certs@example.org>", b"Only Local <only@example.org>"
    sent = [pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
            pk.Packet(pk.TAG_USER_ID, published),
            pk.Packet(pk.TAG_SIGNATURE, owner.sign(
                sg.CERT_POSITIVE, owner.public, UserID(published)).serialize()),
            pk.Packet(pk.TAG_SIGNATURE, friend.sign(
                sg.CERT_GENERIC, owner.public, UserID(published),
                created=1704067200 + 60).serialize()),
            pk.Packet(pk.TAG_SIGNATURE, friend.sign(
                sg.CERT_GENERIC, owner.public, UserID(published), local,
                created=1704067200 + 120).serialize()),
            pk.Packet(pk.TAG_USER_ID, private),
            pk.Packet(pk.TAG_SIGNATURE, owner.sign(
                sg.CERT_POSITIVE, owner.public, UserID(private), local).serialize())]
    friends_uid = b"Friend <friend@example.org>"
    upload(server, keyring([pk.Packet(pk.TAG_PUBLIC_KEY, friend.public.serialize()),
                            pk.Packet(pk.TAG_USER_ID, friends_uid),
                            pk.Packet(pk.TAG_SIGNATURE, friend.sign(
                                sg.CERT_POSITIVE, friend.public,
                                UserID(friends_uid)).serialize())]))
    upload(server, keyring(sent))
    fingerprint = owner.public.fingerprint.hex().upper()
    settled(server)
    served = served_key(server, fingerprint)
    assert [c.value.text for c in served.user_ids] == [published.decode()]
    certifications = served.user_ids[0].sigs
    assert [e.sig.sig_type for e in certifications] == [sg.CERT_POSITIVE, sg.CERT_GENERIC]
    assert all(e.sig.exportable for e in certifications)
    assert server.lookup(op="index", options="mr", search="only@example.org")[0] == 404
    (stored,) = read_keys(server.lookup(op="hget", options="mr",
                                        search=sks_hash(parse_keyring(keyring(sent)).keys[0])
                                        .hex())[2]).keys
    assert sorted(p.body for p in stored.packets()) == sorted(p.body for p in sent)


def test_a_v5_key_made_by_gnupg_24_keeps_its_v4_subkey(server):
    """GnuPG 2.4 makes an Ed448 key v5 and a cv25519 subkey added to it v4,
    and encrypts to it; until 2026-12-06 that subkey was not served (as if a
    v5 key could carry v5 subkeys only), so whoever fetched the key could
    not encrypt to it ("Unusable public key"; found by a review)."""
    data = fixture("gnupg24/ed448-v5-cv25519-v4")
    (sent,) = read_keys(data).keys
    assert (sent.public_key.version, sent.subkeys[0].value.version) == (5, 4)
    upload(server, data)
    settled(server)
    served = served_key(server, sent.fingerprint.hex().upper())
    assert sorted(p.body for p in served.packets()) == sorted(p.body for p in sent.packets())
    subkey = sent.subkeys[0].value.fingerprint.hex().upper()
    assert served_key(server, subkey).fingerprint == sent.fingerprint


def test_gnupg_24s_ed448_v5_key_is_served_whole(server):
    """Until 2026-12-06 GnuPG 2.4's v5 keys (Ed448 only) were served as a
    bare primary key: their signatures went unchecked, so `gpg --recv-keys`
    said "contains no user ID", and the subkey was found by nothing."""
    data = fixture("gnupg24/ed448-v5")
    (sent,) = read_keys(data).keys
    upload(server, data)
    settled(server)
    fingerprint = sent.fingerprint.hex().upper()
    served = served_key(server, fingerprint)
    assert sorted(p.body for p in served.packets()) == sorted(p.body for p in sent.packets())
    subkey = sent.subkeys[0].value.fingerprint.hex().upper()
    assert served_key(server, subkey).fingerprint == sent.fingerprint
    index = server.lookup(op="index", options="mr", search="ed448-v5@example.org")
    assert index[0] == 200  # (urllib names itself: it is not GnuPG 2.2, kept from v5 keys)
    assert "pub:%s:22:448:1767225600::" % fingerprint in index[2].decode()

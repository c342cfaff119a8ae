"""Every fixture against expected.json and, where GnuPG can read it, against gpg itself."""


import pytest

from cks.openpgp import keys, packet as pk
from cks.openpgp.armor import scan
from cks.openpgp.info import describe
from cks.openpgp.keypacket import identify
from support import EXPECTED, GPG_READABLE, PUBLIC_FIXTURES, fixture
from support.gpg import GnuPG

PUBLIC = PUBLIC_FIXTURES


def _described(name):
    result = keys.read_keys(fixture(name))
    assert result.problems == [], [str(p) for p in result.problems]
    return [describe(k) for k in result.keys]


@pytest.mark.parametrize("name", PUBLIC)
def test_fields_equal_expected(name):
    infos = _described(name)
    assert len(infos) == len(EXPECTED[name])
    for info, want in zip(infos, EXPECTED[name]):
        assert info.fingerprint == want["fingerprint"]
        assert info.keyid == want["keyid"]
        assert (info.version, info.algorithm, info.bits) == (want["version"], want["algo"],
                                                             want["bits"])
        assert (info.created, info.expires) == (want["created"], want["expires"])
        assert info.revoked == want["revoked"]
        assert sorted(u.text for u in info.user_ids if not u.is_attribute) == sorted(want["uids"])
        assert sorted(u.text for u in info.user_ids if u.revoked) == sorted(want["revoked_uids"])
        assert sum(u.images for u in info.user_ids) == want["user_attributes"]
        primary = [u.text for u in info.user_ids if u.primary]
        if want["primary_uid"] and len(want["uids"]) > 1:
            assert info.user_ids[0].text == want["primary_uid"]
        assert primary in ([], [want["primary_uid"]])
        got_subs = {s.fingerprint: (s.keyid, s.version, s.algorithm, s.bits, s.created,
                                    s.expires, s.revoked) for s in info.subkeys}
        want_subs = {s["fingerprint"]: (s["keyid"], s["version"], s["algo"], s["bits"],
                                        s["created"], s["expires"], s["revoked"])
                     for s in want["subkeys"]}
        assert got_subs == want_subs


@pytest.fixture(scope="module")
def gpg():
    with GnuPG() as home:
        yield home


@pytest.mark.parametrize("name", GPG_READABLE)
def test_fields_equal_what_gnupg_reports(gpg, name):
    data = fixture(name)
    theirs = {k["fingerprint"]: k for k in gpg.show(data)}
    infos = _described(name)
    assert {i.fingerprint for i in infos} == set(theirs)
    for info in infos:
        want = theirs[info.fingerprint]
        assert (info.keyid, info.algorithm, info.bits, info.created, info.expires) == \
            (want["keyid"], want["algo"], want["bits"], want["created"], want["expires"])
        # gpg sees a designated revocation only with the revoker's key in its
        # keyring: test_designated_revocation_as_gnupg_sees_it covers that.
        key_revoked = (want["validity"] == "r") if name == "desig-revoked.asc" else info.revoked
        assert key_revoked == (want["validity"] == "r")
        ours = sorted((u.text, u.revoked or key_revoked) for u in info.user_ids
                      if not u.is_attribute)
        assert ours == sorted((u["text"], u["validity"] == "r") for u in want["uids"])
        assert sum(1 for u in info.user_ids if u.is_attribute) == want["uats"]
        assert sorted(s.fingerprint for s in info.subkeys) == \
            sorted(s["fingerprint"] for s in want["subkeys"])
        for sub in info.subkeys:
            theirs_sub = next(s for s in want["subkeys"] if s["fingerprint"] == sub.fingerprint)
            assert (sub.keyid, sub.algorithm, sub.bits, sub.created, sub.expires) == \
                (theirs_sub["keyid"], theirs_sub["algo"], theirs_sub["bits"],
                 theirs_sub["created"], theirs_sub["expires"])
            assert (sub.revoked or key_revoked) == (theirs_sub["validity"] == "r")
        assert info.designated_revokers == sorted(want["revokers"])


@pytest.mark.parametrize("name", PUBLIC)
def test_every_packet_serializes_back_byte_identically(name):
    for block in scan(fixture(name))[0]:
        data = block.data
        rebuilt = b"".join(p.serialize() for p in pk.iter_packets(data))
        assert rebuilt == data
        for packet in pk.iter_packets(data):
            parsed = _typed(packet)
            if parsed is not None:
                assert parsed.serialize() == packet.body


def _typed(packet):
    from cks.openpgp.keypacket import PublicKey
    from cks.openpgp.signature import Signature
    from cks.openpgp.userid import UserAttribute, UserID
    kinds = {pk.TAG_PUBLIC_KEY: PublicKey, pk.TAG_PUBLIC_SUBKEY: PublicKey,
             pk.TAG_SIGNATURE: Signature, pk.TAG_USER_ID: UserID,
             pk.TAG_USER_ATTRIBUTE: UserAttribute}
    kind = kinds.get(packet.tag)
    return kind.parse(packet.body) if kind else None


def test_rfc9580_sample_fingerprints():
    (info,) = _described("rfc9580-v6-sample")
    assert info.fingerprint == \
        "CB186C4F0609A697E4D52DFA6C722B0C1F1E27C18A56708F6525EC27BAD9ACC9"
    assert info.keyid == "CB186C4F0609A697"  # v6: the high 64 bits
    assert info.subkeys[0].fingerprint.startswith("12C83F1E")


@pytest.mark.parametrize("name", PUBLIC)
def test_identify_gives_the_parsed_keys_fingerprint_and_key_id(name):
    """keypacket.identify (the bulk loader's, which skips the key material)
    agrees with the parsed key on every v4-v6 fixture; v3 it leaves alone."""
    for key in keys.read_keys(fixture(name)).keys:
        body = key.primary.body
        expected = None if key.public_key.version < 4 else (key.fingerprint, key.keyid)
        assert identify(body) == expected


def test_v3_key_id_is_low_64_bits_of_n():
    result = keys.read_keys(fixture("v3-rsa"))
    (key,) = result.keys
    n = key.public_key.params[0]
    assert key.keyid == n[-8:]
    assert len(key.fingerprint) == 16


def test_photo_id_image_is_reachable():
    (key,) = keys.read_keys(fixture("photo")).keys
    (attribute,) = key.attributes
    (image,) = attribute.value.images
    assert image.mime_type == "image/jpeg"
    assert image.data.startswith(b"\xff\xd8") and image.data.rstrip(b"\0").endswith(b"\xff\xd9")


def test_designated_revoker_and_its_revocation():
    (revoker,) = _described("revoker")
    (named,) = _described("desig-revoker")
    assert named.designated_revokers == [revoker.fingerprint] and not named.revoked
    (revoked,) = _described("desig-revoked")
    assert revoked.revoked


def test_designated_revocation_as_gnupg_sees_it():
    with GnuPG() as gpg:
        gpg.run(["--import"], input=fixture("revoker"))
        gpg.run(["--import"], input=fixture("desig-revoked"))
        (revoked,) = _described("desig-revoked")
        out = gpg.run(["--with-colons", "--list-keys", revoked.fingerprint]).stdout.decode()
    pub = next(line for line in out.splitlines() if line.startswith("pub:"))
    assert pub.split(":")[1] == "r" and revoked.revoked


def test_third_party_certifications_are_kept():
    (key,) = keys.read_keys(fixture("certified")).keys
    issuers = {s.sig.issuer_keyid.hex().upper() for s in key.user_ids[0].sigs}
    (rsa,) = _described("rsa2048")
    (nist,) = _described("nistp256")
    assert {rsa.keyid, nist.keyid, key.keyid.hex().upper()} <= issuers


def test_two_keys_in_one_block_and_two_blocks_in_a_mail():
    assert [i.fingerprint for i in _described("two-keys")] == \
        [EXPECTED["two-keys.asc"][0]["fingerprint"], EXPECTED["two-keys.asc"][1]["fingerprint"]]
    assert len(_described("two-blocks")) == 2


def test_secret_keys_are_refused():
    result = keys.read_keys(fixture("secret/rsa2048"))
    assert result.keys == []
    assert any("secret key material refused" in str(p) for p in result.problems)

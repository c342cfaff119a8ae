"""What cksd says of a key's dates (signatures made before their key,
expiries, expired signatures) against what real GnuPG concludes of the key
it receives, on SQLite and PostgreSQL."""

import pytest

from cks.openpgp import signature as sg
from cks.openpgp.armor import encode
from cks.openpgp.keys import read_keys
from cks.openpgp.packet import (TAG_PUBLIC_KEY, TAG_PUBLIC_SUBKEY, TAG_SIGNATURE,
                               TAG_USER_ID, Packet)
from cks.openpgp.signature import Subpacket
from cks.openpgp.userid import UserID
from support.forge import CREATED, Signer, embedded, key_flags, keyring
from support.gpg import GnuPG
from support.server import Cksd

DAY = 86400


def _packet(sig):
    return Packet(TAG_SIGNATURE, sig.serialize())


def _key(name, uids=([(CREATED, ())],), key_sigs=()):
    """(signer, key data): a v4 key created at CREATED with key signatures
    (type, created, subpackets) `key_sigs` and a user ID per entry of
    `uids` ("NAME <NAME@dates.example>", then "NAME-2 <NAME-2@...>" ...),
    self-signed once per (created, subpackets) in that entry."""
    signer = Signer.new()
    packets = [Packet(TAG_PUBLIC_KEY, signer.public.serialize())]
    packets += [_packet(signer.sign(sig_type, signer.public, None, list(hashed), created=created))
                for sig_type, created, hashed in key_sigs]
    for number, sigs in enumerate(uids, 1):
        label = name if number == 1 else "%s-%d" % (name, number)
        uid = ("%s <%s@dates.example>" % (label, label)).encode()
        packets.append(Packet(TAG_USER_ID, uid))
        packets += [_packet(signer.sign(sg.CERT_POSITIVE, signer.public, UserID(uid),
                                        [key_flags(0x03)] + list(hashed), created=created))
                    for created, hashed in sigs]
    return signer, keyring(packets)


def _fpr(signer):
    return signer.public.fingerprint.hex().upper()


@pytest.fixture(scope="module")
def server(module_db_url):
    with Cksd(module_db_url) as cksd:
        yield cksd


@pytest.fixture
def gpg(server):
    with GnuPG(keyserver="hkp://127.0.0.1:%d" % server.port) as home:
        yield home


def _upload(server, data):
    status, _, body = server.add(encode(data))
    assert status == 200, body


def _index_pub(server, signer):
    """The fields of the mr index's pub line for `signer`'s key."""
    status, _, body = server.lookup(op="index", options="mr", search="0x" + _fpr(signer))
    assert status == 200, body
    (line,) = [line for line in body.decode().splitlines() if line.startswith("pub:")]
    return line.split(":")


def _received(gpg, signer):
    """What GnuPG lists of `signer`'s key after --recv-keys from cksd."""
    gpg.run(["--recv-keys", _fpr(signer)], check=False)
    return gpg.run(["--with-colons", "--list-keys", _fpr(signer)],
                   check=False).stdout.decode().splitlines()


def test_a_key_revocation_dated_before_the_key_does_not_revoke_it(server, gpg):
    """Until 2026-12-06 cksd showed such a key revoked; GnuPG imports it as
    valid, and its users go on encrypting to it."""
    signer, data = _key("revbeforekey", key_sigs=[(sg.KEY_REVOCATION, CREATED - 365 * DAY, ())])
    with GnuPG() as other:
        assert "r" not in other.show(data)[0]["validity"]
    _upload(server, data)
    assert "r" not in _index_pub(server, signer)[6]
    (pub,) = [line for line in _received(gpg, signer) if line.startswith("pub:")]
    assert pub.split(":")[1] != "r"


def test_a_user_id_self_signed_only_before_the_key_is_no_user_id(server, gpg):
    """GnuPG: "contains no user ID - skipped"; cksd served it with the user
    ID verified, and found it by text."""
    signer, data = _key("sigbeforekey", [[(CREATED - 365 * DAY, ())]])
    with GnuPG() as other:
        other.run(["--import"], input=data, check=False)
        assert other.fingerprints() == []
    server.add(encode(data))
    status, _, body = server.lookup(op="index", options="mr",
                                    search="sigbeforekey@dates.example")
    assert status == 404 and b"sigbeforekey" not in body
    status, _, body = server.lookup(op="get", options="mr", search="0x" + _fpr(signer))
    assert status == 404 or not any(key.identities for key in read_keys(body).keys)


def test_a_signing_subkey_back_signed_before_it_was_made_is_not_served(server, gpg):
    """GnuPG refuses the back-signature ("public key ... is 1 day newer than
    the signature"), so the subkey is not bound for signing."""
    subkey = Signer.new(created=CREATED + 10 * DAY)
    primary = Signer.new()
    backsig = subkey.sign(sg.PRIMARY_KEY_BINDING, primary.public, subkey.public,
                          created=CREATED + 9 * DAY)
    binding = primary.sign(sg.SUBKEY_BINDING, primary.public, subkey.public,
                           [key_flags(0x02), embedded(backsig)], created=CREATED + 10 * DAY)
    uid = b"early backsig <earlybacksig@dates.example>"
    data = keyring([Packet(TAG_PUBLIC_KEY, primary.public.serialize()), Packet(TAG_USER_ID, uid),
                    _packet(primary.sign(sg.CERT_POSITIVE, primary.public, UserID(uid),
                                         [key_flags(0x03)])),
                    Packet(TAG_PUBLIC_SUBKEY, subkey.public.serialize()), _packet(binding)])
    with GnuPG() as other:
        assert b"newer than the signature" in other.run(
            ["--import"], input=data, check=False).stderr
    _upload(server, data)
    status, _, body = server.lookup(op="get", options="mr", search="0x" + _fpr(primary))
    assert status == 200
    (key,) = read_keys(body).keys
    assert key.subkeys == []


def test_a_certification_dated_before_its_maker_counts_as_gnupg_counts_it(server, gpg):
    """GnuPG 2.2 does not look at the date of a certification by another key."""
    maker, maker_data = _key("earlymaker")
    holder = Signer.new(created=CREATED - 100 * DAY)
    uid = b"holder <holder@dates.example>"
    data = keyring([Packet(TAG_PUBLIC_KEY, holder.public.serialize()), Packet(TAG_USER_ID, uid),
                    _packet(holder.sign(sg.CERT_POSITIVE, holder.public, UserID(uid),
                                        created=CREATED - 100 * DAY)),
                    _packet(maker.sign(sg.CERT_GENERIC, holder.public, UserID(uid),
                                       created=CREATED - 10 * DAY))])
    _upload(server, maker_data)
    _upload(server, data)
    served = [server.lookup(op="get", options="mr", search="0x" + _fpr(key))[2]
              for key in (maker, holder)]
    # (--recv-keys would take self-signatures only: GnuPG's default since 2.2.17)
    gpg.run(["--import"], input=b"".join(served))
    listing = gpg.run(["--with-colons", "--check-sigs", _fpr(holder)]).stdout.decode()
    assert "sig:!::22:%s:" % maker.public.keyid.hex().upper() in listing


def _key_expiry(seconds):
    return Subpacket(sg.SUB_KEY_EXPIRATION_TIME, seconds.to_bytes(4, "big"))


def _sig_expiry(seconds):
    return Subpacket(sg.SUB_EXPIRATION_TIME, seconds.to_bytes(4, "big"))


# name: (self-certifications per user ID, direct-key signatures, key expiry)
EXPIRIES = {
    # a key expiry of 0 states none: GnuPG takes the next signature's
    "dk0uidexp": ([[(CREATED, [_key_expiry(DAY)])]],
                  [(sg.DIRECT_KEY, CREATED + 10 * DAY, [_key_expiry(0)])], CREATED + DAY),
    "uid2exp0": ([[(CREATED + 100 * DAY, [_key_expiry(0)])], [(CREATED, [_key_expiry(DAY)])]],
                 [], CREATED + DAY),
    # an expired signature states nothing of the key
    "dkexpiredshort": ([[(CREATED, [])]], [(sg.DIRECT_KEY, CREATED + 10 * DAY,
                                            [_key_expiry(DAY), _sig_expiry(20 * DAY)])], None),
    "dkexpiredlong": ([[(CREATED, [_key_expiry(DAY)])]],
                      [(sg.DIRECT_KEY, CREATED + 10 * DAY,
                        [_key_expiry(3650 * DAY), _sig_expiry(20 * DAY)])], CREATED + DAY),
    "uidexpiredsigexp": ([[(CREATED, []), (CREATED + 10 * DAY, [_key_expiry(DAY),
                                                                 _sig_expiry(DAY)])]],
                         [], None),
}


@pytest.mark.parametrize("name", sorted(EXPIRIES))
def test_the_key_expiry_is_the_one_gnupg_applies(server, gpg, name):
    """Until 2026-12-06 a key expiry of 0, or one in an expired signature,
    hid the expiry GnuPG applies or set one GnuPG ignores."""
    uids, key_sigs, expires = EXPIRIES[name]
    signer, data = _key(name, uids, key_sigs)
    _upload(server, data)
    (pub,) = [line.split(":") for line in _received(gpg, signer) if line.startswith("pub:")]
    assert (int(pub[6]) if pub[6] else None) == expires
    assert _index_pub(server, signer)[5] == (str(expires) if expires else "")


def test_an_expiry_past_2106_is_listed_as_the_latest_date_gnupg_reads(server, gpg):
    """A key expiry of 2**32 - 1 seconds ends past 2106: GnuPG's
    --search-keys read the mr index's expiry into 32 bits, and until
    2026-12-06 showed such a key "expires: 2023-12-31 (expired)"."""
    signer, data = _key("exp2106", [[(CREATED, [_key_expiry(2 ** 32 - 1)])]])
    _upload(server, data)
    pub = _index_pub(server, signer)
    assert (pub[5], pub[6]) == (str(2 ** 32 - 1), "")
    found = gpg.run(["--search-keys", "exp2106@dates.example"], check=False).stdout.decode()
    assert "created: 2024-01-01" in found and "expire" not in found

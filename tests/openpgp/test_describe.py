"""What describe derives from keys the fixtures lack, beside what GnuPG
lists for the same key (v4 keys; v6 ones only here, GnuPG 2.2 cannot read
them)."""

import pytest

from cks.openpgp import packet as pk
from cks.openpgp import signature as sg
from cks.openpgp.info import describe
from cks.openpgp.keys import parse_keyring
from cks.openpgp.userid import UserID
from support.forge import CREATED, Signer, key_flags, keyring
from support.gpg import GnuPG

UID = b"Owner <owner@example.org>"
YEAR = 365 * 86400
CERTIFY, SIGN = 0x01, 0x02


def _expires_in(seconds):
    return sg.Subpacket(sg.SUB_KEY_EXPIRATION_TIME, seconds.to_bytes(4, "big"))


def _key(owner, direct, certification=()):
    """`owner`'s key: a direct-key self-signature for each (created, hashed
    subpackets) of `direct`, then one user ID self-certified with
    `certification`'s subpackets."""
    signatures = [owner.sign(sg.DIRECT_KEY, owner.public, None, hashed, created=created)
                  for created, hashed in direct]
    uid = owner.sign(sg.CERT_POSITIVE, owner.public, UserID(UID), certification)
    return keyring([pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize())]
                   + [pk.Packet(pk.TAG_SIGNATURE, s.serialize()) for s in signatures]
                   + [pk.Packet(pk.TAG_USER_ID, UID),
                      pk.Packet(pk.TAG_SIGNATURE, uid.serialize())])


def _gpg_pub(data):
    """GnuPG's pub line of `data`: (expires, the primary key's own usage letters)."""
    with GnuPG() as gpg:
        out = gpg.run(["--with-colons", "--fixed-list-mode", "--import-options", "show-only",
                       "--import"], input=data).stdout.decode()
    (pub,) = [line.split(":") for line in out.splitlines() if line.startswith("pub:")]
    return int(pub[6]) if pub[6] else None, "".join(c for c in pub[11] if c.islower())


@pytest.mark.parametrize("version", [4, 6])
def test_the_newest_direct_key_signature_decides_expiry_and_usage(version):
    """An older direct-key self-signature set an expiry (now past) and
    flags; the newest, as `sq key expire never` writes it, sets neither:
    the key never expires, and its flags come from the self-certification."""
    owner = Signer.new(version=version)
    data = _key(owner, [(CREATED, [_expires_in(YEAR), key_flags(CERTIFY | SIGN)]),
                        (CREATED + 2 * YEAR, [])], [key_flags(CERTIFY)])
    (key,) = parse_keyring(data).keys
    info = describe(key)
    assert (info.expires, info.key_flags) == (None, CERTIFY)
    if version == 4:
        assert _gpg_pub(data) == (None, "c")


def test_the_newest_direct_key_signature_that_states_them_wins():
    """Stated in the newest direct-key self-signature, expiry and flags
    are its, whatever the older ones and the self-certification say."""
    owner = Signer.new()
    data = _key(owner, [(CREATED, [key_flags(CERTIFY)]),
                        (CREATED + YEAR, [_expires_in(5 * YEAR), key_flags(CERTIFY | SIGN)])],
                [_expires_in(YEAR), key_flags(CERTIFY)])
    (key,) = parse_keyring(data).keys
    info = describe(key)
    assert (info.expires, info.key_flags) == (CREATED + 5 * YEAR, CERTIFY | SIGN)
    assert _gpg_pub(data) == (CREATED + 5 * YEAR, "sc")


def test_a_direct_key_signature_states_the_expiry_until_it_expires():
    """What describe says depends on when it is asked: before the newest
    direct-key self-signature expires its key expiry counts, after it the
    self-certification's, as GnuPG applies them at those moments."""
    owner = Signer.new()
    expiring = sg.Subpacket(sg.SUB_EXPIRATION_TIME, YEAR.to_bytes(4, "big"))
    data = _key(owner, [(CREATED + YEAR, [_expires_in(10 * YEAR), expiring])],
                [_expires_in(YEAR // 2)])
    (key,) = parse_keyring(data).keys
    assert describe(key, now=CREATED + 2 * YEAR - 1).expires == CREATED + 10 * YEAR
    assert describe(key, now=CREATED + 2 * YEAR).expires == CREATED + YEAR // 2
    assert _gpg_pub(data)[0] == CREATED + YEAR // 2  # (its clock is past both)


def test_a_subkey_whose_only_binding_expired_has_expired():
    """As a user ID whose self-certification expired (its `expires` is the
    signature's): GnuPG lists the subkey as invalid (`sub:i`)."""
    owner, sub = Signer.new(), Signer.new()
    lapsing = sg.Subpacket(sg.SUB_EXPIRATION_TIME, YEAR.to_bytes(4, "big"))
    binding = owner.sign(sg.SUBKEY_BINDING, owner.public, sub.public,
                         [key_flags(0x0C), _expires_in(5 * YEAR), lapsing])
    data = _key(owner, []) + keyring([pk.Packet(pk.TAG_PUBLIC_SUBKEY, sub.public.serialize()),
                                      pk.Packet(pk.TAG_SIGNATURE, binding.serialize())])
    (key,) = parse_keyring(data).keys
    (subkey,) = describe(key).subkeys
    assert subkey.expires == CREATED + YEAR
    with GnuPG() as gpg:
        (listed,) = gpg.show(data)
    assert [s["validity"] for s in listed["subkeys"]] == ["i"]

"""Signatures in the served form (openpgp/served_form.py): a signature's
byte-variants are one, and what GnuPG cannot read is not served."""

import dataclasses

import pytest

from cks.openpgp import packet as pk
from cks.openpgp import signature as sg
from cks.openpgp.cryptocheck import CryptoCheck
from cks.openpgp.keys import Key, parse_keyring, read_keys
from cks.openpgp.served_form import (GNUPG_AREA_BYTES, GNUPG_MPI_BITS, key_in_served_form,
                                     served_form)
from cks.openpgp.userid import UserID
from support import GPG_READABLE, fixture
from support.forge import Signer, embedded, key_flags, keyring

USER_ID = UserID(b"Owner <owner@example.org>")
NOTATION = 20  # (a subpacket type)


def _owner_and_certification():
    owner = Signer.new()
    return owner, owner.sign(sg.CERT_POSITIVE, owner.public, USER_ID)


def _with_unhashed(sig, subpackets):
    return dataclasses.replace(sig, unhashed_area=sg.serialize_subpackets(subpackets))


def _padded(material, zero_octets):
    """The first MPI of `material` with `zero_octets` leading zero octets."""
    bits = material[0] << 8 | material[1]
    length = (bits + 7) // 8
    padded_bits = bits + 8 * zero_octets
    return padded_bits.to_bytes(2, "big") + b"\0" * zero_octets + material[2:2 + length] \
        + material[2 + length:]


def _variants(sig):
    """Byte-variants anyone can make of `sig` without its maker's key."""
    issuer = sg.Subpacket(sg.SUB_ISSUER, sig.issuer_keyid)
    return [
        _with_unhashed(sig, [issuer, sg.Subpacket(101, b"x" * 10_100)]),
        _with_unhashed(sig, [sg.Subpacket(NOTATION, b"n" * 40, critical=True), issuer]),
        _with_unhashed(sig, [issuer._replace(critical=True), issuer]),
        _with_unhashed(sig, [issuer, sg.Subpacket(sg.SUB_ISSUER_FINGERPRINT,
                                                  b"\x05" + sig.issuer_fingerprint)]),
        dataclasses.replace(sig, material=_padded(sig.material, 2049)),  # 16,392+ bits
        dataclasses.replace(sig, material=_padded(sig.material, 1)),
    ]


def test_a_signatures_byte_variants_are_served_as_the_signature():
    owner, original = _owner_and_certification()
    assert served_form(original) is original  # (forge's: an issuer key ID unhashed)
    for variant in _variants(original):
        copy = sg.Signature.parse(variant.serialize())
        assert copy.serialize() != original.serialize()
        assert served_form(copy).serialize() == original.serialize()


def test_the_served_form_still_verifies():
    owner, original = _owner_and_certification()
    uid = pk.Packet(pk.TAG_USER_ID, USER_ID.value)
    for variant in _variants(original):
        data = keyring([pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()), uid,
                        pk.Packet(pk.TAG_SIGNATURE, variant.serialize())])
        (key,) = parse_keyring(data).keys
        served = key_in_served_form(key)
        (entry,) = served.identities[0].sigs
        assert entry.packet.body == original.serialize()
        assert CryptoCheck().is_valid(served, served.identities[0], entry)


def test_an_embedded_back_signature_is_kept_in_the_served_form():
    owner, sub = Signer.new(), Signer.new()
    back = sub.sign(sg.PRIMARY_KEY_BINDING, owner.public, sub.public)
    junk_back = _with_unhashed(back, [sg.Subpacket(sg.SUB_ISSUER, back.issuer_keyid),
                                      sg.Subpacket(101, b"y" * 500)])
    binding = owner.sign(sg.SUBKEY_BINDING, owner.public, sub.public, [key_flags(0x02)])
    served_binding = _with_unhashed(binding, list(binding.unhashed) + [embedded(back)])
    variant = _with_unhashed(binding, list(binding.unhashed) + [embedded(junk_back)])
    assert served_form(sg.Signature.parse(variant.serialize())).serialize() == \
        served_binding.serialize()
    assert served_form(served_binding) is not None


def test_what_gnupg_cannot_read_is_not_served():
    owner = Signer.new()
    made_up = sg.Subpacket(100, b"v" * 9_000)  # (a private subpacket type)
    roomy = owner.sign(sg.CERT_POSITIVE, owner.public, USER_ID, [made_up])
    assert len(roomy.hashed_area) <= GNUPG_AREA_BYTES and served_form(roomy) is roomy
    too_much = owner.sign(sg.CERT_POSITIVE, owner.public, USER_ID,
                          [made_up._replace(data=b"v" * 10_100)])
    assert len(too_much.hashed_area) > GNUPG_AREA_BYTES and served_form(too_much) is None
    huge = (GNUPG_MPI_BITS + 1).to_bytes(2, "big") + b"\x01" + b"\0" * (GNUPG_MPI_BITS // 8)
    rsa = sg.Signature(4, sg.CERT_POSITIVE, 1, 8, b"\0\0", huge, roomy.hashed_area,
                       roomy.unhashed_area)
    assert served_form(sg.Signature.parse(rsa.serialize())) is None


@pytest.mark.parametrize("name", GPG_READABLE)
def test_gnupgs_own_signatures_are_served_as_they_are(name):
    for key in read_keys(fixture(name)).keys:
        entries = key.direct_sigs + [e for c in key.identities + key.subkeys for e in c.sigs]
        assert all(served_form(e.sig) is e.sig for e in entries)
        assert key_in_served_form(key).serialize() == Key.serialize(key)

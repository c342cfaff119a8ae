"""The real Debian keyring (905 keys, 28 MB) parses completely, as GnuPG sees it."""

import os

import pytest

from cks.openpgp import keys
from cks.openpgp.info import describe
from support import DEBIAN_KEYRING, in_ci
from support.gpg import GnuPG

if not os.path.exists(DEBIAN_KEYRING):
    if in_ci():
        raise RuntimeError("CI needs the debian-keyring package (apt-get install debian-keyring)")
    pytest.skip("debian-keyring is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def parsed():
    with open(DEBIAN_KEYRING, "rb") as handle:
        data = handle.read()
    result = keys.read_keys(data)
    return data, result


def test_every_key_parses_without_problems(parsed):
    data, result = parsed
    assert result.problems == []
    assert len(result.keys) == 905


def test_fields_equal_gnupgs(parsed):
    data, result = parsed
    with GnuPG() as gpg:
        theirs = {k["fingerprint"]: k for k in gpg.show(data)}
    ours = {}
    for key in result.keys:
        info = describe(key)
        ours[info.fingerprint] = info
    assert set(ours) == set(theirs)
    for fingerprint, want in theirs.items():
        info = ours[fingerprint]
        assert (info.keyid, info.algorithm, info.bits, info.created, info.expires,
                info.revoked) == (want["keyid"], want["algo"], want["bits"], want["created"],
                                  want["expires"], want["validity"] == "r"), fingerprint
        assert sorted(u.text for u in info.user_ids if not u.is_attribute) == \
            sorted(u["text"] for u in want["uids"]), fingerprint
        assert {s.fingerprint: (s.algorithm, s.bits, s.expires) for s in info.subkeys} == \
            {s["fingerprint"]: (s["algo"], s["bits"], s["expires"]) for s in want["subkeys"]}


def test_canonical_form_keeps_every_packet(parsed):
    data, result = parsed
    from cks.openpgp import packet as pk
    packets = {(p.tag, p.body) for p in pk.iter_packets(data) if p.tag != pk.TAG_TRUST}
    stored = {(p.tag, p.body) for key in result.keys for p in key.packets()}
    assert stored == packets

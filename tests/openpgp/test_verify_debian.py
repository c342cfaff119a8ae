"""Every self-signature of the Debian keyring: our verdict equals GnuPG's.

GnuPG checks a copy of the keyring with the third-party signatures taken
out: `--check-sigs` on the whole keyring verifies every certification whose
issuer is in it too, and takes close to three minutes.
"""

import os
from collections import Counter

import pytest

from cks.openpgp import keys
from cks.openpgp.cryptocheck import CryptoCheck
from cks.openpgp.info import describe
from cks.openpgp.verify import verify
from support import DEBIAN_KEYRING, in_ci
from support.checksigs import (cks_verdicts, disagreements, gpg_verdicts,
                               self_signatures_only, signatures)
from support.gpg import GnuPG

if not os.path.exists(DEBIAN_KEYRING):
    if in_ci():
        raise RuntimeError("CI needs the debian-keyring package (apt-get install debian-keyring)")
    pytest.skip("debian-keyring is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def self_signed():
    """The keyring's self-signatures only, as binary data and as parsed keys."""
    with open(DEBIAN_KEYRING, "rb") as handle:
        data = self_signatures_only(handle.read())
    result = keys.read_keys(data)
    assert result.problems == []
    return data, result.keys


def test_every_self_signature_as_gnupg_says(self_signed):
    data, parsed = self_signed
    with GnuPG() as gpg:
        theirs = gpg_verdicts(gpg, data)
    ours = cks_verdicts(parsed, {key.keyid: key.public_key for key in parsed})
    assert disagreements(ours, theirs) == {}
    letters = Counter(letter for found in ours.values() for letter in found)
    assert letters == {"!": 6560}  # GnuPG finds no bad self-signature here either


def test_the_ripemd160_key_verifies(self_signed):
    data, parsed = self_signed
    ripemd = [(key, component, entry.sig) for key in parsed
              for component, entry in signatures(key) if entry.sig.hash_algorithm == 3]
    assert len({key.fingerprint for key, _, _ in ripemd}) == 1
    assert len(ripemd) == 4
    for key, component, sig in ripemd:
        verdict = verify(key, component, sig, key.public_key)
        assert verdict.valid and verdict.weak_hash


def test_verified_view_equals_the_structural_one(self_signed):
    """No self-signature is bad, so CryptoCheck must not change what a lookup shows."""
    data, parsed = self_signed
    check = CryptoCheck({})
    for key in parsed:
        assert describe(key, check) == describe(key), key.fingerprint.hex()

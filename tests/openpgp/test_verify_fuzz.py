"""Property tests: hostile signature and key bytes into the verifier give a
verdict or a PGPError, nothing else, and quickly."""

import time

from hypothesis import HealthCheck, given, settings, strategies as st

from cks.crypto import UnsupportedAlgorithm
from cks.openpgp import algorithms as alg
from cks.openpgp import keys
from cks.openpgp.armor import scan
from cks.openpgp.cryptocheck import CryptoCheck
from cks.openpgp.errors import PGPError
from cks.openpgp.info import describe
from cks.openpgp.keypacket import PublicKey
from cks.openpgp.sighash import TARGETS, signature_digest
from cks.openpgp.signature import Signature, Subpacket, serialize_subpackets
from cks.openpgp.verify import INVALID, UNSUPPORTED, VALID, Verdict, verify
from support import fixture
from support.checksigs import signatures

NAMES = ["rsa2048", "dsa-elg", "nistp256", "ed25519", "revoked-parts", "photo", "v3-rsa",
         "v4-ed448-native", "v5-ed25519", "v6-ed25519", "v6-rsa3072"]
KEYS = [key for name in NAMES for key in keys.read_keys(fixture(name)).keys]
SIGNED = [(key, component, entry.sig) for key in KEYS
          for component, entry in signatures(key)]
KEY_BYTES = [scan(fixture(name))[0][0].data for name in NAMES]
FAST = settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
LIMIT = 2.0  # seconds for any one verification


def _verdict(key, component, sig, issuer):
    started = time.monotonic()
    verdict = verify(key, component, sig, issuer)
    assert time.monotonic() - started < LIMIT
    assert isinstance(verdict, Verdict) and verdict.status in (VALID, INVALID, UNSUPPORTED)
    return verdict


def _mutate(data, draw):
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del out[draw(st.integers(0, len(out))):]
    return bytes(out)


def _with_right_prefix(sig, key, component):
    """`sig` with the hash prefix that fits, so the public-key step really runs."""
    try:
        digest = signature_digest(sig, key.public_key, component.value if component else None)
    except (PGPError, UnsupportedAlgorithm):
        return sig
    if digest is not None:
        sig.hash_prefix = digest[:2]
    return sig


@FAST
@given(st.binary(max_size=600), st.sampled_from(KEYS), st.data())
def test_random_signature_bytes(body, key, data):
    try:
        sig = Signature.parse(body)
    except PGPError:
        return
    component = data.draw(st.sampled_from([None] + key.identities + key.subkeys))
    _verdict(key, component, _with_right_prefix(sig, key, component), key.public_key)


def _mpi(value):
    return value.bit_length().to_bytes(2, "big") + value.to_bytes(
        (value.bit_length() + 7) // 8, "big")


@FAST
@given(st.sampled_from(SIGNED), st.data())
def test_random_well_formed_signatures(signed, data):
    """Real framing, random fields: the type, hash, subpackets and values."""
    key, component, sig = signed
    draw = data.draw
    sig = Signature.parse(sig.serialize())
    sig.sig_type = draw(st.sampled_from(sorted(TARGETS)) | st.integers(0, 255))
    sig.hash_algorithm = draw(st.sampled_from([1, 2, 3, 8, 9, 10, 11, 12, 14])
                              | st.integers(0, 255))
    if sig.version >= 4:
        sig.hashed_area = serialize_subpackets(draw(st.lists(st.builds(
            Subpacket, st.integers(0, 127), st.binary(max_size=40), st.booleans()),
            max_size=6)))
    if sig.pubkey_algorithm in alg.NATIVE_SIGNATURE_SIZES:
        size = alg.NATIVE_SIGNATURE_SIZES[sig.pubkey_algorithm]
        sig.material = draw(st.binary(min_size=size, max_size=size))
    else:
        count = 1 if sig.pubkey_algorithm in alg.RSA_ALGORITHMS else 2
        sig.material = b"".join(_mpi(draw(st.integers(0, 1 << draw(st.integers(0, 4200)))))
                                for _ in range(count))
    try:
        sig = Signature.parse(sig.serialize())
    except PGPError:
        return
    _verdict(key, component, _with_right_prefix(sig, key, component), key.public_key)


@FAST
@given(st.sampled_from(SIGNED), st.data())
def test_mutated_signatures(signed, data):
    key, component, sig = signed
    try:
        mutated = Signature.parse(_mutate(sig.serialize(), data.draw))
    except PGPError:
        return
    verdict = _verdict(key, component, _with_right_prefix(mutated, key, component),
                       key.public_key)
    if mutated.serialize() != sig.serialize() and verdict.valid:
        # Only the unsigned parts may change: unhashed subpackets, prefix, MPI framing.
        assert (mutated.sig_type, mutated.hashed_area) == (sig.sig_type, sig.hashed_area)


@FAST
@given(st.sampled_from(KEY_BYTES), st.data())
def test_mutated_keys_through_crypto_check(sample, data):
    try:
        result = keys.read_keys(_mutate(sample, data.draw))
    except PGPError:
        return
    started = time.monotonic()
    for key in result.keys:
        try:
            describe(key, CryptoCheck())
        except PGPError:
            pass
    assert time.monotonic() - started < LIMIT


def _hostile_material(algorithm, draw):
    """Key material of `algorithm` with field sizes up to and past the caps."""
    def mpi(max_bits):
        return _mpi(draw(st.integers(0, (1 << draw(st.integers(0, max_bits))) - 1)))
    if algorithm == alg.RSA:
        return mpi(20000) + mpi(draw(st.sampled_from([17, 64, 65, 16384])))
    if algorithm == alg.DSA:
        return mpi(20000) + mpi(600) + mpi(20000) + mpi(20000)
    if algorithm in (alg.ECDSA, alg.EDDSA_LEGACY):
        oid = draw(st.sampled_from(sorted(alg.CURVES)) | st.binary(min_size=1, max_size=12))
        return bytes((len(oid),)) + oid + mpi(1100)
    return draw(st.binary(min_size=alg.NATIVE_KEY_SIZES[algorithm],
                          max_size=alg.NATIVE_KEY_SIZES[algorithm]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SIGNED), st.data())
def test_hostile_issuer_keys(signed, data):
    key, component, sig = signed
    algorithm = alg.RSA if sig.pubkey_algorithm in alg.RSA_ALGORITHMS else sig.pubkey_algorithm
    material = _hostile_material(algorithm, data.draw)
    try:
        issuer = PublicKey.parse(b"\x04\x00\x00\x00\x00" + bytes((algorithm,)) + material)
    except PGPError:
        return
    assert not _verdict(key, component, sig, issuer).valid

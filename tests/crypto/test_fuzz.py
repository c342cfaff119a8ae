"""Property tests: arbitrary input never makes a verify function raise."""

from datetime import timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes as c_hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cks.crypto import dsa, ecc, eddsa, rsa
from cks.crypto.hashes import DIGEST_INFO_PREFIX, DIGEST_SIZE

FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow],
)

# integers around the interesting sizes, including negatives and zero
ints = st.one_of(
    st.integers(min_value=-3, max_value=1 << 70),
    st.integers(min_value=-(1 << 600), max_value=1 << 2100),
    st.sampled_from([0, 1, 2, 3, 65537]),
)
junk = st.one_of(st.none(), st.text(max_size=5), st.floats(allow_nan=False), st.lists(st.integers(), max_size=3))


@FUZZ
@given(
    n=st.one_of(ints, junk), e=st.one_of(ints, junk),
    algo=st.sampled_from(sorted(DIGEST_INFO_PREFIX)),
    digest=st.one_of(st.binary(max_size=80), junk), sig=st.one_of(ints, junk),
)
def test_rsa_never_raises(n, e, algo, digest, sig):
    assert rsa.verify_pkcs1v15(n, e, algo, digest, sig) in (True, False)


@FUZZ
@given(n=st.integers(min_value=1 << 1000, max_value=1 << 1100).map(lambda v: v | 1),
       algo=st.sampled_from(sorted(DIGEST_INFO_PREFIX)), data=st.data())
def test_rsa_random_signature_rejected(n, algo, data):
    digest = data.draw(st.binary(min_size=DIGEST_SIZE[algo], max_size=DIGEST_SIZE[algo]))
    sig = data.draw(st.integers(min_value=0, max_value=n - 1))
    assert rsa.verify_pkcs1v15(n, 65537, algo, digest, sig) is False


small_or_big = st.one_of(st.integers(min_value=-2, max_value=1 << 64), ints)


@FUZZ
@given(p=small_or_big, q=small_or_big, g=small_or_big, y=small_or_big,
       digest=st.one_of(st.binary(max_size=70), junk), r=small_or_big, s=st.one_of(small_or_big, junk))
def test_dsa_never_raises(p, q, g, y, digest, r, s):
    assert dsa.verify(p, q, g, y, digest, r, s) in (True, False)


@FUZZ
@given(q=st.integers(min_value=2, max_value=1 << 40), k=st.integers(min_value=1, max_value=1 << 30),
       g=st.integers(min_value=0, max_value=1 << 80), y=st.integers(min_value=0, max_value=1 << 80),
       digest=st.binary(max_size=40), r=st.integers(min_value=0, max_value=1 << 40),
       s=st.integers(min_value=0, max_value=1 << 40))
def test_dsa_structured_params_never_raise(q, k, g, y, digest, r, s):
    # p - 1 divisible by q, so the deeper code paths (non-prime q etc.) run
    p = q * k + 1
    assert dsa.verify(p, q, g, y, digest, r, s) in (True, False)


OIDS = sorted(ecc.CURVES)


@st.composite
def ec_points(draw):
    oid = draw(st.sampled_from(OIDS))
    size = ecc.CURVES[oid].field_bytes
    point = draw(st.one_of(
        st.binary(max_size=2 * size + 3),
        st.binary(min_size=2 * size, max_size=2 * size).map(lambda b: b"\x04" + b),
        st.binary(min_size=size, max_size=size).map(lambda b: b"\x02" + b),
        st.binary(min_size=size, max_size=size).map(lambda b: b"\x03" + b),
        junk,
    ))
    return oid, point


@FUZZ
@given(oid_point=ec_points(), digest=st.one_of(st.binary(max_size=80), junk),
       r=st.one_of(ints, junk), s=st.one_of(ints, junk))
def test_ecdsa_never_raises(oid_point, digest, r, s):
    oid, point = oid_point
    assert ecc.ecdsa_verify(oid, point, digest, r, s) in (True, False)


_C_CURVES = {
    bytes.fromhex("2a8648ce3d030107"): ec.SECP256R1,
    bytes.fromhex("2b81040022"): ec.SECP384R1,
    bytes.fromhex("2b81040023"): ec.SECP521R1,
    bytes.fromhex("2b2403030208010107"): ec.BrainpoolP256R1,
    bytes.fromhex("2b240303020801010b"): ec.BrainpoolP384R1,
    bytes.fromhex("2b240303020801010d"): ec.BrainpoolP512R1,
    bytes.fromhex("2b8104000a"): ec.SECP256K1,
}
_C_HASH_BY_SIZE = {20: c_hashes.SHA1, 28: c_hashes.SHA224, 32: c_hashes.SHA256,
                   48: c_hashes.SHA384, 64: c_hashes.SHA512}


@settings(FUZZ, max_examples=100)
@given(oid=st.sampled_from(OIDS), data=st.data())
def test_ecdsa_agrees_with_cryptography(oid, data):
    # a real point (compressed x that decodes) so the scalar code runs;
    # small r, s and empty-ish digests make degenerate but *valid*
    # signatures likely, which is why the oracle is cryptography.
    curve = ecc.CURVES[oid]
    point = None
    while point is None:
        x = data.draw(st.one_of(st.integers(0, 50), st.integers(min_value=0, max_value=curve.p - 1)))
        enc = bytes([2 + data.draw(st.integers(0, 1))]) + x.to_bytes(curve.field_bytes, "big")
        point = curve.decode_point(enc)
    r = data.draw(st.one_of(st.integers(1, 50), st.integers(min_value=1, max_value=curve.n - 1)))
    s = data.draw(st.one_of(st.integers(1, 50), st.integers(min_value=1, max_value=curve.n - 1)))
    size = data.draw(st.sampled_from(sorted(_C_HASH_BY_SIZE)))
    digest = data.draw(st.one_of(st.just(bytes(size)),
                                 st.binary(min_size=size, max_size=size)))
    pub = ec.EllipticCurvePublicKey.from_encoded_point(_C_CURVES[oid](), enc)
    try:
        pub.verify(encode_dss_signature(r, s), digest,
                   ec.ECDSA(Prehashed(_C_HASH_BY_SIZE[size]())))
        expected = True
    except InvalidSignature:
        expected = False
    assert ecc.ecdsa_verify(oid, enc, digest, r, s) is expected


def _ed_bytes(size):
    return st.one_of(
        st.binary(min_size=size, max_size=size),
        st.binary(max_size=2 * size + 2),
        junk,
    )


@FUZZ
@given(pk=_ed_bytes(32), msg=st.one_of(st.binary(max_size=100), junk), sig=_ed_bytes(64))
def test_ed25519_never_raises(pk, msg, sig):
    assert eddsa.ed25519_verify(pk, msg, sig) in (True, False)


@FUZZ
@given(pk=_ed_bytes(57), msg=st.one_of(st.binary(max_size=100), junk), sig=_ed_bytes(114))
def test_ed448_never_raises(pk, msg, sig):
    assert eddsa.ed448_verify(pk, msg, sig) in (True, False)


@FUZZ
@given(r=st.binary(min_size=32, max_size=32), s=st.integers(min_value=0, max_value=(1 << 252)),
       msg=st.binary(max_size=64))
def test_ed25519_random_signature_for_real_key(r, s, msg):
    pk = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert eddsa.ed25519_verify(pk, msg, r + s.to_bytes(32, "little")) is False


@FUZZ
@given(r=st.binary(min_size=57, max_size=57), s=st.integers(min_value=0, max_value=(1 << 445)),
       msg=st.binary(max_size=64))
def test_ed448_random_signature_for_real_key(r, s, msg):
    pk = bytes.fromhex(
        "5fd7449b59b461fd2ce787ec616ad46a1da1342485a70e1f8a0ea75d80e96778"
        "edf124769b46c7061bd6783df1e50f6cd1fa1abeafe8256180")
    assert eddsa.ed448_verify(pk, msg, r + s.to_bytes(57, "little")) is False

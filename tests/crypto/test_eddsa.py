import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

from cks.crypto.eddsa import ed448_verify, ed25519_verify

RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
L25519 = 2 ** 252 + 27742317777372353535851937790883648493
L448 = 2 ** 446 - 13818066809895115352007386748515426880336692474882178609894547503885
P25519 = 2 ** 255 - 19
P448 = 2 ** 448 - 2 ** 224 - 1
rng = random.Random(8032)

SCHEMES = {
    "ed25519": (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey, ed25519_verify, 32, L25519),
    "ed448": (ed448.Ed448PrivateKey, ed448.Ed448PublicKey, ed448_verify, 57, L448),
}


def test_rfc8032_ed25519_test1():
    # RFC 8032 section 7.1, TEST 1 (empty message)
    pk = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    sig = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
    assert ed25519_verify(pk, b"", sig) is True
    assert ed25519_verify(pk, b"\x00", sig) is False


def test_rfc8032_ed448_blank():
    # RFC 8032 section 7.4, "Blank" (empty message, empty context)
    pk = bytes.fromhex(
        "5fd7449b59b461fd2ce787ec616ad46a1da1342485a70e1f8a0ea75d80e96778"
        "edf124769b46c7061bd6783df1e50f6cd1fa1abeafe8256180")
    sig = bytes.fromhex(
        "533a37f6bbe457251f023c0d88f976ae2dfb504a843e34d2074fd823d41a591f"
        "2b233f034f628281f2fd7a22ddd47d7828c59bd0a21bfd3980ff0d2028d4b18a"
        "9df63e006c5d1c2d345b925d8dc00b4104852db99ac5c7cdda8530a113a0f4db"
        "b61149f05a7363268c71d95808ff2e652600")
    assert ed448_verify(pk, b"", sig) is True
    assert ed448_verify(pk, b"\x00", sig) is False


def keypair(scheme):
    priv_cls = SCHEMES[scheme][0]
    key = priv_cls.from_private_bytes(rng.randbytes(SCHEMES[scheme][3]))
    return key, key.public_key().public_bytes(*RAW)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("length", [0, 1, 32, 64, 1000])
def test_valid_signatures(scheme, length):
    verify = SCHEMES[scheme][2]
    for _ in range(3):
        key, pk = keypair(scheme)
        msg = rng.randbytes(length)
        sig = key.sign(msg)
        assert verify(pk, msg, sig) is True
        assert verify(bytearray(pk), memoryview(msg), bytearray(sig)) is True


def flip(data, bit):
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_negative_cases(scheme):
    _, _, verify, size, order = SCHEMES[scheme]
    key, pk = keypair(scheme)
    msg = b"OpenPGP signature digest"
    sig = key.sign(msg)
    assert verify(pk, msg, sig)
    for bit in (0, 7, 100, len(msg) * 8 - 1):
        assert not verify(pk, flip(msg, bit), sig)
    assert not verify(pk, msg + b"\x00", sig)
    assert not verify(pk, msg[:-1], sig)
    for bit in (0, 9, size * 8 - 1, size * 8, size * 8 + 50, 2 * size * 8 - 20):
        assert not verify(pk, msg, flip(sig, bit))
    for bit in (0, 33, size * 8 - 1):
        assert not verify(flip(pk, bit), msg, sig)
    other = keypair(scheme)[1]
    assert not verify(other, msg, sig)
    # S + L gives the same group element but must be rejected (malleability)
    s = int.from_bytes(sig[size:], "little")
    big = s + order
    if big < 1 << (8 * size):
        assert not verify(pk, msg, sig[:size] + big.to_bytes(size, "little"))
    assert not verify(pk, msg, sig[:size] + b"\xff" * size)
    # wrong lengths and types
    assert not verify(pk[:-1], msg, sig)
    assert not verify(pk + b"\x00", msg, sig)
    assert not verify(pk, msg, sig[:-1])
    assert not verify(pk, msg, sig + b"\x00")
    assert not verify(b"", msg, b"")
    assert not verify(pk.hex(), msg, sig)
    assert not verify(pk, msg.decode(), sig)
    assert not verify(pk, msg, None)
    assert not verify(pk, None, sig)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_undecodable_public_keys(scheme):
    _, _, verify, size, _ = SCHEMES[scheme]
    key, pk = keypair(scheme)
    msg = b"m"
    sig = key.sign(msg)
    p = P25519 if scheme == "ed25519" else P448
    # y >= p (non-canonical) and all-ones
    assert not verify(p.to_bytes(size, "little"), msg, sig)
    assert not verify((p + 1).to_bytes(size, "little"), msg, sig)
    assert not verify(b"\xff" * size, msg, sig)
    # y = 1 gives x = 0; x = 0 with the sign bit set is invalid
    sign_bit = 1 << (8 * size - 1)
    assert not verify((1 | sign_bit).to_bytes(size, "little"), msg, sig)
    # some y has no x: find one (x^2 = (y^2 - 1) / (d y^2 - a) is a non-residue)
    if scheme == "ed25519":
        d, a = -121665 * pow(121666, -1, p) % p, -1
    else:
        d, a = -39081, 1
    y = 2
    while True:
        w = (y * y - 1) * pow((d * y * y - a) % p, -1, p) % p
        if pow(w, (p - 1) // 2, p) == p - 1:
            break
        y += 1
    enc = y.to_bytes(size, "little")
    with pytest.raises((InvalidSignature, ValueError)):
        SCHEMES[scheme][1].from_public_bytes(enc).verify(sig, msg)
    assert not verify(enc, msg, sig)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_agrees_with_cryptography_on_mutations(scheme):
    _, pub_cls, verify, size, _ = SCHEMES[scheme]
    key, pk = keypair(scheme)
    msg = b"differential"
    sig = key.sign(msg)
    for _ in range(30):
        s2 = bytearray(sig)
        p2 = bytearray(pk)
        target = rng.choice([s2, p2])
        target[rng.randrange(len(target))] ^= 1 << rng.randrange(8)
        try:
            pub_cls.from_public_bytes(bytes(p2)).verify(bytes(s2), msg)
            expected = True
        except (InvalidSignature, ValueError):
            expected = False
        assert verify(bytes(p2), msg, bytes(s2)) is expected


def test_identity_public_key_follows_rfc():
    # RFC 8032 does not reject small-order public keys; neither does
    # OpenSSL.  With A = identity, R = [S]B verifies for any message.
    ident = (1).to_bytes(32, "little")
    b_enc = bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666")
    sig = b_enc + (1).to_bytes(32, "little")
    assert ed25519_verify(ident, b"anything", sig) is True
    ed25519.Ed25519PublicKey.from_public_bytes(ident).verify(sig, b"anything")

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes as c_hashes
from cryptography.hazmat.primitives.asymmetric import dsa as c_dsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from cks.crypto import dsa
from cks.crypto.dsa import verify

MESSAGE = b"DSA test message"

HASHES = [
    (c_hashes.SHA1, hashlib.sha1),
    (c_hashes.SHA224, hashlib.sha224),
    (c_hashes.SHA256, hashlib.sha256),
    (c_hashes.SHA384, hashlib.sha384),
    (c_hashes.SHA512, hashlib.sha512),
]

# Domain parameters made once with cryptography's dsa.generate_parameters
# (generating them per run is slow and its run time varies a lot).
DSA_PARAMS = {
    1024: (
        int(
            "d9b2e9dd2253b1e86a9158dc3d48144ebff4eaa24cfc103bdf525dba9ae2cf9a"
            "fd50bc2ee8a98ccff8de6c51dad778d0b930e181a34a77ebf98f72a1029361e0"
            "3dccae5ae55c696fc61132ac93dcba347a0ca38c76b3ab08459b5f168e399d39"
            "6cc2602234dd0f390acaa3aff003dacb699ae8a6ab02a4a2ecfc4058e8834c4d", 16),
        int(
            "c58419137e433fd28665fa9147165d73d4512a57", 16),
        int(
            "7a9f99fcd83b24981868265a75f64c61b67f35254bd8292af59b16ac2721aadf"
            "3fa9ed8a959a3333af76897d017ff995320aa9c06b6f0e096757837e7b816300"
            "3447d88f464193cf7ff0fe84d919658b1348aaddcf9efc238df2fc44b86c1555"
            "97225c000c66f698eed3421b1b28f939bddf74380168e4f9c230af3e2d5e3b97", 16),
    ),
    2048: (
        int(
            "bc7f9478b960edeb5f12ee33ac20ca07d1f0eecfa0f36947a512a07a6a298cce"
            "a7005303993a71066c6452be9b1c1ebf73204d637a3f78b111c012f115627b87"
            "41c794920d0ac02440fbeabb8156db0abfc2c1e1f39d391903d1d4f101931fbd"
            "8a60e403387d84b75d1aada1cd5f51ee11e1fcb68c34ee97efaf4fc94d87b894"
            "144ef027a5a4ad8d56cf48959729f159b3c5885c1fab0e53ef9bc5e8a65059a3"
            "d9114d8b4f676add18dd1b7bb84f344df151fa4a9e19cbd216b3288821a01b29"
            "4e2fc3dd3cda3f6ad80d877ecc7cd33e1a89c9f54c661d4a90c8bbb793a68afd"
            "4fdc19c797ef400f3e45db4f4d0e20dd8372fff566f34e96ec94d5fb14b2e089", 16),
        int(
            "f75de2f37821f9d1fecb99223f7d75df934dbe5f1a036519f0e22ab3bea9718f", 16),
        int(
            "30ad61a7d03ffba72f888f6f1bed4adba9a4492e17e3785f00d155d826d1ee55"
            "16795d08f03732eb66900d5cc6cbc569f644af61268d649fd3e6ced1dd21836f"
            "e4796de7c9c7d028bb80456c1ad0f291a56d804215c6835d4d2bfd497583d40a"
            "b9ea624a4e055609c488d99cd9bf42da08afc6af45df58a22f0cf5a6073b3b46"
            "7b6a7d3ead32288ff6cad2b18e657a5e5e5f23ef3b7fb3f7b2e0cea640a7e08f"
            "ded02e7101eef11c34dd733b074af193b505e9a3ee0041e4fefe2c7fc9b8bfb5"
            "07633d0dee66703f39a822a6487b0db6a02605b3814bf9b3c2ac73962fc1a000"
            "a4278aac0a662f1fdb8703f40ee85cb165fb1e1fb4654d0ec71abad7cf80b892", 16),
    ),
    3072: (
        int(
            "cef9e380b7a7cdb41555e114a8b464b4eded32d1dc6e912d13090fbfcb6040cc"
            "8af80e341da8472c80546e8d2a5a551a22501f237116522b2c346c5f427b9db8"
            "8fc1343850d5e513b8fe2e27d173b6e06d04a3a9da96c9bbb279b5cd022f7df5"
            "04923c4aebb606a806e1465013e5f896490586e212f9ac9895eb0bd70c7e873c"
            "9265edc7e9c7d0a40354e01d8a78211fb87382873b1f9a136d9447c1445c8bb4"
            "d3c6ae55aa0200b14006e7341ec2fd1f90892f8fbd1fb173217067a54adcfa84"
            "dd07a5816b17f71d2e9d50fd073925417666cfeb364d6b35a6fd7c3d1fd8f611"
            "1bf68617cab2ca19bc6abbd8a7346a9c639434afe62f77cb593842b377795e18"
            "d7a22a4b617e312aa3a3befa638afc014af29dbbb78ddb8f4a5b39f20cee5671"
            "2a1c8525ca1c742df2d446db65efedab55ba73576dd5cfc0309fd1c4bc28530d"
            "33cfae2ca37f3582fc54ed1c641717d5e96103d9a3fafec404245294c512412c"
            "5f26a621ab38baec55f9dc29ff7bbac1127ca946c8994c4f1895688c72e7df55", 16),
        int(
            "90395bec49094fddf7db97b1aa72c98dba5cdc48aa6210414c96d69179194289", 16),
        int(
            "655f8e8929e39375af7e7b7c3229fa033361565db2da27b2c19ea2d75ea09679"
            "99c0fa077bba7f38ed50fc778c9c9be3b23c0e4bd38010b1daf40acbe150f61e"
            "e473f5b84f07bc932016a0e2b758bb698650476f85f050060d696a5a4160d51c"
            "d6f3078aa008a84d788691832a436bde87ce36e7ef564157e18e6bbb81bf60c6"
            "4c5b148ce1b524a05b9485b730ab7bf351d0abac068bf82acda3b5569d61e91b"
            "90970236f83a9624d3d95571084012596a8ef836850d6ef1e81b5bd3b5e65d7c"
            "ec1afb002c40545f70c16d28dfbb71cc4377ed48a0e51cf87939370a4dc579f3"
            "9a49baec2fe40dd2346fcf3d64267426689311ff47af49196e1fe839ceae285e"
            "d6fbd9baadfe57a5454d7c4ecc8735b2c6b62026e05badc18ed94166c9cefe69"
            "bd84ca1d423ca0dd271377ec9d7d0cebc86484aa422368615ce03f9679b275a2"
            "f9ef9f6ee0bf2bbdd618a78fff371ded77916b72c6c144998375dd284429a1fa"
            "144e0d425d00623db93817fec71aeb88c2190f4955c447e8e1cb70b7fed05fd0", 16),
    ),
}


def dsa_key(bits):
    p, q, g = DSA_PARAMS[bits]
    return c_dsa.DSAParameterNumbers(p, q, g).parameters().generate_private_key()


@pytest.mark.parametrize("bits,qbits", [(1024, 160), (2048, 256), (3072, 256)])
def test_fixture_parameters_are_sane(bits, qbits):
    p, q, g = DSA_PARAMS[bits]
    assert p.bit_length() == bits and q.bit_length() == qbits
    assert (p - 1) % q == 0 and pow(g, q, p) == 1 and g > 1


def pub(key):
    nums = key.public_key().public_numbers()
    pn = nums.parameter_numbers
    return pn.p, pn.q, pn.g, nums.y


@pytest.mark.parametrize("bits", [1024, 2048, 3072])
@pytest.mark.parametrize("c_hash,h", HASHES, ids=lambda x: getattr(x, "name", ""))
def test_valid_signatures(bits, c_hash, h):
    key = dsa_key(bits)
    p, q, g, y = pub(key)
    r, s = decode_dss_signature(key.sign(MESSAGE, c_hash()))
    digest = h(MESSAGE).digest()
    assert verify(p, q, g, y, digest, r, s) is True


def flip(data, bit):
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


@pytest.mark.parametrize("bits", [1024, 2048])
def test_negative_cases(bits):
    key = dsa_key(bits)
    p, q, g, y = pub(key)
    r, s = decode_dss_signature(key.sign(MESSAGE, c_hashes.SHA256()))
    d = hashlib.sha256(MESSAGE).digest()
    assert verify(p, q, g, y, d, r, s)
    if q.bit_length() < 256:
        # bits beyond the truncation point are ignored, as FIPS 186-4 says
        assert verify(p, q, g, y, flip(d, 8 * 31), r, s)
    for bit in (0, 7, 100, 159):
        assert not verify(p, q, g, y, flip(d, bit), r, s)
    assert not verify(p, q, g, y, hashlib.sha256(MESSAGE + b"!").digest(), r, s)
    assert not verify(p, q, g, y, d, r ^ 1, s)
    assert not verify(p, q, g, y, d, r, s ^ 1)
    assert not verify(p, q, g, y, d, s, r)
    assert not verify(p, q, g, y ^ 2, d, r, s)
    assert not verify(p, q, g ^ 2, y, d, r, s)
    assert not verify(p ^ 4, q, g, y, d, r, s)
    assert not verify(p, q ^ 2, g, y, d, r, s)
    # out of range r, s
    for bad in (0, -r, q, q + r, r + q * 5):
        assert not verify(p, q, g, y, d, bad, s)
    for bad in (0, -s, q, q + s):
        assert not verify(p, q, g, y, d, r, bad)
    # degenerate parameters
    assert not verify(p, q, 1, y, d, r, s)
    assert not verify(p, q, g, 1, d, r, s)
    assert not verify(p, q, g, 0, d, r, s)
    assert not verify(p, q, p, y, d, r, s)
    assert not verify(p, q, g, p + y, d, r, s)
    assert not verify(p, p, g, y, d, r, s)
    assert not verify(0, q, g, y, d, r, s)
    assert not verify(p, 0, g, y, d, r, s)
    assert not verify(p, 1, g, y, d, r, s)
    # wrong digest lengths / types
    assert not verify(p, q, g, y, b"", r, s)
    assert not verify(p, q, g, y, d[:16], r, s)
    assert not verify(p, q, g, y, d.hex(), r, s)
    assert not verify(p, q, g, y, None, r, s)
    assert not verify(p, q, g, y, d, float(r), s)


def test_non_prime_q_does_not_raise():
    # q = 15 divides p - 1 = 30; s = 5 is not invertible modulo 15
    assert verify(31, 15, 2, 4, b"\x01", 3, 5) is False


def test_truncation_uses_leftmost_bits():
    key = dsa_key(1024)  # 160-bit q
    p, q, g, y = pub(key)
    r, s = decode_dss_signature(key.sign(MESSAGE, c_hashes.SHA512()))
    d = hashlib.sha512(MESSAGE).digest()
    assert verify(p, q, g, y, d, r, s)
    # only the first 20 bytes matter with a 160-bit q
    assert verify(p, q, g, y, d[:20], r, s)
    assert verify(p, q, g, y, d[:20] + b"\x00" * 44, r, s)
    assert not verify(p, q, g, y, d[1:21], r, s)


def test_parameters_past_the_limits_are_refused_before_any_arithmetic(monkeypatch):
    """Each check costs about q's bits times p's squared, and a key's owner
    can make every self-signature one to check: p over 4096 bits or q over
    256 (past FIPS 186-4 and GnuPG) is refused without a modular
    exponentiation (the old limits, 16384 and 512 bits: 85 ms a check)."""
    key = dsa_key(3072)
    p, q, g, y = pub(key)
    r, s = decode_dss_signature(key.sign(MESSAGE, c_hashes.SHA256()))
    d = hashlib.sha256(MESSAGE).digest()
    assert verify(p, q, g, y, d, r, s)

    def no_arithmetic(*_):
        raise AssertionError("a modular exponentiation was made")
    monkeypatch.setattr(dsa.libcrypto, "mod_exp", no_arithmetic)
    monkeypatch.setattr(dsa.libcrypto, "mod_exp2", no_arithmetic)
    monkeypatch.setattr(dsa, "_double_pow", no_arithmetic)
    big_p = q * ((1 << 4097) // q) + 1  # q divides p - 1; 4097 or 4098 bits
    big_p += q if not big_p & 1 else 0
    assert big_p.bit_length() > dsa.MAX_P_BITS
    assert not verify(big_p, q, g, y, d, r, s)
    big_q = (1 << 256) + 297  # 257 bits
    p_of_big_q = big_q * ((1 << 3000) // big_q) * 2 + 1
    assert not verify(p_of_big_q, big_q, g, y, d, r, s)

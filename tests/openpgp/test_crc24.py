"""The CRC-24 (cks.openpgp.crc24), by libgcrypt and folded in Python, against
RFC 9580's bit-by-bit definition (the fixture generator's own, independent one)."""

import random

import pytest

from cks.crypto import libgcrypt
from cks.openpgp.crc24 import crc24
from fixtures.make_fixtures import crc24 as reference  # RFC 9580's C code, bit by bit
from support import in_ci


@pytest.fixture(autouse=True, params=["libgcrypt", "python"])
def computed_by(request):
    """Every test runs with libgcrypt (where it loads) and without it."""
    if request.param == "libgcrypt" and not libgcrypt.available():
        if in_ci():  # CI machines have GnuPG 2, and so libgcrypt
            pytest.fail("libgcrypt does not load")
        pytest.skip("libgcrypt cannot be loaded here")
    libgcrypt.use(request.param == "libgcrypt")
    yield request.param
    libgcrypt.use(True)


def test_the_path_under_test_is_the_one_used(computed_by):
    assert libgcrypt.available() == (computed_by == "libgcrypt")


def test_check_value_and_empty_input():
    # The CRC-24/OPENPGP check value over "123456789" and the bare init value.
    assert crc24(b"123456789") == 0x21CF02
    assert crc24(b"") == 0xB704CE


def test_every_length_up_to_600():
    # odd and even counts at every folding round, and the switch to the loop
    rng = random.Random(24)
    for length in range(600):
        data = rng.randbytes(length)
        assert crc24(data) == reference(data), length


def test_long_and_uniform_inputs():
    rng = random.Random(9580)
    for length in (4095, 4096, 4097, 65537, 300_001):
        data = rng.randbytes(length)
        assert crc24(data) == reference(data), length
    for fill in (b"\0", b"\xff"):
        assert crc24(fill * 10_000) == reference(fill * 10_000)


def test_any_bytes_like_input():
    data = bytes(range(256)) * 3
    assert crc24(bytearray(data)) == crc24(memoryview(data)) == reference(data)

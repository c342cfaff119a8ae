import random

import pytest

from cks.crypto._scalar import signed_windows, sliding_window, wnaf

rng = random.Random(5)
SCALARS = [0, 1, 2, 3, 15, 16, 31, 255, 256, 2 ** 64 - 1] + [rng.getrandbits(521) for _ in range(50)]


@pytest.mark.parametrize("width", [2, 4, 5, 7])
def test_wnaf(width):
    for k in SCALARS:
        digits = wnaf(k, width)
        assert sum(d << i for i, d in enumerate(digits)) == k
        nonzero = [i for i, d in enumerate(digits) if d]
        for i in nonzero:
            assert digits[i] & 1 and abs(digits[i]) < 1 << (width - 1)
        assert all(b - a >= width for a, b in zip(nonzero, nonzero[1:]))


@pytest.mark.parametrize("width", [3, 4])
def test_sliding_window(width):
    for k in SCALARS:
        digits = sliding_window(k, width)
        assert sum(d << i for i, d in enumerate(digits)) == k
        assert all(d == 0 or (d & 1 and 0 < d < 1 << width) for d in digits)


@pytest.mark.parametrize("width", [4, 7, 8])
def test_signed_windows(width):
    for k in SCALARS:
        bits = max(k.bit_length(), 1)
        count = (bits + width) // width  # what the curve code uses
        digits = signed_windows(k, width, count)
        assert len(digits) == count
        assert sum(d << (width * i) for i, d in enumerate(digits)) == k
        half = 1 << (width - 1)
        assert all(-half < d <= half for d in digits)

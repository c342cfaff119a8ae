"""The recon field: constants, encodings and sample values, checked by hand
against SKS's definitions (zZp.ml) rather than against the code itself."""

import hashlib

import pytest
from hypothesis import given, settings, strategies as st

from cks.sync.recon import field
from cks.sync.recon.field import (
    P, add_element, element_of_hash, empty_samples, hash_of_element, inverse,
    remove_element, sample_points, samples_of, zzp_bytes, zzp_list_from_bytes)

ELEMENTS = st.integers(min_value=3, max_value=2 ** 128 - 1)


def test_prime_and_constants():
    assert P == 530512889551602322505127520352579437339
    assert P.bit_length() == 129
    for base in (2, 3, 5, 7, 11, 13):  # Fermat: a sanity check that P is prime
        assert pow(base, P - 1, P) == 1
    assert (field.MBAR, field.BITQUANTUM, field.NUM_SAMPLES) == (5, 2, 6)
    assert (field.SPLIT_THRESHOLD, field.JOIN_THRESHOLD) == (50, 25)


def test_sample_points_are_0_m1_1_m2_2_m3():
    assert sample_points() == [0, P - 1, 1, P - 2, 2, P - 3]


def test_element_of_hash_is_little_endian():
    assert element_of_hash(b"\x01" + b"\x00" * 15) == 1
    assert element_of_hash(b"\x00" * 15 + b"\x01") == 2 ** 120
    assert element_of_hash(bytes(range(16))) == 0x0f0e0d0c0b0a09080706050403020100
    assert element_of_hash(b"\xff" * 16) == 2 ** 128 - 1


def test_hash_of_element_inverts_element_of_hash():
    md5 = hashlib.md5(b"key").digest()
    assert hash_of_element(element_of_hash(md5)) == md5
    assert hash_of_element(1) == b"\x01" + b"\x00" * 15


@pytest.mark.parametrize("bad", [b"", b"\x00" * 15, b"\x00" * 17])
def test_element_of_hash_wants_16_bytes(bad):
    with pytest.raises(ValueError):
        element_of_hash(bad)


@pytest.mark.parametrize("bad", [-1, 2 ** 128, P - 1])
def test_hash_of_element_refuses_non_hashes(bad):
    with pytest.raises(ValueError):
        hash_of_element(bad)


def test_zzp_bytes_is_17_bytes_little_endian():
    assert zzp_bytes(0) == b"\x00" * 17
    assert zzp_bytes(1) == b"\x01" + b"\x00" * 16
    assert zzp_bytes(0x0201) == b"\x01\x02" + b"\x00" * 15
    assert zzp_bytes(2 ** 128) == b"\x00" * 16 + b"\x01"
    assert zzp_bytes(P) == b"\x00" * 17  # reduced mod P first
    assert zzp_bytes(-1) == zzp_bytes(P - 1)
    assert zzp_bytes(P - 1)[-1] == 0x01 and len(zzp_bytes(P - 1)) == 17


def test_zzp_list_from_bytes():
    assert zzp_list_from_bytes(b"") == []
    assert zzp_list_from_bytes(b"\x01\x02" + b"\x00" * 15 + zzp_bytes(P - 1)) == [0x0201, P - 1]
    with pytest.raises(ValueError):  # not reduced: malformed
        zzp_list_from_bytes(zzp_bytes(1) + P.to_bytes(17, "little"))
    with pytest.raises(ValueError):
        zzp_list_from_bytes(b"\x00" * 16)


@given(st.lists(st.integers(min_value=0, max_value=P - 1), max_size=20))
def test_zzp_round_trip(values):
    assert zzp_list_from_bytes(b"".join(zzp_bytes(v) for v in values)) == values


def test_element_wire_form_is_md5_then_zero_byte():
    md5 = hashlib.md5(b"some key").digest()
    assert zzp_bytes(element_of_hash(md5)) == md5 + b"\x00"


def test_inverse():
    assert inverse(1) == 1
    assert inverse(P - 1) == P - 1  # (-1) * (-1) = 1
    assert inverse(2) == (P + 1) // 2
    assert 12345 * inverse(12345) % P == 1
    with pytest.raises(ZeroDivisionError):
        inverse(0)
    with pytest.raises(ZeroDivisionError):
        inverse(P)


def test_empty_samples_are_ones():
    assert empty_samples() == [1] * 6
    assert samples_of([]) == [1] * 6


def test_samples_by_hand():
    # points 0, -1, 1, -2, 2, -3; sv = product of (pt - e)
    assert samples_of([10, 20]) == [(0 - 10) * (0 - 20), (-1 - 10) * (-1 - 20),
                                    (1 - 10) * (1 - 20), (-2 - 10) * (-2 - 20),
                                    (2 - 10) * (2 - 20), (-3 - 10) * (-3 - 20)]
    assert samples_of([10, 20]) == [200, 231, 171, 264, 144, 299]
    assert samples_of([5]) == [P - 5, P - 6, P - 4, P - 7, P - 3, P - 8]


def test_add_and_remove_element():
    one = add_element(empty_samples(), 5)
    assert one == samples_of([5])
    assert add_element(one, 7) == samples_of([5, 7])
    assert remove_element(samples_of([5, 7]), 5) == samples_of([7])
    assert remove_element(one, 5) == empty_samples()
    # removing from the empty set gives the inverse products
    assert remove_element(empty_samples(), 5) == [inverse(s) for s in one]


@pytest.mark.parametrize("point", [0, 1, 2, P - 1, P - 2, P - 3])
def test_a_sample_point_is_refused_as_element(point):
    with pytest.raises(ValueError):
        add_element(empty_samples(), point)
    with pytest.raises(ValueError):
        remove_element(empty_samples(), point)
    with pytest.raises(ValueError):
        samples_of([10, point, 20])


@given(st.lists(ELEMENTS, max_size=60))
@settings(max_examples=50, deadline=None)
def test_samples_of_a_set_are_its_elements_added_one_by_one(elements):
    samples = empty_samples()
    for e in elements:
        samples = add_element(samples, e)
    assert samples_of(iter(elements)) == samples


def test_wrong_number_of_samples_is_refused():
    with pytest.raises(ValueError):
        add_element([1] * 5, 10)


@settings(max_examples=100, deadline=None)
@given(st.lists(ELEMENTS, max_size=20), st.lists(ELEMENTS, max_size=20))
def test_add_remove_round_trip_in_any_order(kept, removed):
    samples = samples_of(kept + removed)
    for e in reversed(removed):
        samples = remove_element(samples, e)
    assert samples == samples_of(kept) == samples_of(list(reversed(kept)))

"""Polynomials mod P, the linear solve, root finding, and `reconcile` itself:
every difference it can recover is recovered exactly, and beyond that it
answers None (or, by rare luck, the exact answer), never a wrong one."""

import hashlib
import os
import random
import statistics
import time

import pytest
from hypothesis import given, settings, strategies as st

from cks.sync.recon.field import MBAR, P, element_of_hash, sample_points, samples_of
from cks.sync.recon.interpolate import (
    find_roots, interpolate, poly_add, poly_degree, poly_divmod, poly_eval, poly_from_roots,
    poly_gcd, poly_monic, poly_mul, poly_powmod, poly_sub, poly_trim, reconcile, solve_mod_p,
)

COEFFS = st.lists(st.integers(min_value=0, max_value=P - 1), max_size=8).map(poly_trim)
NONZERO = COEFFS.filter(bool)


def element(seed: bytes) -> int:
    """A set element as recon makes them: the MD5 of something, little-endian."""
    return element_of_hash(hashlib.md5(seed).digest())


def splits_into_distinct_linear(f) -> bool:
    """The textbook form of the check find_roots makes (which reuses a half
    power it has at hand): whether f is a product of distinct (z - r), z^P =
    z mod f (z^P - z is the product of (z - r) over the whole field)."""
    return poly_degree(f) <= 1 or poly_powmod([0, 1], P, f) == [0, 1]


def random_elements(count: int) -> list:
    return [element(os.urandom(16)) for _ in range(count)]


def by_definition(elements) -> list:
    """Sample values straight from the definition, with the points as plain ints."""
    out = []
    for pt in (0, -1, 1, -2, 2, -3):
        product = 1
        for e in elements:
            product *= pt - e
        out.append(product % P)
    return out


def run(local, remote):
    """reconcile from the local side's point of view."""
    return reconcile(samples_of(local), len(local), samples_of(remote), len(remote))


# Polynomials ---------------------------------------------------------------

def test_poly_basics_by_hand():
    assert poly_trim([1, 2, 0, P]) == [1, 2]
    assert poly_degree([]) == -1 and poly_degree([5]) == 0
    assert poly_eval([1, 2, 3], 10) == 321
    assert poly_eval([], 10) == 0
    assert poly_add([1, 2], [3]) == [4, 2]
    assert poly_sub([1, 2], [1, 2]) == []
    assert poly_mul([1, 1], [P - 1, 1]) == [P - 1, 0, 1]  # (z+1)(z-1) = z^2 - 1
    assert poly_monic([4, 2]) == [2, 1]  # 2z + 4 -> z + 2
    assert poly_from_roots([2, 3]) == [6, P - 5, 1]  # z^2 - 5z + 6


def test_poly_divmod_by_hand():
    # z^3 + 1 = (z + 1)(z^2 - z + 1)
    assert poly_divmod([1, 0, 0, 1], [1, 1]) == ([1, P - 1, 1], [])
    # z^2 + 1 = z * z + 1
    assert poly_divmod([1, 0, 1], [0, 1]) == ([0, 1], [1])
    assert poly_divmod([3], [0, 1]) == ([], [3])
    with pytest.raises(ZeroDivisionError):
        poly_divmod([1], [])


@settings(max_examples=100, deadline=None)
@given(COEFFS, NONZERO)
def test_poly_divmod_identity(a, b):
    q, r = poly_divmod(a, b)
    assert poly_add(poly_mul(q, b), r) == a
    assert poly_degree(r) < poly_degree(b)


def test_poly_gcd_is_monic_common_factor():
    a = poly_mul([7], poly_from_roots([1, 2, 3]))
    b = poly_mul([5], poly_from_roots([2, 3, 4]))
    assert poly_gcd(a, b) == poly_from_roots([2, 3])
    assert poly_gcd(poly_from_roots([1]), poly_from_roots([2])) == [1]
    assert poly_gcd([], [3, 3]) == [1, 1]


@settings(max_examples=50, deadline=None)
@given(COEFFS, st.integers(min_value=0, max_value=300), NONZERO)
def test_poly_powmod_matches_repeated_multiplication(base, n, modulus):
    expected = poly_divmod([1], modulus)[1]
    for _ in range(n):
        expected = poly_divmod(poly_mul(expected, base), modulus)[1]
    assert poly_powmod(base, n, modulus) == expected


def test_poly_powmod_fermat_on_constants():
    assert poly_powmod([3], P - 1, [0, 0, 1]) == [1]
    assert poly_powmod([0, 1], 5, [P - 1, 0, 1]) == [0, 1]  # z^5 = z mod z^2 - 1


# Linear algebra ------------------------------------------------------------

def test_solve_mod_p_regular():
    # x + y = 3, x - y = 1
    assert solve_mod_p([[1, 1, 3], [1, P - 1, 1]]) == [2, 1]


def test_solve_mod_p_singular_sets_free_variables_to_zero():
    # x + y = 3 twice: y has no pivot, so y = 0, x = 3
    assert solve_mod_p([[1, 1, 3], [2, 2, 6]]) == [3, 0]
    assert solve_mod_p([[0, 0, 0], [0, 0, 0]]) == [0, 0]
    # a pivot found below the diagonal: 0x + y = 4, x + 0y = 5
    assert solve_mod_p([[0, 1, 4], [1, 0, 5]]) == [5, 4]


def test_solve_mod_p_inconsistent_is_none():
    assert solve_mod_p([[1, 1, 3], [1, 1, 4]]) is None


def test_interpolate_recovers_reduced_fraction():
    points = sample_points()[:MBAR]
    a, b = poly_from_roots([100, 200]), poly_from_roots([300])
    values = [poly_eval(a, k) * pow(poly_eval(b, k), -1, P) % P for k in points]
    assert interpolate(values, points, 1) == (a, b)
    assert interpolate(values, points, 7) is None


# Roots ---------------------------------------------------------------------

def test_find_roots_of_distinct_linear_factors():
    for roots in ([], [42], [3, 4], [5, 6, 7], [P - 9, 10, 11, 12], random_elements(5)):
        f = poly_from_roots(roots)
        assert splits_into_distinct_linear(f)
        assert find_roots(f) == set(roots)
    assert find_roots([6, 2]) == {P - 3}  # 2z + 6, not monic


@pytest.mark.parametrize("f", [
    poly_from_roots([5, 5]),                      # repeated root
    poly_from_roots([1, 2, 2]),
    [1, 0, 1],                                    # z^2 + 1: -1 is no square, P = 3 mod 4
    poly_mul([1, 0, 1], poly_from_roots([7])),    # a linear factor and an irreducible one
    poly_mul([1, 0, 1], poly_from_roots([7, 8])),
])
def test_polynomials_without_distinct_roots_are_refused(f):
    assert P % 4 == 3
    assert not splits_into_distinct_linear(f)
    assert find_roots(f) is None


# Reconciliation ------------------------------------------------------------

def test_tiny_sets_by_hand():
    local, remote = [10, 20], [10, 30]
    assert by_definition(local) == [200, 231, 171, 264, 144, 299]
    assert reconcile(by_definition(local), 2, by_definition(remote), 2) == ({30}, {20})


@pytest.mark.parametrize("size", [0, 1, 7, 100])
def test_equal_sets_have_no_difference(size):
    base = random_elements(size)
    assert run(base, base) == (set(), set())


SPLITS = [(a, b) for a in range(MBAR + 1) for b in range(MBAR + 1) if a + b <= MBAR]


@pytest.mark.parametrize("remote_only,local_only", SPLITS)
def test_every_split_up_to_mbar(remote_only, local_only):
    base = random_elements(60)
    theirs, mine = random_elements(remote_only), random_elements(local_only)
    assert run(base + mine, base + theirs) == (set(theirs), set(mine))


@pytest.mark.parametrize("remote_only,local_only", [(6, 0), (0, 6), (7, 1), (1, 9), (20, 0)])
def test_size_difference_above_mbar_fails(remote_only, local_only):
    base = random_elements(30)
    assert run(base + random_elements(local_only), base + random_elements(remote_only)) is None


@pytest.mark.parametrize("remote_only,local_only", [(3, 3), (4, 3), (6, 2), (1, 6), (5, 5),
                                                    (10, 10), (8, 4)])
def test_too_large_a_difference_is_never_answered_wrongly(remote_only, local_only):
    base = random_elements(30)
    theirs, mine = random_elements(remote_only), random_elements(local_only)
    for _ in range(5):
        result = run(base + mine, base + theirs)
        assert result is None or result == (set(theirs), set(mine))


def test_a_zero_sample_value_fails_without_crashing():
    good = samples_of(random_elements(3))
    zeroed = list(good)
    zeroed[2] = 0  # as if an element were the sample point 1
    assert reconcile(zeroed, 3, good, 3) is None
    assert reconcile(good, 3, zeroed, 3) is None


def test_wrong_number_of_samples_is_an_error():
    with pytest.raises(ValueError):
        reconcile([1] * 5, 0, [1] * 6, 0)


def test_a_seeded_rng_gives_the_same_answer():
    base, theirs = random_elements(10), random_elements(5)
    result = reconcile(samples_of(base), 10, samples_of(base + theirs), 15,
                       rng=random.Random(1))
    assert result == (set(theirs), set())


def test_a_difference_of_five_takes_milliseconds():
    base = random_elements(100)
    theirs, mine = random_elements(3), random_elements(2)
    local, remote = samples_of(base + mine), samples_of(base + theirs)
    times = []
    for _ in range(10):
        started = time.perf_counter()
        assert reconcile(local, 102, remote, 103) == (set(theirs), set(mine))
        times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.1  # a few ms normally; generous for busy CI


# Properties ----------------------------------------------------------------

@st.composite
def split_sets(draw, max_total):
    """(base, only remote, only local): distinct MD5 elements, the diffs up to 5 each.

    The elements are MD5s of (seed, index), so they are distinct and cheap to draw.
    """
    remote_only = draw(st.integers(min_value=0, max_value=MBAR))
    local_only = draw(st.integers(min_value=0, max_value=min(MBAR, max_total - remote_only)))
    base = draw(st.integers(min_value=0, max_value=200))
    seed = draw(st.binary(min_size=8, max_size=8))
    elements = [element(seed + i.to_bytes(2, "big"))
                for i in range(base + remote_only + local_only)]
    return (elements[:base], elements[base:base + remote_only],
            elements[base + remote_only:])


@settings(max_examples=200, deadline=None)
@given(split_sets(max_total=MBAR))
def test_property_small_differences_are_exact(sets):
    base, theirs, mine = sets
    assert run(base + mine, base + theirs) == (set(theirs), set(mine))


@settings(max_examples=100, deadline=None)
@given(split_sets(max_total=2 * MBAR))
def test_property_any_answer_is_exact(sets):
    base, theirs, mine = sets
    result = run(base + mine, base + theirs)
    if len(theirs) + len(mine) <= MBAR:
        assert result == (set(theirs), set(mine))
    else:
        assert result is None or result == (set(theirs), set(mine))

"""The prime field of SKS recon, its constants, and a node's sample values.

Every number here must match SKS 1.1.6 bit for bit: a peer that disagrees on
the prime, the sample points or the byte order computes different sample
values and every reconciliation fails.  Field elements are plain Python ints
in range(P).
"""

from typing import Iterable, List

P = 530512889551602322505127520352579437339
"""The 129-bit prime SKS uses; key hashes (128-bit) are elements as they are."""

MBAR = 5
"""The largest difference one interpolation can recover."""

BITQUANTUM = 2
"""Bits of an element's encoding consumed per prefix-tree level (4 children)."""

NUM_SAMPLES = MBAR + 1
"""MBAR points for the interpolation, plus one to verify its answer."""

SPLIT_THRESHOLD = 50
"""A prefix-tree leaf with more elements than this splits."""

JOIN_THRESHOLD = 25
"""An inner prefix-tree node with this many elements or fewer joins."""

HASH_BYTES = 16
ZZP_BYTES = 17
"""Bytes of a field element on the wire: (129 bits + 7) // 8."""


_POINTS = tuple(((i + 1) // 2 * (1 if i % 2 == 0 else -1)) % P for i in range(NUM_SAMPLES))


def sample_points() -> List[int]:
    """The points 0, -1, 1, -2, 2, -3 (mod P) at which sample values are taken.

    SKS (ZZp.points) makes point i = ((i+1) // 2) * (+1 if i is even else -1).
    """
    return list(_POINTS)


def element_of_hash(md5: bytes) -> int:
    """The set element of a 16-byte key hash: the bytes read little-endian."""
    if len(md5) != HASH_BYTES:
        raise ValueError("a key hash has %d bytes, not %d" % (HASH_BYTES, len(md5)))
    return int.from_bytes(md5, "little")


def is_hash_element(e: int) -> bool:
    """Whether a set element can be a key hash: it fits in 16 bytes.  A
    field element of 2^128 or more (below P) is valid on the wire but names
    no key."""
    return 0 <= e < 1 << (8 * HASH_BYTES)


def hash_of_element(e: int) -> bytes:
    """The 16-byte key hash of a set element (inverse of element_of_hash).

    SKS truncates the 17-byte encoding to 16 bytes; an element that does not
    fit in 16 bytes cannot be a key hash, so it is refused rather than cut.
    """
    if not is_hash_element(e):
        raise ValueError("not a key hash element: %d" % e)
    return e.to_bytes(HASH_BYTES, "little")


def zzp_bytes(x: int) -> bytes:
    """The wire form of a field element: x mod P, exactly 17 bytes little-endian."""
    return (x % P).to_bytes(ZZP_BYTES, "little")


def zzp_list_from_bytes(data: bytes) -> List[int]:
    """The field elements of their 17-byte wire forms, one after the other.

    SKS only ever sends reduced values, so a value of P or more is malformed
    (ValueError), not something to reduce silently.  Decoded in one
    comprehension: a round's message may hold thousands of elements, and a
    call per element was a third of the cost.
    """
    if len(data) % ZZP_BYTES:
        raise ValueError("%d bytes are no whole number of field elements" % len(data))
    values = [int.from_bytes(data[i:i + ZZP_BYTES], "little")
              for i in range(0, len(data), ZZP_BYTES)]
    if values and max(values) >= P:
        raise ValueError("not a field element (>= P)")
    return values


def inverse(x: int) -> int:
    """The multiplicative inverse of x mod P; ZeroDivisionError for 0."""
    x %= P
    if x == 0:
        raise ZeroDivisionError("0 has no inverse mod P")
    return pow(x, -1, P)


def empty_samples() -> List[int]:
    """The sample values of the empty set: the empty product, 1, at every point."""
    return [1] * NUM_SAMPLES


def _factors(e: int) -> List[int]:
    """(pt_i - e) mod P for every sample point; SKS refuses a zero factor.

    An element equal to a sample point would zero a sample value for good
    (it could never be removed again), so, like SKS's add_el_array, refuse it.
    """
    factors = [(pt - e) % P for pt in _POINTS]
    if 0 in factors:
        raise ValueError("element %d is a sample point" % e)
    return factors


def _check_length(samples: List[int]) -> None:
    if len(samples) != NUM_SAMPLES:
        raise ValueError("expected %d sample values, got %d" % (NUM_SAMPLES, len(samples)))


def add_element(samples: List[int], e: int) -> List[int]:
    """The sample values after inserting e: each multiplied by (pt_i - e)."""
    _check_length(samples)
    return [s * f % P for s, f in zip(samples, _factors(e))]


def remove_element(samples: List[int], e: int) -> List[int]:
    """The sample values after deleting e: each divided by (pt_i - e)."""
    _check_length(samples)
    return [s * inverse(f) % P for s, f in zip(samples, _factors(e))]


def samples_of(elements: Iterable[int]) -> List[int]:
    """The sample values of a set: product over its elements of (pt_i - e).

    One running product per sample point, with no list per element: a bulk
    load computes this for every key it adds.  A product of 0 means an
    element is a sample point, refused as add_element refuses it."""
    elements = list(elements)
    samples = []
    for point in _POINTS:
        product = 1
        for e in elements:
            product = product * (point - e) % P
        samples.append(product)
    if 0 in samples:
        raise ValueError("an element is a sample point")
    return samples

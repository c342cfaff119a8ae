"""Property tests: round trips, merge laws, and that hostile bytes only ever
raise the parser's own error, quickly and without large allocations."""

import time
import tracemalloc

from hypothesis import HealthCheck, given, settings, strategies as st

from cks.openpgp import keys, packet as pk
from cks.openpgp.armor import scan
from cks.openpgp.errors import PGPError
from cks.openpgp.info import describe
from support import fixture

NAMES = ["rsa2048", "certified", "photo", "revoked-parts", "v6-ed25519", "v5-ed25519",
         "v3-rsa", "dsa-elg", "multi-uid", "desig-revoker"]
SAMPLES = [scan(fixture(n))[0][0].data for n in NAMES]
FAST = settings(max_examples=300, deadline=2000,
                suppress_health_check=[HealthCheck.too_slow])


def _exercise(data: bytes) -> None:
    """Everything a request does with untrusted key bytes."""
    result = keys.read_keys(data)
    for key in keys.merge_all(result.keys):
        describe(key)
        keys.sks_hash(key)
        key.serialize()


def _bounded(data: bytes) -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        _exercise(data)
    except PGPError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.monotonic() - started < 2
    assert peak < 64 * len(data) + (4 << 20)


@FAST
@given(st.binary(max_size=2048))
def test_random_bytes(data):
    _bounded(data)


@FAST
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_keys(sample, data):
    mutated = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    _bounded(bytes(mutated[:cut]))


@FAST
@given(st.sampled_from(SAMPLES), st.data())
def test_length_fields_set_huge(sample, data):
    """Overwrite a length field with 0xFFFFFFFF-ish values: an error, never an allocation."""
    mutated = bytearray(sample)
    position = data.draw(st.integers(0, len(mutated) - 5))
    mutated[position:position + 5] = b"\xff\xff\xff\xff\xff"
    _bounded(bytes(mutated))


@FAST
@given(st.sampled_from(SAMPLES))
def test_parse_serialize_round_trip(sample):
    assert b"".join(p.serialize() for p in pk.iter_packets(sample)) == sample


def _subsets(sample):
    packets = list(pk.iter_packets(sample))
    return st.lists(st.booleans(), min_size=len(packets), max_size=len(packets)).map(
        lambda mask: keys.parse_keyring(b"".join(
            p.serialize() for p, keep in zip(packets, mask) if keep or p.tag == 6)).keys)


@FAST
@given(st.sampled_from(SAMPLES[:4]).flatmap(lambda s: st.tuples(_subsets(s), _subsets(s),
                                                                _subsets(s))))
def test_merge_laws(triple):
    a, b, c = triple
    if not (a and b and c):
        return
    a, b, c = a[0], b[0], c[0]
    ab = keys.merge(a, b)
    assert ab.serialize() == keys.merge(b, a).serialize()
    assert keys.merge(ab, c).serialize() == keys.merge(a, keys.merge(b, c)).serialize()
    assert keys.merge(ab, b).serialize() == ab.serialize()
    assert keys.sks_hash(ab) == keys.sks_hash(keys.merge(b, a))
